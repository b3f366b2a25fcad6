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
    # the default model's plan includes the 24-label head floss-train trains on fortunes
    assert lines[0] == (
        "model    all-minilm-l6-v2: n(r=16) = 156,696 adapter entries (incl. head of 9,240)"
    )
    assert lines[2] == (
        "budget   50 dense rounds = 21.311 s; a dense round at rank 16 takes 0.4262 s and moves 12.54 MB"
    )
    assert lines[5] == "feasible 567 configs of floss (10 on the short list), 0 infeasible"
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in lines if line.startswith("│")]
    heuristic = "thesis heuristic d_up = d_down/S"
    per_rank = "rank {}: densest d_up <= d_down/S with >= 50 rounds"
    # 626,784 B each way: 626784*8/200e6 + 626784*8/12.5e6 = 0.4262 s a round
    assert cells[:4] == [
        ["floss", "16", "1", "1", "626.78 kB dense", "626.78 kB dense", "426.2 ms", "50",
         "626.78 MB", "dense LoRA baseline at the reference rank"],
        ["floss", "16", "1", "1/16", "626.78 kB dense", "46.37 kB rice", "54.7 ms", "389",
         "2.62 GB", heuristic],
        ["floss", "16", "1/4", "1/64", "173.84 kB rice", "12.23 kB rice", "14.8 ms", "1,441",
         "2.68 GB", heuristic],
        ["floss", "16", "1/16", "1/256", "46.37 kB rice", "3.21 kB rice", "3.9 ms", "5,448",
         "2.70 GB", heuristic],
    ]  # fmt: skip
    assert [(c[1], c[2], c[3], c[7], c[9]) for c in cells[4:]] == [
        (str(r), "1", "1/16", rounds, per_rank.format(r))
        for r, rounds in ((1, "3,304"), (2, "2,203"), (4, "1,322"), (8, "735"), (32, "200"),
                          (64, "101"))
    ]  # fmt: skip
    assert lines[-1] == "... 557 more feasible configs: --all, or --format json|csv|yaml"
    assert "P" not in {c[0] for c in cells}  # no Pareto marker: every row has its reason


def test_plan_all_methods_short_list() -> None:
    result = runner.invoke(
        single, ["--budget", "50-dense-rounds", "--up-slowdown", "16", "--method", "all"]
    )
    assert result.exit_code == 0, result.output
    cells = [
        [c.strip() for c in line.split("│")[1:-1]]
        for line in result.output.splitlines()
        if line.startswith("│") and line.split("│")[1].strip()
    ]
    assert 10 <= len(cells) <= 15 and all(c[9] for c in cells)
    assert cells[0][:4] == ["dense", "16", "1", "1"]
    assert {c[0] for c in cells} == {
        "floss", "dense", "sparseadapter", "adapterlth", "ffa", "fedsrd", "fedsrd-e"
    }  # fmt: skip
    ffa = next(c for c in cells if c[0] == "ffa")  # B alone at twice the rank = dense's bytes
    assert ffa[1:4] == ["32", "1", "1"] and ffa[7] == "50"
    assert "schedule sparseadapter, adapterlth: seeded sampling (seed 0, 100 clients)" in (
        result.output
    )


def test_plan_methods_json_and_all() -> None:
    result = runner.invoke(single, ["--method", "dense,ffa", "--format", "json"])
    rows = json.loads(result.output)
    assert {r["method"] for r in rows} == {"dense", "ffa"} and len(rows) == 14
    dense16 = next(r for r in rows if r["method"] == "dense" and r["rank"] == 16)
    assert dense16["rounds"] == 50 and dense16["why"].startswith("dense LoRA baseline")
    table = runner.invoke(single, ["--method", "dense", "--all"])
    assert sum(line.startswith("│ dense ") for line in table.output.splitlines()) == 7


def test_forced_encoding_keeps_the_budget() -> None:
    """The dense reference round is always dense fp32: forcing the wire format moves rows, not
    the budget."""
    base = runner.invoke(single, ["--format", "json"])
    forced = runner.invoke(single, ["--format", "json", "--encoding", "coo", "--precision", "fp16"])
    head = runner.invoke(single, ["--encoding", "coo", "--precision", "fp16"]).output.splitlines()
    plain = runner.invoke(single, []).output.splitlines()
    assert head[2].startswith(plain[2]) and plain[2].startswith(
        "budget   50 dense rounds = 13.789 s;"
    )
    assert "(dense fp32 values, whatever --encoding/--precision)" in head[2]
    assert json.loads(base.output) != json.loads(forced.output)


def test_num_labels_overrides_the_profile_head() -> None:
    result = runner.invoke(single, ["--num-labels", "0"])
    assert result.output.splitlines()[0] == (
        "model    all-minilm-l6-v2: n(r=16) = 147,456 adapter entries"
    )


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
        (["--down", "0"], "error: --down: 0 is out of range (0.001 .. 1e+06 Mbps)."),
        (["--up", "-5"], "error: --up: -5 is out of range (0.001 .. 1e+06 Mbps)."),
        (["--up-slowdown", "0"], "error: --up-slowdown: 0 is out of range (0.001 .. 1e+06)."),
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
            "error: --precision must be one of fp32, fp16, bf16, q8, q4, q2, q1, sr8, sr4, sr2, "
            "sr1, rh8, rh4, rh2, rh1, stc1 (or a bit width: 32, 16, 8, 4, 2, 1), but got 'fp8'.",
        ),
        (["--encoding", "zip"], "error: --encoding must be one of auto, dense, coo, bitmap, rice"),
        (["--min-rounds", "0"], "error: --min-rounds must be at least 1, but got 0."),
        (["--clients-per-round", "0"], "error: clients per round must be at least 1, but got 0."),
        (
            ["--method", "lora"],
            "error: --method must be one of floss, dense, sparseadapter, adapterlth, ffa, "
            "fedsrd, fedsrd-e, all (or a comma list), but got 'lora'.",
        ),
        (["--method", ","], "error: --method: expected one of floss"),
        (["--keep-rate", "0"], "error: --keep-rate must be in (0, 1], but got 0.0."),
        (["--keep-rate", "1.5"], "error: --keep-rate must be in (0, 1], but got 1.5."),
        (["--lth-floor", "0"], "error: --lth-floor: density must be in (0, 1], but got '0'."),
        (["--lth-floor", "3/2"], "error: --lth-floor: density must be in (0, 1], but got '3/2'."),
        (
            ["--num-clients", "5"],
            "error: --num-clients (5) must be at least --clients-per-round (10).",
        ),
        (["--seed", "-1"], "error: --seed must be >= 0, but got -1."),
        (
            ["--method", "ffa", "--lora-params", "1000"],
            "error: --method ffa needs the module shapes",
        ),
        (["--limit", "0"], "error: --limit must be at least 1, but got 0."),
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
