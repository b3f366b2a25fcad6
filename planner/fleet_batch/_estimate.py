"""``estimate_fleet`` for many configurations at once: chunks of prices, walks and totals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from planner.budget import BUDGET_RTOL
from planner.fleet import (
    ESTIMATE_ROUNDS,
    FleetEstimate,
    FleetSetup,
    TierEstimate,
    check_estimate,
    check_fleet_method,
    check_run,
)
from planner.fleet_batch import _machine
from planner.fleet_batch._links import Floats, Ints, _Bytes, link_arrays, sampled_ids
from planner.fleet_batch._prices import _prices
from planner.fleet_batch._rounds import _tier_densities, _Walk, _walk
from planner.method_spec import MethodSpec, uniform_densities
from planner.rowstats import fsum_stdev_rows


def estimate_fleet_many(
    items: Sequence[tuple[MethodSpec, FleetSetup]],
    *,
    seed: int,
    num_clients: int,
    clients_per_round: int,
    compute_seconds: float = 0.0,
    budget_seconds: float | None,
    budget_bytes: int | None,
    max_rounds: int | None = None,
    rounds: int = ESTIMATE_ROUNDS,
) -> list[FleetEstimate]:
    """``[estimate_fleet(spec, setup, ...) for spec, setup in items]``, equal field for field,
    computed at once: the walk's draws are shared, configurations priced as arrays."""
    check_estimate(
        budget_seconds=budget_seconds,
        budget_bytes=budget_bytes,
        max_rounds=max_rounds,
        rounds=rounds,
    )
    compute = check_run(num_clients, clients_per_round, compute_seconds)
    for spec, setup in items:
        check_fleet_method(spec.method, setup.density_policy)
    out: list[FleetEstimate | None] = [None] * len(items)
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, (_, setup) in enumerate(items):
        groups.setdefault(_price_key(setup), []).append(i)
    for members in groups.values():
        _estimate_group(
            items,
            members,
            out,
            seed=seed,
            num_clients=num_clients,
            clients_per_round=clients_per_round,
            compute=compute,
            budget_seconds=budget_seconds,
            budget_bytes=budget_bytes,
            max_rounds=max_rounds,
            rounds=rounds,
        )
    return [e for e in out if e is not None]


def _price_key(setup: FleetSetup) -> tuple[object, ...]:
    """What a client's price depends on besides the configuration and the deadline."""
    bandwidth = setup.density_policy == "bandwidth"
    return (
        setup.fleet,
        setup.density_policy,
        setup.tier_densities if setup.density_policy == "tiered" else (),
        setup.grid if bandwidth else (),
        setup.adapt_down and bandwidth,
    )


