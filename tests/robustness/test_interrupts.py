"""Ctrl-C and SIGTERM lose nothing and print no traceback (trainer.interrupt).

Real CLI subprocesses get SIGINT once they have reached a known point (a line on stderr or in
rounds.jsonl, never a sleep alone): ``floss-train`` finishes its round, checkpoints, prints one
resume line and exits 130, and the printed command resumes to the uninterrupted run's P bit for
bit; ``floss-tune`` marks the running trial interrupted, keeps the finished ones, and a rerun
trains the interrupted one again; a second SIGINT exits at once; ``floss-plan`` exits 130 with
one line. Workers starting together on a new study enqueue each seed once, and a seed enqueued
twice anyway is not trained twice. Every subprocess is bounded and killed by PID.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from support.cpu import one_torch_thread
from support.task import ROBUST_BASE, write_base_config

ROOT = Path(__file__).resolve().parents[2]
TUNER_TESTS = ROOT / "tests" / "tuner"
LIMIT_S = 240  # bound on any one subprocess
IGNORED = {"wall_seconds"}

optuna.logging.set_verbosity(optuna.logging.WARNING)

# A floss-train whose rounds from FROM on last SLEEP seconds longer (after each record is
# written), so a signal sent once a record is on disk lands inside a round.
SLOW_TRAIN = """
import sys, time
from trainer import records
SLEEP, FROM = float(sys.argv.pop(1)), int(sys.argv.pop(1))
write = records.RecordWriter.write
def slow(self, record):
    write(self, record)
    if record.round >= FROM:
        time.sleep(SLEEP)
records.RecordWriter.write = slow
sys.argv[0] = "floss-train"
from trainer.cli import main
main()
"""
# floss-tune whose trials print '@round N' and pause SLEEP seconds after each round.
SLOW_TUNE = """
import sys, time
import trainer.run as run
SLEEP = float(sys.argv.pop(1))
real = run.train
def slow(config, *, on_round=None, **kw):
    def hook(record):
        print(f"@round {record.round}", file=sys.stderr, flush=True)
        time.sleep(SLEEP)
        return None if on_round is None else on_round(record)
    return real(config, on_round=hook, **kw)
run.train = slow
sys.argv[0] = "floss-tune"
from tuner.cli import main
main()
"""
# floss-plan that says 'ready' and blocks where it would render the plan
SLOW_PLAN = """
import sys, time
import planner.cli as cli
def slow(*a, **k):
    print("ready", file=sys.stderr, flush=True)
    time.sleep(60)
cli.render_plan = slow
sys.argv[0] = "floss-plan"
cli.plan_main()
"""


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


class Proc:
    """A subprocess whose stderr is read line by line on a thread (so waits can poll it)."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.popen = subprocess.Popen(
            args,
            cwd=cwd,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.err: list[str] = []
        self._out: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.popen.stderr, self.err), daemon=True),
            threading.Thread(target=self._read, args=(self.popen.stdout, self._out), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for(self, test: Callable[[], bool], what: str, timeout: float = LIMIT_S) -> None:
        deadline = time.monotonic() + timeout
        while not test():
            if self.popen.poll() is not None:
                self._join()
                pytest.fail(f"process ended before {what}:\n" + "\n".join(self.err[-30:]))
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}:\n" + "\n".join(self.err[-30:]))
            time.sleep(0.02)

    def wait_line(self, pred: Callable[[str], bool], what: str) -> None:
        self.wait_for(lambda: any(pred(line) for line in list(self.err)), what)

    def signal(self, sig: int = signal.SIGINT) -> None:
        self.popen.send_signal(sig)

    def finish(self, timeout: float = LIMIT_S) -> int:
        self.popen.wait(timeout)
        self._join()
        return self.popen.returncode

    def _join(self) -> None:
        for reader in self._readers:
            reader.join(10)

    @property
    def out(self) -> str:
        return "\n".join(self._out)

    @property
    def text(self) -> str:
        return self.out + "\n".join(self.err)


