"""Walk planner.options' table on every surface that has the option: floss-plan, floss-train,
floss-tune run, POST /api/plan and POST /api/round-plan (issue 21: no option silently ignored).

For each row: where it does not hold, the option is refused in one line naming it and what it
needs; where it holds, that row says nothing (the input goes on to its other checks)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fuzz_common import invoke
from test_fuzz_cli import CLIS, OPTIONS, sentinels
from test_fuzz_magnitudes import NEEDS_ARGS, fleet_stub

from planner import options

# A value each option may take (the option is then given; flags stand alone).
VALUES: dict[str, str | None] = {
    "round_policy": "sync,deadline",
    "round_policies": "sync,deadline",
    "density_policy": "uniform,bandwidth",
    "density_policies": "uniform,bandwidth",
    "deadline": "5",
    "deadline_seconds": "5",
    "deadlines": "5",
    "over_selection": "1.5",
    "tier_densities": "lte=1:1,wifi=1:1,5g=1:1",
    "density_grid": "1,1/2,1/4",
    "adapt_down": None,
    "max_dropped": "0.2",
    "keep_rate": "0.9",
    "keep_rates": "0.9",
    "lth_floor": "1/64",
    "num_clients": "50",
}
# floss-train takes one policy (its run config's); a default spelled out is still given
ONE_VALUE = {"round_policy": "sync", "density_policy": "uniform"}
# What breaks each row on each CLI (the opposite of test_fuzz_magnitudes.NEEDS_ARGS).
BREAK_ARGS: dict[str, dict[str, list[str]]] = {
    options.FLEET: {"floss-plan": [], "floss-train": [], "floss-tune run": []},
    options.TIERED: {
        "floss-plan": ["--fleet", "mixed-mobile", "--density-policy", "uniform"],
        "floss-train": ["--fleet", "mixed-mobile", "--density-policy", "uniform"],
        "floss-tune run": ["--fleet", "mixed-mobile", "--density-policies", "uniform"],
    },
    options.BANDWIDTH: {
        "floss-plan": ["--fleet", "mixed-mobile", "--density-policy", "uniform"],
        "floss-train": ["--fleet", "mixed-mobile", "--density-policy", "uniform"],
        "floss-tune run": ["--fleet", "mixed-mobile", "--density-policies", "uniform"],
    },
    options.DEADLINE_ROUNDS: {
        "floss-plan": ["--fleet", "mixed-mobile", "--round-policy", "sync",
                       "--density-policy", "uniform"],
        "floss-train": ["--fleet", "mixed-mobile", "--round-policy", "sync"],
        "floss-tune run": ["--fleet", "mixed-mobile", "--round-policies", "sync",
                           "--density-policies", "uniform"],
    },
    f"{options.DEADLINE_ROUNDS} or {options.BANDWIDTH}": {
        "floss-plan": ["--fleet", "mixed-mobile", "--round-policy", "sync",
                       "--density-policy", "uniform"],
        "floss-train": ["--fleet", "mixed-mobile", "--round-policy", "sync"],
        "floss-tune run": ["--fleet", "mixed-mobile", "--round-policies", "sync",
                           "--density-policies", "uniform"],
    },
    "--method adapterlth": {
        "floss-plan": ["--method", "floss"],
        "floss-train": ["--method", "floss"],
        "floss-tune run": ["--methods", "floss"],
    },
}  # fmt: skip
SURFACES = ("floss-plan", "floss-train", "floss-tune run")


def _cli_names(cli: str) -> dict[str, str]:
    """Field name -> the option's first flag, for the CLI's options."""
    out = {}
    for flag, param in OPTIONS[cli].items():
        if flag.startswith("-"):
            out[param.name] = flag
    return out


def _cases() -> list[tuple[str, str, options.Rule]]:
    cases = []
    for i, rule in enumerate(options.RULES):
        if rule.warn:
            continue
        for cli in SURFACES:
            names = _cli_names(cli)
            for name in rule.names:
                if name in names:
                    cases.append((cli, name, i))
    return cases  # type: ignore[return-value]


def _run(cli: str, args: list[str], world: Path) -> tuple[int | None, str, bool]:
    app, prog, head = CLIS[cli]
    with sentinels(), fleet_stub():
        out = invoke(app, prog, [*head, *args], cwd=world)
    assert out.crash is None, out.crash
    return out.code, out.stderr, out.reached


def _option_args(cli: str, name: str) -> list[str]:
    flag = _cli_names(cli)[name]
    value = ONE_VALUE.get(name, VALUES[name]) if cli == "floss-train" else VALUES[name]
    return [flag] if value is None else [flag, value]


def _without(args: list[str], flag: str) -> list[str]:
    out, skip = [], False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a == flag:
            skip = i + 1 < len(args) and not args[i + 1].startswith("--")
            continue
        out.append(a)
    return out


@pytest.mark.parametrize(("cli", "name", "index"), _cases())
def test_each_row_refuses_where_it_does_not_hold(
    world: Path, cli: str, name: str, index: int
) -> None:
    rule = options.RULES[index]
    flag = _cli_names(cli)[name]
    args = [*_without(BREAK_ARGS[rule.needs][cli], flag), *_option_args(cli, name)]
    code, err, _ = _run(cli, args, world)
    shown = {"deadline_seconds": "--deadline"}.get(name, flag)
    assert code == 2 and err.startswith(f"error: {shown} needs "), (args, err)
    assert err.count("\n") == 1, err
    # what it says to give is spelled as this command spells it (floss-tune: --methods ...)
    named = set(re.findall(r"--[a-z][a-z-]*", err)) - {shown}
    assert named <= set(OPTIONS[cli]), (cli, err)


@pytest.mark.parametrize(("cli", "name", "index"), _cases())
def test_each_row_is_silent_where_it_holds(world: Path, cli: str, name: str, index: int) -> None:
    rule = options.RULES[index]
    flag = _cli_names(cli)[name]
    args: list[str] = []
    for other in options.RULES:  # every row naming this option holds
        if name in other.names and not other.warn:
            for a in _without(NEEDS_ARGS[other.needs][cli], flag):
                args.append(a)
    args = _dedupe(args)
    args += _option_args(cli, name)
    _, err, _ = _run(cli, args, world)
    assert " needs " not in err, (rule, args, err)


def _dedupe(args: list[str]) -> list[str]:
    """Flag/value pairs, each flag once (the first)."""
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(args):
        flag = args[i]
        has_value = i + 1 < len(args) and not args[i + 1].startswith("--")
        pair = args[i : i + 2] if has_value else [flag]
        if flag not in seen:
            seen.add(flag)
            out += pair
        i += len(pair)
    return out


# --- the service: POST /api/plan and POST /api/round-plan, field for flag --------------------


def _plan_request(**fields: Any) -> Any:
    from service.schemas import PlanRequest

    return PlanRequest(**fields)


@pytest.mark.parametrize(
    ("fields", "field", "needs"),
    [
        ({"deadline": 5}, "deadline", "a fleet"),
        ({"tier_densities": "lte=1:1"}, "tier_densities", "a fleet"),
        ({"max_dropped": 0.2}, "max_dropped", "a fleet"),
        ({"fleet": "mixed-mobile", "density_policy": "uniform", "tier_densities": "lte=1:1"},
         "tier_densities", options.TIERED),
        ({"fleet": "mixed-mobile", "density_policy": "uniform", "adapt_down": True},
         "adapt_down", options.BANDWIDTH),
        ({"fleet": "mixed-mobile", "density_policy": "uniform", "density_grid": "1,1/2"},
         "density_grid", options.BANDWIDTH),
        ({"fleet": "mixed-mobile", "round_policy": "sync", "density_policy": "uniform",
          "over_selection": 2}, "over_selection", options.DEADLINE_ROUNDS),
        ({"keep_rate": 0.9}, "keep_rate", "--method adapterlth"),
        ({"lth_floor": "1/64", "method": "floss,dense"}, "lth_floor", "--method adapterlth"),
    ],
)  # fmt: skip
def test_api_plan_walks_the_same_table(fields: dict[str, Any], field: str, needs: str) -> None:
    from service.errors import FieldError
    from service.plans import check_options

    with pytest.raises(FieldError) as info:
        check_options(_plan_request(**fields))
    assert info.value.field == field and needs in info.value.message


def test_api_plan_table_silent_where_it_holds() -> None:
    from service.plans import check_options

    check_options(_plan_request(fleet="mixed-mobile", tier_densities="lte=1:1", adapt_down=True))
    check_options(_plan_request(keep_rate=0.9, method="adapterlth"))
    check_options(_plan_request(deadline=None, adapt_down=False))  # null / false: not given


@pytest.mark.parametrize(
    ("policy", "field", "value"),
    [("uniform", "tier_densities", "lte=1:1"), ("uniform", "density_grid", "1,1/2"),
     ("tiered", "adapt_down", True)],
)  # fmt: skip
def test_api_round_plan_walks_the_same_table(policy: str, field: str, value: Any) -> None:
    from service.errors import FieldError
    from service.round_plan_schemas import RoundPlanRequest, RunSpec
    from service.round_plans import check_options, round_policy_of

    req = RoundPlanRequest(
        policy=policy,  # type: ignore[arg-type]
        clients=[{"id": 1, "down_mbps": 10, "up_mbps": 5}],  # type: ignore[list-item]
        **{field: value},
    )
    with pytest.raises(FieldError) as info:
        check_options(req, RunSpec(), round_policy_of(req))
    assert info.value.field == field and "needs" in info.value.message
