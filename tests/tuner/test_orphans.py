"""Issue 20: a trial left RUNNING by a killed worker is failed and retried at once on the rerun
(no waiting for a heartbeat, none on journal files), no configuration is skipped as a duplicate
of it, and duplicates never count towards the trial target. Real processes, real kill -9, the
fake trainer."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tuner.orphans import owner_gone, owner_record

optuna.logging.set_verbosity(optuna.logging.WARNING)

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
WORKER = """
import sys
from planner.budget import parse_budget
from planner.plan_types import PlanSettings
from planner.profiles import load_model, load_network
from tuner.objective import Objective
from tuner.settings import TuneSettings
from tuner.build import build_space
from tuner.study import run_study
from tuner_fakes import FakeConfig, FakeTrain

storage, n_trials, sleep = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
space = build_space(
    PlanSettings(
        model=load_model("all-minilm-l6-v2"),
        network=load_network("thesis").with_links(up_slowdown=16),
        budget=parse_budget("50-dense-rounds"),
        ranks=(2, 4),
        d_down=(1.0, 0.25),
        d_up=(1.0, 0.0625),
        max_rounds=40,
    ),
    budget_scale=0.5,
)
settings = TuneSettings(storage=storage, study_name="s", n_trials=n_trials, seed=0)
obj = Objective(
    space=space, base_config=FakeConfig(), settings=settings, train_fn=FakeTrain(space, sleep=sleep)
)
print("space", len(space.candidates), flush=True)
run_study(settings, space, obj, space_meta=space.summary(), log=lambda m: print(m, flush=True))
"""


def worker(storage: str, n_trials: int, sleep: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, storage, str(n_trials), str(sleep)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )


def load(storage: str) -> optuna.Study | None:
    from tuner.storage import open_storage

    path = Path(storage.removeprefix("sqlite:///"))
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        return optuna.load_study(study_name="s", storage=open_storage(storage))
    except KeyError:
        return None


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_killed_workers_running_trial_is_retried_and_nothing_is_skipped(
    tmp_path: Path, kind: str
) -> None:
    storage = f"sqlite:///{tmp_path / 'tune.db'}" if kind == "sqlite" else str(tmp_path / "log")
    proc = worker(storage, 100, 0.05)  # slow rounds: the kill lands inside a trial
    started: list[subprocess.Popen[str]] = [proc]
    try:
        deadline = time.monotonic() + 120
        orphan = None
        while orphan is None and time.monotonic() < deadline:
            time.sleep(0.1)
            study = load(storage)
            if study is None:
                continue
            trials = study.get_trials(deepcopy=False)
            done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
            running = [
                t for t in trials if t.state == TrialState.RUNNING and "owner" in t.user_attrs
            ]
            if done and running:
                orphan = running[0].number
        assert orphan is not None, "no trial was running after a finished one"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        study = load(storage)
        assert study is not None
        killed = study.trials[orphan]
        assert killed.state == TrialState.RUNNING  # nothing told the storage it ended
        key = killed.user_attrs["key"]

        # the rerun, at once (well inside the heartbeat's grace period): every configuration
        rerun = worker(storage, 100, 0.0)
        started.append(rerun)
        out, _ = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, out[-3000:]
        size = int(out.split("space ", 1)[1].split()[0])
        assert size < 100
        assert f"trial {orphan} was left running by a process that is gone" in out, out[-3000:]
        assert f"the search space holds {size} configurations" in out
        study = load(storage)
        assert study is not None
        trials = study.trials
        assert all(t.state != TrialState.RUNNING for t in trials)
        assert trials[orphan].state == TrialState.FAIL
        assert trials[orphan].user_attrs["end"] == "interrupted"
        retried = [t for t in trials if t.user_attrs.get("retry_of") == orphan]
        assert len(retried) == 1 and retried[0].user_attrs["key"] == key
        assert retried[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
        # every configuration trained once; duplicates finished too but counted for nothing
        counted = [
            t
            for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            and "duplicate_of" not in t.user_attrs
        ]
        assert len(counted) == size == study.user_attrs["floss_target"]
        assert len({t.user_attrs["key"] for t in counted}) == size
        duplicates = [t for t in trials if "duplicate_of" in t.user_attrs]
        print(f"{kind}: {len(trials)} trials, {size} configurations, {len(duplicates)} duplicates")
    finally:
        for p in started:
            if p.poll() is None:
                p.kill()
                p.wait(30)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    return child.pid


def test_owner_gone_tells_a_dead_owner_from_a_live_one() -> None:
    here = owner_record()
    assert here["host"] == socket.gethostname() and here["pid"] == os.getpid()
    assert owner_gone(here) is False
    assert owner_gone({**here, "pid": _dead_pid()}) is True
    if here["start"] is not None:  # Linux: a PID reused by another process is not the owner
        assert owner_gone({**here, "start": here["start"] - 1}) is True
    if here["boot"]:  # the machine restarted since the trial started
        assert owner_gone({**here, "boot": "another-boot"}) is True
    assert owner_gone({**here, "host": here["host"] + "-elsewhere"}) is None
    assert owner_gone({**here, "pidns": "pid:[0]"}) is None
    assert owner_gone(None) is None and owner_gone({"pid": "1"}) is None
