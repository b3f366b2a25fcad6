"""A tuning trial stopped by Ctrl-C (a real SIGINT, on the tiny random BERT) keeps the checkpoint
of the round it finished; the rerun enqueues it again, says from which round it resumes, trains
only the rounds after it, and ends with the same value and records as an uninterrupted study."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from support.cpu import one_torch_thread
from support.task import TINY_MODEL, write_base_config, write_pair_task
from typer.testing import CliRunner

import trainer.run
from tuner.cli import app

optuna.logging.set_verbosity(optuna.logging.WARNING)
runner = CliRunner()


def _base_config(folder: Path) -> Path:
    cfg = {
        "model": TINY_MODEL, "data": "csv", "data_path": str(write_pair_task(folder)),
        "min_examples_per_class": 10, "num_clients": 6, "clients_per_round": 2,
        "batch_size": 8, "max_length": 12, "max_eval_examples": 16, "device": "cpu",
    }  # fmt: skip
    return write_base_config(folder, cfg)


def _args(config: Path, storage: str) -> list[str]:
    return [
        "run", "--config", str(config), "--budget", "8-dense-rounds", "--max-rounds", "6",
        "--ranks", "4", "--d-down", "1/2", "--d-up", "1/4", "--search", "optuna",
        "--pruner", "none", "--n-trials", "1", "--seed", "0", "--storage", storage,
    ]  # fmt: skip


class _Spy:
    """trainer.run.train, counting the rounds it trains; ``interrupt_at``: a real SIGINT to this
    process at the end of that round (the handler of ``trainer.interrupt`` turns it into a
    request, as a Ctrl-C in a terminal does)."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.real = trainer.run.train
        self.interrupt_at = interrupt_at
        self.rounds: list[int] = []

    def __call__(self, config: Any, *, on_round: Any = None, **kw: Any) -> Any:
        def spy(record: Any) -> Any:
            self.rounds.append(int(record.round))
            if record.round == self.interrupt_at:
                os.kill(os.getpid(), signal.SIGINT)
            return on_round(record)

        return self.real(config, on_round=spy, **kw)


def _strip(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in records]


def test_an_interrupted_trial_resumes_from_its_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with one_torch_thread():
        _interrupt_and_resume(tmp_path, monkeypatch)


def _interrupt_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = _base_config(tmp_path)
    whole = _Spy()
    monkeypatch.setattr(trainer.run, "train", whole)
    result = runner.invoke(app, _args(config, "sqlite:///whole.db"))
    assert result.exit_code == 0, result.output
    rounds = len(whole.rounds)
    assert rounds == 6
    (ref,) = optuna.load_study(study_name="floss", storage="sqlite:///whole.db").get_trials(
        states=(TrialState.COMPLETE,)
    )

    cut = _Spy(interrupt_at=3)
    monkeypatch.setattr(trainer.run, "train", cut)
    result = runner.invoke(app, _args(config, "sqlite:///cut.db"))
    assert result.exit_code == 130, result.output
    assert "stopped after round 3 of 6 (checkpoint kept: its rerun goes on from round 4)" in (
        result.output
    )
    kept = tmp_path / "cut.db.checkpoints" / "floss"
    assert len(list(kept.iterdir())) == 1

    rerun = _Spy()
    monkeypatch.setattr(trainer.run, "train", rerun)
    result = runner.invoke(app, _args(config, "sqlite:///cut.db"))
    assert result.exit_code == 0, result.output
    assert (
        "enqueued trial 0 again (it was interrupted)\n"
        "trial 0's checkpoint holds rounds 1..3: its retry resumes from round 4\n" in result.output
    )
    assert "6 rounds, resuming from round 4 (the checkpoint of interrupted trial 0)" in (
        result.output
    )
    assert rerun.rounds == [4, 5, 6]  # today's 14 of 15 retrained: here none of rounds 1..3
    study = optuna.load_study(study_name="floss", storage="sqlite:///cut.db")
    (done,) = study.get_trials(states=(TrialState.COMPLETE,))
    assert done.value == ref.value
    assert _strip(done.user_attrs["records"]) == _strip(ref.user_attrs["records"])
    assert done.user_attrs["resumed_from"] == {"round": 3, "trial": 0}
    (failed,) = study.get_trials(states=(TrialState.FAIL,))
    # each trial counts the client steps it trained: together, the uninterrupted trial's
    assert (
        failed.user_attrs["client_steps"] + done.user_attrs["client_steps"]
        == (ref.user_attrs["client_steps"])
    )
    assert not (tmp_path / "cut.db.checkpoints").exists()  # removed once the trial completed


def test_a_damaged_trial_checkpoint_is_said_and_trained_from_round_1(tmp_path: Path) -> None:
    import torch
    from tuner_fakes import FakeConfig, FakeTrain, small_space

    from trainer.checkpoint import save_checkpoint
    from tuner.objective import Objective
    from tuner.seeds import seed_params
    from tuner.settings import TuneSettings
    from tuner.study import enqueue_seeds
    from tuner.trial_checkpoint import trial_checkpoint_dir
    from tuner.trial_config import candidate_key

    space = small_space()
    fake = FakeTrain(space)
    calls: list[dict[str, Any]] = []

    def train(config: Any, **kw: Any) -> Any:
        calls.append({k: kw.pop(k) for k in ("checkpoint_dir", "resume") if k in kw})
        return fake(config, **kw)

    logs: list[str] = []
    root = tmp_path / "t.db.checkpoints" / "floss"
    obj = Objective(
        space=space, base_config=FakeConfig(), settings=TuneSettings(), train_fn=train,
        log=logs.append, checkpoint_root=root,
    )  # fmt: skip
    study = optuna.create_study(direction="maximize")
    (first, *_) = enqueue_seeds(study, space, lrs={})
    assert seed_params(first, space)
    folder = trial_checkpoint_dir(root, candidate_key(first, {}))
    save_checkpoint(
        folder, round=1, step_count=1, tensors={"p": torch.zeros(3)},
        meta={"config": {}, "method": {}, "records": [{"round": 1}]},
    )  # fmt: skip
    state = folder / "checkpoint" / "state.safetensors"
    state.write_bytes(state.read_bytes()[:-4])  # cut short
    trial = study.ask()
    study.tell(trial, obj(trial))
    assert any("is truncated" in line and "Training from round 1." in line for line in logs)
    assert calls == [{"checkpoint_dir": folder, "resume": False}]
    assert not root.parent.exists()  # removed: the trial completed
