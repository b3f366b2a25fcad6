"""The fleet plan's short list: a recommendation per (round, density) policy pair, with reasons.

As the single-network short list (``planner.shortlist.short_list``), per policy pair, at the
primary precision pair:

* the dense LoRA baseline at the reference rank (dense rows exist under uniform densities only:
  a bandwidth pair is measured against dense LoRA under the same round policy, uniform);
* the thesis heuristic d_up = d_down / S at the reference rank for each heuristic download
  density, S being the fleet's (``fleet_up_slowdown``: the median client's down/up ratio, to the
  nearest power of two, as the thesis's S = 1, 4, 16);
* per rank, the densest FLoSS setting (d_down, then d_up, with d_up <= d_down / S) that buys as
  many rounds as the pair's dense baseline; FFA-LoRA (and dense LoRA when it is not the baseline)
  at its largest rank that does;
* the best of the pair: the configuration that sends the most entries a client round
  (n x (d_down + d_up), the densities' caps under bandwidth) while buying as many rounds as dense
  LoRA under sync rounds and uniform densities (plain FedAvg's rounds: one bar for every pair, so
  the pairs compare);
* and, on any short-listed row of deadline rounds that drops more than ``drop_share`` of the
  sampled clients' uploads, the reason says so (over-selecting 1.3x drops 23 % by design).

A row can be picked for several reasons; they are joined with "; ".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Protocol

import numpy as np

from planner.fleet import Fleet, FleetEstimate
from planner.fleet_batch import link_arrays
from planner.plan_types import PlanSettings, heuristic_pairs

DEFAULT_DROP_SHARE = 0.3  # deadline rows dropping more of the sampled uploads are flagged

FLEET_REASONS = {
    "baseline": "dense LoRA baseline at the reference rank",
    "heuristic": "thesis heuristic d_up = d_down/S (S = {s})",
    "rank": "rank {rank}: densest d_up <= d_down/S with >= {rounds} rounds",
    "method": "{method}: its largest setting with >= {rounds} rounds",
    "method_most": "{method}: most rounds (none buys {rounds})",
    "best": "best {pair}: most entries sent with >= {rounds} rounds (dense LoRA's, sync/uniform)",
    "most": "best {pair}: most rounds (none buys {rounds})",
    "drops": "deadline drops {share} of sampled uploads (> {limit})",
}


class ShortListRow(Protocol):
    """What the short list reads of a fleet plan's row (``planner.fleet_plan.FleetRow``)."""

    @property
    def rank(self) -> int: ...

    @property
    def precision_down(self) -> str: ...

    @property
    def precision_up(self) -> str: ...

    @property
    def estimate(self) -> FleetEstimate: ...


def fleet_up_slowdown(fleet: Fleet, *, num_clients: int, seed: int) -> float:
    """S for the thesis heuristic on a fleet: the median over the run's clients of down/up
    Mbps, rounded to the nearest power of two in log space (1, 2, 4, 8, 16, ...; 1/2 for
    uplinks twice as fast), so that d_down / S lands on the power-of-two density grid."""
    links = link_arrays(fleet, num_clients, seed)
    ratio = float(np.median(links.down_bps / links.up_bps))
    return float(2.0 ** round(math.log2(ratio)))


def _key(d: float) -> float:
    """A density as a key: the float itself (S is a power of two, so d_down / S is the grid's
    float exactly; the single-network list, with any S, compares Fractions)."""
    return d


