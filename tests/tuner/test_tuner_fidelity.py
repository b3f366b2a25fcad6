from __future__ import annotations

from typing import Any

import optuna
import pytest
from tuner_fakes import FakeConfig, FakeRecord, FakeTrain, plan_settings

from tuner.build import build_space
from tuner.fidelity import (
    FidelityReporter,
    checkpoint_fractions,
    checkpoint_rounds,
    checkpoint_steps,
)
from tuner.objective import Objective
from tuner.search_space import SearchSpace
from tuner.settings import TuneSettings

optuna.logging.set_verbosity(optuna.logging.WARNING)


class RecordingTrial:
    def __init__(self, prune_at: int | None = None) -> None:
        self.reports: list[tuple[int, float]] = []
        self.attrs: dict[str, Any] = {}
        self.prune_at = prune_at

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return self.prune_at is not None and self.reports[-1][0] >= self.prune_at

    def set_user_attr(self, key: str, value: Any) -> None:
        self.attrs[key] = value


def rec(r: int, *, acc: float | None = 0.5) -> FakeRecord:
    return FakeRecord(
        round=r,
        cum_bytes=100 * r,
        cum_sim_seconds=float(r),
        val_loss=None if acc is None else 1 - acc,
        val_accuracy=acc,
        val_accuracy_server=None if acc is None else acc + 0.1,
        client_steps=3,
    )


@pytest.mark.parametrize(
    ("levels", "fractions", "steps"),
    [
        (1, (1.0,), (1,)),
        (2, (0.5, 1.0), (1, 2)),
        (4, (0.125, 0.25, 0.5, 1.0), (1, 2, 4, 8)),
    ],
)
def test_checkpoints(levels: int, fractions: tuple[float, ...], steps: tuple[int, ...]) -> None:
    assert checkpoint_fractions(levels) == fractions
    assert checkpoint_steps(levels) == steps


QUARTERS = (0.125, 0.25, 0.5, 1.0)


def uncapped() -> SearchSpace:
    """50 dense rounds, no round cap: every config spends its whole budget."""
    return build_space(plan_settings(max_rounds=None), budget_scale=1.0)


@pytest.mark.parametrize(
    ("cum", "expected"),
    [
        # 16 equal rounds: 1/8 of the spend is reached exactly at round 2, and so on
        ([float(r) for r in range(1, 17)], (2, 4, 8, 16)),
        # 50 equal rounds (the old eval_every = 50 // 8 = 6 reported at 12, 18, 30 = 24/36/60 %):
        # first round with cum >= f * 50: 6.25 -> 7, 12.5 -> 13, 25 -> 25, 50 -> 50
        ([float(r) for r in range(1, 51)], (7, 13, 25, 50)),
        # a dense first round worth half the run (SparseAdapter-like): it covers 1/8..1/2
        ([8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0], (1, 1, 1, 9)),
        # one round: every checkpoint is that round
        ([3.0], (1, 1, 1, 1)),
    ],
)
def test_checkpoint_rounds_first_round_reaching_each_fraction(
    cum: list[float], expected: tuple[int, ...]
) -> None:
    assert checkpoint_rounds(cum, QUARTERS) == expected


def test_checkpoint_rule_tolerates_float_error_in_the_sum() -> None:
    cum = [0.1 * r for r in range(1, 81)]  # 0.1 * 10 != 1.0 exactly in binary
    assert checkpoint_rounds(cum, QUARTERS) == (10, 20, 40, 80)


def test_checkpoints_sit_at_the_same_budget_fractions_for_cheap_and_dense_configs() -> None:
    """Two configs whose rounds differ ~100x in cost report at the same shares of the budget:
    within one round's cost past f x the spend, never before it; the old rounds // 8 schedule
    (24 / 36 / 60 % of a 50-round budget) cannot happen."""
    space = uncapped()
    dense = space.lookup(16, 1.0, 1.0)
    cheap = space.lookup(2, 0.0625, 0.015625)
    assert dense is not None and cheap is not None
    assert cheap.rounds > 20 * dense.rounds  # very different round costs
    for cand in (dense, cheap):
        cum = space.spend_curve(cand)
        assert len(cum) == cand.rounds
        total = cum[-1]
        # the trial's planned spend is the trial budget less under one round's cost
        assert space.trial_budget - cum[0] < total <= space.trial_budget * (1 + 1e-12)
        rounds = checkpoint_rounds(cum, QUARTERS)
        for f, r in zip(QUARTERS, rounds, strict=True):
            spent = cum[r - 1]
            before = cum[r - 2] if r > 1 else 0.0
            assert before < f * total <= spent * (1 + 1e-9)  # the first round reaching f
            assert spent - f * total < cum[r - 1] - before  # within one round's cost
    # dense affords 50 rounds: the checkpoints are 7, 13, 25, 50 (12.5 / 25 / 50 % + one round)
    assert dense.rounds == 50
    assert checkpoint_rounds(space.spend_curve(dense), QUARTERS) == (7, 13, 25, 50)


