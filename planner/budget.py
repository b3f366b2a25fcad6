"""Budgets: how much communication a training run may spend.

Forms (``parse_budget``):

* ``N-dense-rounds``  N times the seconds of one dense LoRA round at the reference rank on the
  same network (same clients per round, same compute seconds). N may be fractional.
* time ``90m``, ``6h``, ``3600s``, ``2d``, ``1.5h``: s = second, m/min = 60 s, h = 3600 s,
  d = 86400 s. Wall-clock seconds of synchronous rounds.
* bytes ``500MB``, ``2GB``, ``1.5GiB``: kB/KB = 10^3, MB = 10^6, GB = 10^9, TB = 10^12 bytes;
  KiB = 2^10, MiB = 2^20, GiB = 2^30, TiB = 2^40 bytes; ``B`` = bytes. A byte budget counts every
  byte of the run: all sampled clients, download and upload, every round. Bits (``Mb``,
  ``Mbit``) are refused rather than guessed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from planner.errors import BudgetError
from planner.limits import LIMITS, check

BudgetKind = Literal["dense-rounds", "seconds", "bytes"]

SECONDS_PER_UNIT: dict[str, int] = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
BYTES_PER_UNIT: dict[str, int] = {
    "B": 1,
    "kB": 10**3,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}
BUDGET_HELP = (
    "N-dense-rounds (N x one dense LoRA round at --ref-rank), a time (90m, 6h, 3600s, 2d: "
    "s/m/h/d), or bytes over the whole run, all clients, both directions (500MB, 2GB: "
    "decimal kB/MB/GB/TB = 10^3/10^6/10^9/10^12; binary KiB/MiB/GiB/TiB = 2^10/2^20/2^30/2^40)"
)

_NUMBER = r"(?P<num>\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_DENSE = re.compile(rf"^(?P<all>{_NUMBER})\s*-?\s*dense[-_ ]?rounds?$", re.IGNORECASE)
_UNIT = re.compile(rf"^(?P<all>{_NUMBER})\s*(?P<unit>[A-Za-z]+)$")


# Relative slack when comparing float seconds with a budget: N dense rounds buy exactly N of them
# although N * s and a running sum of s differ in the last bits.
BUDGET_RTOL = 1e-9


@dataclass(frozen=True, kw_only=True)
class Budget:
    kind: BudgetKind
    amount: float  # dense rounds, seconds or bytes, by kind
    text: str

    def __post_init__(self) -> None:
        if not math.isfinite(self.amount) or self.amount <= 0:
            raise BudgetError(f"budget must be positive, but got {self.text!r}.")
        field = {"dense-rounds": "budget_dense_rounds", "seconds": "budget_seconds"}
        try:  # within range, so that rounds and seconds derived from it stay finite
            check(self.amount, field.get(self.kind, "budget_bytes"), name=f"budget {self.text!r}")
        except ValueError as exc:
            raise BudgetError(str(exc)) from None

    def describe(self) -> str:
        if self.kind == "dense-rounds":
            return f"{self.amount:g} dense rounds"
        if self.kind == "seconds":
            return f"{self.amount:,.1f} s"
        return f"{self.amount:,.0f} bytes ({self.amount / 1e6:,.3f} MB)"


def _number(text: str, original: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BudgetError(f"budget {original!r}: {text!r} is not a number.") from None
    if not math.isfinite(value) or value <= 0:
        raise BudgetError(f"budget must be a positive, finite amount, but got {original!r}.")
    return value


def parse_budget(text: str) -> Budget:
    """Parse ``50-dense-rounds``, ``90m``, ``6h``, ``3600s``, ``500MB``, ``1.5GiB``..."""
    raw = text.strip()
    accepted = (
        "accepted: N-dense-rounds, a time like 90m/6h/3600s/2d, or bytes like 500MB/2GB/1.5GiB"
    )
    m = _DENSE.match(raw)
    if m:
        return Budget(kind="dense-rounds", amount=_number(m.group("all"), text), text=text)
    m = _UNIT.match(raw)
    if not m:
        raise BudgetError(f"cannot read budget {text!r}; {accepted}.")
    value = _number(m.group("all"), text)
    unit = m.group("unit")
    if unit.lower() in SECONDS_PER_UNIT and unit != "B":
        return Budget(kind="seconds", amount=value * SECONDS_PER_UNIT[unit.lower()], text=text)
    if unit in BYTES_PER_UNIT:
        amount = value * BYTES_PER_UNIT[unit]
        if not math.isfinite(amount):  # 1e300GB: beyond a float
            raise BudgetError(
                f"budget {text!r}: {value:g} {unit} is out of range "
                f"({LIMITS['budget_bytes'].text()})."
            )
        return Budget(kind="bytes", amount=math.floor(amount), text=text)
    if unit.lower().endswith(("b", "bit", "bits")) and not unit.endswith("B"):
        raise BudgetError(
            f"budget {text!r} is in bits; give bytes (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)."
        )
    raise BudgetError(f"unknown budget unit {unit!r} in {text!r}; {accepted}.")


def rounds_affordable(*, budget_amount: float, cost_per_round: float) -> int:
    """floor(budget / cost), tolerant of float rounding (50 dense rounds buy exactly 50 of them)."""
    if cost_per_round <= 0:
        raise ValueError(f"cost per round must be positive, but got {cost_per_round!r}.")
    return math.floor(budget_amount / cost_per_round * (1 + BUDGET_RTOL))


@dataclass(frozen=True, kw_only=True)
class BudgetAmount:
    """A budget in what a run counts: seconds (a time, or N dense rounds times the seconds of
    the dense reference round) or bytes; exactly one of the two is set."""

    seconds: float | None = None
    bytes: int | None = None

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.bytes is None):
            raise ValueError("a budget amount is seconds or bytes, exactly one of them.")

    @property
    def kind(self) -> Literal["seconds", "bytes"]:
        return "seconds" if self.seconds is not None else "bytes"

    @property
    def amount(self) -> float:
        """The seconds, or the bytes as a float."""
        return self.seconds if self.seconds is not None else float(self.bytes or 0)


def resolve_budget(budget: Budget, dense_round_seconds: Callable[[], float]) -> BudgetAmount:
    """What ``budget`` counts, in seconds or bytes: ``N-dense-rounds`` is N x
    ``dense_round_seconds()`` (the dense reference round on the run's network or fleet, asked
    only for that form), a time its seconds, a size its whole bytes. The one place a parsed
    budget becomes an amount (floss-plan, floss-train and floss-tune call it)."""
    if budget.kind == "dense-rounds":
        return BudgetAmount(seconds=budget.amount * dense_round_seconds())
    if budget.kind == "seconds":
        return BudgetAmount(seconds=budget.amount)
    return BudgetAmount(bytes=int(budget.amount))
