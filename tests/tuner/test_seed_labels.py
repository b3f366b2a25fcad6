"""The first seed of a fleet study is labelled with what it trains: FLoSS at d 1|1 and the
reference rank is dense LoRA on one network or under uniform densities, but under tiered
densities every client trains at its tier's densities (r16 1/4|1/16 on LTE), not dense."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from tuner_fakes import small_space
from typer.testing import CliRunner

from tuner.cli import app
from tuner.runner import seed_reasons
from tuner.show import seed_note


def test_a_tiered_or_bandwidth_seed_is_not_called_dense() -> None:
    space = small_space()
    dense = space.seeds[0]
    assert dense.why == "dense LoRA baseline"
    tiered = replace(dense, round_policy="sync", density_policy="tiered")
    bandwidth = replace(
        dense, round_policy="deadline", density_policy="bandwidth", deadline=1.0,
        why="dense LoRA baseline, nearest on the grid",
    )  # fmt: skip
    uniform = replace(dense, round_policy="sync", density_policy="uniform")
    fleet_space = replace(
        space, candidates=(tiered, bandwidth, uniform), seeds=(tiered, bandwidth, uniform)
    )
    config = SimpleNamespace(tier_densities="lte=1/4:1/16,wifi=1:1/4")
    out = seed_reasons(fleet_space, config)
    assert [c.why for c in out.seeds] == [
        "reference rank at the tiers' densities lte 1/4|1/16, wifi 1|1/4",
        "reference rank, each client at the densities its link affords (caps 1|1), "
        "nearest on the grid",
        "dense LoRA baseline",  # uniform densities at 1|1: dense indeed
    ]
    assert [c.why for c in out.candidates] == [c.why for c in out.seeds]
    assert [c.key for c in out.seeds] == [c.key for c in fleet_space.seeds]  # same configs
    assert [seed_note(c.why) for c in out.seeds] == [
        "seed tiers",
        "seed link caps~",
        "seed dense",
    ]
    assert seed_reasons(space, config).seeds == space.seeds  # no fleet: unchanged


@pytest.mark.parametrize("policy", ["tiered"])
def test_the_cli_enqueues_the_seed_under_its_real_name(tmp_path: Path, policy: str) -> None:
    from support.cpu import one_torch_thread
    from support.task import write_fleet_study_config

    with one_torch_thread():
        args = [
            "run", "--config", str(write_fleet_study_config(tmp_path)), "--fleet", "mixed-mobile",
            "--density-policies", policy, "--tier-densities", "lte=1/4:1/16,wifi=1:1/4,5g=1:1",
            "--budget", "4-dense-rounds", "--max-rounds", "3", "--ranks", "16",
            "--d-down", "1", "--d-up", "1", "--search", "optuna", "--pruner", "none",
            "--n-trials", "1", "--storage", f"sqlite:///{tmp_path / 't.db'}",
        ]  # fmt: skip
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (
        "enqueued r16 tier densities sync/tiered (reference rank at the tiers' densities "
        "lte 1/4|1/16, wifi 1|1/4, 5g 1|1)" in result.output
    )
    assert "dense LoRA baseline" not in result.output
    assert "seed tiers" in result.output
