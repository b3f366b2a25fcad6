from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from tuner_fakes import Diverged, FakeConfig, FakeTrain, quality, small_space

from tuner.grid import MethodGrid
from tuner.objective import Objective
from tuner.report import recommend, trial_rows
from tuner.settings import TuneError, TuneSettings
from tuner.study import enqueue_seeds, make_pruner, run_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(space, train, metric="val_accuracy", **settings) -> Objective:  # type: ignore[no-untyped-def]
    return Objective(
        space=space,
        base_config=FakeConfig(),
        settings=TuneSettings(**settings),
        train_fn=train,
        metric=metric,
        diverged=(Diverged,),
    )


def test_ask_tell_prunes_bad_configs_and_trains_only_feasible_ones() -> None:
    space = small_space()
    train = FakeTrain(space)
    obj = objective(space, train)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=1),
        pruner=make_pruner(obj.settings),
    )
    enqueue_seeds(study, space, lrs={})
    for _ in range(30):
        trial = study.ask()
        try:
            value = obj(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, value)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.PRUNED) >= 5
    assert states.count(TrialState.COMPLETE) >= 3
    # the four seeds ran first, in order: dense, then d_up = d_down / 16 on the grid (the grid's
    # smallest d_up is 1/64, so 1/16 -> 1/256 becomes 1/16 -> 1/64)
    first = [
        (t.user_attrs["candidate"]["d_down"], t.user_attrs["candidate"]["d_up"])
        for t in study.trials[:4]
    ]
    assert first == [(1.0, 1.0), (1.0, 1 / 16), (0.25, 1 / 64), (1 / 16, 1 / 64)]
    # pruned trials stopped early: fewer rounds than planned
    for t in study.trials:
        planned = t.user_attrs["candidate"]["rounds"]
        ran = len(t.user_attrs.get("records", []))
        if t.state == TrialState.PRUNED and "duplicate_of" not in t.user_attrs:
            assert ran < planned
        if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs:
            assert ran == planned
            assert t.value == pytest.approx(t.user_attrs["records"][-1]["val_accuracy"])
    # no configuration was trained twice
    trained = [(c.rank, c.d_down, c.d_up) for c in train.calls]
    assert len(trained) == len(set(trained))
    # the pruner saved compute against running every trial to the end
    full = sum(
        t.user_attrs["candidate"]["rounds"]
        for t in study.trials
        if "duplicate_of" not in t.user_attrs
    )
    assert train.rounds_run < 0.8 * full


def test_search_beats_the_seeds_and_reports_the_trained_value() -> None:
    space = small_space()
    train = FakeTrain(space)
    obj = objective(space, train, pruner="none")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=3))
    enqueue_seeds(study, space, lrs={})
    study.optimize(obj, n_trials=25)
    end = 0.98 * (1 - 0.5 * math.exp(-4))  # the fake's served model at the end of the budget
    assert study.best_value == pytest.approx(max(quality(c) for c in train.calls) * end)
    assert study.best_value > max(quality(train.calls[i]) for i in range(4)) * end


def test_diverged_trial_is_pruned_and_the_study_goes_on(tmp_path: Path) -> None:
    space = small_space()
    train = FakeTrain(space, diverge_rank=16)  # every seed (rank 16) diverges
    obj = objective(
        space, train, storage=str(tmp_path / "j.log"), n_trials=6, pruner="none", seed=0
    )
    study = run_study(obj.settings, space, obj, space_meta=space.summary())
    trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(trials) >= 6
    diverged = [t for t in trials if t.user_attrs.get("end") == "diverged"]
    assert len(diverged) >= 4 and all(t.state == TrialState.PRUNED for t in diverged)
    assert all(len(t.user_attrs["records"]) == 1 for t in diverged)  # kept up to the NaN


def test_compute_cap_stops_the_study(tmp_path: Path) -> None:
    space = small_space()
    train = FakeTrain(space)
    obj = objective(
        space,
        train,
        storage=str(tmp_path / "j.log"),
        n_trials=50,
        pruner="none",
        max_client_steps=300,
    )
    study = run_study(obj.settings, space, obj, space_meta=space.summary())
    spent = sum(t.user_attrs.get("client_steps", 0) for t in study.trials)
    assert 300 <= spent < 300 + 20  # stops after the round that reaches the cap (20 steps/round)
    assert len(study.trials) < 50


def test_resume_refuses_a_study_made_for_another_search(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 't.db'}"
    space = small_space()
    obj = objective(space, FakeTrain(space), storage=storage, n_trials=1)
    run_study(obj.settings, space, obj, space_meta=space.summary())
    other = small_space(scale=0.25)
    obj2 = objective(other, FakeTrain(other), storage=storage, n_trials=2)
    with pytest.raises(TuneError, match=r"made for another search \(.*trial_budget"):
        run_study(obj2.settings, other, obj2, space_meta=other.summary())


def test_seeds_are_not_enqueued_twice_on_resume(tmp_path: Path) -> None:
    storage = str(tmp_path / "j.log")
    space = small_space()
    obj = objective(space, FakeTrain(space), storage=storage, n_trials=2, pruner="none")
    run_study(obj.settings, space, obj, space_meta=space.summary())
    obj = objective(space, FakeTrain(space), storage=storage, n_trials=8, pruner="none")
    study = run_study(obj.settings, space, obj, space_meta=space.summary())
    seeds = [t for t in study.trials if "fixed_params" in t.system_attrs]  # enqueued ones
    assert len(seeds) == 4
    assert len({t.user_attrs["key"] for t in seeds}) == 4


