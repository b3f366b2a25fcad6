"""`floss-train` through typer's CliRunner: one tiny run, and one line for each bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from trainer.cli import app

runner = CliRunner()


def _config(tmp_path: Path, tiny_kwargs: dict[str, Any], **changes: Any) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**tiny_kwargs, "rounds": 2, **changes}))
    return path


def test_tiny_run_flags_override_config(tmp_path: Path, tiny_kwargs: dict[str, Any]) -> None:
    cfg = _config(tmp_path, tiny_kwargs, rank=8)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "--config",
            str(cfg),
            "--out-dir",
            str(out),
            "--rank",
            "2",
            "--d-up",
            "1/16",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        lines[0]
        == f"method floss, rank 2, d_down 0.25, d_up 0.0625, 2 rounds x 3 of 6 clients; out {out}"
    )
    assert lines[-1] == f"adapter saved to {out / 'adapter'}"
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["rank"] == 2 and saved["d_up"] == 0.0625 and saved["max_length"] == 16
    records = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records] == [1, 2]
    assert f"bytes {records[-1]['cum_bytes']:,} " in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rank", "0"], "error: rank must be an integer >= 1, but got 0."),
        (["--d-down", "2"], "error: d_down must be in (0, 1], but got 2.0."),
        (
            ["--method", "fedprox"],
            "error: method must be one of floss, dense, sparseadapter, adapterlth, ffa, fedsrd, "
            "fedsrd-e, but got 'fedprox'.",
        ),
        (["--network", "moon"], "error: unknown network profile 'moon'; known: "),
        (
            ["--model", "/nonexistent/model/dir"],
            "error: model '/nonexistent/model/dir' is not a local folder nor in the Hugging Face "
            "cache, and HF_HUB_OFFLINE=1 forbids downloading it.",
        ),
        (
            ["--partition", "natural", "--clients-per-round", "7", "--num-clients", "7"],
            "error: clients_per_round=7 exceeds the 6 clients of the natural partition.",
        ),
    ],
)
def test_bad_inputs_exit_2_with_one_line(
    tmp_path: Path,
    tiny_kwargs: dict[str, Any],
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = _config(tmp_path, tiny_kwargs)
    result = runner.invoke(
        app, ["--config", str(cfg), "--out-dir", str(tmp_path / "o"), "--no-progress", *args]
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(message)
    assert "Traceback" not in result.output


def test_missing_config_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--config", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert "error: cannot read config file" in result.output


def test_divergence_exits_3(tmp_path: Path, tiny_kwargs: dict[str, Any]) -> None:
    cfg = _config(tmp_path, tiny_kwargs, server_optimizer="fedavg", server_lr=1e38, rounds=3)
    result = runner.invoke(
        app, ["--config", str(cfg), "--out-dir", str(tmp_path / "o"), "--no-progress"]
    )
    assert result.exit_code == 3, result.output
    assert "error: training diverged in round" in result.output
    assert "Traceback" not in result.output


def test_console_script_help_does_not_import_torch() -> None:
    code = "import sys, trainer.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