@contextmanager
def running(args: list[str], cwd: Path) -> Iterator[Proc]:
    proc = Proc(args, cwd)
    try:
        yield proc
    finally:
        if proc.popen.poll() is None:
            os.kill(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait(10)


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text and "Exception ignored" not in text, text


# ---------------------------------------------------------------- floss-train


def _train_flags(kwargs: dict[str, Any], out: Path) -> list[str]:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in kwargs.items()]
    return [*flags, "--no-progress", f"--out-dir={out}"]


def _jsonl_rounds(out: Path) -> int:
    path = out / "rounds.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _strip(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in IGNORED} for r in records]


def _adapter_tensors(out: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(out / "adapter" / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def train_kwargs(robust_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**robust_kwargs, "rounds": 8, "checkpoint_every": 0}


@pytest.mark.slow
def test_floss_train_sigint_checkpoints_and_resumes_bit_identical(
    train_kwargs: dict[str, Any], robust_workload: Any, tmp_path: Path
) -> None:
    import torch

    from trainer.config import RunConfig
    from trainer.run import train

    with one_torch_thread():  # as the subprocesses (OMP_NUM_THREADS=1)
        reference = train(
            RunConfig(**train_kwargs),
            workload=robust_workload,
            out_dir=tmp_path / "reference",
            progress=False,
        )
    out = tmp_path / "run"
    args = [sys.executable, "-c", SLOW_TRAIN, "0.3", "1", *_train_flags(train_kwargs, out)]
    with running(args, tmp_path) as proc:
        proc.wait_for(lambda: _jsonl_rounds(out) >= 2, "round 2 in rounds.jsonl")
        proc.signal(signal.SIGINT)
        code = proc.finish()
    assert code == 130, proc.text
    _no_traceback(proc.text)
    resume_lines = [line for line in proc.err if "--resume" in line]
    assert len(resume_lines) == 1, proc.err
    done = _jsonl_rounds(out)
    assert 2 <= done < train_kwargs["rounds"]
    assert resume_lines[0].startswith(f"interrupted after round {done} of 8, checkpoint saved")
    manifest = json.loads((out / "checkpoint" / "manifest.json").read_text())
    assert manifest["round"] == done  # checkpoint_every 0, yet the interrupt saved one
    assert not (out / "adapter").exists()  # the run is not over

    command = shlex.split(resume_lines[0].split("resume with: ", 1)[1])
    assert command[0] == "floss-train" and command[-1] == "--resume"
    resume = [sys.executable, "-c", SLOW_TRAIN, "0", "1", *command[1:], "--no-progress"]
    done_proc = subprocess.run(
        resume, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=LIMIT_S
    )
    assert done_proc.returncode == 0, done_proc.stderr
    resumed = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]
    expected = json.loads(json.dumps([r.to_dict() for r in reference.records]))
    assert _strip(resumed) == _strip(expected)
    mine, theirs = _adapter_tensors(out), _adapter_tensors(tmp_path / "reference")
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)  # every entry of P, bit for bit
    assert reference.final_p is not None
    assert sum(t.numel() for t in mine.values()) >= reference.final_p.numel()


