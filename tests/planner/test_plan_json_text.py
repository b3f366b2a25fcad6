"""The fast plan JSON (planner.json_text) is json.dumps' text, byte for byte, on real plans;
the plan's YAML (libyaml's emitter where present) is yaml.safe_dump's."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

import planner.cli as plan_cli
from planner.cli import plan_command
from planner.json_text import dumps_indented, json_lines
from planner.render import fleet_row_dict, render_fleet_plan, render_plan, row_dicts

runner = CliRunner()
single = typer.Typer()
single.command()(plan_command)

PLANS = [
    ["--budget", "50-dense-rounds"],
    ["--budget", "2h", "--down", "100", "--up", "5", "--method", "dense,ffa,floss"],
    ["--budget", "1h", "--method", "dense", "--encoding", "coo", "--precision", "fp16"],
    ["--budget", "20GB", "--ranks", "4,16", "--d-down", "1,1/4", "--precision-up", "rh4"],
]
FLEETS = [
    ["--budget", "40-dense-rounds", "--fleet", "mixed-mobile", "--num-clients", "300"],
    [
        "--budget",
        "30-dense-rounds",
        "--fleet",
        "mixed-mobile",
        "--num-clients",
        "200",
        "--ranks",
        "8",
        "--d-up",
        "1/16,1/64",
    ],
]


def _captured(args: list[str], name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The plan floss-plan renders for ``args`` (its renderer ``name`` in planner.cli, caught)."""
    got: list[Any] = []
    monkeypatch.setattr(plan_cli, name, lambda p, **_: got.append(p) or "")
    result = runner.invoke(single, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return got[0]


@pytest.mark.parametrize("args", PLANS, ids=lambda a: " ".join(a))
def test_plan_json_is_json_dumps_indent(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    p = _captured(args, "render_plan", monkeypatch)
    rows = row_dicts(p)
    assert rows
    assert render_plan(p, fmt="json") == json.dumps(rows, indent=2) + "\n"
    for indent in (0, 1, 4):
        assert dumps_indented(rows, indent=indent) == json.dumps(rows, indent=indent)
    assert render_plan(p, fmt="yaml") == yaml.safe_dump(rows, sort_keys=False)


@pytest.mark.parametrize("args", FLEETS, ids=lambda a: " ".join(a))
def test_fleet_json_is_one_json_dumps_a_row(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _captured(args, "render_fleet_plan", monkeypatch)
    rows = [fleet_row_dict(r) for r in p.rows]
    assert rows
    text = render_fleet_plan(p, fmt="json")
    assert text == "[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]\n"
    assert json.loads(text) == json.loads(json.dumps(rows))
    # the rows nest (tiers: a list of dicts): the indented writer's slow path, checked too
    assert dumps_indented(rows, indent=2) == json.dumps(rows, indent=2)
    assert json_lines([]) == "[\n\n]\n"


def _tree(rng: random.Random, depth: int) -> object:
    """A random JSON tree, with the edge cases of the fast paths (empty, nested, odd keys)."""
    r = rng.random()
    if depth > 3 or r < 0.5:
        scalars = [0, -2, 10**20, 0.1, 1e300, float("nan"), float("inf"), "s", '},\n {"', None]
        return rng.choice([*scalars, True, False, "\u00e9\u2603"])
    if r < 0.75:
        return [_tree(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys: list[Any] = ["a", "b", 1, 2.5, None, True]
    return {rng.choice(keys): _tree(rng, depth + 1) for _ in range(rng.randrange(4))}


@pytest.mark.parametrize(
    "obj",
    [[], {}, [{}], [{}, {"a": 1}], [{"a": 1}, {"b": [1]}], [{"a": 1}, []], (1, (2, 3)), "x", 1.5],
)
def test_dumps_indented_edge_cases(obj: object) -> None:
    for indent in (0, 2, 3):
        assert dumps_indented(obj, indent=indent) == json.dumps(obj, indent=indent)


def test_dumps_indented_random_trees() -> None:
    rng = random.Random(23)
    for _ in range(3000):
        obj = _tree(rng, 0)
        assert dumps_indented(obj, indent=2) == json.dumps(obj, indent=2), obj
