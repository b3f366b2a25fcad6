"""The machinery of the CLI fuzz suite.

Each CLI runs in-process exactly as its entry point runs it (``planner.command.run_typer``: click's
usage errors become one ``error:`` line too), in a folder of prepared files (the "world": a
finished run, a plan output, a study storage, an export) that must be byte for byte the same
afterwards. The slow work is stubbed by a sentinel: an input that passes every check reaches
``Reached`` instead of a model, and counts as valid.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import patch

import typer
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from planner.command import run_typer

# Examples tried per CLI and how they ended; printed in the terminal summary (conftest.py).
COUNTS: Counter[str] = Counter()
OUTCOMES: Counter[tuple[str, str]] = Counter()

LONG = os.environ.get("FLOSS_FUZZ", "") == "long"  # FLOSS_FUZZ=long: 20x the examples


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples * (20 if LONG else 1),
        deadline=None,
        database=None,  # nothing written into the repository
        suppress_health_check=list(HealthCheck),
    )


class Reached(Exception):
    """The slow work would start here: the inputs passed every check before it."""


@dataclass(frozen=True)
class Outcome:
    code: int | None
    stdout: str
    stderr: str
    reached: bool
    crash: str | None  # the traceback of an exception that escaped the CLI


_COMMANDS: dict[int, Any] = {}
_get_command = typer.main.get_command


def _cached_command(app: typer.Typer) -> Any:
    """typer.main.get_command, built once per app: building floss-train's 50 options took most
    of an invocation, and a click command is reusable."""
    if id(app) not in _COMMANDS:
        _COMMANDS[id(app)] = (app, _get_command(app))  # the app is kept: its id stays unique
    return _COMMANDS[id(app)][1]


def invoke(
    app: typer.Typer,
    prog: str,
    args: list[str],
    *,
    cwd: Path,
    env: dict[str, str | None] | None = None,
) -> Outcome:
    runner = CliRunner()
    env = {"FLOSS_TUNE_STORAGE": None, "FLOSS_PROFILE_DIR": None, "COLUMNS": "200", **(env or {})}
    code: int | None = None
    reached = False
    crash = None
    with (
        runner.isolation(env=env) as (out, err, _),
        contextlib.chdir(cwd),
        patch.object(typer.main, "get_command", _cached_command),
    ):
        try:
            run_typer(app, prog_name=prog, args=args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Reached:
            reached = True
        except BaseException:
            crash = traceback.format_exc()
        stdout = out.getvalue().decode("utf-8", "replace")
        stderr = err.getvalue().decode("utf-8", "replace")
    return Outcome(code=code, stdout=stdout, stderr=stderr, reached=reached, crash=crash)


def check(cli: str, outcome: Outcome, args: list[str]) -> str:
    """A refused input ends in exit 2 and exactly one ``error:`` line; none ends in a traceback.
    Returns 'valid' or 'refused' (counted per CLI)."""
    COUNTS[cli] += 1
    shown = f"{cli} {args!r}\n--- stdout\n{outcome.stdout}\n--- stderr\n{outcome.stderr}"
    assert outcome.crash is None, f"{shown}\n--- escaped\n{outcome.crash}"
    assert "Traceback" not in outcome.stdout + outcome.stderr, shown
    if outcome.reached or outcome.code == 0:
        OUTCOMES[(cli, "valid")] += 1
        return "valid"
    assert outcome.code == 2, f"exit {outcome.code}\n{shown}"
    lines = outcome.stderr.rstrip("\n").split("\n")  # what a terminal breaks lines at
    assert "\r" not in outcome.stderr, shown
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    OUTCOMES[(cli, "refused")] += 1
    return "refused"


# --- the world: files a CLI must never change ------------------------------------------------


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None) under root."""
    out: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        out[key] = None if path.is_dir() else path.read_bytes()
    return out


RUN_DIR = "runs/a"
PLAN_FILE = "plan.json"
STORAGE_FILE = "floss-tune.db"
JOURNAL_FILE = "tune.journal"
EXPORT_DIR = "export"


def make_world(root: Path) -> Path:
    """A finished run folder, a plan output, an Optuna study (SQLite and journal), an export."""
    run = root / RUN_DIR
    (run / "checkpoint").mkdir(parents=True)
    (run / "adapter").mkdir()
    (run / "rounds.jsonl").write_text(json.dumps({"round": 1, "cum_bytes": 10}) + "\n")
    (run / "rounds.csv").write_text("round,cum_bytes\n1,10\n")
    (run / "config.yaml").write_text("rank: 4\nrounds: 1\n")
    (run / "summary.json").write_text("{}\n")
    (run / "checkpoint" / "manifest.json").write_text('{"format": 2}\n')
    (run / "adapter" / "adapter_config.json").write_text('{"r": 4}\n')
    (root / PLAN_FILE).write_text("[]\n")
    (root / EXPORT_DIR).mkdir()
    (root / EXPORT_DIR / "run.yaml").write_text("rank: 4\n")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="floss", storage=f"sqlite:///{root / STORAGE_FILE}")
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = JournalStorage(JournalFileBackend(str(root / JOURNAL_FILE)))
    optuna.create_study(study_name="floss", storage=journal)
    with contextlib.closing(sqlite3.connect(root / STORAGE_FILE)) as db:
        db.execute("PRAGMA wal_checkpoint")  # nothing pending that a reader would write back
    return root


# --- bad values -------------------------------------------------------------------------------

