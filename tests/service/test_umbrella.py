"""The umbrella `floss` command sits above every package; `floss serve` checks its settings
before it binds anything."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

runner = CliRunner()


def test_umbrella_mounts_every_package() -> None:
    from floss_cli import build_app

    app = build_app()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("plan", "profiles", "train", "tune", "serve"):
        assert f"│ {name} " in result.output, name
    plan = runner.invoke(app, ["plan", "--ranks", "4", "--format", "json"])
    assert plan.exit_code == 0 and '"method": "floss"' in plan.output


def test_planner_imports_nothing_above_it() -> None:
    code = (
        "import sys, planner.cli, planner.plan, planner.render\n"
        "above = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'service', 'tuner', 'trainer', 'floss_cli', 'fastapi', 'torch', 'optuna'})\n"
        "print(above)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_serve_refuses_bad_settings_in_one_line() -> None:
    from service.cli import app

    for args, message in (
        (["--host", "0.0.0.0"], "is not a loopback address: give a token"),
        (["--port", "70000"], "--port must be in [0, 65535]"),
        (["--max-workers", "0"], "--max-workers must be an integer >= 1"),
        (["--token", "short"], "--token must be at least 16 characters"),
        (["--data-root", "/no/such/folder"], "--data-root '/no/such/folder' is not a folder"),
        (["--storage", "nope://x"], "unknown storage scheme 'nope'"),
    ):
        result = runner.invoke(app, args, env={"FLOSS_SERVE_TOKEN": ""})
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
