"""The real engines, 2 rounds each (slow): Flower's simulation engine (Ray) and a loopback
deployment (``flower-superlink`` and two ``flower-supernode`` processes, insecure, 127.0.0.1),
started with ``flwr run`` on the app folder floss writes. The deployment's status is read from
``flwr ls --format json``, never from an exit code; FLWR_HOME is temporary; every process is ended
by its PID, also on failure; everything is bounded by a timeout."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from support.processes import free_port

from trainer.config import RunConfig
from trainer.run import train

pytestmark = pytest.mark.slow
FLOWER_ENV = {
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
}
DEPLOY_TIMEOUT = 300.0
REPO = str(Path(__file__).resolve().parents[2])  # floss importable by every process started


def _pythonpath() -> str:
    return os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p)


def _cfg(fed_kwargs: dict[str, Any]) -> RunConfig:
    return RunConfig(
        **{**fed_kwargs, "num_clients": 2, "clients_per_round": 2, "rounds": 2, "eval_test": False}
    )


@pytest.mark.parametrize("fleet", [False, True], ids=["network", "fleet"])
def test_simulation_engine_equals_floss_train(
    fed_kwargs: dict[str, Any], tmp_path: Path, fleet_file: str, fleet: bool
) -> None:
    """fleet: deadline rounds over-selecting 3 of 3 clients for 2, bandwidth-aware upload
    densities, on the two-tier fleet (each node told its own d_up; stragglers reply empty)."""
    from flwr.simulation import run_simulation

    from federation.client import make_client_app
    from federation.server import make_server_app

    config = _cfg(fed_kwargs)
    if fleet:
        config = RunConfig(**{**config.to_dict(), "num_clients": 3, "fleet": fleet_file,
                              "round_policy": "deadline", "deadline_seconds": 0.3,
                              "over_selection": 1.5, "density_policy": "bandwidth",
                              "d_up": 1.0})  # fmt: skip
    reference = train(config, progress=False)
    out = tmp_path / "sim"
    # the ServerApp runs in this process; its outputs hold the final P
    base = RunConfig(**{**config.to_dict(), "checkpoint_every": 2})
    server = make_server_app(base)
    # the run config of a Python-API simulation is empty: the apps carry it
    os.environ.update(FLOWER_ENV)
    from federation import server as server_module

    box: dict[str, Any] = {}
    server = server_module.make_server_app(base, on_finish=lambda s: box.update(s=s))
    server_module_settings = {"out_dir": str(out)}  # noqa: F841 (documented below)
    run_simulation(
        server_app=server,
        client_app=make_client_app(base),
        num_supernodes=config.num_clients,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    strategy = box["s"]
    assert [r.round for r in strategy.records] == [1, 2]
    assert strategy.dropped == []
    assert torch.equal(strategy.final_p, reference.final_p)
    if fleet:  # the same clients kept, bytes and densities, client by client
        assert any(len(r.kept) < len(r.clients) for r in reference.records), "no straggler"
        for got, want in zip(strategy.records, reference.records, strict=True):
            assert (got.clients, got.kept) == (want.clients, want.kept)
            assert got.client_bytes_down == want.client_bytes_down
            assert got.client_bytes_up == want.client_bytes_up
            assert got.client_d_up == want.client_d_up


def _bin(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.skip(f"{name} is not installed")
    return path


def _deployment(folder: Path) -> Any:
    """A SuperLink and two SuperNodes (Flower's own isolation) on 127.0.0.1, not yet started."""
    from federation.loopback import Loopback

    for name in ("flower-superlink", "flower-supernode", "flwr"):
        _bin(name)  # skips where Flower's commands are not installed
    return Loopback(folder, nodes=2, isolation="subprocess")


def _submit(lb: Any, app: Path, deadline: float) -> Any:
    """`flwr run APP loopback --format json` until the SuperLink takes it: the run's id."""
    while time.monotonic() < deadline:
        res = lb.flwr("run", str(app), "loopback", "--format", "json")
        try:
            return json.loads(res.stdout)["run-id"]
        except (ValueError, KeyError, TypeError):
            time.sleep(2)  # the SuperLink is still starting
    raise AssertionError(f"flwr run never submitted the run\n{lb.tails()}")


def _finished(lb: Any, run_id: Any, deadline: float) -> dict[str, Any]:
    """The run's row of `flwr ls --format json` once Flower marks it finished (or the last)."""
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = lb.status(str(run_id))
        if str(status.get("status", "")).startswith("finished"):
            break
        time.sleep(2)
    return status


def test_loopback_deployment(fed_kwargs: dict[str, Any], tmp_path: Path) -> None:
    from federation.appdir import write_app
    from federation.config import AppSettings

    config = RunConfig(**{**_cfg(fed_kwargs).to_dict(), "checkpoint_every": 2})
    reference = train(RunConfig(**{**config.to_dict(), "checkpoint_every": 0}), progress=False)
    assert reference.final_p is not None
    out = tmp_path / "server-out"
    app = tmp_path / "app"
    write_app(app, config, AppSettings(out_dir=str(out), node_wait_seconds=120))
    with _deployment(tmp_path / "deploy") as lb:
        deadline = time.monotonic() + DEPLOY_TIMEOUT
        run_id = _submit(lb, app, deadline)
        status = _finished(lb, run_id, deadline)
        assert status.get("status") == "finished:completed", f"{status}\n{lb.tails()}"
        records = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
        assert [r["round"] for r in records] == [1, 2]
        assert [r["bytes_total"] for r in records] == [r.bytes_total for r in reference.records]
        # the final P, in the trainer's checkpoint format (checkpoint_every 2: the last round)
        from safetensors.torch import load_file

        final_p = load_file(str(out / "checkpoint" / "state.safetensors"))["p"]
        assert torch.equal(final_p, reference.final_p)
        # flwr ls counts the run's traffic: at least every payload, plus Flower's framing
        payload = sum(r.bytes_total for r in reference.records)
        traffic = status["network-traffic"]
        assert traffic["total-bytes"] >= payload
        print(f"deployment: payload {payload} bytes, flwr ls traffic {traffic}")  # for the bench
        # issue 20: the run can be watched in Flower's own log (INFO lines, not only warnings)
        shown = lb.flwr("log", str(run_id), "loopback", "--show").stdout
        assert "floss on Flower: " in shown and f"go to {out}" in shown, shown[-3000:]
        assert "round 1/2: loss" in shown and "round 2/2: loss" in shown, shown[-3000:]
        assert "finished 2/2 rounds: " in shown and f"results in {out}" in shown, shown[-3000:]
        assert json.loads((out / "summary.json").read_text())["dropped_clients"] == 0


def test_a_dead_supernode_is_named_in_the_log(fed_kwargs: dict[str, Any], tmp_path: Path) -> None:
    """Issue 20: with a SuperNode killed the log named the wrong node ("ignored a reply from node
    1": the SuperLink's own id) and the wrong cause. Kill the SuperNode of partition 1 after
    round 1: every later round drops client 1 naming its node, the run completes on client 0,
    and summary.json counts the drops."""
    from federation.appdir import write_app
    from federation.config import AppSettings

    config = RunConfig(**{**_cfg(fed_kwargs).to_dict(), "rounds": 3})
    out = tmp_path / "server-out"
    app = tmp_path / "app"
    write_app(app, config, AppSettings(out_dir=str(out), node_wait_seconds=120))
    with _deployment(tmp_path / "deploy") as lb:
        deadline = time.monotonic() + DEPLOY_TIMEOUT + 300
        run_id = _submit(lb, app, deadline)
        records = out / "rounds.jsonl"
        while time.monotonic() < deadline and not (records.exists() and records.read_text()):
            time.sleep(0.5)
        dead = lb.supernodes[1]  # partition 1's SuperNode dies after round 1
        os.killpg(dead.pid, signal.SIGKILL)
        dead.wait(30)
        status = _finished(lb, run_id, deadline)
        shown = lb.flwr("log", str(run_id), "loopback", "--show").stdout
        print(shown[-3000:])
        assert status.get("status") == "finished:completed", f"{status}\n{lb.tails()}"
        summary = json.loads((out / "summary.json").read_text())
        dropped = summary["dropped"]
        assert summary["dropped_clients"] == len(dropped) >= 1
        assert {d["client"] for d in dropped} == {1}
        node = dropped[0]["node"]
        assert f"dropped client 1 (partition-id 1, node {node})" in shown
        assert "ignored a reply" not in shown and "ClientApp failed" not in shown
        assert "node did not answer" in dropped[0]["reason"], dropped[0]["reason"]
        print(f"dead node: {len(dropped)} drops, reason {dropped[0]['reason']!r}")


def _pids_naming(text: str) -> list[int]:
    """Processes whose command line names ``text`` (a temporary folder only this test uses)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def test_flwr_run_stream_on_the_simulation_shows_the_run_and_writes_it(
    fed_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    """`flwr run APP --stream` on Flower's local simulation (Ray), as the README says, with an
    app whose run config sets no out-dir: the stream shows the out-dir line, the start, every
    round and the end summary, and the results are in the folder it names. The local SuperLink
    and SuperExec that `flwr run` starts and leaves running are ended by their PIDs."""
    import re

    from federation.appdir import write_app
    from federation.config import AppSettings

    config = _cfg(fed_kwargs)
    app = tmp_path / "app"
    write_app(app, config, AppSettings())  # no out-dir
    home, flwr_home = tmp_path / "home", tmp_path / "flwr-home"
    home.mkdir()
    flwr_home.mkdir()
    env = {**os.environ, **FLOWER_ENV, "FLWR_HOME": str(flwr_home), "HOME": str(home),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": _pythonpath()}  # fmt: skip
    env.pop("FLOSS_FLOWER_RESULTS", None)  # the default: ~/floss-flower-results
    try:
        done = subprocess.run(
            [_bin("flwr"), "run", str(app), "--federation-config", "num-supernodes=2", "--stream"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=DEPLOY_TIMEOUT,
        )  # fmt: skip
        text = done.stdout + done.stderr
        match = re.search(r"out-dir is not set: results go to (\S+) \(a folder per run", text)
        assert match, text[-4000:]
        out = Path(match.group(1))
        assert out.parent == (home / "floss-flower-results").resolve()
        for line in (
            f"floss on Flower: floss, rank 4, 2 rounds x 2 of 2 clients; records, checkpoints "
            f"and the adapter go to {out}",
            "round 1/2: loss",
            "round 2/2: loss",
            "finished 2/2 rounds: ",
            f"0 client(s) dropped; results in {out}",
        ):
            assert line in text, (line, text[-4000:])
        rounds = (out / "rounds.jsonl").read_text().splitlines()
        assert len(rounds) == config.rounds == 2 and (out / "summary.json").exists()
        print(f"flwr run --stream (Ray simulation): results in {out}")
    finally:
        left = _pids_naming(str(flwr_home))
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in left):
            time.sleep(0.5)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def deployment_block() -> str:
    """The copy-paste deployment of docs/federation.md, exactly as written there."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "federation.md").read_text()
    return doc.split("<!-- deployment-block -->\n```bash\n", 1)[1].split("```", 1)[0]


def test_the_docs_one_machine_deployment_runs_as_written(
    fed_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    """docs/federation.md's block, run by bash in an empty folder with APP, N and PORT set:
    the SuperLink, one SuperNode per client (--isolation process) with its federation.worker,
    the wait, the run (finished:completed, results in its out-dir, every message answered by
    its node's worker with one model load), and the stop: every process it started has
    ended."""
    from federation.appdir import write_app
    from federation.config import AppSettings

    config = _cfg(fed_kwargs)
    app = tmp_path / "app"
    out = tmp_path / "results"
    write_app(app, config, AppSettings(out_dir=str(out)))
    work = tmp_path / "work"
    work.mkdir()
    port = free_port()
    env = {**os.environ, "APP": str(app), "N": str(config.num_clients), "PORT": str(port),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": _pythonpath()}  # fmt: skip
    started: list[int] = []
    try:
        done = subprocess.run(
            ["bash", "-c", deployment_block()], env=env, cwd=work, capture_output=True,
            text=True, timeout=DEPLOY_TIMEOUT, start_new_session=True,
        )  # fmt: skip
        text = done.stdout + done.stderr
        for name in ("superlink.pid", "supernodes.pid", "workers.pid"):
            started += [int(x) for x in (work / name).read_text().split()]
        assert len(started) == 1 + 2 * config.num_clients
        assert done.returncode == 0, text[-4000:]
        assert "finished 2/2 rounds: " in text and f"results in {out}" in text, text[-4000:]
        assert '"status": "finished:completed"' in text, text[-4000:]
        assert len((out / "rounds.jsonl").read_text().splitlines()) == 2
        # one long-lived ClientApp process per SuperNode answered every message, one model load
        for i in range(config.num_clients):
            answered = [x for x in (work / "logs" / f"worker-{i}.log").read_text().splitlines()
                        if "answered in" in x]  # fmt: skip
            assert len(answered) == 1 + config.rounds, answered  # the query, then each round
            assert all(x.endswith("model loads 1") for x in answered), answered
        assert not [p for p in started if Path(f"/proc/{p}").exists()], "not stopped"
        children = [p for s in started for p in _pids_naming(f"--parent-pid {s} ")]
        deadline = time.monotonic() + 30
        while children and time.monotonic() < deadline:
            time.sleep(0.5)
            children = [p for p in children if Path(f"/proc/{p}").exists()]
        assert not children, f"flower-superexec processes left: {children}"
    finally:
        left = [p for p in started if Path(f"/proc/{p}").exists()]
        left += [p for s in started for p in _pids_naming(f"--parent-pid {s} ")]
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _worker_lines(folder: Path) -> dict[str, list[str]]:
    return {
        log.name: [x for x in log.read_text(errors="replace").splitlines() if "answered in" in x]
        for log in sorted((folder / "logs").glob("worker-*.log"))
    }


def test_process_isolation_loads_the_model_once_per_supernode(
    fed_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    """Issue 20: SuperNodes with --isolation process, each served by one long-lived
    federation.worker process (started by SuperNodes with floss's short waits,
    federation.supernode). Run 1 (3 rounds) equals floss-train bit for bit and each worker
    answers its 4 messages (the start-up query, 3 train messages) with one model load; run 2,
    another seed on the same nodes, equals floss-train's run of that seed and loads the model
    once more per worker (a new config: never the last run's model); run 3, run 1's config
    again, equals floss-train once more."""
    from safetensors.torch import load_file

    from federation.appdir import write_app
    from federation.config import AppSettings
    from federation.loopback import Loopback

    config = RunConfig(**{**_cfg(fed_kwargs).to_dict(), "rounds": 3, "checkpoint_every": 3})
    other = RunConfig(**{**config.to_dict(), "seed": 1})
    want = {
        c.seed: train(RunConfig(**{**c.to_dict(), "checkpoint_every": 0}), progress=False).final_p
        for c in (config, other)
    }
    app = tmp_path / "app"
    write_app(app, config, AppSettings(out_dir=str(tmp_path / "unused"), node_wait_seconds=120))
    with Loopback(tmp_path / "deploy", nodes=2, isolation="process", fast_waits=True) as lb:
        lb.wait_ready(timeout=DEPLOY_TIMEOUT)
        for i, (seed, loads) in enumerate(((0, 1), (1, 2), (0, 3)), start=1):
            out = tmp_path / f"out-{i}"
            res = lb.run(app, timeout=DEPLOY_TIMEOUT, run_config=f"seed={seed} out-dir='{out}'")
            assert res.status.get("status") == "finished:completed", f"{res.status}\n{lb.tails()}"
            p = load_file(str(out / "checkpoint" / "state.safetensors"))["p"]
            assert torch.equal(p, want[seed]), f"run {i} (seed {seed})"
            lines = _worker_lines(lb.folder)
            assert len(lines) == 2, lb.tails()
            for name, answered in lines.items():
                assert len(answered) == 4 * i, (name, answered)  # 1 query + 3 train a run
                assert answered[-1].endswith(f"model loads {loads}"), (name, answered)
            print(f"run {i} (seed {seed}): {res.wall_seconds:.1f} s, elapsed {res.elapsed:.1f}")
        assert {w.poll() for w in lb.workers} == {None}, "a worker ended"
    assert all(p.poll() is not None for p in lb.procs), "a process was left running"
