"""Extreme magnitudes for every numeric field of every surface (issue 21).

Each numeric field is found from the surface itself, so none is missed: the int and float options
of floss-plan, floss-train and floss-tune (their click parameters), the numeric columns of a fleet
CSV and keys of a fleet TOML, the numeric keys of network and model profiles, floss-train's run
config fields (RunConfig) and every int/float field of the service's request bodies (pydantic).
Each tries 1e-300, 1e308, +-inf, nan, 1e400, -0, a bool, 10**10 and a 400-digit integer:

* never a traceback; a refused input ends in exactly one ``error:`` line (exit 2), or a 422;
* a field with a physical range (``planner.limits``) refuses every value outside it (and NaN,
  infinities, a bool), whichever surface it enters by.

Valid inputs stop at the sentinels of test_fuzz_cli (never a model, never a fleet priced).
"""

from __future__ import annotations

import json
import math
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from fuzz_common import COUNTS, OUTCOMES, Reached, written
from test_fuzz_cli import OPTIONS, run_cli

from planner import limits, options

# As a command line, a TOML file or a CSV cell spells them; JSON spells the non-finite ones
# Infinity / NaN (as Python's json reads and writes them).
EXTREMES = [
    "1e-300", "1e308", "inf", "-inf", "nan", "1e400", "-0", "true", "10000000000", "1" + "0" * 400,
]  # fmt: skip
JSON_SPELLING = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}
TEXT_NUMBERS = {  # comma-list options of numbers: each element is a field's value
    "floss-tune run": {"--deadlines": "deadline_seconds", "--keep-rates": "keep_rate"},
}


def _value(literal: str) -> Any:
    """The Python value a literal stands for (bool for true, an int for integer text)."""
    if literal == "true":
        return True
    try:
        return int(literal)
    except ValueError:
        return float(literal)  # 1e400 -> inf, as every parser here reads it


def must_refuse(field: str, literal: str) -> bool:
    """Whether ``planner.limits`` says the value is outside the field's range."""
    if limits.limit_of(field) is None:
        return False
    try:
        limits.check(_value(literal), field)
    except ValueError:
        return True
    return False


def _expect(surface: str, field: str, literal: str, result: str) -> None:
    if must_refuse(field, literal):
        assert result == "refused", f"{surface}: {field} = {literal} was accepted"


# --- the command lines: every int and float option ---------------------------------------------


# What each CLI needs beside an option so that the option has an effect (planner.options' rows);
# the option under test is dropped from it. A test below walks the table so none is missing.
NEEDS_ARGS: dict[str, dict[str, list[str]]] = {
    options.FLEET: {
        "floss-plan": ["--fleet", "mixed-mobile"],
        "floss-train": ["--fleet", "mixed-mobile"],
        "floss-tune run": ["--fleet", "mixed-mobile"],
    },
    options.DEADLINE_ROUNDS: {
        "floss-plan": ["--round-policy", "deadline", "--deadline", "5"],
        "floss-train": ["--round-policy", "deadline", "--deadline", "5"],
        "floss-tune run": ["--round-policies", "deadline", "--deadlines", "5"],
    },
    f"{options.DEADLINE_ROUNDS} or {options.BANDWIDTH}": {
        "floss-plan": ["--round-policy", "deadline"],
        "floss-train": ["--round-policy", "deadline"],
        "floss-tune run": ["--round-policies", "deadline"],
    },
    options.TIERED: {
        "floss-plan": ["--density-policy", "tiered"],
        "floss-train": ["--density-policy", "tiered"],
        "floss-tune run": ["--density-policies", "tiered"],
    },
    options.BANDWIDTH: {
        "floss-plan": ["--density-policy", "bandwidth", "--deadline", "5"],
        "floss-train": ["--density-policy", "bandwidth", "--deadline", "5"],
        "floss-tune run": ["--density-policies", "bandwidth", "--deadlines", "5"],
    },
    "--method adapterlth": {
        "floss-plan": ["--method", "adapterlth"],
        "floss-train": ["--method", "adapterlth"],
        "floss-tune run": ["--methods", "adapterlth"],
    },
}


def _field(name: str) -> str:
    return name.lstrip("-").replace("-", "_")


def context_args(cli: str, name: str) -> list[str]:
    """The arguments that give option ``name`` an effect on ``cli`` (without ``name`` itself)."""
    field = _field(name)
    out: list[str] = []
    for rule in options.RULES:
        if rule.warn or (
            field not in rule.names and limits.FLAG_FIELDS.get(field) not in rule.names
        ):
            continue
        add = NEEDS_ARGS[rule.needs].get(cli, [])
        for flag, value in zip(add[::2], add[1::2], strict=True):
            if flag != name and flag not in out:
                out += [flag, value]
    return out


