"""How a run meets its fleet: the round policy (sync, deadline) and the density policy
(uniform, tiered, bandwidth), checked once in ``FleetSetup`` (docs/fleets.md); the text forms of
tier densities and of the bandwidth grid, parsed and written back."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from planner.fleet._data import Fleet, FleetError, finite_number, in_range
from planner.limits import DEFAULT_OVER_SELECTION, check_derived, is_number
from planner.method_spec import check_method
from planner.parse import parse_density

FLEET_METHODS: tuple[str, ...] = ("floss", "dense", "ffa")
ROUND_POLICIES: tuple[str, ...] = ("sync", "deadline")
DENSITY_POLICIES: tuple[str, ...] = ("uniform", "tiered", "bandwidth")
DEFAULT_GRID: tuple[float, ...] = tuple(2.0**-i for i in range(9))  # 1, 1/2, ..., 1/256


def _fraction(text: str, what: str) -> float:
    try:
        return parse_density(text, name=what)
    except ValueError as exc:
        raise FleetError(str(exc)) from None


def parse_tier_densities(text: str) -> tuple[tuple[str, float, float], ...]:
    """``"lte=1/4:1/16,wifi=1:1/4"`` -> (("lte", 0.25, 0.0625), ("wifi", 1.0, 0.25))."""
    what = "tier densities"
    items = [p.strip() for p in text.split(",")]
    if not text.strip() or not all(items):
        raise FleetError(f"{what} must look like lte=1/4:1/16,wifi=1:1/4, but got {text!r}.")
    out: list[tuple[str, float, float]] = []
    for item in items:
        name, eq, pair = item.partition("=")
        down, colon, up = pair.partition(":")
        if not eq or not colon or not name.strip():
            raise FleetError(f"{what}: {item!r} is not tier=d_down:d_up (e.g. lte=1/4:1/16).")
        tier = name.strip()
        if any(t == tier for t, _, _ in out):
            raise FleetError(f"{what}: tier {tier!r} is given twice.")
        out.append((tier, _fraction(down, f"{what} {tier}"), _fraction(up, f"{what} {tier}")))
    return tuple(out)


def format_tier_densities(items: Sequence[tuple[str, float, float]]) -> str:
    """The inverse of ``parse_tier_densities`` (exact fractions where the float is one)."""
    return ",".join(f"{t}={format_density(d)}:{format_density(u)}" for t, d, u in items)


def format_density(d: float) -> str:
    f = Fraction(d).limit_denominator(1 << 20)
    return str(f) if float(f) == d else repr(d)


def parse_grid(text: str) -> tuple[float, ...]:
    """``"1,1/2,1/4"`` -> (1.0, 0.5, 0.25): sorted descending, each once, each in (0, 1]."""
    items = [p.strip() for p in text.split(",")]
    if not text.strip() or not all(items):
        raise FleetError(f"density grid must be a comma list like 1,1/2,1/4, but got {text!r}.")
    return _grid(tuple(_fraction(p, "density grid") for p in items))


def _grid(values: Sequence[float]) -> tuple[float, ...]:
    if not values:
        raise FleetError("the density grid is empty.")
    for v in values:
        if not is_number(v) or not 0 < v <= 1:
            raise FleetError(f"density grid values must be in (0, 1], but got {v!r}.")
    return tuple(sorted({float(v) for v in values}, reverse=True))


_EPS = 1e-12  # a grid value equal to the cap up to float noise is under it


def grid_under(grid: tuple[float, ...], cap: float) -> list[float]:
    """The grid values a bandwidth client may take under the cap ``cap``, largest first (a cap
    below the whole grid is its own grid)."""
    return [g for g in grid if g <= cap * (1 + _EPS)] or [cap]


def check_fleet_method(method: str, density_policy: str) -> None:
    """Fleets price stateless rounds; per-client densities exist for floss only."""
    check_method(method)
    if method not in FLEET_METHODS:
        raise FleetError(f"fleets support floss, dense and ffa; {method} keeps one shared mask.")
    if density_policy not in DENSITY_POLICIES:
        raise FleetError(
            f"density policy must be one of {', '.join(DENSITY_POLICIES)}, "
            f"but got {density_policy!r}."
        )
    if method != "floss" and density_policy != "uniform":
        raise FleetError(
            f"density policy {density_policy} needs per-client densities, which only floss has; "
            f"{method} sends every entry: use uniform."
        )


@dataclass(frozen=True, kw_only=True)
class FleetSetup:
    """How a run meets its fleet: the round policy and the density policy (docs/fleets.md).

    ``adapt_down`` matters under the bandwidth policy only, ``tier_densities`` under tiered only
    (both are still checked: a tier the fleet lacks is a typo whatever the policy).
    """

    fleet: Fleet
    round_policy: str = field(default="sync", metadata={"help": "sync | deadline"})
    deadline_seconds: float | None = field(
        default=None, metadata={"help": "deadline D (deadline rounds; bandwidth's target)"}
    )
    over_selection: float = field(
        default=DEFAULT_OVER_SELECTION, metadata={"help": "deadline: sample ceil(m * this)"}
    )
    density_policy: str = field(
        default="uniform", metadata={"help": "uniform | tiered | bandwidth"}
    )
    tier_densities: tuple[tuple[str, float, float], ...] = field(
        default=(), metadata={"help": "tiered: (tier, d_down, d_up) for every tier"}
    )
    grid: tuple[float, ...] = field(
        default=DEFAULT_GRID, metadata={"help": "bandwidth: the densities a client may take"}
    )
    adapt_down: bool = field(default=False, metadata={"help": "bandwidth: adapt d_down too"})

    def __post_init__(self) -> None:
        if not isinstance(self.fleet, Fleet):
            raise FleetError(f"fleet must be a Fleet, but got {self.fleet!r}.")
        if self.round_policy not in ROUND_POLICIES:
            raise FleetError(
                f"round policy must be one of {', '.join(ROUND_POLICIES)}, "
                f"but got {self.round_policy!r}."
            )
        if self.density_policy not in DENSITY_POLICIES:
            raise FleetError(
                f"density policy must be one of {', '.join(DENSITY_POLICIES)}, "
                f"but got {self.density_policy!r}."
            )
        if self.deadline_seconds is not None:
            d = in_range(self.deadline_seconds, "deadline_seconds", "deadline (seconds)")
            object.__setattr__(self, "deadline_seconds", d)
        elif self.round_policy == "deadline" or self.density_policy == "bandwidth":
            needs = "deadline rounds" if self.round_policy == "deadline" else "bandwidth densities"
            raise FleetError(f"{needs} need a deadline in seconds (--deadline).")
        over = in_range(self.over_selection, "over_selection", "over-selection")
        object.__setattr__(self, "over_selection", over)
        object.__setattr__(self, "grid", _grid(self.grid))
        if not isinstance(self.adapt_down, bool):
            raise FleetError(f"adapt_down must be true or false, but got {self.adapt_down!r}.")
        names = self.fleet.tier_names
        seen: set[str] = set()
        items: list[tuple[str, float, float]] = []
        for item in self.tier_densities:
            if not isinstance(item, (tuple, list)) or len(item) != 3:
                raise FleetError(f"tier densities need (tier, d_down, d_up), but got {item!r}.")
            tier, down, up = item
            if tier not in names:
                raise FleetError(
                    f"tier densities name tier {tier!r}, which fleet {self.fleet.name!r} lacks; "
                    f"its tiers: {', '.join(names)}."
                )
            if tier in seen:
                raise FleetError(f"tier densities: tier {tier!r} is given twice.")
            seen.add(tier)
            for d in (down, up):
                if not is_number(d) or not 0 < d <= 1:
                    raise FleetError(
                        f"tier densities {tier}: density must be in (0, 1], got {d!r}."
                    )
            items.append((tier, float(down), float(up)))
        object.__setattr__(self, "tier_densities", tuple(items))
        if self.density_policy == "tiered":
            missing = [t for t in names if t not in seen]
            if missing:
                raise FleetError(
                    f"tiered densities: no density for tier {missing[0]!r} of fleet "
                    f"{self.fleet.name!r} (--tier-densities needs all of {', '.join(names)})."
                )

    def with_deadline(self, deadline_seconds: float) -> FleetSetup:
        """This setup with another deadline (a finite number > 0; a derived default may lie
        below the range a user may give), the rest already checked."""
        new = copy.copy(self)
        try:
            check_derived(
                finite_number(deadline_seconds, "deadline (seconds)"),
                "the round deadline (seconds)",
                hint="give a deadline in seconds (--deadline)",
            )
        except ValueError as exc:
            raise FleetError(str(exc)) from None
        object.__setattr__(new, "deadline_seconds", float(deadline_seconds))
        return new

    def sampled_per_round(self, clients_per_round: int, num_clients: int) -> int:
        """Clients sampled a round: m under sync, ceil(m * over_selection) under deadline, at most
        the population (1.3 * 10 is 13, not 14: the product is rounded to 9 decimals first)."""
        if self.round_policy == "sync":
            return min(clients_per_round, num_clients)
        return min(math.ceil(round(clients_per_round * self.over_selection, 9)), num_clients)

    def densities_of(self, tier: str) -> tuple[float, float]:
        """tiered: (d_down, d_up) of ``tier``."""
        for t, d, u in self.tier_densities:
            if t == tier:
                return d, u
        raise FleetError(f"tiered densities: no density for tier {tier!r}.")
