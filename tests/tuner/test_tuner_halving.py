"""floss's compute-aware successive halving (tuner/rungs.py, tuner/halving.py): the plan's pure pieces with
hand-computed tables, a whole study on the fake trainer (which configurations each rung trains,
the compute it spends, the pick, a resume), and one study on the tiny model whose planned rung
costs equal the client steps the trainer really took."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from tuner_fakes import FakeConfig, FakeTrain, plan_settings, quality

from tuner.build import build_space
from tuner.ledger import client_steps_spent
from tuner.objective import Objective
from tuner.report import recommend, trial_rows
from tuner.rungs import (
    ATTR_FRACTION,
    ATTR_RUNG,
    Entry,
    StepCosts,
    cost,
    first_rung,
    next_fraction,
    next_rung,
    promote,
    rounds_at,
    step_costs,
)
from tuner.search_space import SearchSpace
from tuner.settings import TuneError, TuneSettings
from tuner.study import run_study

FLAT = StepCosts(per_round=(2,) * 100, mean=2.0)


def small_space() -> SearchSpace:
    """18 candidates (ranks 4, 8 x 3 x 3 densities) holding the fake's best, r8 1/4 1/16."""
    from dataclasses import replace

    settings = replace(plan_settings(max_rounds=24), ranks=(4, 8), d_down=(1.0, 0.25, 0.0625),
                       d_up=(1.0, 0.0625, 0.015625))  # fmt: skip
    return build_space(settings, budget_scale=0.5)


def _entry(rounds: int, name: str = "") -> Entry:
    """An entry spending one unit a round for ``rounds`` rounds."""
    return Entry(params={"n": name or rounds}, curve=tuple(float(r) for r in range(1, rounds + 1)),
                 label=name, key=name)  # fmt: skip


def test_rounds_at_is_the_first_round_reaching_the_share() -> None:
    curve = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert [rounds_at(curve, f) for f in (1 / 8, 1 / 4, 1 / 2, 1.0)] == [1, 2, 4, 8]
    assert rounds_at([10.0, 11.0], 1 / 64) == 1  # at least one round


def test_step_costs_count_ceil_of_size_over_batch_per_sampled_client() -> None:
    # clients of 3, 16, 17 examples, batch 16, 2 epochs: 2, 2, 4 steps a round each
    draws = {1: [0, 1], 2: [1, 2], 3: [0, 2]}
    steps = step_costs([3, 16, 17], batch_size=16, local_epochs=2, draw=draws.__getitem__,
                       rounds=3)  # fmt: skip
    assert steps.per_round == (4, 6, 6)
    assert [steps.upto(r) for r in (0, 1, 2, 3)] == [0, 4, 10, 16]
    assert steps.upto(5) == 16 + math.ceil(2 * 16 / 3)  # past the table: the mean per round


def test_first_rung_takes_everything_at_the_deepest_fraction_that_fits() -> None:
    entries = [_entry(8), _entry(16), _entry(64)]  # 88 rounds = 176 steps in all
    # levels 4: only 1/8 (MIN_FRACTION): 1 + 2 + 8 rounds = 22 steps, plus room for two
    # average entries at 1/4 (2 x 44/3 steps)
    assert first_rung(entries, steps=FLAT, cap=240, levels=4, n_trials=20) == (0.125, 3)
    # levels 3: 1/4 costs 44 steps + 2 x 88/3 in reserve = 102.7: fits 600, not 60
    assert first_rung(entries, steps=FLAT, cap=600, levels=3, n_trials=20) == (0.25, 3)
    assert first_rung(entries, steps=FLAT, cap=60, levels=3, n_trials=20) == (0.125, 3)
    # too many to fit: as many as fit at 1/8 beside the reserve, (1000 - 640) // 160
    many = [_entry(640, str(i)) for i in range(30)]  # 1/8: 80 rounds = 160 steps each
    assert first_rung(many, steps=FLAT, cap=1000, levels=4, n_trials=20) == (0.125, 2)
    # without a cap: n_trials of them at 2^-(levels-1)
    assert first_rung(many, steps=FLAT, cap=None, levels=3, n_trials=7) == (0.25, 7)


def test_promote_keeps_the_best_half_and_at_least_two() -> None:
    a, b, c, d, e = (_entry(8, x) for x in "abcde")
    scored = [(a, 0.5), (b, 0.7), (c, 0.7), (d, 0.1), (e, 0.6)]
    assert [x.key for x in promote(scored, eta=2, maximize=True)] == ["b", "c", "e"]
    assert [x.key for x in promote(scored, eta=3, maximize=True)] == ["b", "c"]
    assert [x.key for x in promote(scored, eta=2, maximize=False)] == ["d", "a", "e"]
    assert [x.key for x in promote([(a, 0.5)], eta=2, maximize=True)] == ["a"]