def numeric_options(cli: str) -> dict[str, str]:
    """Every int/float option of a CLI (and its comma lists of numbers) -> its field."""
    out = {
        name: limits.FLAG_FIELDS.get(_field(name), _field(name))
        for name, param in OPTIONS[cli].items()
        if getattr(param.type, "name", "") in ("integer", "float")
    }
    out.update(TEXT_NUMBERS.get(cli, {}))
    return out


CLI_CASES = [
    (cli, name, field) for cli in OPTIONS for name, field in sorted(numeric_options(cli).items())
]


@contextmanager
def fleet_stub() -> Iterator[None]:
    """floss-plan --fleet stops where the fleet would be priced, after every check."""

    def reached(*_args: Any, **_kwargs: Any) -> Any:
        raise Reached

    with patch("planner.fleet_request.plan_fleet", side_effect=reached):
        yield


@pytest.mark.parametrize(("cli", "name", "field"), CLI_CASES)
def test_every_numeric_option_at_extreme_magnitudes(
    world: Path, cli: str, name: str, field: str
) -> None:
    extra = ["new-export"] if cli == "floss-tune export" else []
    for literal in EXTREMES:
        args = [*extra, *context_args(cli, name), name, literal]
        with fleet_stub():
            result = run_cli(cli, args, world)
        _expect(f"{cli} {args}", field, literal, result)


def test_the_needs_table_has_arguments_for_every_rule() -> None:
    """Every row of planner.options has the arguments that satisfy it on each CLI it has."""
    for rule in options.RULES:
        if rule.warn:
            continue
        assert rule.needs in NEEDS_ARGS, rule


# --- files: fleet CSV columns, fleet TOML tiers, profiles, run configs --------------------------

CSV_NUMBERS = ("down_mbps", "up_mbps", "rtt_ms")
TIER_NUMBERS = ("weight", "down_mbps", "up_mbps", "rtt_ms", "spread_sigma")
NETWORK_NUMBERS = ("down_mbps", "up_mbps", "rtt_ms", "spread_sigma")
MODEL_NUMBERS = ("hidden_size", "num_labels")
MODULE_NUMBERS = ("d_in", "d_out", "count")


def _csv(column: str, literal: str) -> bytes:
    cells = {"down_mbps": "20", "up_mbps": "5", "rtt_ms": "30"}
    cells[column] = literal
    rows = ["client,tier,down_mbps,up_mbps,rtt_ms"]
    rows += [
        f"c{i},lte,{cells['down_mbps']},{cells['up_mbps']},{cells['rtt_ms']}" for i in range(3)
    ]
    return ("\n".join(rows) + "\n").encode()


def _toml(values: dict[str, str]) -> str:
    return "\n".join(f"{k} = {v}" for k, v in values.items()) + "\n"


def _tier_toml(key: str, literal: str) -> bytes:
    tier = {"name": '"lte"', "weight": "1", "down_mbps": "20", "up_mbps": "5", "rtt_ms": "30",
            "spread_sigma": "0.5"}  # fmt: skip
    tier[key] = literal
    return ('name = "f"\n[[tiers]]\n' + _toml(tier)).encode()


def _network_toml(key: str, literal: str) -> bytes:
    net = {"name": '"n"', "down_mbps": "20", "up_mbps": "5", "rtt_ms": "30", "spread_sigma": "0.3"}
    net[key] = literal
    return _toml(net).encode()


def _model_toml(key: str, literal: str) -> bytes:
    top = {"name": '"m"', "hidden_size": "384", "num_labels": "4"}
    module = {"name": '"q"', "d_in": "384", "d_out": "384", "count": "6"}
    (top if key in top else module)[key] = literal
    return (_toml(top) + "[[modules]]\n" + _toml(module)).encode()


FILE_CASES: list[tuple[str, str, str, Any, list[tuple[str, str]]]] = [
    *(("fleet csv", ".csv", c, _csv, [("floss-plan", "--fleet"), ("floss-train", "--fleet")])
      for c in CSV_NUMBERS),
    *(("fleet toml", ".toml", k, _tier_toml, [("floss-plan", "--fleet"), ("floss-train", "--fleet")])
      for k in TIER_NUMBERS),
    *(("network profile", ".toml", k, _network_toml,
       [("floss-plan", "--profile"), ("floss-train", "--network")]) for k in NETWORK_NUMBERS),
    *(("model profile", ".toml", k, _model_toml, [("floss-plan", "--model")])
      for k in (*MODEL_NUMBERS, *MODULE_NUMBERS)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "suffix", "key", "make", "uses"),
    FILE_CASES,
    ids=[f"{c[0]}-{c[2]}" for c in FILE_CASES],
)
def test_every_numeric_file_field_at_extreme_magnitudes(
    world: Path, tmp_path: Path, kind: str, suffix: str, key: str, make: Any, uses: Any
) -> None:
    for literal in EXTREMES:
        with written(tmp_path, suffix, make(key, literal)) as path:
            for cli, flag in uses:
                with fleet_stub():
                    result = run_cli(cli, [flag, str(path)], world)
                _expect(f"{kind} {key} via {cli}", key, literal, result)


