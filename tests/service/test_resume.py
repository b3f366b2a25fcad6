"""`floss serve --resume-unfinished` and orphaned trials, through the app with stand-in workers
(the real kill -9 of a training worker is in test_process.py and tests/tuner/test_orphans.py):
at start every trial left RUNNING by a dead process is failed as interrupted; unfinished studies
get a worker again, oldest first, up to --max-workers; stopped and failed ones do not; duplicates
never count towards the target."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import ServeConfig
from tuner.orphans import owner_record

STAND_IN = [sys.executable, "-c", "import time; time.sleep(60)"]


def _study(data_root: Path, name: str) -> dict[str, Any]:
    (data_root / "texts.csv").write_text("text,label\na b,x\nc d,y\n")
    base = {"model": "tiny-random-bert", "data": "csv", "data_path": "texts.csv"}
    return {"name": name, "base": base, "n_trials": 3, "budget_scale": 0.1}


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    return child.pid


class Service:
    """One app on the test's storage, its workers stand-ins that record their arguments."""

    def __init__(self, tmp_path: Path, data_root: Path, **overrides: Any) -> None:
        config = ServeConfig(
            storage=f"sqlite:///{tmp_path / 'studies.db'}",
            data_root=data_root,
            work_dir=tmp_path / "work",
            **overrides,
        )
        self.app = create_app(config)
        self.started: list[list[str]] = []
        self.pool = self.app.state.studies.pool

        def command(args: list[str]) -> list[str]:
            self.started.append(args)
            return STAND_IN

        self.pool.command = command
        self.client = TestClient(self.app, raise_server_exceptions=False)

    def __enter__(self) -> Service:
        self.client.__enter__()  # the lifespan: recovery and --resume-unfinished run here
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.client.__exit__(None, None, None)  # stops the stand-ins (SIGTERM, then kill)
        finally:
            for w in list(self.pool.workers.values()):
                if w.proc.poll() is None:
                    w.proc.kill()
                    w.proc.wait(10)

    def kill_workers(self) -> None:
        """As kill -9 of the service would leave them: no exit recorded."""
        for w in list(self.pool.workers.values()):
            w.proc.kill()
            w.proc.wait(10)
        self.pool.workers.clear()


def _orphan(storage: str, name: str, *, pid: int) -> int:
    """A RUNNING trial owned by ``pid``, as a worker killed with -9 leaves it."""
    import optuna

    from tuner.storage import open_storage

    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    trial = study.ask()
    trial.set_user_attr("owner", {**owner_record(), "pid": pid, "start": None})
    trial.set_user_attr("key", "k-orphan")
    return int(trial.number)


def test_resume_unfinished_restarts_what_was_running(
    tmp_path: Path, data_root: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    with Service(tmp_path, data_root, max_workers=4) as first:
        for name in ("old", "newer", "halted", "broken"):
            assert (
                first.client.post("/api/studies", json=_study(data_root, name)).status_code == 201
            )
        assert first.client.post("/api/studies/halted/stop").status_code == 200
        first.pool.workers["broken"].proc.kill()  # dies on its own: recorded as failed
        for name in ("halted", "broken"):
            first.pool.workers[name].proc.wait(10)
        first.app.state.studies.reap()
        first.kill_workers()  # then the service dies with -9: nothing more is recorded
    dead = _dead_pid()
    orphan = _orphan(storage, "old", pid=dead)
    alive = _orphan(storage, "newer", pid=os.getpid())  # a live owner: left alone
    with Service(tmp_path, data_root, max_workers=1, resume_unfinished=True) as again:
        shown = {s["name"]: s for s in again.client.get("/api/studies").json()}
        # oldest first, up to --max-workers: "old" resumed, "newer" waits; stopped/failed not
        assert shown["old"]["state"] == "running" and shown["newer"]["state"] == "unfinished"
        assert shown["halted"]["state"] == "stopped" and shown["broken"]["state"] == "failed"
        assert [a[a.index("--study-name") + 1] for a in again.started] == ["old"]
        old = again.client.get("/api/studies/old").json()
        failed = next(t for t in old["trials"] if t["trial"] == orphan)
        assert failed["state"] == "FAIL" and old["progress"]["interrupted"] == 1
        assert old["progress"]["running"] == 0
        newer = again.client.get("/api/studies/newer").json()
        assert next(t for t in newer["trials"] if t["trial"] == alive)["state"] == "RUNNING"
    err = capfd.readouterr().err
    assert f"study 'old': trial(s) {orphan} were left running by a process that is gone" in err
    assert "study 'old' resumed (0/3 trials finished): worker pid" in err
    assert "study 'newer' left unfinished: all 1 tuning worker(s) are busy" in err


def test_a_graceful_stop_is_resumed_a_stop_through_the_api_is_not(
    tmp_path: Path, data_root: Path
) -> None:
    with Service(tmp_path, data_root) as first:
        assert first.client.post("/api/studies", json=_study(data_root, "s")).status_code == 201
    # the service stopped (Ctrl-C): its worker was interrupted, not stopped by a user
    with Service(tmp_path, data_root) as plain:
        assert plain.client.get("/api/studies/s").json()["state"] == "unfinished"
        assert plain.started == []  # without --resume-unfinished nothing starts by itself
    with Service(tmp_path, data_root, resume_unfinished=True) as again:
        assert again.client.get("/api/studies/s").json()["state"] == "running"
        assert again.client.post("/api/studies/s/stop").status_code == 200
    with Service(tmp_path, data_root, resume_unfinished=True) as third:
        assert third.client.get("/api/studies/s").json()["state"] == "stopped"
        assert third.started == []


def test_duplicates_count_for_nothing(tmp_path: Path, data_root: Path) -> None:
    """Progress counts trials that trained a configuration; duplicates are listed apart."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from tuner.storage import open_storage

    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    with Service(tmp_path, data_root) as svc:
        assert svc.client.post("/api/studies", json=_study(data_root, "d")).status_code == 201
        svc.kill_workers()
        study = optuna.load_study(study_name="d", storage=open_storage(storage))
        for attrs in ({"key": "a"}, {"key": "b"}, {"key": "a", "duplicate_of": 0}):
            study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5, user_attrs=attrs))
        shown = svc.client.get("/api/studies/d").json()
        assert shown["progress"]["finished"] == 2 and shown["progress"]["duplicates"] == 1
        assert shown["state"] != "finished"  # 2 of 3: the duplicate does not fill the target