def test_ctrl_c_keeps_the_rounds_trained_so_far() -> None:
    space = small_space()
    obj = objective(space, FakeTrain(space, interrupt_round=3))
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    with pytest.raises(KeyboardInterrupt):
        obj(trial)
    study.tell(trial, state=TrialState.FAIL)
    attrs = study.trials[0].user_attrs
    assert attrs["end"] == "interrupted"
    assert [r["round"] for r in attrs["records"]] == [1, 2]


def test_meta_differences_ignore_fields_only_one_side_has() -> None:
    from tuner.study import meta_differences

    stored = {"budget": "50-dense-rounds", "base_config": {"rank": 16, "client_lr": 0.01}}
    newer = {"budget": "50-dense-rounds", "base_config": {"rank": 16, "client_lr": 0.01, "x": 1}}
    assert meta_differences(stored, newer) == []
    other = {"budget": "20-dense-rounds", "base_config": {"rank": 16, "client_lr": 0.1}}
    assert meta_differences(stored, other) == ["base_config.client_lr", "budget"]


@pytest.mark.parametrize("metric", ["val_accuracy", "val_accuracy_server", "val_loss"])
def test_selection_reads_validation_only_never_test(tmp_path: Path, metric: str) -> None:
    """The fake's test accuracy is anti-correlated with validation: picking on test would pick
    the worst config. The recommendation is the validation-best; every value told to Optuna and
    reported at a checkpoint is a validation value; test metrics are stored for the reports."""
    space = small_space()
    train = FakeTrain(space, test_of=lambda acc: 1.0 - acc)
    obj = objective(space, train, metric=metric, pruner="none", n_trials=10, seed=0,
                    storage=str(tmp_path / "j.log"))  # fmt: skip
    study = run_study(obj.settings, space, obj, space_meta={**space.summary(), "metric": metric})
    complete = [
        t for t in study.trials
        if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs
    ]  # fmt: skip
    assert len(complete) >= 5
    maximize = metric != "val_loss"
    for t in complete:
        records = {r["round"]: r for r in t.user_attrs["records"]}
        rounds = t.user_attrs["checkpoint_rounds"]
        for step, r in zip((1, 2, 4, 8), rounds, strict=True):
            assert t.intermediate_values[step] == pytest.approx(records[r][metric])
        assert t.value == pytest.approx(records[rounds[-1]][metric])
        last = records[max(records)]
        assert t.user_attrs["test_accuracy"] == pytest.approx(1.0 - last["val_accuracy"])
        assert t.user_attrs["test_accuracy"] != pytest.approx(last["val_accuracy"])
        for name in ("test_accuracy_server", "test_loss", "test_loss_server"):
            assert name in t.user_attrs
    sign = 1 if maximize else -1
    val_best = max(complete, key=lambda t: sign * t.value)
    test_best = max(complete, key=lambda t: t.user_attrs["test_accuracy"])
    assert val_best.number != test_best.number  # the two splits disagree here
    rows = trial_rows(study)
    best = recommend(rows, maximize=maximize)
    assert best is not None and best.trial == val_best.number
    assert next(r for r in rows if r.recommended).test_accuracy == pytest.approx(
        val_best.user_attrs["test_accuracy"]
    )


def test_methods_and_topk_modes_are_searched_under_one_budget(tmp_path: Path) -> None:
    grid = MethodGrid(
        methods=("floss", "dense", "sparseadapter", "adapterlth", "ffa"),
        topks=("global", "per-tensor"),
        keep_rates=(0.9, 0.98),
    )
    space = small_space(grid=grid)
    assert space.methods == list(grid.methods)
    train = FakeTrain(space)
    obj = objective(space, train, pruner="none", n_trials=30, seed=0, n_startup_trials=10,
                    storage=f"sqlite:///{tmp_path / 't.db'}")  # fmt: skip
    study = run_study(obj.settings, space, obj, space_meta=space.summary())
    # seeds: dense (the method), the heuristic family, then one per other method
    seeds = [t.user_attrs["candidate"] for t in study.trials if "fixed_params" in t.system_attrs]
    assert [(c["method"], c["why"].split(" ")[0]) for c in seeds] == [
        ("dense", "dense"), ("floss", "thesis"), ("floss", "thesis"), ("floss", "thesis"),
        ("ffa", "FFA-LoRA"), ("sparseadapter", "SparseAdapter"), ("adapterlth", "AdapterLTH"),
    ]  # fmt: skip
    tried = {t.user_attrs["candidate"]["method"] for t in study.trials}
    assert tried == set(grid.methods)
    for cfg in train.calls:  # every trained config is a feasible candidate with its own fields
        cand = space.lookup_config(cfg)
        assert cand is not None and cfg.rounds == cand.rounds
        if cfg.method in ("dense", "ffa", "adapterlth"):
            assert (cfg.d_down, cfg.d_up) == (1.0, 1.0)
        if cfg.method == "sparseadapter":
            assert cfg.d_down == cfg.d_up
        if cfg.method != "floss":
            assert cfg.topk == "global"
    assert {c.topk for c in train.calls if c.method == "floss" and c.d_up < 1} <= {
        "global",
        "per-tensor",
    }
    # duplicate detection knows methods: no (method, topk, config) trained twice
    keys = [t.user_attrs["key"] for t in study.trials if "records" in t.user_attrs]
    assert len(keys) == len(set(keys))
    # a full config carries the method's own parameters
    lth = next(t for t in study.trials if t.user_attrs["candidate"]["method"] == "adapterlth")
    assert lth.user_attrs["full_config"]["keep_rate"] in (0.9, 0.98)
