"""The seeds of a study: configurations enqueued before the search proposes any (dense LoRA,
the thesis heuristic d_up = d_down / S, one per other method), projected onto the feasible grid,
and the Optuna params that land on a candidate."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from planner.plan_types import PlanSettings, heuristic_pairs
from tuner.candidate import Candidate, Key
from tuner.search_space import SearchSpace


def with_seeds(space: SearchSpace, settings: PlanSettings) -> SearchSpace:
    """Enqueue-first configurations, each projected onto the feasible grid (``candidate_for``)
    and deduplicated: dense LoRA at the reference rank, the thesis heuristic d_up = d_down / S
    at each heuristic download density, then one per other searched method at the reference
    rank (FFA; SparseAdapter at density 1/S; AdapterLTH at the first keep rate)."""
    ref = settings.ref_rank
    s = settings.up_slowdown
    methods = space.methods
    wanted: list[tuple[dict[str, Any], str]] = []  # (Optuna-like params, why)
    if "dense" in methods:
        wanted.append(({"method": "dense", "rank": ref}, "dense LoRA baseline"))
    elif "floss" in methods:
        dense = {"method": "floss", "rank": ref, "d_down": 1.0, "d_up": 1.0}
        wanted.append((dense, "dense LoRA baseline"))
    if "floss" in methods:
        for dd, du in heuristic_pairs(settings):
            params = {"method": "floss", "rank": ref, "d_down": dd, "d_up": du}
            wanted.append((params, "thesis heuristic d_up = d_down/S"))
    if "ffa" in methods:
        wanted.append(({"method": "ffa", "rank": ref}, "FFA-LoRA baseline"))
    if "sparseadapter" in methods:
        params = {"method": "sparseadapter", "rank": ref, "d_up": min(1.0, 1.0 / s)}
        wanted.append((params, "SparseAdapter baseline (density 1/S)"))
    if "adapterlth" in methods:
        params = {"method": "adapterlth", "rank": ref, "keep_rate": space.keep_rates[0]}
        wanted.append((params, "AdapterLTH baseline"))
    why: dict[Key, str] = {}
    order: list[Key] = []
    for wish, reason in wanted:
        cand = space.candidate_for(wish)
        if cand.key in why:
            continue  # two seeds projected onto the same grid point
        exact = cand.rank == wish["rank"] and all(
            math.isclose(float(getattr(cand, k)), float(v))
            for k, v in wish.items()
            if k in ("d_down", "d_up", "keep_rate")
        )
        why[cand.key] = reason if exact else f"{reason}, nearest on the grid"
        order.append(cand.key)
    candidates = tuple(replace(c, why=why[c.key]) if c.key in why else c for c in space.candidates)
    by_key = {c.key: c for c in candidates}
    return replace(space, candidates=candidates, seeds=tuple(by_key[k] for k in order))


def seed_params(candidate: Candidate, space: SearchSpace) -> dict[str, Any]:
    """The Optuna params that ``suggest`` maps back onto ``candidate`` (for enqueue_trial)."""
    return space.params_of(candidate)
