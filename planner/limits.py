"""The physical range of every number a user gives floss, in one place (pure Python).

Every surface checks its numbers here where they enter: the flags of floss-plan, floss-train and
floss-tune, run config files, network profiles, fleet files (TOML tiers, CSV cells) and the
service's JSON. A value outside its range is refused with one line naming the field, the value
and the range ("--up: 1e+308 is out of range (0.001 .. 1e+06 Mbps)"); NaN, infinities and numbers
beyond a float ("1e400", a 400-digit integer) are refused as "not finite"; a bool is not a number.

The ranges are wide enough for every real link and run, and narrow enough that what the planner
derives from them (a round's seconds, a budget in seconds, a deadline) stays a finite positive
float: the slowest link (1 kbit/s, spread 3 sigma below the median over 10**7 clients) moving the
largest message stays below 1e18 s, and the fastest (1 Tbit/s) moving 4 bytes above 1e-11 s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeGuard

# torch.manual_seed and torch.Generator take seeds below 2**64 and numpy any; 2**63 - 1 keeps
# every seed a signed 64-bit integer too (the round seeds are 63-bit as well)
MAX_SEED = 2**63 - 1
# FedScale over-selects 1.3x and keeps the first to finish: the default of every surface's
# over_selection (floss-plan, floss-train, floss-tune, the service; planner.fleet's policy)
DEFAULT_OVER_SELECTION = 1.3


def is_int(value: object) -> TypeGuard[int]:
    """An ``int`` that is not a ``bool`` (``True`` is an ``int`` to Python, never a count): the
    one "an int, not a bool" test of every surface."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """An ``int`` or ``float`` that is not a ``bool`` (JSON ``true`` is not 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Limit:
    """A closed range [low, high] (``low_open``: (low, high]) in ``unit``; integers only when
    ``integer``."""

    low: float
    high: float
    unit: str = ""
    low_open: bool = False
    integer: bool = False
    why: str = ""  # what the bounds stand for, shown in the docs

    def text(self) -> str:
        """'0.001 .. 1e+06 Mbps', '(0 .. 1]', '1 .. 10000000'."""
        low, high = _fmt(self.low), _fmt(self.high)
        unit = f" {self.unit}" if self.unit else ""
        return f"({low} .. {high}]{unit}" if self.low_open else f"{low} .. {high}{unit}"


def _fmt(value: float) -> str:
    """0.001, 100, 1e+06; 2**40 and 2**63 - 1 as powers of two."""
    if float(value).is_integer() and abs(value) < 1e5:
        return str(int(value))
    if isinstance(value, int):
        for k in range(17, 64):
            if value in (2**k, 2**k - 1):
                return f"2**{k}" + (" - 1" if value == 2**k - 1 else "")
    return f"{value:g}"


MBPS = Limit(1e-3, 1e6, "Mbps", why="1 kbit/s (a GSM data call) .. 1 Tbit/s")
LIMITS: dict[str, Limit] = {
    # links (network profiles, fleet tiers and rows, CLI overrides, round plans)
    "down_mbps": MBPS,
    "up_mbps": MBPS,
    "rtt_ms": Limit(0, 1e5, "ms", why="0 .. 100 s (GEO satellite is ~600 ms)"),
    "spread_sigma": Limit(
        0, 3, why="sigma of ln(bandwidth); measured fleets are 0.3 .. 1.2, 3 spans 400x"
    ),
    "up_slowdown": Limit(1e-3, 1e6, why="down / up of any two links in range"),
    "weight": Limit(0, 1, low_open=True, why="a tier's share of the clients"),
    # a run's round
    "compute_seconds": Limit(0, 1e6, "s", why="local compute per round: 0 .. 11.6 days"),
    "deadline_seconds": Limit(1e-3, 1e7, "s", why="a round deadline: 1 ms .. 116 days"),
    "over_selection": Limit(1, 100, why="deadline rounds sample ceil(m x this) clients"),
    "max_dropped": Limit(0, 1, why="a share of the sampled uploads"),
    "keep_rate": Limit(0, 1, low_open=True, why="AdapterLTH's share of the mask kept"),
    # budgets (planner.budget): what a run may spend
    "budget_dense_rounds": Limit(1e-3, 1e7, "dense rounds", why="N of N-dense-rounds"),
    "budget_seconds": Limit(1e-3, 1e12, "s", why="a time budget: 1 ms .. 31,700 years"),
    "budget_bytes": Limit(1, 1e18, "bytes", why="a byte budget: 1 B .. 1 EB"),
    # counts
    "num_clients": Limit(1, 10**7, integer=True, why="clients in the population"),
    "clients_per_round": Limit(1, 10**5, integer=True, why="clients sampled per round"),
    "min_rounds": Limit(1, 10**7, integer=True),
    "max_rounds": Limit(1, 10**7, integer=True),
    "rounds": Limit(1, 10**7, integer=True),
    "head_params": Limit(0, 2**40, integer=True, why="extra trainable entries"),
    "num_labels": Limit(0, 2**31 - 1, integer=True),
    "lora_params": Limit(1, 2**40, integer=True, why="adapter entries at the reference rank"),
    "limit": Limit(1, 10**9, integer=True, why="table rows"),
    "seed": Limit(0, MAX_SEED, integer=True, why="torch takes seeds below 2**63"),
}
# A flag's name when it differs from its field's ("--down" sets down_mbps).
FLAG_FIELDS: dict[str, str] = {
    "down": "down_mbps",
    "up": "up_mbps",
    "deadline": "deadline_seconds",
    "deadlines": "deadline_seconds",
}


def limit_of(field: str) -> Limit | None:
    """The range of a field or flag name (``--up``, ``up_mbps``), None if it has none here."""
    key = field.lstrip("-").replace("-", "_")
    return LIMITS.get(FLAG_FIELDS.get(key, key))


def not_finite(value: object) -> bool:
    """NaN, an infinity, or an integer beyond a float's range."""
    if not is_number(value):
        return False
    try:
        return not math.isfinite(value)
    except OverflowError:
        return True


def _show(value: object) -> str:
    if is_int(value) and len(str(value)) > 24:
        return f"an integer of {len(str(value))} digits"
    if isinstance(value, float):
        return f"{value:g}" if value else ("-0" if math.copysign(1, value) < 0 else "0")
    return repr(value) if isinstance(value, str) else str(value)


def check(value: object, field: str, *, name: str | None = None) -> float:
    """``value`` as a float if it is a finite number within the range of ``field``; else a
    ``ValueError`` of one line naming ``name`` (default: the field), the value and the range."""
    label = name or field
    lim = limit_of(field)
    if not is_number(value):
        raise ValueError(f"{label}: {value!r} is not a number.")
    if not_finite(value):
        raise ValueError(f"{label}: {_show(value)} is not finite.")
    if lim is None:
        return float(value)
    if lim.integer and isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{label}: {_show(value)} is not an integer.")
    low_bad = value <= lim.low if lim.low_open else value < lim.low
    if low_bad or value > lim.high:
        raise ValueError(f"{label}: {_show(value)} is out of range ({lim.text()}).")
    return float(value)


def check_optional(value: object, field: str, *, name: str | None = None) -> float | None:
    return None if value is None else check(value, field, name=name)


def check_fields(
    values: Mapping[str, object], *, spell: Callable[[str], str] = lambda name: name
) -> None:
    """Each value (None: not set) of a field with a range here; ``spell`` names it (a flag on a
    command line, the field in a file or a request)."""
    for field, value in values.items():
        if value is not None and limit_of(field) is not None:
            check(value, field, name=spell(field))


def check_derived(value: float, what: str, *, hint: str) -> float:
    """A quantity derived from checked inputs (a budget in seconds, a default deadline) that
    must be a finite positive float before any work starts; ``hint`` says what to change."""
    if not_finite(value) or not value > 0:
        raise ValueError(f"{what} comes out as {_show(value)}, which cannot be used; {hint}.")
    return value
