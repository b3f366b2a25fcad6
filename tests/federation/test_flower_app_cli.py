"""`floss flower-app`: an app folder for any run config, and one line for bad input."""

from __future__ import annotations

import tomllib
from pathlib import Path

from typer.testing import CliRunner

from federation.config import from_run_config
from floss_cli import build_app
from trainer.config import RunConfig


def test_writes_an_app_whose_run_config_is_the_given_one(tmp_path: Path) -> None:
    run = RunConfig(rank=4, d_down=0.25, d_up=1 / 64, rounds=7, num_clients=12, clients_per_round=3)
    run.save(tmp_path / "run.yaml")
    result = CliRunner().invoke(
        build_app(), ["flower-app", str(tmp_path / "app"), "--config", str(tmp_path / "run.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert "flwr run" in result.output and "num-supernodes=12" in result.output
    values = tomllib.loads((tmp_path / "app" / "pyproject.toml").read_text())
    back, _settings = from_run_config(values["tool"]["flwr"]["app"]["config"])
    assert back == run


def test_bad_config_and_bad_folder_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("rank: -3\n")
    (tmp_path / "file").write_text("x")
    RunConfig().save(tmp_path / "ok.yaml")
    for args in (
        ["flower-app", str(tmp_path / "app"), "--config", str(tmp_path / "bad.yaml")],
        ["flower-app", str(tmp_path / "app"), "--config", str(tmp_path / "missing.yaml")],
        ["flower-app", str(tmp_path / "file"), "--config", str(tmp_path / "ok.yaml")],
    ):
        result = CliRunner().invoke(build_app(), args)
        assert result.exit_code == 2, result.output
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), result.output
        assert "Traceback" not in result.output