def fleet_short_list(
    rows: Sequence[ShortListRow],
    *,
    settings: PlanSettings,
    up_slowdown: float,
    drop_share: float = DEFAULT_DROP_SHARE,
) -> dict[int, str]:
    """Row index -> reason, for the short-listed rows (module docstring), in list order."""
    ref, one = settings.ref_rank, _key(1.0)
    primary = settings.precision_pairs[0]
    s = up_slowdown
    chosen: dict[int, list[str]] = {}

    def pick(i: int | None, why: str) -> None:
        if i is not None and why not in chosen.setdefault(i, []):
            chosen[i].append(why)

    def pair_of(r: ShortListRow) -> tuple[str, str]:
        return r.estimate.round_policy, r.estimate.density_policy

    mine = [
        i for i, r in enumerate(rows) if (r.precision_down, r.precision_up) == primary
    ]  # the primary precision pair only
    of_pair: dict[tuple[str, str], list[int]] = {}  # the pairs in list order, each its rows
    for i in mine:
        of_pair.setdefault(pair_of(rows[i]), []).append(i)
    pairs = list(of_pair)
    by_key: dict[tuple[str, str, str, int, float, float], int] = {}
    for i in mine:
        e = rows[i].estimate
        key = (e.round_policy, e.density_policy, e.method, rows[i].rank, _key(e.d_down),
               _key(e.d_up))  # fmt: skip
        by_key.setdefault(key, i)
    base_method = "dense" if "dense" in settings.methods else "floss"

    def baseline(rp: str, dp: str) -> int | None:
        for pair in ((rp, "uniform"), (rp, dp)):
            i = by_key.get((*pair, base_method, ref, one, one))
            if i is not None:
                return i
        return None

    def rounds_of(i: int | None) -> int:
        return max(rows[i].estimate.rounds, settings.min_rounds) if i is not None else 1

    common = baseline("sync", "uniform")
    if common is None and pairs:
        common = baseline(*pairs[0])
    common_rounds = rounds_of(common)
    for rp, dp in pairs:
        base = baseline(rp, dp)
        base_rounds = rounds_of(base)
        pick(base, FLEET_REASONS["baseline"])
        if "floss" in settings.methods:
            for dd, du in heuristic_pairs(settings, s):
                hit = by_key.get((rp, dp, "floss", ref, _key(dd), _key(du)))
                pick(hit, FLEET_REASONS["heuristic"].format(s=_fmt(s)))
        everyone = of_pair[rp, dp]
        floss = [i for i in everyone if rows[i].estimate.method == "floss"]
        for rank in sorted(set(settings.ranks)):
            fits = [
                i
                for i in floss
                if rows[i].rank == rank
                and rows[i].estimate.rounds >= base_rounds
                and rows[i].estimate.d_up <= rows[i].estimate.d_down / s * (1 + 1e-12)
            ]
            if fits:
                best = max(fits, key=lambda i: (rows[i].estimate.d_down, rows[i].estimate.d_up))
                pick(best, FLEET_REASONS["rank"].format(rank=rank, rounds=base_rounds))
        for method in ("dense", "ffa"):  # the other methods at their best, as without a fleet
            if method not in settings.methods or method == base_method:
                continue
            theirs = [i for i in everyone if rows[i].estimate.method == method]
            fits = [i for i in theirs if rows[i].estimate.rounds >= base_rounds]
            if fits:
                pick(max(fits, key=lambda i: rows[i].rank),
                     FLEET_REASONS["method"].format(method=method, rounds=base_rounds))  # fmt: skip
            elif theirs:
                most = max(theirs, key=lambda i: (rows[i].estimate.rounds, rows[i].rank))
                pick(most, FLEET_REASONS["method_most"].format(method=method, rounds=base_rounds))
        label = f"{rp}/{dp}"
        strong = [i for i in everyone if rows[i].estimate.rounds >= common_rounds]
        if strong:
            top = max(strong, key=lambda i: (_entries(rows[i]), rows[i].estimate.rounds))
            pick(top, FLEET_REASONS["best"].format(pair=label, rounds=common_rounds))
        elif everyone:
            top = max(everyone, key=lambda i: (rows[i].estimate.rounds, _entries(rows[i])))
            pick(top, FLEET_REASONS["most"].format(pair=label, rounds=common_rounds))
    out: dict[int, str] = {}
    for i, reasons in chosen.items():
        e = rows[i].estimate
        if e.round_policy == "deadline" and e.dropped_fraction > drop_share:
            reasons.append(
                FLEET_REASONS["drops"].format(
                    share=_share(e.dropped_fraction), limit=_share(drop_share)
                )
            )
        out[i] = "; ".join(reasons)
    return out


def _entries(row: ShortListRow) -> float:
    """Entries a client round sends at the configuration's densities (caps under bandwidth)."""
    e = row.estimate
    return e.n * (e.d_down + e.d_up)


def _share(x: float) -> str:
    return f"{100 * x:.0f} %"


def _fmt(s: float) -> str:
    f = Fraction(s).limit_denominator(1 << 20)
    return str(f) if float(f) == s else f"{s:g}"


__all__ = [
    "DEFAULT_DROP_SHARE",
    "FLEET_REASONS",
    "fleet_short_list",
    "fleet_up_slowdown",
]
