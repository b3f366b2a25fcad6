"""floss-tune on a heterogeneous fleet: policy points priced as floss-train --fleet resolves its
budget, searched as static categoricals, refused in one line when the combination is bad."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from tuner_fakes import Diverged, FakeTrain, plan_settings
from typer.testing import CliRunner

from planner.fleet import FleetSetup, load_fleet, parse_tier_densities
from planner.plan_rows import adapter_size
from trainer.budget import budget_rounds
from trainer.config import RunConfig
from tuner.build import build_space
from tuner.candidate import Candidate
from tuner.cli import app
from tuner.grid import MethodGrid, fleet_grid
from tuner.objective import Objective
from tuner.report import recommendation_line, trial_rows
from tuner.search_space import SearchSpace, trial_clients
from tuner.settings import TuneError, TuneSettings
from tuner.study import run_study
from tuner.trial_config import full_config, trial_config

optuna.logging.set_verbosity(optuna.logging.WARNING)
runner = CliRunner()
TIERS = "lte=1/4:1/16,wifi=1:1/4,5g=1:1/4"
BUDGET, SCALE = "5-dense-rounds", 0.5
TRIAL_BUDGET = "2.5-dense-rounds"  # BUDGET x SCALE, as floss-train --budget would be given it


def fleet_setup() -> FleetSetup:
    return FleetSetup(fleet=load_fleet("mixed-mobile"), tier_densities=parse_tier_densities(TIERS))


def fleet_grid_all(methods: tuple[str, ...] = ("floss", "dense")) -> MethodGrid:
    return MethodGrid(
        methods=methods,
        round_policies=("sync", "deadline"),
        density_policies=("uniform", "tiered", "bandwidth"),
        deadlines=(0.5, 1.0, 2.0),
    )


def fleet_space(grid: MethodGrid | None = None) -> SearchSpace:
    settings = plan_settings(BUDGET, max_rounds=None)
    return build_space(settings, budget_scale=SCALE, grid=grid or fleet_grid_all(),
                       fleet=fleet_setup())  # fmt: skip


def base_run(**changes: object) -> RunConfig:
    """The RunConfig the space above stands for (plan_settings' clients, seed, wire format)."""
    values: dict[str, object] = {
        "fleet": "mixed-mobile",
        "tier_densities": TIERS,
        "num_clients": 100,
        "clients_per_round": 10,
        "seed": 0,
        "eval_every": 1,
    }
    values.update(changes)
    return RunConfig(**values)  # type: ignore[arg-type]


def resolved(config: RunConfig, budget: str, n: int) -> tuple[int, int, float]:
    """(rounds, bytes, seconds) that floss-train --budget resolves for ``config``."""
    ref_n = adapter_size(plan_settings(BUDGET, max_rounds=None), 16, method="dense")
    got = budget_rounds(
        replace(config, budget=budget, max_rounds=None),
        n=n,
        reference_n=ref_n,
        num_clients=config.num_clients,
        network=config.network_profile(),
    )
    return (
        len(got.rounds),
        sum(p.bytes_total for p in got.rounds),
        sum(p.seconds for p in got.rounds),
    )


def test_every_policy_point_is_priced_as_floss_train_resolves_its_budget() -> None:
    space = fleet_space()
    points = {c.policy for c in space.candidates if c.method == "floss"}
    assert len(points) == (1 + 1 + 3) + 3 * 3  # sync: uniform, tiered, bandwidth x 3; deadline
    assert {c.policy for c in space.candidates if c.method == "dense"} <= {
        ("sync", "uniform", None), ("deadline", "uniform", 0.5), ("deadline", "uniform", 1.0),
        ("deadline", "uniform", 2.0),
    }  # fmt: skip
    rounds_seen = set()
    for cand in space.candidates[::9]:
        base = base_run()
        cfg = full_config(base, cand, lrs={})
        assert cfg.fleet == "mixed-mobile" and cfg.round_policy == cand.round_policy
        assert space.lookup_config(cfg) == cand
        full = resolved(cfg, BUDGET, cand.n)
        assert full[:2] == (cand.full_rounds, cand.full_bytes), cand.label
        assert full[2] == pytest.approx(cand.full_seconds, rel=1e-12)
        trial = resolved(cfg, TRIAL_BUDGET, cand.n)
        assert trial[:2] == (cand.rounds, cand.trial_bytes), cand.label
        assert trial[2] == pytest.approx(cand.trial_seconds, rel=1e-12)
        rounds_seen.add(cand.full_rounds)
    assert len(rounds_seen) > 3  # the policies and densities really buy different rounds


def test_policies_change_the_price() -> None:
    space = fleet_space()

    def at(rp: str, dp: str, deadline: float | None) -> int:
        cand = space.lookup(16, 1.0, 0.25, policy=(rp, dp, deadline))
        assert cand is not None
        return cand.full_rounds

    sync = at("sync", "uniform", None)
    assert at("deadline", "uniform", 0.5) > sync  # stragglers no longer set the pace
    assert at("sync", "bandwidth", 0.5) > sync  # slow clients send less
    # tiered: the tiers' densities, whatever the run's; one candidate per rank and policy point
    tiered = [c for c in space.candidates if c.density_policy == "tiered"]
    groups = Counter((c.method, c.topk, c.rank, c.precision_down, c.precision_up, c.policy)
                     for c in tiered)  # fmt: skip
    assert tiered and set(groups.values()) == {1}
    for dd, du in ((1.0, 0.25), (0.25, 1 / 16)):
        cand = space.candidate_for({"rank": 16, "d_down": dd, "d_up": du,
                                    "round_policy": "sync", "density_policy": "tiered"})  # fmt: skip
        assert cand.density_policy == "tiered" and cand.rank == 16
        assert cand.label.startswith("r16 tier densities")


def test_a_deadline_no_client_meets_is_infeasible() -> None:
    grid = replace(fleet_grid_all(("floss",)), deadlines=(0.002, 1.0))  # 2 ms: below any RTT
    space = fleet_space(grid)
    assert all(c.deadline != 0.002 for c in space.candidates)
    cand = space.candidate_for(
        {"rank": 16, "d_down": 1.0, "d_up": 0.25, "round_policy": "deadline",
         "density_policy": "uniform", "deadline": 0.002}
    )  # fmt: skip
    assert cand.deadline == 1.0 and cand.round_policy == "deadline"


def test_without_lists_a_fleet_is_priced_at_the_base_policy() -> None:
    setup = replace(fleet_setup(), round_policy="deadline", deadline_seconds=1.0)
    space = build_space(plan_settings(BUDGET, max_rounds=None), budget_scale=SCALE,
                        grid=MethodGrid(), fleet=setup)  # fmt: skip
    assert {c.policy for c in space.candidates} == {("deadline", "uniform", 1.0)}
    assert space.summary()["fleet"] == "mixed-mobile"


def test_fake_study_searches_policies_and_trains_each_at_its_planned_spend(tmp_path: Path) -> None:
    space = fleet_space()
    train = FakeTrain(space)
    obj = Objective(
        space=space,
        base_config=base_run(),
        settings=TuneSettings(
            pruner="none",
            n_trials=24,
            seed=0,
            n_startup_trials=12,
            storage=f"sqlite:///{tmp_path / 't.db'}",
        ),
        train_fn=train,
        diverged=(Diverged,),
    )
    study = run_study(obj.settings, space, obj, space_meta=space.summary())
    dists = {}
    for t in study.trials:
        dists.update(t.distributions)
    assert dists["round_policy"].choices == ("sync", "deadline")  # static lists, as precisions
    assert dists["density_policy"].choices == ("uniform", "tiered", "bandwidth")
    assert dists["deadline"].choices == (0.5, 1.0, 2.0)
    assert len({(c.round_policy, c.density_policy) for c in train.calls}) >= 3
    for cfg in train.calls:
        cand = space.lookup_config(cfg)
        assert cand is not None and cfg.rounds == cand.rounds
        assert cfg.fleet == "mixed-mobile" and cfg.fleet_setup() is not None
        rounds, spent, seconds = resolved(cfg, TRIAL_BUDGET, cand.n)
        assert (rounds, spent) == (cfg.rounds, cand.trial_bytes)
        assert seconds == pytest.approx(cand.trial_seconds, rel=1e-12)
    for t in study.trials:
        if t.state == optuna.trial.TrialState.COMPLETE and "records" in t.user_attrs:
            cand = t.user_attrs["candidate"]
            assert t.user_attrs["records"][-1]["cum_bytes"] == cand["trial_bytes"]
            full = RunConfig.from_dict(t.user_attrs["full_config"])
            assert (full.round_policy, full.density_policy, full.deadline_seconds) == (
                cand["round_policy"], cand["density_policy"], cand["deadline"]
            )  # fmt: skip
            assert full.rounds == cand["full_rounds"]
    keys = [t.user_attrs["key"] for t in study.trials if "records" in t.user_attrs]
    assert len(keys) == len(set(keys))  # policies are part of what makes two trials the same
    rows = trial_rows(study)
    assert any(r.round_policy for r in rows) and all(" sync" in r.label or " deadline" in r.label
                                                     for r in rows if r.rank)  # fmt: skip
    assert "densities" in recommendation_line(study) and " rounds, " in recommendation_line(study)


@pytest.mark.parametrize(
    ("grid", "match"),
    [
        ({"density_policies": ("tiered",)}, "no density for tier"),
        ({"round_policies": ("deadline",), "deadlines": ()}, "deadline rounds need a deadline"),
        ({"density_policies": ("bandwidth",), "deadlines": ()}, "bandwidth densities need"),
        ({"methods": ("floss", "sparseadapter")}, "sparseadapter keeps one shared mask"),
        ({"deadlines": (0.5, 0.5)}, "--deadlines has a repeated value"),
        ({"deadlines": (-1.0,)}, "--deadlines values must be seconds > 0"),
        ({"round_policies": ("async",)}, "--round-policies: 'async' is not one of"),
    ],
)
def test_bad_fleet_searches(grid: dict[str, object], match: str) -> None:
    values: dict[str, object] = {"round_policies": ("sync",), "density_policies": ("uniform",),
                                 "deadlines": (1.0,)}  # fmt: skip
    values.update(grid)
    setup = FleetSetup(fleet=load_fleet("mixed-mobile"))  # no tier densities
    with pytest.raises(TuneError, match=match):
        fleet_grid(MethodGrid(**values), setup)  # type: ignore[arg-type]


def test_policies_without_a_fleet_are_refused() -> None:
    grid = MethodGrid(round_policies=("sync",), density_policies=("uniform",))
    with pytest.raises(TuneError, match="need a fleet"):
        build_space(plan_settings(), grid=grid)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fleet", "mixed-mobile", "--density-policies", "uniform,tiered"],
         "error: tiered densities: no density for tier 'lte'"),
        (["--fleet", "mixed-mobile", "--round-policies", "sync,deadline"],
         "error: deadline rounds need a deadline: give --deadlines"),
        (["--fleet", "mixed-mobile", "--density-policies", "bandwidth"],
         "error: bandwidth densities need a deadline"),
        (["--fleet", "mixed-mobile", "--methods", "floss,adapterlth"],
         "error: fleets support floss, dense and ffa; adapterlth keeps one shared mask"),
        (["--round-policies", "deadline", "--deadlines", "1"], "error: --round-policies needs --fleet."),
        (["--fleet", "no-such-fleet"], "error: "),
        (["--fleet", "mixed-mobile", "--deadlines", "1,x"], "error: --deadlines: 'x' is not"),
        (["--fleet", "mixed-mobile", "--tier-densities", "lte=2:1"], "error: "),
        (["--fleet", "mixed-mobile", "--over-selection", "0.5"], "error: over_selection"),
    ],
)  # fmt: skip
def test_bad_fleet_searches_end_in_one_line(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not list(tmp_path.glob("*.db"))  # refused before the study starts


def settling_pair() -> tuple[SearchSpace, Candidate, Candidate]:
    """A space whose two deadlines (0.5 s, 30 s) settle identically: (space, tight, loose)."""
    settings = replace(
        plan_settings(BUDGET, max_rounds=None), ranks=(16,), d_down=(0.25,), d_up=(1 / 16,)
    )
    grid = MethodGrid(methods=("floss",), round_policies=("deadline",),
                      density_policies=("uniform",), deadlines=(0.5, 30.0))  # fmt: skip
    space = build_space(settings, budget_scale=SCALE, grid=grid, fleet=fleet_setup())
    tight, loose = sorted(space.candidates, key=lambda c: c.deadline or 0.0)
    return space, tight, loose


def settle_study(
    tmp_path: Path, *order: Candidate, checkpoint_root: Path | None = None
) -> tuple[FakeTrain, optuna.Study, list[Path]]:
    """Enqueue ``order`` (candidates of ``settling_pair``'s space) and run one trial each:
    (the fake trainer, the study, the checkpoint folders the trials trained with)."""
    from tuner.seeds import seed_params

    space = settling_pair()[0]
    train = FakeTrain(space)
    folders: list[Path] = []

    def train_fn(config: object, **kw: object) -> object:
        if "checkpoint_dir" in kw:
            folders.append(Path(str(kw.pop("checkpoint_dir"))))
            kw.pop("resume")
        return train(config, **kw)

    obj = Objective(
        space=space,
        base_config=base_run(),
        settings=TuneSettings(
            pruner="none", n_trials=2, seed=0, storage=f"sqlite:///{tmp_path / 't.db'}"
        ),
        train_fn=train_fn,
        diverged=(Diverged,),
        checkpoint_root=checkpoint_root,
    )
    study = optuna.create_study(storage=obj.settings.storage, direction="maximize")
    for cand in order:
        study.enqueue_trial(seed_params(cand, space))
    study.optimize(obj, n_trials=len(order))
    return train, study, folders


def test_deadlines_that_drop_no_client_settle_as_one_trial(tmp_path: Path) -> None:
    """Deadline rounds at 0.5 s and at 30 s drop no client of this configuration in any round
    it affords: the seeded schedule (clients, densities, bytes, seconds) is the same, so the
    second trains nothing and records the first's value (before: two identical trainings)."""
    from tuner.ledger import study_target

    space, tight, loose = settling_pair()
    assert (tight.deadline, loose.deadline) == (0.5, 30.0) and tight.rounds == loose.rounds
    assert space.settles_as(loose) == tight and space.settles_as(tight) == tight
    assert study_target(10, space, tune_lr=False) == 1
    train, study, _ = settle_study(tmp_path, tight, loose)
    assert len(train.calls) == 1 and train.calls[0].deadline_seconds == 0.5
    first, second = study.trials
    assert second.params["deadline"] == 30.0 and second.value == first.value
    assert second.user_attrs["duplicate_of"] == first.number
    assert second.user_attrs["settles_as"] == tight.label
    assert second.user_attrs["candidate"]["deadline"] == 30.0  # its own configuration
    assert "settles_as" not in first.user_attrs


def test_trial_clients_are_capped_at_the_base_runs() -> None:
    """Trials train on min(--trial-clients-per-round, the base run's): settles_as compares the
    schedules at that number too (before: at the uncapped number the trials never train on)."""
    space, tight, loose = settling_pair()
    base = space.pricing.clients_per_round
    assert trial_clients(None, base) == base and trial_clients(base + 5, base) == base
    assert trial_clients(2, base) == 2
    many = replace(space, trial_clients_per_round=base * 10)
    assert many.clients_per_trial == base
    assert many.settles_as(loose) == space.settles_as(loose) == tight
    assert trial_config(base_run(), loose, lrs={}, clients_per_round=base * 10).clients_per_round \
        == base  # fmt: skip


def test_settling_twin_trained_first_names_the_other(tmp_path: Path) -> None:
    """The later deadline trains first (enqueued first): it trains, with no settles_as; the
    earlier one is its duplicate and names it (before: settles_as on the trial that trained)."""
    _, tight, loose = settling_pair()
    train, study, _ = settle_study(tmp_path, loose, tight)
    assert len(train.calls) == 1 and train.calls[0].deadline_seconds == 30.0
    first, second = study.trials
    assert "settles_as" not in first.user_attrs and "duplicate_of" not in first.user_attrs
    assert second.user_attrs["duplicate_of"] == first.number
    assert second.user_attrs["settles_as"] == loose.label and second.value == first.value


def test_settling_twins_keep_their_own_checkpoint_folders(tmp_path: Path) -> None:
    """One trial key, two checkpoint folders: a checkpoint resumes only its own config (the
    deadline differs), so the later deadline's trial checkpoints under its own key (before:
    under the trial key, where the earlier deadline's trial found it and refused it)."""
    from tuner.trial_checkpoint import checkpoint_key, trial_checkpoint_dir
    from tuner.trial_config import trained_key

    space, tight, loose = settling_pair()
    assert trained_key(space, tight, {}) == trained_key(space, loose, {})
    assert checkpoint_key(tight, {}, None) != checkpoint_key(loose, {}, None)
    assert checkpoint_key(loose, {}, 0.5) != checkpoint_key(loose, {}, None)
    root = tmp_path / "ckpt"
    _, _, folders = settle_study(tmp_path, loose, checkpoint_root=root)
    own = trial_checkpoint_dir(root, checkpoint_key(loose, {}, None))
    assert folders == [own]
    assert own != trial_checkpoint_dir(root, trained_key(space, loose, {}))


def test_seeds_that_settle_identically_are_enqueued_once(tmp_path: Path) -> None:
    """Two seeds of one trial key: the second is not enqueued (before: both were)."""
    from tuner.study import enqueue_seeds

    space, tight, loose = settling_pair()
    space = replace(space, seeds=(tight, loose))
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    assert enqueue_seeds(study, space, lrs={}) == [tight]
    assert len(study.trials) == 1


def test_deadlines_that_drop_clients_stay_two_trials() -> None:
    """At d 1|1 a 0.5 s deadline drops clients (more rounds fit) where 2 s does not: two runs."""
    settings = replace(plan_settings(BUDGET, max_rounds=None), ranks=(16,), d_down=(1.0,),
                       d_up=(1.0,))  # fmt: skip
    grid = MethodGrid(methods=("floss",), round_policies=("deadline",),
                      density_policies=("uniform",), deadlines=(0.5, 2.0))  # fmt: skip
    space = build_space(settings, budget_scale=SCALE, grid=grid, fleet=fleet_setup())
    tight, loose = sorted(space.candidates, key=lambda c: c.deadline or 0.0)
    assert tight.rounds != loose.rounds
    assert space.settles_as(loose) == loose
