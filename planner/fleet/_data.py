"""A fleet as data: its tiers and a client's link (a bad fleet input is ``planner.errors.FleetError``).

A fleet is a mixture of access-link tiers with weights (60 % LTE, 30 % Wi-Fi, 10 % 5G), each
with its own lognormal spread, or measured per-client links (``planner.fleet._files`` reads
them from a CSV; tiers derived). Every number is checked where it enters, against its physical
range (``planner.limits``); a bad one is a ``FleetError``: one line naming the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from planner.errors import FleetError
from planner.limits import LIMITS, check

WEIGHT_TOLERANCE = 1e-6  # tier weights must sum to 1 within this


def finite_number(value: object, what: str) -> float:
    try:
        return check(value, "", name=what)  # finite, not a bool; no range
    except ValueError as exc:
        raise FleetError(str(exc)) from None


def in_range(value: object, field: str, what: str) -> float:
    """A link number within its physical range (``planner.limits``), as a FleetError."""
    try:
        return check(value, field, name=what)
    except ValueError as exc:
        raise FleetError(str(exc)) from None


_MBPS_LOW, _MBPS_HIGH = LIMITS["down_mbps"].low, LIMITS["down_mbps"].high
_RTT_HIGH = LIMITS["rtt_ms"].high


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise FleetError(f"{what} must be a non-empty name, but got {value!r}.")
    return value.strip()


@dataclass(frozen=True, kw_only=True)
class Tier:
    """One access-link class of a fleet: its share of the clients and its median link."""

    name: str = field(metadata={"help": "tier name, e.g. lte"})
    weight: float = field(metadata={"help": "share of the clients, (0, 1]"})
    down_mbps: float = field(metadata={"help": "median downlink, 10^6 bit/s"})
    up_mbps: float = field(metadata={"help": "median uplink, 10^6 bit/s"})
    rtt_ms: float = field(default=0.0, metadata={"help": "round-trip latency, ms"})
    spread_sigma: float = field(
        default=0.0, metadata={"help": "sigma of ln(bandwidth) within the tier; 0: identical"}
    )
    source: str = field(default="", metadata={"help": "where the numbers come from"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _name(self.name, "tier name"))
        what = f"tier {self.name!r}"
        for key in ("weight", "down_mbps", "up_mbps", "rtt_ms", "spread_sigma"):
            object.__setattr__(self, key, in_range(getattr(self, key), key, f"{what} {key}"))


@dataclass(frozen=True, kw_only=True)
class ClientLink:
    """One client's link for the whole run."""

    tier: str
    down_mbps: float
    up_mbps: float
    rtt_ms: float = 0.0

    def __post_init__(self) -> None:
        d, u, r = self.down_mbps, self.up_mbps, self.rtt_ms
        if not (
            type(d) is float
            and type(u) is float
            and type(r) is float
            and _MBPS_LOW <= d <= _MBPS_HIGH
            and _MBPS_LOW <= u <= _MBPS_HIGH
            and 0 <= r <= _RTT_HIGH
        ):  # the slow path names the bad one (nan, inf, out of range, not a number)
            in_range(d, "down_mbps", "down_mbps")
            in_range(u, "up_mbps", "up_mbps")
            in_range(r, "rtt_ms", "rtt_ms")

    @classmethod
    def checked(cls, *, tier: str, down_mbps: float, up_mbps: float, rtt_ms: float) -> ClientLink:
        """A link whose numbers the caller has checked as ``__post_init__`` does (floats within
        their ranges): a measured fleet file's rows, 10**5 of them, are not checked twice."""
        link = object.__new__(cls)
        link.__dict__.update(tier=tier, down_mbps=down_mbps, up_mbps=up_mbps, rtt_ms=rtt_ms)
        return link


@dataclass(frozen=True, kw_only=True)
class Fleet:
    """A mixture of tiers (weights sum to 1), or measured client links (tiers derived)."""

    name: str
    tiers: tuple[Tier, ...]
    measured: tuple[ClientLink, ...] = ()
    source: str = ""
    description: str = ""
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        if not self.tiers:
            raise FleetError(f"fleet {self.name!r} has no tiers (an empty fleet).")
        names = [t.name for t in self.tiers]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise FleetError(f"fleet {self.name!r}: tier {repeated[0]!r} is given twice.")
        total = math.fsum(t.weight for t in self.tiers)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise FleetError(
                f"fleet {self.name!r}: tier weights must sum to 1, but they sum to {total:.6g}."
            )
        unknown = sorted({c.tier for c in self.measured} - set(names))
        if unknown:
            raise FleetError(
                f"fleet {self.name!r}: measured client of unknown tier {unknown[0]!r}."
            )
        # the fleet keys memo caches (planner prices per link); hash its 10**4 links only once
        object.__setattr__(self, "_hash", hash((self.name, self.tiers, self.measured, self.source)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def tier_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tiers)

    def tier(self, name: str) -> Tier:
        for t in self.tiers:
            if t.name == name:
                return t
        raise FleetError(
            f"fleet {self.name!r} has no tier {name!r}; its tiers: {', '.join(self.tier_names)}."
        )
