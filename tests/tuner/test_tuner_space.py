from __future__ import annotations

import math
from dataclasses import replace

import optuna
import pytest
from tuner_fakes import plan_settings, small_space

from planner.budget import parse_budget
from tuner.settings import TuneError
from tuner.space import build_space, density_label, scaled_budget, snap, suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.0, 1.0), (0.7, 0.5), (0.35, 0.25), (0.36, 0.5), (0.06, 0.0625), (1e-6, 0.0625)],
)
def test_snap_is_nearest_in_log_space(value: float, expected: float) -> None:
    assert snap(value, [1.0, 0.5, 0.25, 0.125, 0.0625]) == expected


@pytest.mark.parametrize(("d", "label"), [(1.0, "1"), (0.0625, "1/16"), (2**-8, "1/256")])
def test_density_label(d: float, label: str) -> None:
    assert density_label(d) == label


def test_space_rounds_follow_the_planner_at_both_budgets() -> None:
    space = build_space(plan_settings(max_rounds=None), budget_scale=0.25)
    dense = space.lookup(16, 1.0, 1.0)
    assert dense is not None
    # 50 dense rounds: the dense config affords exactly 50 at full budget, 12 at a quarter of it
    assert (dense.full_rounds, dense.rounds) == (50, 12)
    assert space.budget_kind == "seconds"
    assert math.isclose(space.trial_budget, 0.25 * space.full_budget)
    for c in space.candidates:
        assert 1 <= c.rounds <= c.full_rounds
        assert math.isclose(
            c.rounds, math.floor(space.trial_budget / c.seconds_per_round), abs_tol=1
        )


def test_seeds_are_dense_then_the_heuristic_family() -> None:
    space = small_space()
    pairs = [(c.rank, c.d_down, c.d_up) for c in space.seeds]
    assert pairs == [(16, 1.0, 1.0), (16, 1.0, 1 / 16), (16, 0.25, 1 / 64), (16, 1 / 16, 1 / 256)]


def test_dense_is_not_a_seed_when_the_budget_cannot_afford_it() -> None:
    settings = replace(plan_settings("0.5-dense-rounds", max_rounds=None))
    space = build_space(settings, budget_scale=1.0)
    assert space.lookup(16, 1.0, 1.0) is None
    assert all(not (c.d_down == 1.0 and c.d_up == 1.0 and c.rank >= 16) for c in space.candidates)
    assert (16, 1.0, 1.0) not in [(c.rank, c.d_down, c.d_up) for c in space.seeds]


def test_suggest_always_lands_on_a_feasible_candidate() -> None:
    # 0.5 dense rounds: the dense corner is infeasible, so projection is exercised
    space = build_space(plan_settings("0.5-dense-rounds", max_rounds=None), budget_scale=1.0)
    keys = {c.key for c in space.candidates}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    projected = 0
    for _ in range(200):
        trial = study.ask()
        cand = suggest(trial, space)
        assert cand.key in keys
        if (
            space.lookup(
                trial.params["rank"],
                snap(trial.params["d_down"], space.grid("d_down")),
                snap(trial.params["d_up"], space.grid("d_up")),
            )
            is None
        ):
            projected += 1
            assert cand.rank == trial.params["rank"]
        study.tell(trial, 0.0)
    assert projected > 0


def test_nearest_prefers_same_rank_and_log_distance() -> None:
    space = build_space(plan_settings("0.5-dense-rounds", max_rounds=None), budget_scale=1.0)
    cand = space.nearest(16, 1.0, 1.0)
    assert cand.rank == 16
    best = min(
        (c for c in space.candidates if c.rank == 16),
        key=lambda c: -math.log2(c.d_down) - math.log2(c.d_up),
    )
    assert -math.log2(cand.d_down) - math.log2(cand.d_up) == pytest.approx(
        -math.log2(best.d_down) - math.log2(best.d_up)
    )


def test_no_feasible_config_names_the_budget() -> None:
    settings = plan_settings("1kB", max_rounds=None)
    with pytest.raises(TuneError, match=r"no feasible configuration.*'1kB'"):
        build_space(settings)


@pytest.mark.parametrize("scale", [0.0, -0.5, 1.5, float("nan")])
def test_bad_budget_scale(scale: float) -> None:
    with pytest.raises(TuneError, match="--budget-scale"):
        build_space(plan_settings(), budget_scale=scale)


def test_scaled_byte_budget_is_whole_bytes() -> None:
    b = scaled_budget(parse_budget("1MB"), 0.3333)
    assert b.kind == "bytes" and b.amount == 333300.0
