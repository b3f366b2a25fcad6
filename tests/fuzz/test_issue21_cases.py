"""The input cases of issue 21, each with its new behaviour: the exact line it now prints.

Each runs in-process as the entry point runs it (``run_typer``), with the sentinels of
test_fuzz_cli: a valid input stops where a model would load or a fleet would be priced. ``CASES``
is also the table of the issue's closing note (case, command, what it prints now).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_common import invoke
from test_fuzz_cli import CLIS, sentinels
from test_fuzz_magnitudes import fleet_stub

FILES = {
    "huge.csv": "client,down_mbps,up_mbps,rtt_ms\na,1e308,1e308,10\nb,1e308,1e308,10\n",
    "tiny.csv": "client,down_mbps,up_mbps,rtt_ms\na,1e-300,1e-300,10\n",
    "nan.csv": "down_mbps,up_mbps\nNaN,5\n",
    "e400.csv": "down_mbps,up_mbps\n1e400,5\n",
    "sigma.toml": 'name = "s"\n[[tiers]]\nname = "t"\nweight = 1\ndown_mbps = 10\nup_mbps = 5\n'
    "spread_sigma = 50\n",
    "under.csv": "client,down_mbps,up_mbps\na,1_000,5\n",
    "bom.csv": "\ufeffdown_mbps,up_mbps\n10,5\n20,4\n",
    "UP.CSV": "down_mbps,up_mbps\n10,5\n",
    "extra.csv": "client,down_mbps,up_mbps,measured_at\na,10,5,2024-05-01\nb,20,4,2024-05-02\n",
    "dup.csv": "client,down_mbps,up_mbps\na,10,5\nb,3,2\na,20,4\n",
}
TIERS = "lte=1/4:1/16,wifi=1:1/4,5g=1:1"
RANGE = "(0.001 .. 1e+06 Mbps)"

# (case in the issue, CLI, arguments, environment, exit code, stderr: exact lines)
CASES: list[tuple[str, str, list[str], dict[str, str | None], int | None, list[str]]] = [
    ("fleet CSV at 1e308 Mbps, floss-train --budget 2-dense-rounds (was a traceback)",
     "floss-train", ["--fleet", "huge.csv", "--budget", "2-dense-rounds"], {}, 2,
     [f"error: fleet file 'huge.csv' line 2: down_mbps: 1e+308 is out of range {RANGE}."]),
    ("the same file in floss-plan (was 'deadline (seconds) must be > 0, but got 0.0')",
     "floss-plan", ["--fleet", "huge.csv"], {}, 2,
     [f"error: fleet file 'huge.csv' line 2: down_mbps: 1e+308 is out of range {RANGE}."]),
    ("the same file, floss-train without a budget (trained with 0.0 s rounds)",
     "floss-train", ["--fleet", "huge.csv"], {}, 2,
     [f"error: fleet file 'huge.csv' line 2: down_mbps: 1e+308 is out of range {RANGE}."]),
    ("1e-300 Mbps (300-digit seconds)", "floss-plan", ["--fleet", "tiny.csv"], {}, 2,
     [f"error: fleet file 'tiny.csv' line 2: down_mbps: 1e-300 is out of range {RANGE}."]),
    ("spread_sigma = 50 in a fleet TOML", "floss-train", ["--fleet", "sigma.toml"], {}, 2,
     ["error: fleet file 'sigma.toml': tier 't' spread_sigma: 50 is out of range (0 .. 3)."]),
    ("NaN in a fleet CSV (was 'must be > 0')", "floss-plan", ["--fleet", "nan.csv"], {}, 2,
     ["error: fleet file 'nan.csv' line 2: down_mbps: nan is not finite."]),
    ("1e400 in a fleet CSV (was 'must be > 0')", "floss-plan", ["--fleet", "e400.csv"], {}, 2,
     ["error: fleet file 'e400.csv' line 2: down_mbps: inf is not finite."]),
    ("--up 1e400", "floss-plan", ["--up", "1e400"], {}, 2, ["error: --up: inf is not finite."]),
    ("--up NaN", "floss-plan", ["--up", "NaN"], {}, 2, ["error: --up: nan is not finite."]),
    ("--up 1e308", "floss-plan", ["--up", "1e308"], {}, 2,
     [f"error: --up: 1e+308 is out of range {RANGE}."]),
    ("floss-train --tier-densities without --fleet", "floss-train",
     ["--tier-densities", TIERS], {}, 2, ["error: --tier-densities needs --fleet."]),
    ("floss-train --deadline without --fleet", "floss-train", ["--deadline", "5"], {}, 2,
     ["error: --deadline needs --fleet."]),
    ("floss-train --over-selection without --fleet", "floss-train",
     ["--over-selection", "1.5"], {}, 2, ["error: --over-selection needs --fleet."]),
    ("floss-train --density-grid without --fleet", "floss-train",
     ["--density-grid", "1,1/4"], {}, 2, ["error: --density-grid needs --fleet."]),
    ("floss-plan --tier-densities under --density-policy uniform", "floss-plan",
     ["--fleet", "mixed-mobile", "--tier-densities", TIERS, "--density-policy", "uniform"], {}, 2,
     ["error: --tier-densities needs the tiered density policy (--density-policy tiered)."]),
    ("floss-plan --adapt-down under --density-policy uniform", "floss-plan",
     ["--fleet", "mixed-mobile", "--adapt-down", "--density-policy", "uniform"], {}, 2,
     ["error: --adapt-down needs the bandwidth density policy (--density-policy bandwidth)."]),
    ("floss-train --adapt-down under the uniform policy", "floss-train",
     ["--fleet", "mixed-mobile", "--adapt-down"], {}, 2,
     ["error: --adapt-down needs the bandwidth density policy (--density-policy bandwidth)."]),
    ("--precision-down 8 --bits-down 4 (floss-plan)", "floss-plan",
     ["--precision-down", "8", "--bits-down", "4"], {}, 2,
     ["error: --precision-down is given more than once (as --precision-down and --bits-down); "
      "give it once."]),
    ("--precision-down 8 --bits-down 4 (floss-train)", "floss-train",
     ["--precision-down", "8", "--bits-down", "4"], {}, 2,
     ["error: --precision-down is given more than once (as --precision-down and --bits-down); "
      "give it once."]),
    ("a CSV cell 1_000 (read as 1000)", "floss-plan", ["--fleet", "under.csv"], {}, 2,
     ["error: fleet file 'under.csv' line 2: down_mbps '1_000' is not a plain number."]),
    ("FLOSS_PROFILE_DIR=/nonexistent (ignored)", "floss-plan", [],
     {"FLOSS_PROFILE_DIR": "/nonexistent"}, 2,
     ["error: FLOSS_PROFILE_DIR: '/nonexistent' does not exist; unset it or fix the path."]),
    ("an Excel 'CSV UTF-8' fleet (a BOM; was unknown column '\\ufeffdown_mbps')", "floss-plan",
     ["--fleet", "bom.csv"], {}, None, []),
    ("UP.CSV (was refused with a suffix list without .csv)", "floss-plan",
     ["--fleet", "UP.CSV"], {}, None, []),
    ("a folder named as a fleet (was 'does not exist')", "floss-plan",
     ["--fleet", "folder.csv"], {}, 2, ["error: fleet profile 'folder.csv' is a folder, not a file."]),
    ("an extra column (a timestamp; was refused)", "floss-plan", ["--fleet", "extra.csv"], {},
     None, ["note: fleet file 'extra.csv': column(s) 'measured_at' ignored (floss reads client, "
            "tier, down_mbps, up_mbps, rtt_ms)."]),
    ("duplicate client ids (were accepted)", "floss-plan", ["--fleet", "dup.csv"], {}, 2,
     ["error: fleet file 'dup.csv' line 4: client 'a' is given twice (first on line 2); one row "
      "per client."]),
    ("--num-clients 100000 --method all (65 s without a word)", "floss-plan",
     ["--num-clients", "100000", "--method", "all"], {}, None,
     ["note: about 61 s of work (the seeded schedules of sparseadapter/adapterlth over 100,000 "
      "clients, as measured on a 2-core machine)."]),
    ("1e6 clients with --method all (did not finish in 5 minutes)", "floss-plan",
     ["--num-clients", "1000000", "--method", "all"], {}, 2,
     ["error: --num-clients 1,000,000 with sparseadapter/adapterlth: their seeded schedules "
      "walk about 1,007 M client draws (about 12 minutes; the limit is 400 M, about 5 minutes); "
      "give --num-clients <= 422,319, --max-rounds, a smaller grid, or leave those methods out "
      "(--method floss,dense,ffa)."]),
    ("floss-train --num-clients with --partition natural (ignored)", "floss-train",
     ["--partition", "natural", "--num-clients", "50"], {}, None,
     ["note: --num-clients has no effect: it needs a partition other than natural (--partition "
      "natural: the data's own clients)."]),
]  # fmt: skip


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "folder.csv").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("case", "cli", "args", "env", "code", "lines"), CASES, ids=[c[0][:60] for c in CASES]
)
def test_issue_case(
    folder: Path,
    case: str,
    cli: str,
    args: list[str],
    env: dict[str, str | None],
    code: int | None,
    lines: list[str],
) -> None:
    app, prog, head = CLIS[cli]
    from planner.fleet import _files

    _files._NOTED.clear()  # the note is said once per process
    with sentinels(), fleet_stub():
        out = invoke(app, prog, [*head, *args], cwd=folder, env=env)
    assert out.crash is None, out.crash
    assert "Traceback" not in out.stdout + out.stderr
    if code is None:  # valid: it reached the work (a model, the fleet's pricing, the plan)
        assert out.reached, (case, out.stderr)
    else:
        assert out.code == code, (case, out.stdout, out.stderr)
    assert out.stderr.splitlines() == lines, case


def test_api_clients_per_round_true_is_not_one() -> None:
    """``"clients_per_round": true`` in the API planned for 1 client; now a 422 on the field."""
    from pydantic import ValidationError

    from service.schemas import PlanRequest

    with pytest.raises(ValidationError) as info:
        PlanRequest.model_validate_json('{"clients_per_round": true}')
    (error,) = info.value.errors()
    assert error["loc"] == ("clients_per_round",)
    assert error["msg"] == "Value error, True is not a number (a bool is not an integer)"


def test_plan_output_file_says_what_it_wrote(tmp_path: Path) -> None:
    """``floss-plan -o FILE`` printed nothing on success; now one line."""
    from test_fuzz_cli import PLAN

    out = invoke(PLAN, "floss-plan", ["-f", "json", "-o", "plan.json"], cwd=tmp_path)
    size = (tmp_path / "plan.json").stat().st_size
    assert out.code == 0 and out.stderr == ""
    assert out.stdout == f"wrote the plan (json, {size:,} bytes) to plan.json\n"


def test_progress_only_on_a_terminal() -> None:
    import io

    from planner.progress import wanted

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert wanted(True, Tty())
    assert not wanted(False, Tty())  # --no-progress
    assert not wanted(True, io.StringIO())  # a pipe, a log file
