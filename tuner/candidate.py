"""One configuration of the search space (``Candidate``): a method with its parameters, its
policy point on a fleet, and what it affords under the trial and the full budget; its key
(densities as exact fractions) and the short label logs and reports print."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from tuner.grid import NO_FLEET, Policy

Key = tuple[str, str, int, Fraction, Fraction, Fraction | None, str, str, str, str, float | None]


def density_key(d: float) -> Fraction:
    return Fraction(d).limit_denominator(1 << 40)


def density_label(d: float) -> str:
    """1 -> '1', 0.0625 -> '1/16', 0.3 -> '0.3'."""
    f = Fraction(d).limit_denominator(1 << 20)
    if abs(float(f) - d) < 1e-12 * max(d, 1e-300):
        return str(f)
    return f"{d:.4g}"


def make_key(
    method: str,
    topk: str,
    rank: int,
    d_down: float,
    d_up: float,
    keep_rate: float | None,
    precision_down: str = "fp32",
    precision_up: str = "fp32",
    policy: Policy = NO_FLEET,
) -> Key:
    keep = None if keep_rate is None else density_key(keep_rate)
    return (
        method, topk, rank, density_key(d_down), density_key(d_up), keep,
        precision_down, precision_up, *policy,
    )  # fmt: skip


def policy_label(c: Mapping[str, Any]) -> str:
    """' sync/uniform', ' deadline 0.5s/bandwidth' ('' without a fleet)."""
    rp, dp = str(c.get("round_policy") or ""), str(c.get("density_policy") or "")
    if not rp:
        return ""
    deadline = c.get("deadline")
    at = "" if deadline is None else f" {float(deadline):g}s"
    return f" {rp}{at}/{dp}"


@dataclass(frozen=True, kw_only=True)
class Candidate:
    method: str = "floss"
    topk: str = "global"
    rank: int
    d_down: float  # 1 for dense, ffa and adapterlth; = d_up (the mask density) for sparseadapter
    d_up: float
    keep_rate: float | None = None  # adapterlth only
    n: int = 0  # adapter entries as trained (ffa: B and the head only)
    rounds: int  # affordable under the trial budget
    full_rounds: int  # affordable under the full budget
    bytes_per_round: int  # mean over the trial's rounds; all sampled clients, both directions
    seconds_per_round: float  # mean over the trial's rounds
    trial_bytes: int = 0  # the trial's planned spend, exact
    trial_seconds: float = 0.0
    full_bytes: int = 0  # the full run's planned spend, exact
    full_seconds: float = 0.0
    why: str = ""
    precision_down: str = "fp32"
    precision_up: str = "fp32"
    round_policy: str = ""  # fleets: sync | deadline ("" without a fleet)
    density_policy: str = ""  # fleets: uniform | tiered | bandwidth
    deadline: float | None = None  # fleets: seconds, where the policies use one

    @property
    def policy(self) -> Policy:
        return (self.round_policy, self.density_policy, self.deadline)

    @property
    def key(self) -> Key:
        return make_key(self.method, self.topk, self.rank, self.d_down, self.d_up, self.keep_rate,
                        self.precision_down, self.precision_up, self.policy)  # fmt: skip

    @property
    def label(self) -> str:
        return candidate_label(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def candidate_label(c: Mapping[str, Any]) -> str:
    """A short name of a candidate mapping (``Candidate.to_dict`` or a trial's attribute)."""
    wire = (str(c.get("precision_down", "fp32")), str(c.get("precision_up", "fp32")))
    values = "" if wire == ("fp32", "fp32") else f" {wire[0]}/{wire[1]}"
    return _method_label(c) + values + policy_label(c)


def _method_label(c: Mapping[str, Any]) -> str:
    method, rank = str(c.get("method", "floss")), c.get("rank")
    if method == "floss":
        topk = " per-tensor" if c.get("topk") == "per-tensor" else ""
        if c.get("density_policy") == "tiered":  # the tiers' densities, not the run's
            return f"r{rank} tier densities{topk}"
        return (
            f"r{rank} d_down={density_label(float(c['d_down']))} "
            f"d_up={density_label(float(c['d_up']))}{topk}"
        )
    if method == "sparseadapter":
        return f"sparseadapter r{rank} d={density_label(float(c['d_up']))}"
    if method == "adapterlth":
        return f"adapterlth r{rank} keep={c.get('keep_rate')}"
    return f"{method} r{rank}"
