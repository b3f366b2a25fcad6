"""floss-tune --fleet end to end on the trainer's tiny random BERT: what each trial really spent
is its planned spend, floss-train --budget resolves the same rounds, and the export carries the
fleet's fields."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from support.cpu import one_torch_thread
from support.task import write_fleet_study_config
from typer.testing import CliRunner

from tuner.cli import app

optuna.logging.set_verbosity(optuna.logging.WARNING)
runner = CliRunner()
BUDGET, SCALE, MAX_ROUNDS = "4-dense-rounds", 0.5, 8


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, object]:
    folder = tmp_path_factory.mktemp("fleet")
    storage = f"sqlite:///{folder / 'tune.db'}"
    args = [
        "run",
        "--config", str(write_fleet_study_config(folder)),
        "--fleet", "mixed-mobile",
        "--round-policies", "sync,deadline",
        "--density-policies", "uniform,bandwidth",
        "--deadlines", "0.2,1",
        "--over-selection", "1.5",
        "--budget", BUDGET,
        "--budget-scale", str(SCALE),
        "--max-rounds", str(MAX_ROUNDS),
        "--ranks", "2,4",
        "--d-down", "1,1/4",
        "--d-up", "1,1/16",
        "--search", "optuna",
        "--pruner", "none",
        "--n-trials", "5",
        "--seed", "0",
        "--storage", storage,
        "--study-name", "fleet",
        "--export", str(folder / "out"),
    ]  # fmt: skip
    with one_torch_thread():
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return folder, storage, result


def resolved(config: object, workload: object) -> list[object]:
    """The rounds ``floss-train --budget`` resolves for ``config`` (``trainer.budget
    .planned_prices``, with the dense reference size measured on a sync/uniform copy: planned_prices
    itself builds the dense reference from the config as is, which RunConfig refuses for tiered
    or bandwidth densities)."""
    import torch

    from trainer.budget import budget_rounds, reference_adapter_size
    from trainer.flat import FlatAdapter
    from trainer.modeling import wrap_lora

    cfg: Any = config
    wl: Any = workload
    adapter = FlatAdapter(wrap_lora(wl.base_model, cfg), torch.device("cpu"))
    uniform = replace(cfg, round_policy="sync", density_policy="uniform", deadline_seconds=None)
    return list(
        budget_rounds(
            cfg,
            n=adapter.n,
            tensor_sizes=tuple(s.stop - s.start for s in adapter.slices),
            reference_n=reference_adapter_size(uniform, wl.base_model),
            num_clients=len(wl.client_rows(cfg)),
            network=cfg.network_profile(),
        ).rounds
    )


def test_fleet_trials_spend_what_was_planned_and_floss_train_resolves_it(
    tuned: tuple[Path, str, object],
) -> None:
    from trainer.config import RunConfig
    from trainer.run import prepare

    _, storage, result = tuned
    study = optuna.load_study(study_name="fleet", storage=storage)
    done = [t for t in study.get_trials(states=(TrialState.COMPLETE,)) if "records" in t.user_attrs]
    assert len(done) >= 3
    workload = None
    for t in done:
        cand, recs = t.user_attrs["candidate"], t.user_attrs["records"]
        assert cand["round_policy"] in ("sync", "deadline")
        # the real trainer's fleet rounds cost exactly the tuner's fleet prices
        assert len(recs) == cand["rounds"]
        assert recs[-1]["cum_bytes"] == cand["trial_bytes"]
        assert recs[-1]["cum_sim_seconds"] == pytest.approx(cand["trial_seconds"], rel=1e-9)
        assert all(len(r["client_bytes_down"]) >= 3 for r in recs)  # per-client records
        trial = RunConfig.from_dict(t.user_attrs["config"])
        full = RunConfig.from_dict(t.user_attrs["full_config"])
        assert trial.fleet == full.fleet == "mixed-mobile" and full.over_selection == 1.5
        assert (full.round_policy, full.density_policy, full.deadline_seconds) == (
            cand["round_policy"], cand["density_policy"], cand["deadline"]
        )  # fmt: skip
        # floss-train --budget resolves the same rounds from the same config
        if workload is None:
            workload = prepare(trial)
        cap = max(1, int(MAX_ROUNDS * SCALE))
        got = resolved(replace(trial, budget="2-dense-rounds", max_rounds=cap), workload)
        assert len(got) == cand["rounds"]
        assert sum(p.bytes_total for p in got) == cand["trial_bytes"]
        got = resolved(replace(full, budget=BUDGET, max_rounds=MAX_ROUNDS), workload)
        assert len(got) == full.rounds == cand["full_rounds"]
        assert sum(p.bytes_total for p in got) == cand["full_bytes"]
    out = result.output  # type: ignore[attr-defined]
    assert "recommended: " in out and "on fleet mixed-mobile: " in out and " densities" in out


def test_fleet_export_carries_the_fleet_fields(tuned: tuple[Path, str, object]) -> None:
    from trainer.config import RunConfig

    folder, _, result = tuned
    out = folder / "out"
    run = RunConfig.load(out / "run.yaml")
    assert run.fleet == "mixed-mobile" and run.over_selection == 1.5
    assert run.round_policy in ("sync", "deadline")
    assert run.density_policy in ("uniform", "bandwidth")
    assert run.fleet_setup() is not None
    assert RunConfig.load(out / "run.json") == run
    flower = tomllib.loads((out / "flower" / "run_config.toml").read_text(encoding="utf-8"))
    assert flower["fleet"] == "mixed-mobile" and flower["round-policy"] == run.round_policy
    assert flower["density-policy"] == run.density_policy
    assert flower["over-selection"] == 1.5
    app = tomllib.loads((out / "flower-app" / "pyproject.toml").read_text(encoding="utf-8"))
    app_config = app["tool"]["flwr"]["app"]["config"]
    assert app_config["fleet"] == "mixed-mobile"
    assert app_config["round-policy"] == run.round_policy
    assert f"{out / 'flower-app'}: a runnable Flower app" in result.output  # type: ignore[attr-defined]
    import pandas as pd

    trials = pd.read_csv(out / "trials.csv")
    assert {"round_policy", "density_policy", "deadline"} <= set(trials.columns)