def test_next_fraction_is_the_deepest_affordable_and_strictly_deeper() -> None:
    two = [_entry(64, "x"), _entry(64, "y")]  # 2 x 64 rounds = 256 steps at the whole budget
    # the last two may use all that is left
    assert next_fraction(two, current=0.125, remaining=256, steps=FLAT, eta=2) == 1.0
    assert next_fraction(two, current=0.125, remaining=200, steps=FLAT, eta=2) == 0.5
    assert next_fraction(two, current=0.5, remaining=100, steps=FLAT, eta=2) is None
    assert next_fraction(two, current=1.0, remaining=10_000, steps=FLAT, eta=2) is None
    four = [_entry(64, str(i)) for i in range(4)]  # more than two: half of what is left
    assert next_fraction(four, current=0.125, remaining=512, steps=FLAT, eta=2) == 0.5
    assert next_fraction(four, current=0.125, remaining=None, steps=FLAT, eta=2) == 0.25
    assert cost(four, 0.5, FLAT) == 4 * 32 * 2


def test_next_rung_narrows_to_go_deeper() -> None:
    a, b, c, d, e, f = (_entry(64, x) for x in "abcdef")
    scored = [(a, 0.9), (b, 0.8), (c, 0.7), (d, 0.6), (e, 0.5), (f, 0.4)]
    # three (ceil(6 / 2)) could take half of 400 steps: 1/4 (3 x 32 = 96 steps) is the deepest;
    # the best two may take all 400: the whole budget (256 steps) is deeper, so two go on
    picked, depth = next_rung(scored, current=0.125, remaining=400, steps=FLAT, eta=2,
                              maximize=True) or ([], 0.0)  # fmt: skip
    assert ([x.key for x in picked], depth) == (["a", "b"], 1.0)
    # with 200 steps the two reach 1/2 (128 steps), the three 1/4 ... the deeper wins again
    picked, depth = next_rung(scored, current=0.125, remaining=200, steps=FLAT, eta=2,
                              maximize=True) or ([], 0.0)  # fmt: skip
    assert ([x.key for x in picked], depth) == (["a", "b"], 0.5)
    # at equal depth the wider rung: 3 x 16 rounds at 1/4 is 96 steps, within half of 1000;
    # two could go to 1 (256), so depth decides first
    assert next_rung(scored, current=0.5, remaining=100, steps=FLAT, eta=2,
                     maximize=True) is None  # fmt: skip


def _study(tmp_path: Path, *, cap: int | None, timeout: float | None = None,
           name: str = "h") -> tuple[optuna.Study, FakeTrain, Objective]:  # fmt: skip
    space = small_space()
    settings = TuneSettings(
        storage=f"sqlite:///{tmp_path / 'h.db'}",
        study_name=name,
        search="halving",
        max_client_steps=cap,
        timeout_seconds=timeout,
        levels=4,
        seed=0,
    )
    train = FakeTrain(space)
    steps_per_round = FakeConfig().clients_per_round * train.steps_per_client
    obj = Objective(
        space=space,
        base_config=FakeConfig(),
        settings=settings,
        train_fn=train,
        step_costs=lambda rounds: StepCosts(
            per_round=(steps_per_round,) * rounds, mean=float(steps_per_round)
        ),
    )
    study = run_study(settings, space, obj, space_meta=space.summary())
    return study, train, obj


def _grid_steps(space_rounds: list[int]) -> int:
    return sum(space_rounds) * FakeConfig().clients_per_round * 2


def test_a_study_runs_rungs_within_the_cap_and_picks_the_best(tmp_path: Path) -> None:
    space = small_space()
    grid = _grid_steps([c.rounds for c in space.candidates])
    cap = grid // 4
    study, train, _ = _study(tmp_path, cap=cap)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    rungs: dict[int, list[optuna.trial.FrozenTrial]] = {}
    for t in done:
        rungs.setdefault(int(t.user_attrs[ATTR_RUNG]), []).append(t)
    # rung 0: every candidate of the space once, the seeds first, at one shallow fraction
    assert len(rungs[0]) == len(space.candidates)
    assert {t.user_attrs["candidate"]["why"] for t in rungs[0][: len(space.seeds)]} != {""}
    fractions = [rungs[k][0].user_attrs[ATTR_FRACTION] for k in sorted(rungs)]
    assert fractions == sorted(set(fractions)) and len(fractions) >= 2  # deeper every rung

    def base(t: optuna.trial.FrozenTrial) -> str:
        return str(t.user_attrs["key"]).split("|at=")[0]

    for k in sorted(rungs)[1:]:  # each rung: the best of the one before, retrained deeper
        before = sorted(rungs[k - 1], key=lambda t: (-(t.value or 0), t.number))
        keep = len(rungs[k])
        assert 2 <= keep <= max(2, math.ceil(len(before) / 2))
        assert {base(t) for t in rungs[k]} == {base(t) for t in before[:keep]}
    # a trial trains exactly to its fraction's round, and the compute stays within the cap
    for t in done:
        recs = t.user_attrs["records"]
        assert len(recs) == t.user_attrs["checkpoint_rounds"][-1]
    assert client_steps_spent(study) <= cap
    assert sum(c.rounds for c in train.calls) == train.rounds_run  # trained from scratch
    # the pick: the best of the deepest rung, which is the fake's best configuration
    rows = trial_rows(study)
    best = recommend(rows, maximize=True)
    assert best is not None and best.fraction == max(fractions)
    top = max(space.candidates, key=lambda c: quality(FakeConfig(rank=c.rank, d_down=c.d_down,
                                                                 d_up=c.d_up)))  # fmt: skip
    assert (best.rank, best.d_down, best.d_up) == (top.rank, top.d_down, top.d_up)