def _run_config_numbers() -> list[str]:
    from trainer.config import RunConfig

    hints = typing.get_type_hints(RunConfig)
    return sorted(
        name
        for name in RunConfig.__dataclass_fields__
        if _is_number(hints[name]) and not name.startswith("_")
    )


def _is_number(annotation: Any) -> bool:
    """int or float (or an optional/union holding one), not bool alone."""
    if annotation in (int, float):
        return True
    return any(_is_number(a) for a in typing.get_args(annotation))


def _json(literal: str) -> str:
    return JSON_SPELLING.get(literal, literal)


@pytest.mark.parametrize("key", _run_config_numbers())
def test_every_numeric_run_config_field_at_extreme_magnitudes(
    world: Path, tmp_path: Path, key: str
) -> None:
    for literal in EXTREMES:
        data = f'{{"{key}": {_json(literal)}}}'.encode()
        with written(tmp_path, ".json", data) as path:
            result = run_cli("floss-train", ["--config", str(path)], world)
        _expect(f"run config {key}", key, literal, result)


# --- the service's request bodies: every int/float field ----------------------------------------


def _models() -> dict[str, tuple[Any, dict[str, Any]]]:
    from service.round_plan_schemas import ClientLink, RoundPlanRequest, RunSpec
    from service.schemas import PlanRequest, StudyRequest

    client = {"id": 1, "down_mbps": 20, "up_mbps": 5}
    return {
        "PlanRequest": (PlanRequest, {}),
        "StudyRequest": (StudyRequest, {"name": "s"}),
        "RoundPlanRequest": (RoundPlanRequest, {"clients": [client]}),
        "ClientLink": (ClientLink, dict(client)),
        "RunSpec": (RunSpec, {}),
    }


def _api_cases() -> list[tuple[str, str]]:
    out = []
    for label, (model, _) in _models().items():
        for name, info in model.model_fields.items():
            if _is_number(info.annotation):
                out.append((label, name))
    return out


@pytest.mark.parametrize(("model_name", "field"), _api_cases())
def test_every_numeric_api_field_at_extreme_magnitudes(model_name: str, field: str) -> None:
    from pydantic import ValidationError

    model, base = _models()[model_name]
    for literal in EXTREMES:
        body = {k: json.dumps(v) for k, v in base.items()}
        body[field] = _json(literal)
        text = "{" + ",".join(f'"{k}": {v}' for k, v in body.items()) + "}"
        COUNTS[f"api {model_name}"] += 1
        try:
            model.model_validate_json(text)
            result = "valid"
        except ValidationError as exc:
            assert all("\n" not in e["msg"] for e in exc.errors()), exc
            result = "refused"
        OUTCOMES[(f"api {model_name}", result)] += 1
        _expect(f"api {model_name}.{field}", field, literal, result)
        if literal == "true" and field in ("clients_per_round", "num_clients", "rank"):
            assert result == "refused", f"{model_name}.{field}: true read as a number"


def test_extremes_cover_the_issue_magnitudes() -> None:
    for literal in ("1e-300", "1e308", "inf", "nan", "1e400", "-0", "true"):
        assert literal in EXTREMES
    assert math.isinf(_value("1e400"))


# --- budgets: every form at extreme magnitudes (the amount has a range too) -----------------------

BUDGET_FORMS = {"-dense-rounds": "budget_dense_rounds", "s": "budget_seconds", "GB": "budget_bytes"}


def _budget_must_refuse(literal: str, suffix: str) -> bool:
    value = _value(literal)
    if isinstance(value, bool):
        return True
    scale = 1e9 if suffix == "GB" else 1
    try:
        amount = float(value) * scale
    except OverflowError:
        return True
    return must_refuse(BUDGET_FORMS[suffix], repr(amount)) or not amount > 0


@pytest.mark.parametrize("cli", ["floss-plan", "floss-train", "floss-tune run"])
def test_budgets_at_extreme_magnitudes(world: Path, cli: str) -> None:
    for suffix in BUDGET_FORMS:
        for literal in EXTREMES:
            budget = f"{literal}{suffix}"
            result = run_cli(cli, ["--budget", budget], world)
            if _budget_must_refuse(literal, suffix):
                assert result == "refused", f"{cli} --budget {budget} was accepted"


@pytest.mark.parametrize("model_name", ["PlanRequest", "StudyRequest"])
def test_api_budgets_at_extreme_magnitudes(model_name: str) -> None:
    from pydantic import ValidationError

    model, base = _models()[model_name]
    for suffix in BUDGET_FORMS:
        for literal in EXTREMES:
            COUNTS[f"api {model_name}"] += 1
            try:
                model(**base, budget=f"{literal}{suffix}")
                result = "valid"
            except ValidationError:
                result = "refused"
            OUTCOMES[(f"api {model_name}", result)] += 1
            if _budget_must_refuse(literal, suffix):
                assert result == "refused", f"{model_name} budget {literal}{suffix} was accepted"
