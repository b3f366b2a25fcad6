"""Fuzz every flag, argument and file input of floss-plan, floss-train and floss-tune.

For each generated input: a non-zero exit (2 for the user's mistakes) with exactly one line on
stderr starting ``error:``, no traceback anywhere, and every file already written unchanged; or
the input is valid and reaches the sentinel that stands for the slow work (never a model)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import patch

import typer
from fuzz_common import (
    HUGE,
    JOURNAL_FILE,
    STORAGE_FILE,
    Reached,
    bad_text,
    check,
    fuzz_settings,
    invoke,
    is_flag,
    mapping_files,
    option_names,
    snapshot,
    world_paths,
    written,
)
from hypothesis import given
from hypothesis import strategies as st

from planner.cli import plan_command
from trainer.cli import app as train_app
from trainer.config import RunConfig
from tuner.cli import app as tune_app

PLAN = typer.Typer(add_completion=False)
PLAN.command()(plan_command)  # as plan_main builds floss-plan

CLIS: dict[str, tuple[typer.Typer, str, list[str]]] = {
    "floss-plan": (PLAN, "floss-plan", []),
    "floss-train": (train_app, "floss-train", []),
    "floss-tune run": (tune_app, "floss-tune", ["run"]),
    "floss-tune show": (tune_app, "floss-tune", ["show"]),
    "floss-tune export": (tune_app, "floss-tune", ["export"]),
}
OPTIONS = {
    "floss-plan": option_names(PLAN),
    "floss-train": option_names(train_app),
    "floss-tune run": option_names(tune_app, "run"),
    "floss-tune show": option_names(tune_app, "show"),
    "floss-tune export": option_names(tune_app, "export"),
}
PATH_OPTIONS = {
    "floss-plan": {"--profile", "--model", "--output"},
    "floss-train": {"--config", "--out-dir", "--network", "--data-path", "--model"},
    "floss-tune run": {"--config", "--profile", "--model", "--data-path", "--storage", "--export"},
    "floss-tune show": {"--storage"},
    "floss-tune export": {"out_dir", "--storage"},
}
# Two bad values per option, by the option's type (the generated tests below try many more).
FIXED_BAD = {"int": ["abc", str(2**64)], "float": ["nan", "-1e999"], "": ["", "/proc/x"]}


def _fixed_bad(param: Any) -> list[str]:
    descriptor = getattr(param, "type_descriptor", None)  # typer's; click's params have .type
    kind = str(descriptor.annotation if descriptor else getattr(param.type, "name", ""))
    return next((v for k, v in FIXED_BAD.items() if k and k in kind), FIXED_BAD[""])


# --- the sentinels: valid inputs stop where the slow work would start -------------------------


def _reached(*_args: Any, **_kwargs: Any) -> Any:
    raise Reached


def _fake_train(config: Any, **_kwargs: Any) -> Any:
    config.network_profile()  # what train() checks first (trainer.preflight), before the model
    config.fleet_setup()  # loads: the network profile and the fleet file
    raise Reached


def _fake_run_tuning(config: Any, args: Any, settings: Any, **_kwargs: Any) -> Any:
    from tuner.runner import metric_for

    metric_for(config, settings.metric)  # what run_tuning checks before it loads the model
    args.method_grid(config)
    config.network_profile()
    raise Reached


@contextmanager
def sentinels() -> Iterator[None]:
    stub = types.ModuleType("trainer.run")
    stub.train = _fake_train  # type: ignore[attr-defined]
    previous = sys.modules.get("trainer.run")
    sys.modules["trainer.run"] = stub  # floss-train imports train when a run starts
    try:
        with (
            patch("planner.cli.plan", side_effect=_reached),
            patch("tuner.runner.run_tuning", side_effect=_fake_run_tuning),
        ):
            yield
    finally:
        if previous is None:
            del sys.modules["trainer.run"]
        else:
            sys.modules["trainer.run"] = previous


def run_cli(cli: str, args: list[str], world: Path) -> str:
    app, prog, head = CLIS[cli]
    before = snapshot(world)
    with sentinels():
        outcome = invoke(app, prog, [*head, *args], cwd=world)
    result = check(cli, outcome, args)
    assert snapshot(world) == before, f"{cli} {args!r} changed the files already written"
    return result


def _args(cli: str, name: str, value: str | None) -> list[str]:
    if name.startswith("-"):
        return [name] if value is None else [name, value]
    return [value or ""]  # a positional argument


def _with_required(cli: str, args: list[str]) -> list[str]:
    if cli == "floss-tune export" and not any(not a.startswith("-") for a in args[:1]):
        return ["new-export", *args]  # OUT_DIR is required
    return args


# --- every option, each with a few bad values (deterministic: no option is left out) -------


def test_every_option_of_every_cli_refuses_bad_values_in_one_line(world: Path) -> None:
    for cli, options in OPTIONS.items():
        for name, param in options.items():
            if is_flag(param):
                run_cli(cli, _with_required(cli, [name]), world)
                continue
            for value in _fixed_bad(param):
                run_cli(cli, _with_required(cli, _args(cli, name, value)), world)


# --- generated values for 1-3 options at once -------------------------------------------------


def _generated(cli: str, inputs: Path) -> st.SearchStrategy[list[str]]:
    options = OPTIONS[cli]

    @st.composite
    def build(draw: Any) -> list[str]:
        names = draw(
            st.lists(st.sampled_from(sorted(options)), min_size=1, max_size=3, unique=True)
        )
        args: list[str] = []
        for name in names:
            if is_flag(options[name]):
                args.append(name)
                continue
            paths = name in PATH_OPTIONS[cli]
            value = draw(st.one_of(world_paths(inputs), bad_text()) if paths else bad_text())
            if name.startswith("-"):
                args += [name, value]
            else:
                args.insert(0, value)
        return _with_required(cli, args)

    return build()


def _fuzz_options(cli: str, examples: int) -> Any:
    @fuzz_settings(examples)
    @given(data=st.data())
    def test(world: Path, inputs: Path, data: Any) -> None:
        run_cli(cli, data.draw(_generated(cli, inputs)), world)

    return test


test_plan_options = _fuzz_options("floss-plan", 60)
test_train_options = _fuzz_options("floss-train", 60)
test_tune_run_options = _fuzz_options("floss-tune run", 50)
test_tune_show_options = _fuzz_options("floss-tune show", 15)
test_tune_export_options = _fuzz_options("floss-tune export", 15)


# --- generated file contents: configs, profiles, storages -------------------------------------

RUN_KEYS = sorted(RunConfig.__dataclass_fields__)
NETWORK_KEYS = ["name", "down_mbps", "up_mbps", "rtt_ms", "spread_sigma", "source", "description"]
MODEL_KEYS = ["name", "modules", "hidden_size", "num_labels", "params_at_ref", "ref_rank", "source"]
FILE_INPUTS = [
    ("floss-train", "--config", RUN_KEYS),
    ("floss-tune run", "--config", RUN_KEYS),
    ("floss-train", "--network", NETWORK_KEYS),
    ("floss-plan", "--profile", NETWORK_KEYS),
    ("floss-plan", "--model", MODEL_KEYS),
    ("floss-tune run", "--profile", NETWORK_KEYS),
]


@fuzz_settings(60)
@given(
    which=st.sampled_from(FILE_INPUTS),
    content=st.data(),
)
def test_generated_config_and_profile_files(
    world: Path, tmp_path_factory: Any, which: tuple[str, str, list[str]], content: Any
) -> None:
    cli, option, keys = which
    suffix, data = content.draw(mapping_files(keys))
    folder = tmp_path_factory.getbasetemp() / "generated"
    with written(folder, suffix, data) as path:
        run_cli(cli, [option, str(path)], world)


@fuzz_settings(30)
@given(
    cli=st.sampled_from(["floss-tune run", "floss-tune show", "floss-tune export"]),
    suffix=st.sampled_from([".db", ".journal", ".log", ""]),
    data=st.one_of(st.binary(max_size=64), st.sampled_from([b"", b"SQLite format 3\x00junk"])),
    as_url=st.booleans(),
)
def test_generated_storage_files(
    world: Path, tmp_path_factory: Any, cli: str, suffix: str, data: bytes, as_url: bool
) -> None:
    folder = tmp_path_factory.getbasetemp() / "generated"
    with written(folder, suffix, data) as path:
        storage = f"sqlite:///{path}" if as_url else str(path)
        run_cli(cli, _with_required(cli, ["--storage", storage]), world)


def test_the_world_studies_are_shown_and_not_changed(world: Path) -> None:
    """The prepared storages are real studies: show reads them (exit 0) and writes nothing."""
    for storage in (f"sqlite:///{STORAGE_FILE}", JOURNAL_FILE):
        assert run_cli("floss-tune show", ["--storage", storage], world) == "valid"
    assert HUGE  # the huge numbers are part of every generated value set