def _estimate_group(
    items: Sequence[tuple[MethodSpec, FleetSetup]],
    members: list[int],
    out: list[FleetEstimate | None],
    *,
    seed: int,
    num_clients: int,
    clients_per_round: int,
    compute: float,
    budget_seconds: float | None,
    budget_bytes: int | None,
    max_rounds: int | None,
    rounds: int,
) -> None:
    """Items that price clients alike: one unit per (configuration, deadline), chunked."""
    setup0 = items[members[0]][1]
    fleet = setup0.fleet
    links = link_arrays(fleet, num_clients, seed)
    unit_of: dict[tuple[MethodSpec, float | None], int] = {}
    unit_items: list[int] = []
    for i in members:
        spec, setup = items[i]
        unit_items.append(unit_of.setdefault((spec, setup.deadline_seconds), len(unit_of)))
    unit_keys = list(unit_of)
    walks = {
        (setup.round_policy, setup.sampled_per_round(clients_per_round, num_clients))
        for _, setup in (items[i] for i in members)
    }
    draws = {w: sampled_ids(seed, num_clients, w[1], rounds) for w in walks}
    ids = np.unique(np.concatenate([d.ravel() for d in draws.values()]))
    positions = {w: np.searchsorted(ids, d) for w, d in draws.items()}
    n_tiers = len(fleet.tier_names)
    per_walk = {}  # per walk: client-rounds of each of the U clients, in all and by tier
    for w, p in positions.items():
        counts = np.bincount(p.ravel(), minlength=len(ids))
        present = np.flatnonzero(counts)
        weights = np.zeros((len(ids), 1 + n_tiers), dtype=np.float32)  # exact below 2**24
        weights[:, 0] = counts
        weights[present, 1 + links.tier[ids[present]]] = counts[present]
        per_walk[w] = (present, links.tier[ids[present]], weights)
    deadline_of = np.array([np.inf if d is None else d for _, d in unit_keys], dtype=np.float64)
    widest = max(max(len(ids), rounds * w[1]) for w in walks)
    workers = _machine.threads()
    chunk = max(1, min(_machine.CHUNK_ELEMENTS // widest, -(-len(unit_keys) // workers)))
    message = _Bytes()
    by_unit: dict[int, list[int]] = {}
    for i, u in zip(members, unit_items, strict=True):
        by_unit.setdefault(u, []).append(i)
    walk_of = {
        i: (items[i][1].round_policy, items[i][1].sampled_per_round(clients_per_round, num_clients))
        for i in members
    }

    def run(start: int) -> None:
        stop = min(start + chunk, len(unit_keys))
        specs = [unit_keys[u][0] for u in range(start, stop)]
        deadlines = deadline_of[start:stop]
        prices = _prices(
            specs, deadlines, setup0, links=links, ids=ids, compute=compute, message=message
        )
        late_client = (prices.seconds > deadlines[:, None]).astype(np.float32)
        for w in walks:
            mine = [
                (i, u - start) for u in range(start, stop) for i in by_unit[u] if walk_of[i] == w
            ]
            if not mine:
                continue
            units = np.array([u for _, u in mine], dtype=np.intp)
            present, tiers, weights = per_walk[w]
            walk = _walk(
                prices,
                units,
                positions[w],
                deadlines[units],
                late_client,
                weights,
                deadline_rounds=w[0] == "deadline",
                clients_per_round=clients_per_round,
            )
            counts = weights[present, 0]
            densities = (
                _tier_densities(prices.down_values, prices.down_choice, prices.d_down_tier,
                                units, present, tiers, counts, n_tiers),
                _tier_densities(prices.up_values, prices.up_choice, prices.d_up_tier,
                                units, present, tiers, counts, n_tiers),
            )  # fmt: skip
            _finish(
                items,
                [i for i, _ in mine],
                out,
                walk,
                densities,
                tier_sampled=np.rint(weights[:, 1:].sum(axis=0, dtype=np.float64)).astype(np.int64),
                sampled=w[1],
                seed=seed,
                num_clients=num_clients,
                clients_per_round=clients_per_round,
                budget_seconds=budget_seconds,
                budget_bytes=budget_bytes,
                max_rounds=max_rounds,
            )

    _machine.side_by_side(run, range(0, len(unit_keys), chunk), workers)


def _finish(
    items: Sequence[tuple[MethodSpec, FleetSetup]],
    which: list[int],
    out: list[FleetEstimate | None],
    walk: _Walk,
    tiers: tuple[tuple[Floats, Floats, Floats], tuple[Floats, Floats, Floats]],
    *,
    tier_sampled: Ints,
    sampled: int,
    seed: int,
    num_clients: int,
    clients_per_round: int,
    budget_seconds: float | None,
    budget_bytes: int | None,
    max_rounds: int | None,
) -> None:
    """``estimate_fleet``'s budget walk and totals, row by row (scalars, as it computes them)."""
    walked = walk.seconds.shape[1]
    limit_s = None if budget_seconds is None else budget_seconds * (1 + BUDGET_RTOL)
    cap = math.inf if max_rounds is None else max_rounds
    sums, stdevs = fsum_stdev_rows(walk.seconds)
    walk_bytes = walk.bytes.sum(axis=1).tolist()  # integers: exact
    cum_s = np.cumsum(walk.seconds, axis=1)  # in order, as the walk's running total
    cum_b = np.cumsum(walk.bytes, axis=1)
    spent = cum_s if limit_s is not None else cum_b
    over = spent > (limit_s if limit_s is not None else (budget_bytes or 0))
    first = np.where(over.any(axis=1), over.argmax(axis=1), walked)
    first_over = first.tolist()
    # the running totals where the budget ran out (before the first round over it)
    before = np.maximum(np.minimum(first, walked if max_rounds is None else max_rounds) - 1, 0)
    spent_s = np.take_along_axis(cum_s, before[:, None], axis=1)[:, 0].tolist()
    spent_b = np.take_along_axis(cum_b, before[:, None], axis=1)[:, 0].tolist()
    kept_total = walk.kept.sum(axis=1).tolist()
    empty = (walk.kept == 0).sum(axis=1).tolist()
    late = walk.late.tolist()
    sampled_total = walked * sampled
    names = items[which[0]][1].fleet.tier_names
    counts = tier_sampled.tolist()
    live = [(t, name, counts[t]) for t, name in enumerate(names) if counts[t]]
    tier_late = walk.tier_late.tolist()
    dd_med, dd_min, dd_max, du_med, du_min, du_max = (a.tolist() for a in (*tiers[0], *tiers[1]))
    sums_list, stdev_list, last_s = sums.tolist(), stdevs.tolist(), cum_s[:, -1].tolist()
    root = math.sqrt(walked)
    estimate = (
        f"seeded Monte Carlo over {walked} rounds (the trainer's rounds 1..{walked} at seed "
        f"{seed}); rounds within them exact, beyond them at their mean"
    )
    for row, i in enumerate(which):
        spec, setup = items[i]
        stop = int(min(first_over[row], cap))
        mean_s = sums_list[row] / walked
        mean_b = walk_bytes[row] / walked
        if stop < walked:
            bought, exact = stop, True
            total_s = spent_s[row] if stop else 0.0
            total_b = float(spent_b[row] if stop else 0)
        else:
            done_s, done_b = last_s[row], walk_bytes[row]
            if limit_s is not None:
                more = math.floor(max(limit_s - done_s, 0.0) / mean_s) if mean_s > 0 else 0
            else:
                more = (
                    math.floor(max((budget_bytes or 0) - done_b, 0) / mean_b) if mean_b > 0 else 0
                )
            more = int(min(more, cap - walked))
            bought, exact = walked + more, False
            total_s, total_b = done_s + more * mean_s, done_b + more * mean_b
        d_down, d_up = uniform_densities(spec)
        med_d, med_u, lo_d, hi_d, lo_u, hi_u, lates = (
            dd_med[row], du_med[row], dd_min[row], dd_max[row], du_min[row], du_max[row],
            tier_late[row],
        )  # fmt: skip
        tier_rows = tuple(
            [
                _record(
                    TierEstimate,
                    tier=name,
                    sampled=count,
                    d_down=med_d[t],
                    d_up=med_u[t],
                    d_down_min=lo_d[t],
                    d_down_max=hi_d[t],
                    d_up_min=lo_u[t],
                    d_up_max=hi_u[t],
                    late=lates[t] / count,
                )
                for t, name, count in live
            ]
        )
        out[i] = _record(
            FleetEstimate,
            method=spec.method,
            n=spec.n,
            d_down=d_down,
            d_up=d_up,
            round_policy=setup.round_policy,
            density_policy=setup.density_policy,
            deadline_seconds=setup.deadline_seconds,
            clients_per_round=clients_per_round,
            sampled_per_round=sampled,
            rounds_walked=walked,
            mean_seconds=mean_s,
            seconds_stderr=stdev_list[row] / root,
            mean_bytes=mean_b,
            mean_kept=kept_total[row] / walked,
            late_fraction=late[row] / sampled_total,
            dropped_fraction=(sampled_total - kept_total[row]) / sampled_total,
            empty_rounds=empty[row] / walked,
            rounds=bought,
            exact=exact,
            total_seconds=total_s,
            total_bytes=total_b,
            tiers=tier_rows,
            estimate=estimate,
        )


Record = TypeVar("Record", FleetEstimate, TierEstimate)


def _record(cls: type[Record], **fields: object) -> Record:
    """A frozen record with exactly its fields set, without its ``__init__`` (which pays an
    ``object.__setattr__`` per field: 2,268 rows x 4 records a default fleet plan). Only for
    these two, which validate nothing (no ``__post_init__``): equal to ``cls(**fields)``."""
    if len(fields) != len(cls.__dataclass_fields__):  # every field, named (checked by kwargs)
        raise TypeError(f"{cls.__name__} takes {list(cls.__dataclass_fields__)}.")
    record = object.__new__(cls)
    record.__dict__.update(fields)
    return record
