"""planner.limits: one range per field, one line per bad value; planner.options: the table;
docs/planner.md shows both tables as they are."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from planner import limits, options
from planner.errors import UnusedOption


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        (1e308, "up_mbps", "up_mbps: 1e+308 is out of range (0.001 .. 1e+06 Mbps)."),
        (1e-300, "down_mbps", "down_mbps: 1e-300 is out of range (0.001 .. 1e+06 Mbps)."),
        (math.inf, "rtt_ms", "rtt_ms: inf is not finite."),
        (math.nan, "spread_sigma", "spread_sigma: nan is not finite."),
        (10**400, "num_clients", "num_clients: an integer of 401 digits is not finite."),
        (-0.0, "weight", "weight: -0 is out of range ((0 .. 1])."),
        (True, "clients_per_round", "clients_per_round: True is not a number."),
        ("5", "deadline_seconds", "deadline_seconds: '5' is not a number."),
        (2.5, "num_clients", "num_clients: 2.5 is not an integer."),
        (2**63, "seed", "seed: 9223372036854775808 is out of range (0 .. 2**63 - 1)."),
        (50, "spread_sigma", "spread_sigma: 50 is out of range (0 .. 3)."),
    ],
)
def test_bad_values_one_line(value: object, field: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        limits.check(value, field)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "field"),
    [(0.001, "down_mbps"), (1e6, "up_mbps"), (-0.0, "rtt_ms"), (3, "spread_sigma"), (1, "weight"),
     (10**7, "num_clients"), (1.0, "num_clients"), (0, "compute_seconds")],
)  # fmt: skip
def test_edges_are_inside(value: float, field: str) -> None:
    assert limits.check(value, field) == float(value)


def test_flag_names_reach_their_fields_and_unranged_fields_pass() -> None:
    assert limits.limit_of("--up") is limits.LIMITS["up_mbps"]
    assert limits.limit_of("--deadline") is limits.LIMITS["deadline_seconds"]
    assert limits.limit_of("--client-lr") is None
    assert limits.check(1e300, "client_lr") == 1e300  # no range here, but finite
    with pytest.raises(ValueError, match="client_lr: inf is not finite"):
        limits.check(math.inf, "client_lr")


def test_derived_values_vanishing_or_overflowing_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^the budget in seconds comes out as 0, which cannot"):
        limits.check_derived(0.0, "the budget in seconds", hint="check the links")
    with pytest.raises(ValueError, match="comes out as inf"):
        limits.check_derived(math.inf, "x", hint="y")
    assert limits.check_derived(1e-12, "x", hint="y") == 1e-12


def test_option_rows_hold_and_break() -> None:
    plain = options.Context()
    fleet = options.Context(fleet=True, density_policies=frozenset({"uniform", "bandwidth"}))
    assert options.unused(plain, {"tier_densities"}) == ("tier_densities", options.RULES[4])
    hit = options.unused(fleet, {"tier_densities"})
    assert hit is not None and hit[1].needs == options.TIERED
    assert options.unused(fleet, {"adapt_down", "density_grid"}) is None
    with pytest.raises(UnusedOption, match=r"^--keep-rate needs --method adapterlth\.$"):
        options.check(plain, {"keep_rate"})
    natural = options.Context(partition="natural")
    assert options.check(natural, {"num_clients"}) == (
        "note: --num-clients has no effect: it needs a partition other than natural "
        "(--partition natural: the data's own clients)."
    )


def test_docs_show_both_tables() -> None:
    text = (Path(__file__).parents[2] / "docs" / "planner.md").read_text()
    for field, lim in limits.LIMITS.items():
        assert f"| `{field}` | {lim.text()}" in text, field
    for rule in options.RULES:
        assert f"| {', '.join(f'`{n}`' for n in rule.names)} | {rule.needs} |" in text, rule