HUGE = [str(2**63), str(2**64), str(-(2**64)), str(10**30), "1" * 400]
ODD = [
    "", " ", "abc", "1.5", "-1", "0", "-0", "nan", "NaN", "inf", "-inf", "Infinity", "1e309",
    "1/0", "0/0", "1/3", "-1/4", "2", "1e-400", "0x10", "1_000", "１", "٣", "None", "null",
    "true", "[]", "{}", "\t", "\n", "a,b", ",", ",,", "1,,2", "\udcff", "caf\udce9", "\x00",
    "--rank", "-", "~", "..", "/", "💥",
]  # fmt: skip
PATHS_SPECIAL = [
    "/proc/x",
    "/proc/self/status",
    "/dev/null",
    "/sys/x",
    "/dev/x",
    "/",
    "/etc/passwd",
]


def bad_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(ODD + HUGE),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.fractions(max_denominator=1000).map(str),
        st.text(max_size=12),
        st.lists(st.integers(-5, 70).map(str), min_size=1, max_size=4).map(",".join),
    )


def world_paths(inputs: Path) -> st.SearchStrategy[str]:
    """Paths that are files, folders, missing, inside a file, special or unwritable."""
    names = [
        RUN_DIR, PLAN_FILE, STORAGE_FILE, JOURNAL_FILE, EXPORT_DIR, f"{PLAN_FILE}/x",
        "missing", "missing/deeper/x.json", f"{RUN_DIR}/rounds.jsonl", f"{RUN_DIR}/checkpoint",
        "new-out", "new.json",
    ]  # fmt: skip
    fixed = sorted(str(p) for p in inputs.iterdir())
    return st.sampled_from(names + PATHS_SPECIAL + fixed)


# --- generated file contents -----------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, -(10**400), 2**64]),  # beyond a float, beyond 64 bits
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.sampled_from(["1/4", "nan", "inf", "", "auto", "floss", "2GB", "-1"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


GARBAGE = [
    b"", b"\xff\xfe\x00", b"rank: [1, 2", b"{", b"[1, 2]", b"- a\n- b", b"null", b"rank = ",
    b"a: b: c", b"\x00\x00", b"rank: 4\n\xe9", b"!!python/object:os.system {}", b"&a [*a]", b"1",
    b'"str"', b"rank: .inf", b"rank: 1e999", b"seed: 18446744073709551616", b"? [1]\n: 2",
]  # fmt: skip


def mapping_files(keys: list[str]) -> st.SearchStrategy[tuple[str, bytes]]:
    """(suffix, bytes): mappings of real and unknown keys to wrong-typed values, as YAML, JSON or
    TOML, or garbage bytes (non-UTF-8, broken syntax, a list, empty) under any suffix."""
    mapping = st.dictionaries(
        st.one_of(st.sampled_from(keys), st.text(min_size=1, max_size=8)), VALUES, max_size=4
    )

    def dump(fmt: str, data: dict[str, Any]) -> tuple[str, bytes]:
        if fmt == ".json":
            return fmt, json.dumps(data, default=str).encode()
        if fmt == ".toml":
            lines = [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in data.items()]
            return fmt, "\n".join(lines).encode("utf-8", "surrogatepass")
        import yaml

        return fmt, yaml.safe_dump(data, allow_unicode=True).encode("utf-8", "surrogatepass")

    structured = st.builds(dump, st.sampled_from([".yaml", ".yml", ".json", ".toml"]), mapping)
    garbage = st.tuples(
        st.sampled_from([".yaml", ".json", ".toml", ".yml", ".txt", ""]),
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from(GARBAGE),
        ),
    )
    return st.one_of(structured, garbage)


def _toml_value(value: Any) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, str)):
        return json.dumps(value) if isinstance(value, str) else str(value)
    return json.dumps(str(value))


@contextlib.contextmanager
def written(folder: Path, suffix: str, data: bytes) -> Iterator[Path]:
    """A generated input file (outside the world), removed afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"generated{suffix}"
    path.write_bytes(data)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def option_names(app: typer.Typer, command: str | None = None) -> dict[str, Any]:
    """Every option and argument of a command: its first name -> the click parameter."""
    cmd: Any = typer.main.get_command(app)
    if command is not None:
        cmd = cmd.commands[command]
    out = {}
    for param in cmd.params:
        name = param.opts[0] if param.opts else param.name
        if name == "--help":
            continue
        out[name] = param
    return out


def is_flag(param: Any) -> bool:
    return bool(getattr(param, "is_flag", False))


def fixed_inputs(folder: Path) -> Path:
    """Bad files every path option may be given: non-UTF-8, garbage, empty, wrong shapes."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {
        "latin1.yaml": b'rank: 4\nmodel: "caf\xe9"\n',
        "latin1.toml": b'name = "r\xe9seau"\n',
        "latin1.json": b'{"rank": "\xe9"}',
        "empty.yaml": b"",
        "empty.toml": b"",
        "list.yaml": b"- 1\n- 2\n",
        "broken.json": b"{",
        "broken.toml": b"down_mbps = ",
        "unknown.yaml": b"not_a_key: 1\n",
        "nan.yaml": b"client_lr: .nan\n",
        "huge.json": b'{"seed": 18446744073709551616}',
        "strings.toml": b'down_mbps = "fast"\nup_mbps = -1\n',
        "noext": b"rank: 4\n",
        "garbage.db": b"this is not a database" * 10,
        "garbage.journal": b"\x00\xffnot json\n{\n",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "a-folder.yaml").mkdir(exist_ok=True)
    return folder


Stub = Callable[..., Any]
