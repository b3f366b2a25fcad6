"""`floss-plan` through typer's CliRunner and as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from planner.cli import app, plan_command

runner = CliRunner()
single = typer.Typer()
single.command()(plan_command)


def test_plan_table() -> None:
    result = runner.invoke(single, ["--budget", "50-dense-rounds", "--up-slowdown", "16"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "model    all-minilm-l6-v2: n(r=16) = 147,456 adapter entries"
    assert lines[2] == (
        "budget   50 dense rounds = 20.054 s; a dense round at rank 16 takes 0.4011 s and moves 11.80 MB"
    )
    assert "thesis heuristic d_up = d_down/S" in result.output
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in lines if line.startswith("│")]
    assert [
        "★",
        "16",
        "1/4",
        "1/64",
        "163.58 kB rice",
        "11.51 kB rice",
        "13.9 ms",
        "1,441",
        "2.52 GB",
        "thesis heuristic d_up = d_down/S",
    ] in cells
    assert cells[3][:4] == ["★", "16", "1", "1"]  # dense baseline among the recommended


def test_plan_json_has_required_fields() -> None:
    result = runner.invoke(
        single, ["--budget", "50-dense-rounds", "--up-slowdown", "16", "--format", "json"]
    )
    assert result.exit_code == 0
    rows = json.loads(result.output)
    required = {
        "rank",
        "d_down",
        "d_up",
        "bytes_down",
        "bytes_up",
        "encoding_down",
        "encoding_up",
        "seconds_per_round",
        "rounds",
        "total_bytes",
        "pareto",
        "recommended",
    }
    assert required <= set(rows[0])
    assert rows[0]["recommended"] and len(rows) == 567


@pytest.mark.parametrize("fmt", ["csv", "yaml", "json", "table"])
def test_output_file(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"plan.{fmt}"
    result = runner.invoke(
        single, ["--budget", "2GB", "--profile", "lte", "-f", fmt, "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().count("\n") > 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "50parsecs"], "error: unknown budget unit 'parsecs' in '50parsecs'"),
        (["--budget", "5Mb"], "error: budget '5Mb' is in bits"),
        (["--budget", "1B"], "error: budget '1B' affords fewer than 1 round(s)"),
        (["--down", "0"], "error: --down (Mbps) must be a positive number, but got 0.0."),
        (["--up", "-5"], "error: --up (Mbps) must be a positive number, but got -5.0."),
        (["--up-slowdown", "0"], "error: --up-slowdown must be a positive number, but got 0.0."),
        (["--d-down", "1,2"], "error: --d-down: density must be in (0, 1], but got '2'."),
        (["--d-up", "0"], "error: --d-up: density must be in (0, 1], but got '0'."),
        (["--d-up", "half"], "error: --d-up: 'half' is not a density"),
        (["--ranks", "0,4"], "error: --ranks: rank must be >= 1, but got 0."),
        (["--ref-rank", "0"], "error: --ref-rank must be >= 1, but got 0."),
        (["--profile", "mars"], "error: unknown network profile 'mars'"),
        (["--model", "gpt5"], "error: unknown model profile 'gpt5'"),
        (
            ["--profile", "/no/such/file.toml"],
            "error: network profile file '/no/such/file.toml' does not exist.",
        ),
        (
            ["--format", "xml"],
            "error: --format must be one of table, json, csv, yaml, but got 'xml'.",
        ),
        (
            ["--precision", "fp8"],
            "error: --precision must be one of fp32, fp16, bf16, but got 'fp8'.",
        ),
        (["--encoding", "zip"], "error: --encoding must be one of auto, dense, coo, bitmap, rice"),
        (["--min-rounds", "0"], "error: --min-rounds must be at least 1, but got 0."),
        (["--clients-per-round", "0"], "error: clients per round must be at least 1, but got 0."),
    ],
)
def test_bad_inputs_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(single, args)
    assert result.exit_code == 2
    assert result.output.startswith(message), result.output
    assert result.output.count("\n") == 1
    assert "Traceback" not in result.output


def test_unreadable_profile_file(tmp_path: Path) -> None:
    bad = tmp_path / "net.toml"
    bad.write_text("down_mbps = ")
    result = runner.invoke(single, ["--profile", str(bad)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: cannot parse profile file '{bad}'")


def test_profiles_command() -> None:
    result = runner.invoke(app, ["profiles"])
    assert result.exit_code == 0
    for name in (
        "thesis",
        "lte",
        "5g",
        "cable",
        "fibre",
        "dsl",
        "wifi",
        "satellite",
        "gpt2-small",
        "vit-b16",
        "all-minilm-l6-v2",
        "llama-3-8b",
    ):
        assert name in result.output


def test_real_process_usage_error_is_one_line() -> None:
    code = "import sys; sys.argv=['floss-plan','--ref-rank','abc']; from planner.cli import plan_main; plan_main()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: Invalid value for '--ref-rank'")
    assert proc.stderr.count("\n") == 1


def test_planning_never_imports_torch() -> None:
    code = (
        "import sys; sys.argv=['floss-plan','--budget','50-dense-rounds','--up-slowdown','16','-f','json'];"
        "from planner.cli import plan_main\n"
        "try:\n    plan_main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'optuna', 'peft', 'pandas') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stderr
    json.loads(proc.stdout)
