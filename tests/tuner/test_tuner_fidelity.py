from __future__ import annotations

from typing import Any

import pytest
from tuner_fakes import FakeRecord

from tuner.fidelity import (
    FidelityReporter,
    checkpoint_fractions,
    checkpoint_steps,
    eval_every_for,
)


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


def rec(r: int, *, seconds_per_round: float = 1.0, acc: float | None = 0.5) -> FakeRecord:
    return FakeRecord(
        round=r,
        cum_bytes=100 * r,
        cum_sim_seconds=seconds_per_round * r,
        val_loss=None if acc is None else 1 - acc,
        val_accuracy=acc,
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


@pytest.mark.parametrize(("rounds", "levels", "every"), [(5, 4, 1), (16, 4, 2), (100, 4, 12)])
def test_eval_every(rounds: int, levels: int, every: int) -> None:
    assert eval_every_for(rounds, levels) == every


def reporter(trial: RecordingTrial, rounds: int, **kw: Any) -> FidelityReporter:
    return FidelityReporter(
        trial=trial,
        rounds=rounds,
        budget=float(rounds),  # one simulated second per round
        budget_kind="seconds",
        levels=4,
        metric="val_accuracy",
        **kw,
    )


def test_reports_once_at_each_fraction_of_the_budget() -> None:
    trial = RecordingTrial()
    rep = reporter(trial, 16)
    for r in range(1, 17):
        assert rep(rec(r, acc=r / 100))
    # 1/8 of 16 rounds = round 2, 1/4 = round 4, 1/2 = round 8, all = round 16
    assert trial.reports == [(1, 0.02), (2, 0.04), (4, 0.08), (8, 0.16)]
    assert rep.finished and rep.final_value == 0.16
    assert trial.attrs["client_steps"] == 16 * 3 and len(rep.records) == 16


def test_a_round_covering_several_fractions_reports_each() -> None:
    trial = RecordingTrial()
    rep = reporter(trial, 2)
    rep(rec(1, acc=0.3))  # half the budget: 1/8, 1/4 and 1/2 at once
    rep(rec(2, acc=0.4))
    assert trial.reports == [(1, 0.3), (2, 0.3), (4, 0.3), (8, 0.4)]


def test_unevaluated_rounds_defer_the_report() -> None:
    trial = RecordingTrial()
    rep = reporter(trial, 8)
    rep(rec(1, acc=None))  # 1/8 reached but no evaluation
    rep(rec(2, acc=0.6))
    assert trial.reports == [(1, 0.6), (2, 0.6)]


def test_prune_stops_training() -> None:
    trial = RecordingTrial(prune_at=2)
    rep = reporter(trial, 16)
    assert rep(rec(2)) is True
    assert rep(rec(3)) is True
    assert rep(rec(4)) is False
    assert rep.pruned and not rep.finished and rep.final_value is None


def test_last_affordable_round_counts_as_the_whole_budget() -> None:
    trial = RecordingTrial()
    rep = FidelityReporter(
        trial=trial, rounds=3, budget=1000.0, budget_kind="bytes", levels=2, metric="val_loss"
    )
    rep(rec(1, acc=0.9))  # 100 of 1000 bytes: below 1/2
    rep(rec(2, acc=0.9))  # 200 of 1000 bytes
    assert trial.reports == []
    rep(rec(3, acc=0.8))  # the last round the budget affords: the whole budget
    assert trial.reports == [(1, pytest.approx(0.2)), (2, pytest.approx(0.2))]


def test_compute_cap_stops_after_the_round_that_reaches_it() -> None:
    trial = RecordingTrial()
    rep = reporter(trial, 16, steps_before=5, max_client_steps=11)
    assert rep(rec(1)) is True  # 5 + 3 = 8
    assert rep(rec(2)) is False  # 5 + 6 = 11 >= 11
    assert rep.capped and not rep.pruned


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rounds": 0}, "rounds must be at least 1"),
        ({"budget": 0.0}, "budget must be positive"),
        ({"budget_kind": "joules"}, "budget_kind"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {
        "trial": RecordingTrial(),
        "rounds": 4,
        "budget": 4.0,
        "budget_kind": "seconds",
        "levels": 4,
        "metric": "val_accuracy",
    }
    with pytest.raises(ValueError, match=match):
        FidelityReporter(**{**args, **kwargs})