def test_floss_train_second_sigint_exits_at_once(
    train_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    from trainer.checkpoint import load_checkpoint

    out = tmp_path / "run"
    kwargs = {**train_kwargs, "checkpoint_every": 1}
    # round 2 then sleeps 120 s after its record: only a second signal can end it in time
    args = [sys.executable, "-c", SLOW_TRAIN, "120", "2", *_train_flags(kwargs, out)]
    with running(args, tmp_path) as proc:
        proc.wait_for(lambda: _jsonl_rounds(out) >= 2, "round 2 in rounds.jsonl")
        proc.signal(signal.SIGINT)
        proc.wait_line(lambda line: line.startswith("interrupt: stopping"), "the first note")
        start = time.monotonic()
        proc.signal(signal.SIGINT)
        code = proc.finish(timeout=60)
        took = time.monotonic() - start
    assert code == 130, proc.text
    assert took < 30
    _no_traceback(proc.text)
    assert proc.err[-1].startswith("interrupted again: exiting now"), proc.err
    # the last checkpoint (round 1's) is intact: its manifest, checksums and tensors check out
    saved = json.loads((out / "checkpoint" / "meta.json").read_text())["config"]
    assert load_checkpoint(out, config=saved, n=_checkpoint_n(out)).round == 1


def _checkpoint_n(out: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(out / "checkpoint" / "state.safetensors"), "pt") as fh:
        return int(fh.get_slice("p").get_shape()[0])


def test_floss_train_sigterm_is_handled_like_sigint(
    train_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = [sys.executable, "-c", SLOW_TRAIN, "0.5", "1", *_train_flags(train_kwargs, out)]
    with running(args, tmp_path) as proc:
        proc.wait_for(lambda: _jsonl_rounds(out) >= 1, "round 1 in rounds.jsonl")
        proc.signal(signal.SIGTERM)
        code = proc.finish()
    assert code == 130, proc.text
    _no_traceback(proc.text)
    assert sum("--resume" in line for line in proc.err) == 1
    assert (out / "checkpoint" / "manifest.json").exists()


# ---------------------------------------------------------------- floss-plan


def test_floss_plan_sigint_exits_130_with_one_line(tmp_path: Path) -> None:
    with running([sys.executable, "-c", SLOW_PLAN], tmp_path) as proc:
        proc.wait_line(lambda line: line == "ready", "the plan to be rendered")
        proc.signal(signal.SIGINT)
        code = proc.finish(timeout=60)
    assert code == 130, proc.text
    assert proc.err == ["ready", "interrupted."]
    assert proc.out == ""


# ---------------------------------------------------------------- floss-tune


def _tune_args(tmp_path: Path, data: Path, storage: str, sleep: float) -> list[str]:
    base = write_base_config(tmp_path, {**ROBUST_BASE, "data_path": str(data), "up_slowdown": 16})
    return [
        sys.executable, "-c", SLOW_TUNE, str(sleep), "run",
        "--config", str(base),
        "--budget", "50-dense-rounds", "--budget-scale", "0.5", "--max-rounds", "16",
        "--ranks", "2,4", "--d-down", "1,1/4", "--d-up", "1,1/4,1/16",
        "--n-trials", "4", "--seed", "0", "--search", "optuna", "--pruner", "none",
        "--storage", storage, "--study-name", "s",
    ]  # fmt: skip


def _trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    from tuner.storage import open_storage

    return optuna.load_study(study_name="s", storage=open_storage(storage)).trials


@pytest.mark.slow
def test_floss_tune_sigint_keeps_finished_trials_and_rerun_retries(
    robust_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    data = Path(robust_kwargs["data_path"])
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    args = _tune_args(tmp_path, data, storage, sleep=0.2)

    def in_trial_1_round_3() -> bool:
        lines = list(proc.err)
        starts = [i for i, line in enumerate(lines) if line.startswith("trial 1: ")]
        return bool(starts) and "@round 3" in lines[starts[0] :]

    with running(args, tmp_path) as proc:
        proc.wait_for(in_trial_1_round_3, "round 3 of trial 1")
        proc.signal(signal.SIGINT)
        code = proc.finish()
    assert code == 130, proc.text
    _no_traceback(proc.text)
    assert "failed with parameters" not in proc.text  # Optuna's own failure log is kept quiet
    resume = [line for line in proc.err if "resume with:" in line]
    assert len(resume) == 1, proc.err
    assert resume[0].startswith("interrupted: trial 1 (")
    assert "1 finished trials kept in" in resume[0]
    assert resume[0].endswith("--storage " + shlex.quote(storage) + " --study-name s")
    before = {t.number: t for t in _trials(storage)}
    assert before[0].state == TrialState.COMPLETE
    first = before[0].value
    assert before[1].state == TrialState.FAIL
    assert before[1].user_attrs["end"] == "interrupted"
    rounds = [r["round"] for r in before[1].user_attrs["records"]]
    assert rounds[0] == 1 and 3 <= rounds[-1] < before[1].user_attrs["candidate"]["rounds"]
    interrupted_key = before[1].user_attrs["key"]

    with running(_tune_args(tmp_path, data, storage, sleep=0.0), tmp_path) as proc:
        code = proc.finish()
    assert code == 0, proc.text
    _no_traceback(proc.text)
    assert "enqueued trial 1 again (it was interrupted)" in proc.err
    after = _trials(storage)
    assert after[0].state == TrialState.COMPLETE and after[0].value == first  # kept as it was
    retried = [t for t in after if t.user_attrs.get("retry_of") == 1]
    assert len(retried) == 1
    assert retried[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retried[0].user_attrs["key"] == interrupted_key
    assert retried[0].user_attrs["candidate"]["why"]  # it was a seed, and still is one
    finished = [t for t in after if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) >= 4
    trained = [t.user_attrs["key"] for t in finished if "duplicate_of" not in t.user_attrs]
    assert len(trained) == len(set(trained))  # nothing trained twice


# ---------------------------------------------------------------- in-process, fake trainer


def _fakes() -> Any:
    sys.path.insert(0, str(TUNER_TESTS))
    import tuner_fakes

    return tuner_fakes


def _objective(storage: str, train: Any, space: Any, n_trials: int = 6) -> Any:
    from tuner.objective import Objective
    from tuner.settings import TuneSettings

    fakes = _fakes()
    settings = TuneSettings(
        storage=storage, study_name="s", n_trials=n_trials, seed=0, pruner="none"
    )
    return Objective(space=space, base_config=fakes.FakeConfig(), settings=settings, train_fn=train)


def test_interrupt_request_fails_the_trial_and_a_rerun_retries_it(tmp_path: Path) -> None:
    from trainer import interrupt
    from tuner.study import run_study

    fakes = _fakes()
    space = fakes.small_space()
    calls: list[int] = []

    class Interrupting(fakes.FakeTrain):  # type: ignore[misc,name-defined]
        """The second training is interrupted (as by Ctrl-C) after its round 3."""

        def __call__(self, config: Any, *, on_round: Any = None, **kw: Any) -> Any:
            calls.append(1)
            if len(calls) != 2:
                return super().__call__(config, on_round=on_round, **kw)

            def hook(record: Any) -> Any:
                if record.round == 3:
                    interrupt.request()
                return on_round(record)

            return super().__call__(config, on_round=hook, **kw)

    storage = str(tmp_path / "j.log")
    obj = _objective(storage, Interrupting(space), space)
    try:
        with pytest.raises(interrupt.Interrupted, match=r"^trial 1 \(.*\) stopped after round 3"):
            run_study(obj.settings, space, obj, space_meta=space.summary())
    finally:
        interrupt.reset()
    study = optuna.load_study(study_name="s", storage=_open(storage))
    t0, t1 = study.trials[:2]
    assert t0.state == TrialState.COMPLETE
    assert t1.state == TrialState.FAIL and t1.user_attrs["end"] == "interrupted"
    assert [r["round"] for r in t1.user_attrs["records"]] == [1, 2, 3]
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(waiting) == 2  # the two seeds not yet started stay queued

    obj = _objective(storage, fakes.FakeTrain(space), space)
    study = run_study(obj.settings, space, obj, space_meta=space.summary())
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == 1]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].user_attrs["key"] == t1.user_attrs["key"]
    keys = [
        t.user_attrs["key"]
        for t in study.trials
        if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs
    ]
    assert len(keys) == len(set(keys))  # nothing trained twice


def test_handler_sets_a_flag_and_puts_the_old_handlers_back() -> None:
    from trainer import interrupt

    before = {sig: signal.getsignal(sig) for sig in interrupt.SIGNALS}
    with interrupt.handling():
        assert not interrupt.requested()
        os.kill(os.getpid(), signal.SIGTERM)  # would end pytest without the handler
        deadline = time.monotonic() + 5
        while not interrupt.requested() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert interrupt.requested()
    assert not interrupt.requested()
    assert {sig: signal.getsignal(sig) for sig in interrupt.SIGNALS} == before


def test_interrupt_during_set_up_starts_no_trial(tmp_path: Path) -> None:
    from trainer import interrupt
    from tuner.study import run_study

    fakes = _fakes()
    space = fakes.small_space()
    train = fakes.FakeTrain(space)
    obj = _objective(str(tmp_path / "j.log"), train, space)
    interrupt.request()
    try:
        with pytest.raises(interrupt.Interrupted, match=r"^0 finished trials kept in "):
            run_study(obj.settings, space, obj, space_meta=space.summary())
    finally:
        interrupt.reset()
    assert train.calls == []


def test_a_seed_enqueued_twice_is_trained_once() -> None:
    """The race left on server databases: both workers enqueue a seed. The later twin, popped
    while the first runs or waits, trains nothing and is marked failed (end = duplicate)."""
    from tuner.ledger import TrialSkipped
    from tuner.seeds import seed_params

    fakes = _fakes()
    space = fakes.small_space()
    train = fakes.FakeTrain(space)
    obj = _objective("unused", train, space)
    study = optuna.create_study(direction="maximize")
    params = seed_params(space.seeds[0], space)
    study.enqueue_trial(params)
    study.enqueue_trial(params)
    first, second = study.ask(), study.ask()  # both running, as in two workers
    with pytest.raises(TrialSkipped, match="same as trial 0"):
        obj(second)
    assert train.calls == []
    assert second.user_attrs["duplicate_of"] == 0
    assert second.user_attrs["end"] == "duplicate"
    study.tell(second, state=TrialState.FAIL)
    value = obj(first)  # the earlier one trains; a failed twin does not stop it
    assert len(train.calls) == 1 and value > 0


def _open(storage: str) -> Any:
    from tuner.storage import open_storage

    return open_storage(storage)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_workers_starting_together_enqueue_each_seed_once(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers (threads, each with its own storage handle) open one new study at once. Each
    worker's first enqueue waits at a barrier until the other worker enqueues too, so without
    an atomic check-and-enqueue both see an empty study and both enqueue every seed."""
    from tuner.study import run_study

    fakes = _fakes()
    space = fakes.small_space()
    storage = (
        f"sqlite:///{tmp_path / 'tune.db'}" if kind == "sqlite" else str(tmp_path / "tune.log")
    )
    _open(storage)  # the tables exist (creation races are storage.py's, tested elsewhere)
    barrier = threading.Barrier(2, timeout=3)
    add_trial = optuna.study.Study.add_trial

    def meeting_add_trial(self: optuna.Study, trial: Any) -> None:
        # broken: the other worker waits for the seeding lock instead of meeting here
        with suppress(threading.BrokenBarrierError):
            barrier.wait()
        add_trial(self, trial)

    monkeypatch.setattr(optuna.study.Study, "add_trial", meeting_add_trial)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            obj = _objective(storage, fakes.FakeTrain(space), space, n_trials=len(space.seeds))
            run_study(obj.settings, space, obj, space_meta=space.summary())
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert not any(w.is_alive() for w in workers)
    assert not errors, errors
    trials = optuna.load_study(study_name="s", storage=_open(storage)).trials
    enqueued = [t for t in trials if "fixed_params" in t.system_attrs]
    keys = [t.user_attrs.get("key") for t in enqueued]
    assert len(enqueued) == len(space.seeds), keys
    assert len(set(keys)) == len(space.seeds)