def test_a_rerun_finishes_an_interrupted_search_as_one_uninterrupted(tmp_path: Path) -> None:
    space = small_space()
    cap = _grid_steps([c.rounds for c in space.candidates]) // 4
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole, _, _ = _study(tmp_path / "a", cap=cap)
    partial, _, _ = _study(tmp_path / "b", cap=cap, timeout=1e-9)  # starts no trial
    assert not [t for t in partial.trials if t.state == TrialState.COMPLETE]
    resumed, _, _ = _study(tmp_path / "b", cap=cap)

    def plan(study: optuna.Study) -> list[tuple[str, float]]:
        return sorted((t.user_attrs["key"], t.user_attrs[ATTR_FRACTION]) for t in study.trials
                      if t.state == TrialState.COMPLETE)  # fmt: skip

    assert plan(resumed) == plan(whole)
    again, train_again, _ = _study(tmp_path / "b", cap=cap)  # all rungs done: nothing trains
    assert train_again.calls == [] and plan(again) == plan(whole)


def test_settings_refuse_an_unknown_search() -> None:
    with pytest.raises(TuneError, match=r"--search must be one of halving, optuna, but got 'x'"):
        TuneSettings(search="x")  # type: ignore[arg-type]


def test_cli_rungs_cost_exactly_what_the_plan_priced(tmp_path: Path) -> None:
    """On the tiny model: each rung's planned client steps (from the base run's seeded clients
    and their data sizes, before it ran) equal the steps its trials really took."""
    from support.cpu import one_torch_thread
    from support.task import write_study_config
    from typer.testing import CliRunner

    from tuner.cli import app

    storage = f"sqlite:///{tmp_path / 'h.db'}"
    args = ["run", "--config", str(write_study_config(tmp_path)), "--budget", "50-dense-rounds",
            "--budget-scale", "0.1", "--max-rounds", "60", "--ranks", "4", "--d-down", "1,1/4",
            "--d-up", "1,1/16,1/64", "--max-client-steps", "300", "--seed", "0",
            "--storage", storage, "--study-name", "h", "--export", str(tmp_path / "out")]  # fmt: skip
    with one_torch_thread():
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "rung 0: 6 configurations at " in result.output
    assert "runner-up: " in result.output and "validation sampling noise" in result.output
    study = optuna.load_study(study_name="h", storage=storage)
    plan = study.user_attrs["halving_plan"]
    assert len(plan) >= 2 and all(p["exact"] for p in plan)
    for p in plan:
        trials = [t for t in study.trials if t.user_attrs.get(ATTR_RUNG) == p["rung"]]
        assert len(trials) == p["trials"]
        assert sum(t.user_attrs["client_steps"] for t in trials) == p["planned_client_steps"]
    assert client_steps_spent(study) <= 300
    import json

    facts = json.loads((tmp_path / "out" / "recommendation.json").read_text())
    assert facts["recommendation"].startswith("recommended: rank 4")
    sure = facts["certainty"]
    assert sure["trial"] != sure["runner_up_trial"] and sure["val_examples"] > 0
    assert sure["gap"] == pytest.approx(abs(sure["value"] - sure["runner_up_value"]))
    assert sure["beyond_noise"] == (sure["gap"] > sure["noise_2se"])


@pytest.mark.parametrize("beats", [True, False])
def test_a_rung_retries_the_trial_a_dead_worker_left_running(tmp_path: Path, beats: bool) -> None:
    """A worker killed after claiming a rung trial but before recording its owner leaves it
    RUNNING; the rung's wait finds it by its stale heartbeat, fails it, and trains its retry
    (it used to wait forever: with the queue empty nothing checked heartbeats). Killed before
    even its first heartbeat, the trial is failed once it has gone a grace period ownerless."""
    import contextlib

    import optuna
    from optuna.trial import TrialState

    from tuner.halving import _train_rung
    from tuner.rungs import ATTR_FRACTION, ATTR_RUNG
    from tuner.storage import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_seconds=1)
    study = optuna.create_study(study_name="t", storage=storage, direction="maximize")
    entry = _entry(4, "a")
    study.enqueue_trial(entry.params, user_attrs={ATTR_RUNG: 0, ATTR_FRACTION: 1.0})
    dead = study.ask()  # claimed (one beat or none), then the worker is gone
    if beats:
        storage.record_heartbeat(dead._trial_id)  # type: ignore[attr-defined]

    def run(target: int) -> bool:  # trains whatever waits, as run_trials would
        while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            trial = study.ask()
            study.tell(trial, 0.75)
        return False

    scored = _train_rung(study, [entry], rung=0, fraction=1.0, run=run,
                         lock=contextlib.nullcontext)  # fmt: skip
    assert scored == [(entry, 0.75)]
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states == [TrialState.FAIL, TrialState.COMPLETE]
