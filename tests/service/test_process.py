"""A real `floss serve` (uvicorn on 127.0.0.1) runs a tiny study end to end; killed with -9 (the
service, then a worker) and restarted, it lists the study with every finished trial and
resumes it to the end."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from support.processes import alive, free_port, stop, wait_for
from support.serve import TINY_STUDY, call, get_json, show_tail, start_service
from support.task import write_study_task


def finished_trials(port: int) -> dict[int, float | None]:
    shown = get_json(port, "/api/studies/tiny")
    return {t["trial"]: t["value"] for t in shown["trials"] if t["state"] in ("COMPLETE", "PRUNED")}


@pytest.mark.slow
def test_real_service_survives_kill_9_and_resumes_the_study(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_study_task(tmp_path / "data")
    log = tmp_path / "service.log"
    started: list[subprocess.Popen[bytes]] = []
    workers: set[int] = set()
    try:
        port = free_port()
        started.append(start_service(tmp_path, port, log))
        wait_for(lambda: get_json(port, "/api/health"), seconds=90, what="service up")
        status, body = call(port, "POST", "/api/studies", TINY_STUDY)
        assert status == 201, body
        workers.add(json.loads(body)["pid"])
        # the first trial finishes, then the service dies at once (kill -9)
        wait_for(lambda: finished_trials(port), seconds=400, what="first trial finished")
        before = finished_trials(port)
        started[0].send_signal(signal.SIGKILL)
        started[0].wait(30)
        # its worker gets SIGTERM from the kernel (PR_SET_PDEATHSIG) and ends
        wait_for(lambda: not any(alive(p) for p in workers), seconds=120, what="worker ended")

        port = free_port()
        started.append(start_service(tmp_path, port, log))
        wait_for(lambda: get_json(port, "/api/health"), seconds=90, what="service up again")
        (listed,) = get_json(port, "/api/studies")
        assert listed["name"] == "tiny"
        after = finished_trials(port)
        assert {k: after[k] for k in before} == before  # no finished trial lost
        print(f"after the restart: {listed['state']}, finished trials {sorted(after)}")
        if listed["state"] != "finished":
            assert listed["state"] == "unfinished" and listed["resumable"], listed
            status, body = call(port, "POST", "/api/studies/tiny/resume")
            assert status == 200, body
            pid = json.loads(body)["pid"]
            workers.add(pid)
            # a worker killed with -9: the study stays listed, the exit is recorded, resumable
            os.kill(pid, signal.SIGKILL)
            failed = wait_for(
                lambda: (s := get_json(port, "/api/studies/tiny"))["state"] == "failed" and s,
                seconds=30,
                what="worker exit recorded",
            )
            assert failed["resumable"] and finished_trials(port) == after
            status, body = call(port, "POST", "/api/studies/tiny/resume")
            assert status == 200, body
            workers.add(json.loads(body)["pid"])
            wait_for(
                lambda: get_json(port, "/api/studies/tiny")["state"] == "finished",
                seconds=600,
                what="study finished",
            )
        done = get_json(port, "/api/studies/tiny")
        assert done["progress"]["finished"] >= 2 and done["recommendation"] is not None
        assert {k: finished_trials(port)[k] for k in before} == before
        status, png = call(port, "GET", "/api/studies/tiny/plot.png")
        assert status == 200 and png.startswith(b"\x89PNG")
        status, data = call(port, "GET", "/api/studies/tiny/export.zip")
        assert status == 200, data[:500]
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        assert {"tiny/run.yaml", "tiny/peft/adapter_config.json", "tiny/trials.csv"} <= set(names)
        clients = [
            {"id": 1, "down_mbps": 50, "up_mbps": 5},
            {"id": 2, "down_mbps": 8, "up_mbps": 1},
        ]
        status, body = call(port, "POST", "/api/round-plan", {"study": "tiny", "clients": clients})
        assert status == 200, body
        assert json.loads(body)["rank"] == done["recommendation"]["rank"]
    finally:
        stop(started, workers)
        show_tail(log)


def trials_in_storage(tmp: Path) -> list[Any]:
    import optuna

    from tuner.storage import open_storage

    db = tmp / "studies.db"
    if not db.exists():
        return []
    try:
        study = optuna.load_study(study_name="tiny", storage=open_storage(f"sqlite:///{db}"))
    except KeyError:
        return []
    return list(study.get_trials(deepcopy=False))


@pytest.mark.slow
def test_worker_and_service_killed_mid_trial_resume_on_start_with_nothing_skipped(
    tmp_path: Path,
) -> None:
    """Issue 20: kill -9 of the worker inside a trial, then of the service (a machine that
    went down); restarted with --resume-unfinished, the service fails the orphaned trial, its
    worker trains that configuration again, and the study finishes with every trial counted
    being a configuration trained (no duplicate, none skipped)."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    (tmp_path / "data").mkdir()
    write_study_task(tmp_path / "data")
    log = tmp_path / "service.log"
    started: list[subprocess.Popen[bytes]] = []
    workers: set[int] = set()
    study = {**TINY_STUDY, "n_trials": 3}
    try:
        port = free_port()
        started.append(start_service(tmp_path, port, log))
        wait_for(lambda: get_json(port, "/api/health"), seconds=90, what="service up")
        status, body = call(port, "POST", "/api/studies", study)
        assert status == 201, body
        pid = json.loads(body)["pid"]
        workers.add(pid)
        running = wait_for(
            lambda: [
                t for t in trials_in_storage(tmp_path)
                if t.state == TrialState.RUNNING and "owner" in t.user_attrs
                and t.user_attrs["owner"]["pid"] == pid
            ],
            seconds=400,
            what="a trial running in the worker",
        )  # fmt: skip
        orphan, key = running[0].number, running[0].user_attrs.get("key")
        os.kill(pid, signal.SIGKILL)  # the worker first: it cannot mark its trial interrupted
        started[0].send_signal(signal.SIGKILL)
        started[0].wait(30)
        wait_for(lambda: not alive(pid), seconds=30, what="worker gone")
        assert trials_in_storage(tmp_path)[orphan].state == TrialState.RUNNING

        port = free_port()
        started.append(start_service(tmp_path, port, log, "--resume-unfinished"))
        wait_for(lambda: get_json(port, "/api/health"), seconds=90, what="service up again")
        listed = get_json(port, "/api/studies/tiny")
        assert listed["state"] == "running", listed  # resumed by the service itself
        workers.add(listed["worker"]["pid"])
        done = wait_for(
            lambda: (s := get_json(port, "/api/studies/tiny"))["state"] == "finished" and s,
            seconds=900,
            what="study finished",
        )
        trials = trials_in_storage(tmp_path)
        assert all(t.state != TrialState.RUNNING for t in trials)
        assert trials[orphan].state == TrialState.FAIL
        assert trials[orphan].user_attrs["end"] == "interrupted"
        retried = [t for t in trials if t.user_attrs.get("retry_of") == orphan]
        if key is not None:  # the kill may land before the objective set the key
            assert retried and retried[0].user_attrs["key"] == key
        counted = [
            t for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            and "duplicate_of" not in t.user_attrs
        ]  # fmt: skip
        target = done["progress"]["target"]
        assert done["progress"]["finished"] == len(counted) == target
        assert len({t.user_attrs["key"] for t in counted}) == target
        text = log.read_text(errors="replace")
        assert f"trial(s) {orphan} were left running by a process that is gone" in text
        assert "study 'tiny' resumed" in text
        print(f"orphan {orphan}, {len(trials)} trials, target {target}")
    finally:
        stop(started, workers)
        show_tail(log)