def test_a_trial_reports_exactly_at_its_checkpoint_rounds() -> None:
    """End to end through the objective: the trainer is asked to evaluate the checkpoint rounds
    and the reports land on them, not on a later evaluated round."""
    space = uncapped()
    train = FakeTrain(space)
    obj = Objective(
        space=space,
        base_config=FakeConfig(),
        settings=TuneSettings(pruner="none"),
        train_fn=train,
    )
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"rank": 16, "d_down": 1.0, "d_up": 1.0})
    study.optimize(obj, n_trials=1)
    t = study.trials[0]
    assert t.user_attrs["checkpoint_rounds"] == [7, 13, 25, 50]
    assert train.eval_rounds_seen == [(7, 13, 25, 50)]
    assert train.calls[0].eval_every == 0  # nothing else is evaluated but the last round
    records = {r["round"]: r for r in t.user_attrs["records"]}
    assert t.intermediate_values == {
        step: pytest.approx(records[r]["val_accuracy"])
        for step, r in zip((1, 2, 4, 8), (7, 13, 25, 50), strict=True)
    }
    evaluated = sorted(r for r, x in records.items() if x["val_accuracy"] is not None)
    assert evaluated == [7, 13, 25, 50]


def reporter(trial: RecordingTrial, checkpoints: tuple[int, ...], **kw: Any) -> FidelityReporter:
    return FidelityReporter(trial=trial, checkpoints=checkpoints, metric="val_accuracy", **kw)


def test_reports_once_at_each_checkpoint_round() -> None:
    trial = RecordingTrial()
    rep = reporter(trial, (2, 4, 8, 16))
    assert rep.eval_rounds == (2, 4, 8, 16)
    for r in range(1, 17):
        assert rep(rec(r, acc=r / 100 if r in (2, 4, 8, 16) else None))
    assert trial.reports == [(1, 0.02), (2, 0.04), (4, 0.08), (8, 0.16)]
    assert rep.finished and rep.final_value == 0.16
    assert trial.attrs["client_steps"] == 16 * 3 and len(rep.records) == 16


def test_a_round_covering_several_fractions_reports_each() -> None:
    trial = RecordingTrial()
    rep = reporter(trial, (1, 1, 1, 2))
    assert rep.eval_rounds == (1, 2)
    rep(rec(1, acc=0.3))
    rep(rec(2, acc=0.4))
    assert trial.reports == [(1, 0.3), (2, 0.3), (4, 0.3), (8, 0.4)]


@pytest.mark.parametrize(
    ("metric", "value"),
    [("val_accuracy", 0.6), ("val_accuracy_server", 0.7), ("val_loss", 0.4)],
)
def test_the_chosen_validation_metric_is_reported(metric: str, value: float) -> None:
    trial = RecordingTrial()
    rep = FidelityReporter(trial=trial, checkpoints=(1,), metric=metric)
    rep(rec(1, acc=0.6))
    assert trial.reports == [(1, pytest.approx(value))]


def test_a_checkpoint_round_without_evaluation_is_an_error() -> None:
    rep = reporter(RecordingTrial(), (2, 4))
    rep(rec(1, acc=None))
    with pytest.raises(RuntimeError, match=r"round 2 is a fidelity checkpoint.*eval_rounds"):
        rep(rec(2, acc=None))


def test_prune_stops_training() -> None:
    trial = RecordingTrial(prune_at=2)
    rep = reporter(trial, (2, 4, 8, 16))
    assert rep(rec(2)) is True
    assert rep(rec(3)) is True
    assert rep(rec(4)) is False
    assert rep.pruned and not rep.finished and rep.final_value is None


def test_compute_cap_stops_after_the_round_that_reaches_it() -> None:
    trial = RecordingTrial()
    rep = reporter(trial, (2, 4, 8, 16), steps_before=5, max_client_steps=11)
    assert rep(rec(1)) is True  # 5 + 3 = 8
    assert rep(rec(2)) is False  # 5 + 6 = 11 >= 11
    assert rep.capped and not rep.pruned


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"checkpoints": ()}, "checkpoints must be rounds >= 1"),
        ({"checkpoints": (0, 2)}, "checkpoints must be rounds >= 1"),
        ({"checkpoints": (4, 2)}, "must not decrease"),
        ({"metric": "test_accuracy"}, "metric must be one of"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {
        "trial": RecordingTrial(),
        "checkpoints": (1, 2),
        "metric": "val_accuracy",
    }
    with pytest.raises(ValueError, match=match):
        FidelityReporter(**{**args, **kwargs})


@pytest.mark.parametrize(
    ("cum", "fractions", "match"),
    [([], (1.0,), "empty"), ([0.0], (1.0,), "positive"), ([1.0], (0.0,), r"in \(0, 1\]")],
)
def test_bad_checkpoint_inputs(cum: list[float], fractions: tuple[float, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        checkpoint_rounds(cum, fractions)
