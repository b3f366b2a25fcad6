"""The plan's short list and Pareto flags.

The short list (``recommended``, each with its reason in ``why``; ``SHORT_LIST_REASONS``): dense
LoRA at the reference rank; the thesis heuristic d_up = d_down / S; per rank, the FLoSS config
with the most communication that still buys the baseline's rounds; each other method at its best
feasible setting; and per further precision pair, its densest floss config at the reference rank
(``planner.plan``'s docstring says it in full). A row is on the Pareto frontier when no other row
is at least as large in rank, d_down, d_up and rounds.
"""

from __future__ import annotations

from collections.abc import Sequence

from planner.method_spec import METHODS
from planner.parse import density_key
from planner.plan_rows import RowKey, row_key
from planner.plan_types import PlanRow, PlanSettings, heuristic_pairs

# The short list's reasons, in the order the rows appear (``why``); ``{...}`` are filled in.
SHORT_LIST_REASONS = {
    "baseline": "dense LoRA baseline at the reference rank",
    "heuristic": "thesis heuristic d_up = d_down/S",
    "rank": "rank {rank}: densest d_up <= d_down/S with >= {rounds} rounds",
    "method": "{method}: its largest setting with >= {rounds} rounds",
    "most": "{method}: most rounds (none buys {rounds})",
    "precision": "{down}/{up}: densest d_up <= d_down/S at the reference rank with >= {rounds} rounds",
}


def pareto_flags(rows: Sequence[PlanRow]) -> list[bool]:
    """True where no other row is >= in rank, d_down, d_up and rounds (configs are distinct, so
    >= in all four means better in one).

    Sweep in decreasing rounds (ties: larger configs first, so a dominating row is always seen
    before the rows it dominates), keeping the largest frontier d_up per (rank, d_down).
    """
    order = sorted(
        range(len(rows)),
        key=lambda i: (-rows[i].rounds, -rows[i].rank, -rows[i].d_down, -rows[i].d_up),
    )
    best_up: dict[tuple[int, float], float] = {}
    flags = [False] * len(rows)
    for i in order:
        r = rows[i]
        dominated = any(
            up >= r.d_up
            for (rank, down), up in best_up.items()
            if rank >= r.rank and down >= r.d_down
        )
        if not dominated:
            flags[i] = True
            key = (r.rank, r.d_down)
            best_up[key] = max(best_up.get(key, 0.0), r.d_up)
    return flags


def short_list(
    settings: PlanSettings, rows: Sequence[PlanRow], base_rounds: int
) -> dict[RowKey, str]:
    """The recommended rows, in table order, each with its reason (module docstring)."""
    by_key = {row_key(r): r for r in rows}
    all_rows = rows
    chosen: dict[RowKey, str] = {}

    def pick(key: RowKey | None, why: str) -> None:
        if key is not None and key in by_key and key not in chosen:
            chosen[key] = why

    ref, one = settings.ref_rank, density_key(1.0)
    pd, pu = primary = settings.precision_pairs[0]
    rows = [r for r in rows if (r.precision_down, r.precision_up) == primary]
    others = [r for r in all_rows if (r.precision_down, r.precision_up) != primary]
    base_method = "dense" if "dense" in settings.methods else "floss"
    pick((base_method, ref, one, one, pd, pu), SHORT_LIST_REASONS["baseline"])
    s = settings.up_slowdown
    if "floss" in settings.methods:
        for dd, du in heuristic_pairs(settings):
            pick(
                ("floss", ref, density_key(dd), density_key(du), pd, pu),
                SHORT_LIST_REASONS["heuristic"],
            )
        for rank in sorted(set(settings.ranks)):
            fits = [
                r
                for r in rows
                if r.method == "floss"
                and r.rank == rank
                and r.rounds >= base_rounds
                and r.d_up <= r.d_down / s * (1 + 1e-12)
            ]
            if fits:
                best = max(fits, key=lambda r: (r.d_down, r.d_up))
                why = SHORT_LIST_REASONS["rank"].format(rank=rank, rounds=base_rounds)
                pick(row_key(best), why)
    for method in METHODS:
        if method not in settings.methods or method in ("floss", base_method):
            continue
        mine = [r for r in rows if r.method == method]
        if not mine:
            continue
        fits = [r for r in mine if r.rounds >= base_rounds]
        if fits:
            best = max(fits, key=lambda r: (r.rank, r.d_down, r.d_up))
            why = SHORT_LIST_REASONS["method"].format(method=method, rounds=base_rounds)
        else:
            best = max(mine, key=lambda r: (r.rounds, r.rank, r.d_down))
            why = SHORT_LIST_REASONS["most"].format(method=method, rounds=base_rounds)
        pick(row_key(best), why)
    if "floss" in settings.methods:
        for down, up in settings.precision_pairs[1:]:
            fits = [
                r
                for r in others
                if r.method == "floss"
                and (r.precision_down, r.precision_up) == (down, up)
                and r.rank == ref
                and r.rounds >= base_rounds
                and r.d_up <= r.d_down / s * (1 + 1e-12)
            ]
            if fits:
                best = max(fits, key=lambda r: (r.d_down, r.d_up))
                why = SHORT_LIST_REASONS["precision"].format(down=down, up=up, rounds=base_rounds)
                pick(row_key(best), why)
    return chosen
