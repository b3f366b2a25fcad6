"""Planning: every method and configuration on the grids, what its rounds cost, how many fit.

Per client per round (FLoSS): bytes_down = the cheapest encoding of k_down = k(n, d_down) entries
of the n-vector P (``auto``), bytes_up likewise for k_up. Per round: m clients each download and
upload, so the round moves m * (bytes_down + bytes_up) bytes and lasts
``network.fleet_round_seconds``. Rounds affordable = floor(budget / cost per round), capped at
``max_rounds``; configs under ``min_rounds`` are infeasible.

Methods (``planner.method_spec``): floss (rank x d_down x d_up), dense and ffa (one row per rank,
d = 1; ffa sends B and the head only) cost the same every round, so the closed form above holds.
sparseadapter (rank x mask density) and adapterlth (rank; keep rate and floor as set) cost
differently by round (a dense first round, then positions only to clients that lack the current
mask): their rounds come from the seeded schedule (``--seed``, ``--num-clients``), walked while
the cost changes and closed-form once it is steady; their per-round columns are means.

The short list (``recommended``, each with its reason in ``why``; ``planner.shortlist.SHORT_LIST_REASONS``):
dense LoRA at the reference rank; the thesis heuristic d_up = d_down / S at the reference rank
for each heuristic download density (default 1, 1/4, 1/16: where FLoSS matched dense); per rank,
the FLoSS config with the most communication (densest d_down, then d_up, with d_up <= d_down / S)
that still buys the baseline's rounds; and each other method at its best feasible setting (the
largest rank, then density, buying the baseline's rounds). "The baseline's rounds" are what dense
LoRA at the reference rank affords (``min_rounds`` when it affords none).

Value precisions (``precision_down`` x ``precision_up`` grids, each defaulting to ``precision``):
every floss row is priced at every pair; the other methods at every pair too. The short list is
built at the first pair (the primary); each further pair adds one row, the densest floss config at
the reference rank with d_up <= d_down / S that buys the baseline's rounds ("bits down/up: ...").
Fewer bits buy denser messages for the same bytes: the tuner decides which trade trains better.

Pareto flags (kept in JSON/CSV, per method and precision pair): a config is dominated when another is at least as
large in rank, d_down, d_up *and* rounds, and larger in one.
"""

from __future__ import annotations

import math
from typing import Any

from planner.budget import resolve_budget
from planner.errors import PlanError
from planner.method_spec import METHODS
from planner.plan_rows import (
    RowKey,
    adapter_size,
    dense_round_cost,
    method_rows,
    round_cost,
    row_key,
    uniform_rounds,
)
from planner.plan_types import Plan, PlanRow, PlanSettings, RoundCost
from planner.shortlist import pareto_flags, short_list


def _budget_amounts(settings: PlanSettings, dense: RoundCost) -> tuple[float | None, int | None]:
    amount = resolve_budget(settings.budget, lambda: dense.seconds_per_round)
    return amount.seconds, amount.bytes


def plan(settings: PlanSettings) -> Plan:
    """Every feasible configuration of every requested method, the short list first."""
    budget = settings.budget
    dense = dense_round_cost(settings)
    budget_seconds, budget_bytes = _budget_amounts(settings, dense)
    rows, infeasible = method_rows(settings, budget_seconds, budget_bytes)
    if not rows:
        raise PlanError(
            f"budget {budget.text!r} affords fewer than {settings.min_rounds} round(s) for every "
            f"configuration (a dense round at rank {settings.ref_rank} takes "
            f"{dense.seconds_per_round:.3g} s and moves {dense.bytes_per_round:,} bytes)."
        )
    # The baseline's rounds: dense LoRA at the reference rank, priced as the plan prices it.
    base_cost = round_cost(
        n=adapter_size(settings, settings.ref_rank), d_down=1.0, d_up=1.0, settings=settings
    )
    base_rounds = max(
        uniform_rounds(settings, base_cost, budget_seconds, budget_bytes), settings.min_rounds
    )
    chosen = short_list(settings, rows, base_rounds)
    flags: dict[RowKey, bool] = {}
    for method in settings.methods:
        for pair in settings.precision_pairs:
            mine = [
                r for r in rows if r.method == method and (r.precision_down, r.precision_up) == pair
            ]
            flags.update(zip(map(row_key, mine), pareto_flags(mine), strict=True))
    order = {key: i for i, key in enumerate(chosen)}
    rows = [
        _with(
            r,
            pareto=flags[row_key(r)],
            recommended=row_key(r) in chosen,
            why=chosen.get(row_key(r), ""),
        )
        for r in rows
    ]
    log_s = math.log2(settings.up_slowdown)
    # After the short list: by method, then nearest the balanced ratio d_down/d_up = S.
    rows.sort(
        key=lambda r: (
            order.get(row_key(r), len(order)),
            METHODS.index(r.method),
            round(abs(math.log2(r.d_down / r.d_up) - log_s), 6),
            -r.rank,
            -r.d_down,
        )
    )
    return Plan(
        settings=settings,
        rows=rows,
        budget_seconds=budget_seconds,
        budget_bytes=budget_bytes,
        dense_round=dense,
        infeasible=infeasible,
    )


def _with(row: PlanRow, **changes: Any) -> PlanRow:
    from dataclasses import replace

    return replace(row, **changes)
