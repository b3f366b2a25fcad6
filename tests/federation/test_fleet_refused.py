"""Fleets run in floss-train only: the Flower app and floss-tune refuse a fleet run config with
one line (they would otherwise run or price a different round), before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from federation.config import check_engine_support
from floss_cli import build_app
from trainer.config import RunConfig
from trainer.errors import TrainerError

runner = CliRunner()


def test_flower_app_refuses_a_fleet_config(tmp_path: Path) -> None:
    run = RunConfig(fleet="mixed-mobile", density_policy="tiered",
                    tier_densities="lte=1/4:1/16,wifi=1:1/4,5g=1:1")  # fmt: skip
    run.save(tmp_path / "run.yaml")
    result = runner.invoke(
        build_app(), ["flower-app", str(tmp_path / "app"), "--config", str(tmp_path / "run.yaml")]
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "does not run fleets yet" in errors[0], result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "app").exists()
    with pytest.raises(TrainerError, match="mixed-mobile"):
        check_engine_support(run)
    check_engine_support(RunConfig())  # no fleet: nothing to refuse


def test_floss_tune_refuses_a_fleet_base_config(tmp_path: Path) -> None:
    from tuner.cli import app

    RunConfig(fleet="mixed-mobile").save(tmp_path / "run.yaml")
    result = runner.invoke(
        app,
        ["run", "--config", str(tmp_path / "run.yaml"), "--n-trials", "1",
         "--storage", f"sqlite:///{tmp_path / 's.db'}"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: floss-tune does not price or search fleets yet")
    assert "Traceback" not in result.output
    assert not (tmp_path / "s.db").exists()
