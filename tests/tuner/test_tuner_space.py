from __future__ import annotations

import math
from dataclasses import replace

import optuna
import pytest
from tuner_fakes import plan_settings, small_space

from planner.budget import parse_budget
from tuner.build import build_space, scaled_budget
from tuner.candidate import density_label
from tuner.grid import MethodGrid
from tuner.search_space import snap
from tuner.settings import TuneError
from tuner.suggest import suggest

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


def test_seeds_are_dense_then_the_heuristic_family_on_the_grid() -> None:
    space = small_space()  # d_up grid 1 .. 1/64: 1/16 -> 1/256 is projected to 1/16 -> 1/64
    pairs = [(c.rank, c.d_down, c.d_up) for c in space.seeds]
    assert pairs == [(16, 1.0, 1.0), (16, 1.0, 1 / 16), (16, 0.25, 1 / 64), (16, 1 / 16, 1 / 64)]
    assert space.seeds[-1].why.endswith("nearest on the grid")


def test_seeds_are_projected_onto_the_users_grid_and_deduplicated() -> None:
    """--d-down 1,1/2,1/4 --d-up 1,1/4,1/16,1/64 at S = 16: the heuristic (1/16, 1/256) is not
    on the grid; its nearest feasible grid member is (1/4, 1/64), already the second seed."""
    settings = replace(
        plan_settings(max_rounds=None), d_down=(1.0, 0.5, 0.25), d_up=(1.0, 0.25, 1 / 16, 1 / 64)
    )
    space = build_space(settings, budget_scale=0.5)
    pairs = [(c.rank, c.d_down, c.d_up) for c in space.seeds]
    assert pairs == [(16, 1.0, 1.0), (16, 1.0, 1 / 16), (16, 0.25, 1 / 64)]
    keys = {c.key for c in space.candidates}
    assert all(c.key in keys for c in space.seeds)
    assert all(c.d_down in settings.d_down and c.d_up in settings.d_up for c in space.candidates)


def test_seed_rank_is_projected_when_the_reference_rank_is_not_searched() -> None:
    space = build_space(replace(plan_settings(), ranks=(2, 4, 8)), budget_scale=0.5)
    assert {c.rank for c in space.seeds} == {8}
    assert space.seeds[0].d_down == 1.0 and space.seeds[0].d_up == 1.0


def test_rounds_are_the_exact_seeded_schedule_of_floss_train() -> None:
    """Trial and full rounds are planner.schedule.rounds_within_budget over the same seeded
    prices the trainer pays (the constant-cost shortcut included), for every method."""
    from planner.afford import rounds_within_budget

    grid = MethodGrid(methods=("floss", "dense", "sparseadapter", "adapterlth", "ffa"))
    # AdapterLTH without a floor shrinks to k = 1 and would afford ~unbounded rounds: cap them
    space = build_space(plan_settings(max_rounds=300), budget_scale=0.25, grid=grid)
    pricing = space.pricing
    picks = [space.lookup(16, 1.0, 1.0), space.lookup(8, 0.25, 1 / 16)]
    picks += [next(c for c in space.candidates if c.method == m) for m in grid.methods[1:]]
    for cand in picks:
        assert cand is not None
        spec = space._spec(cand)
        for budget, rounds in ((space.trial_budget, cand.rounds),
                               (space.full_budget, cand.full_rounds)):  # fmt: skip
            cap = 300 if budget == space.full_budget else 75
            kept = rounds_within_budget(
                pricing.prices(spec), budget_seconds=budget, budget_bytes=None, max_rounds=cap
            )
            assert len(kept) == rounds, cand.label
        assert cand.full_bytes == sum(
            p.bytes_total for p in pricing.round_prices(spec, cand.full_rounds)
        )
        curve = space.spend_curve(cand)
        assert curve[-1] == pytest.approx(cand.trial_seconds)
    ffa = next(c for c in space.candidates if c.method == "ffa" and c.rank == 16)
    assert ffa.n < space.lookup(16, 1.0, 1.0).n  # type: ignore[union-attr]  # B and head only
    dense = space.lookup(16, 1.0, 1.0, method="dense")
    assert dense is not None and dense.full_rounds == 50  # 50 dense rounds buy 50 of them
    lth = next(c for c in space.candidates if c.method == "adapterlth")
    assert lth.full_rounds == 300 and lth.trial_bytes < lth.rounds * dense.bytes_per_round


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
                snap(trial.params["d_down"], space.grid_of("d_down")),
                snap(trial.params["d_up"], space.grid_of("d_up")),
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


def test_suggest_with_methods_keeps_static_distributions_and_lands_on_feasible_candidates() -> None:
    grid = MethodGrid(
        methods=("floss", "dense", "sparseadapter", "adapterlth", "ffa"),
        topks=("global", "per-tensor"),
        keep_rates=(0.9, 0.98),
    )
    space = small_space(grid=grid)
    keys = {c.key for c in space.candidates}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(150):
        trial = study.ask()
        cand = suggest(trial, space)
        assert cand.key in keys and cand.method == trial.params["method"]
        assert space.candidate_for(trial.params) == cand  # enqueue/resume maps back the same
        assert space.candidate_for(space.params_of(cand)) == cand
        seen.add(cand.method)
        names = set(trial.params)
        expected = {"method", "rank"} | {
            "floss": {"topk", "d_down", "d_up"},
            "sparseadapter": {"d_up"},
            "adapterlth": {"keep_rate"},
        }.get(cand.method, set())
        assert names == expected
        study.tell(trial, 0.0)
    assert seen == set(grid.methods)


@pytest.mark.parametrize(
    ("grid", "match"),
    [
        ({"methods": ("floss", "lora")}, "--methods: 'lora' is not one of"),
        ({"methods": ()}, "--methods must be a non-empty list"),
        ({"methods": ("dense", "dense")}, "names a value twice"),
        ({"topks": ("global", "local")}, "--topk: 'local'"),
        ({"keep_rates": (1.0,)}, r"--keep-rates values must be in \(0, 1\)"),
    ],
)
def test_bad_method_grid(grid: dict[str, object], match: str) -> None:
    with pytest.raises(TuneError, match=match):
        MethodGrid(**grid)  # type: ignore[arg-type]


def test_a_misspelled_look_up_keyword_is_a_type_error() -> None:
    space = build_space(plan_settings("50-dense-rounds"), budget_scale=0.5)
    with pytest.raises(TypeError, match="keep"):
        space.lookup(16, 1.0, 1.0, keep=0.98)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="metod"):
        space.nearest(16, 1.0, 1.0, metod="dense")  # type: ignore[call-arg]
