"""A fleet plan from the options as ``floss-plan --fleet`` and ``POST /api/plan`` spell them.

One parser for both faces: the policy lists are comma lists (``sync,deadline``), tier densities
``lte=1/4:1/16,...``, the bandwidth grid ``1,1/2,...``; every bad value is a ``ValueError`` whose
message names the option (the CLI prints it as one line, the service as a 422 on the field).
The network options of the single-network planner do not apply: each client has its own link.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from planner import limits
from planner.fleet import (
    DEFAULT_GRID,
    DEFAULT_OVER_SELECTION,
    load_fleet,
    parse_grid,
    parse_tier_densities,
)
from planner.fleet_plan import FleetPlan, plan_fleet
from planner.options import flag
from planner.plan_types import PlanSettings

NETWORK_ONLY = ("profile", "down", "up", "up_slowdown", "rtt_ms")  # one network's, not a fleet's


@dataclass(frozen=True, kw_only=True)
class FleetOptions:
    """``floss-plan --fleet``'s own options, as text where the CLI takes text."""

    fleet: str  # a name (`floss profiles fleet`) or a .toml / .csv path
    round_policy: str = "sync,deadline"
    deadline: float | None = None
    over_selection: float = DEFAULT_OVER_SELECTION
    density_policy: str | None = None
    tier_densities: str | None = None
    density_grid: str | None = None
    adapt_down: bool = False
    max_dropped: float | None = None


def parse_policies(text: str, *, name: str) -> tuple[str, ...]:
    """``"sync,deadline"`` -> ("sync", "deadline"); each once (the planner checks the names)."""
    items = [p.strip() for p in text.split(",")]
    if not text.strip() or not all(items):
        raise ValueError(f"{name} must be a comma list like sync,deadline, but got {text!r}.")
    if len(set(items)) != len(items):
        raise ValueError(f"{name} has a repeated value: {text!r}.")
    return tuple(items)


def fleet_plan(
    settings: PlanSettings, options: FleetOptions, *, given: Collection[str] = ()
) -> FleetPlan:
    """``plan_fleet`` for the options; ``given``: the settings the user set (a network option
    among them is refused: each client has its own link, the fleet's)."""
    for name in NETWORK_ONLY:
        if name in given:
            raise ValueError(
                f"--{name.replace('_', '-')} does not apply with --fleet: each client has its "
                "own link (the fleet's)."
            )
    o = options
    limits.check_fields(  # where they enter, before the fleet file is read
        {"deadline": o.deadline, "over_selection": o.over_selection, "max_dropped": o.max_dropped},
        spell=flag,
    )
    return plan_fleet(
        settings,
        fleet=load_fleet(o.fleet),
        round_policies=parse_policies(o.round_policy, name="--round-policy"),
        density_policies=(
            None
            if o.density_policy is None
            else parse_policies(o.density_policy, name="--density-policy")
        ),
        deadline_seconds=o.deadline,
        over_selection=o.over_selection,
        tier_densities=() if o.tier_densities is None else parse_tier_densities(o.tier_densities),
        grid=DEFAULT_GRID if o.density_grid is None else parse_grid(o.density_grid),
        adapt_down=o.adapt_down,
        drop_share=o.max_dropped,
    )


__all__ = ["NETWORK_ONLY", "FleetOptions", "fleet_plan", "parse_policies"]
