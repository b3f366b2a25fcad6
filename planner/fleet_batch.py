"""The fleet estimate of many configurations at once: ``estimate_fleet`` vectorised with numpy.

The seeded draws of the planner's walk do not depend on the configuration: which clients round r
samples (``planner.sampling.sample_clients``) and each client's link (``assign_links``). So they
are drawn once and shared, and everything else is arrays: client prices over configurations x the
walk's clients, round prices over configurations x rounds x sampled clients.

Exactness: every number equals the per-configuration walk's (``planner.fleet.estimate_fleet``,
kept as the reference; tests/planner/test_fleet_batch.py compares them on several fleets,
policies and seeds). Client seconds are the same IEEE operations in the same order as
``planner.network.round_seconds``; round sums are integers (bytes) or sequential float sums
(``np.cumsum`` adds in order, as the walk's running total does); the mean and the standard error
are exactly rounded as ``math.fsum`` and ``statistics.stdev`` (``planner.rowstats``).

Memory is bounded whatever the population: arrays are cut into chunks of configurations of at
most ``CHUNK_ELEMENTS`` entries, and only the walk's clients (at most rounds x sampled) are
priced, except by ``default_deadlines`` (a quantile over the whole population: chunks again).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from planner.budget import BUDGET_RTOL
from planner.fleet import (
    _EPS,
    ESTIMATE_ROUNDS,
    Fleet,
    FleetError,
    FleetEstimate,
    FleetSetup,
    TierEstimate,
    _check_run,
    _non_negative,
    assign_links,
    check_fleet_method,
)
from planner.network import BITS_PER_BYTE, MBPS
from planner.rowstats import fsum_stdev_rows
from planner.sampling import sample_clients
from planner.schedule import MethodSpec, topk_message_bytes, uniform_densities

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Index = NDArray[np.intp]

CHUNK_ELEMENTS = 1 << 20  # entries per array of one chunk (8 MiB of float64)


@dataclass(frozen=True)
class LinkArrays:
    """The run's client links as arrays, in the units ``round_seconds`` computes with."""

    down_bps: Floats  # down_mbps * MBPS
    up_bps: Floats  # up_mbps * MBPS
    rtt_s: Floats  # rtt_ms / 1000.0
    tier: Index  # index into fleet.tier_names


@lru_cache(maxsize=8)
def link_arrays(fleet: Fleet, num_clients: int, seed: int) -> LinkArrays:
    """``assign_links(fleet, num_clients, seed)`` as arrays (read-only; cached)."""
    links = assign_links(fleet, num_clients, seed)
    index = {name: i for i, name in enumerate(fleet.tier_names)}
    arrays = LinkArrays(
        down_bps=np.array([lk.down_mbps for lk in links], dtype=np.float64) * MBPS,
        up_bps=np.array([lk.up_mbps for lk in links], dtype=np.float64) * MBPS,
        rtt_s=np.array([lk.rtt_ms for lk in links], dtype=np.float64) / 1000.0,
        tier=np.array([index[lk.tier] for lk in links], dtype=np.intp),
    )
    for a in (arrays.down_bps, arrays.up_bps, arrays.rtt_s, arrays.tier):
        a.flags.writeable = False
    return arrays


@lru_cache(maxsize=16)
def sampled_ids(seed: int, num_clients: int, count: int, rounds: int) -> Index:
    """The client ids of rounds 1..rounds, one row per round (sorted), as the trainer samples
    them (``sample_clients``); read-only, cached."""
    ids = np.array(
        [sample_clients(seed, r, num_clients, count) for r in range(1, rounds + 1)],
        dtype=np.intp,
    ).reshape(rounds, count)
    ids.flags.writeable = False
    return ids


@dataclass(frozen=True)
class _Link:
    """Links (one entry per client) and the compute seconds: what a client's seconds need."""

    down_bps: Floats
    up_bps: Floats
    rtt_s: Floats
    compute_seconds: float

    def at(self, c: Index) -> _Link:
        return _Link(self.down_bps[c], self.up_bps[c], self.rtt_s[c], self.compute_seconds)


def _link(links: LinkArrays, ids: Index, compute_seconds: float) -> _Link:
    return _Link(links.down_bps[ids], links.up_bps[ids], links.rtt_s[ids], compute_seconds)


def client_seconds_array(bytes_down: Ints, bytes_up: Ints, link: _Link) -> Floats:
    """t_c = rtt + bytes_down*8/down + compute + rtt + bytes_up*8/up, elementwise, in the order
    ``planner.network.round_seconds`` adds (so every value is the scalar function's, bit for
    bit; byte counts below 2**53 convert to float exactly, as Python's int / float does)."""
    down = np.multiply(bytes_down, BITS_PER_BYTE, dtype=np.int64) / link.down_bps
    up = np.multiply(bytes_up, BITS_PER_BYTE, dtype=np.int64) / link.up_bps
    return link.rtt_s + down + link.compute_seconds + link.rtt_s + up


class _Bytes:
    """Message bytes by (n, encoding, k, precision): the encoder's answer, memoised."""

    def __init__(self) -> None:
        self._memo: dict[tuple[int, str, int, str], int] = {}

    def __call__(self, spec: MethodSpec, density: float, precision: str) -> int:
        k = spec.topk_entries(density)
        key = (spec.n, spec.encoding, k, precision)
        got = self._memo.get(key)
        if got is None:
            got = self._memo[key] = topk_message_bytes(spec, k, precision)
        return got


@dataclass
class _Prices:
    """Client prices of J configurations x U clients (tier stats per config)."""

    seconds: Floats  # [J, U]
    bytes_down: Ints  # [J, U] or [J, 1]
    bytes_up: Ints  # [J, U] or [J, 1]
    # densities per (config, tier) for uniform/tiered: [J, T]; bandwidth: counted per client
    d_down_tier: Floats | None
    d_up_tier: Floats | None
    # bandwidth: the candidate densities (descending, padded) and each client's choice index
    up_values: Floats | None = None  # [J, L]
    up_choice: Index | None = None  # [J, U]
    down_values: Floats | None = None  # [J, L2]
    down_choice: Index | None = None  # [J, U]


def _candidates(grid: tuple[float, ...], cap: float) -> list[float]:
    """The grid values a client may take under ``cap`` (``client_densities``'s list)."""
    return [g for g in grid if g <= cap * (1 + _EPS)] or [cap]


def _padded(lists: list[list[float]]) -> tuple[Floats, Index]:
    width = max(len(v) for v in lists)
    values = np.array([v + [v[-1]] * (width - len(v)) for v in lists], dtype=np.float64)
    return values, np.array([len(v) for v in lists], dtype=np.intp)


def _prices(
    specs: Sequence[MethodSpec],
    deadlines: Floats,
    setup: FleetSetup,
    *,
    links: LinkArrays,
    ids: Index,
    compute: float,
    message: _Bytes,
) -> _Prices:
    """What each of ``ids``'s clients costs each configuration under the setup's density policy
    (``planner.fleet.client_densities`` and ``_Pricer.client``, vectorised)."""
    link = _link(links, ids, compute)
    policy = setup.density_policy
    tiers = setup.fleet.tier_names
    if policy == "uniform":
        dens = [uniform_densities(s) for s in specs]
        bd = np.array([[message(s, d, s.wire_down)] for s, (d, _) in zip(specs, dens, strict=True)])
        bu = np.array([[message(s, u, s.wire_up)] for s, (_, u) in zip(specs, dens, strict=True)])
        d_down = np.array([[d] * len(tiers) for d, _ in dens], dtype=np.float64)
        d_up = np.array([[u] * len(tiers) for _, u in dens], dtype=np.float64)
        t = client_seconds_array(bd, bu, link)
        return _Prices(t, bd, bu, d_down, d_up)
    if policy == "tiered":
        pairs = [setup.densities_of(name) for name in tiers]
        bd_t = np.array([[message(s, d, s.wire_down) for d, _ in pairs] for s in specs])
        bu_t = np.array([[message(s, u, s.wire_up) for _, u in pairs] for s in specs])
        tier = links.tier[ids]
        bd, bu = bd_t[:, tier], bu_t[:, tier]
        t = client_seconds_array(bd, bu, link)
        d_down = np.array([[d for d, _ in pairs]] * len(specs), dtype=np.float64)
        d_up = np.array([[u for _, u in pairs]] * len(specs), dtype=np.float64)
        return _Prices(t, bd, bu, d_down, d_up)
    return _bandwidth_prices(specs, deadlines, setup, link=link, message=message, size=len(ids))


def _bandwidth_prices(
    specs: Sequence[MethodSpec],
    deadlines: Floats,
    setup: FleetSetup,
    *,
    link: _Link,
    message: _Bytes,
    size: int,
) -> _Prices:
    """bandwidth: per client the first grid density that fits (``client_densities``); the
    undecided (configuration, client) pairs are priced level by level, most settle at the first."""
    caps = [uniform_densities(s) for s in specs]
    up_values, up_len = _padded([_candidates(setup.grid, u) for _, u in caps])
    up_bytes = _byte_table(specs, up_values, up=True, message=message)
    rows = np.arange(len(specs))
    down_values: Floats | None = None
    down_choice: Index | None = None
    stuck: NDArray[np.bool_] | None = None
    if setup.adapt_down:  # d_down first: the largest for which the smallest d_up fits
        down_values, down_len = _padded([_candidates(setup.grid, d) for d, _ in caps])
        down_bytes = _byte_table(specs, down_values, up=False, message=message)
        smallest_up = up_bytes[rows, up_len - 1][:, None]
        down_choice = _first_fit(down_bytes, None, smallest_up, down_len, deadlines, link, size)
        stuck = down_choice < 0  # none fits: both the smallest
        down_choice = np.where(stuck, (down_len - 1)[:, None], down_choice)
        bd = np.take_along_axis(down_bytes, down_choice, axis=1)
    else:
        bd = np.array([[message(s, d, s.wire_down)] for s, (d, _) in zip(specs, caps, strict=True)])
    up_choice = _first_fit(None, bd, up_bytes, up_len, deadlines, link, size, skip=stuck)
    up_choice = np.where(up_choice < 0, (up_len - 1)[:, None], up_choice)
    bu = np.take_along_axis(up_bytes, up_choice, axis=1)
    t = client_seconds_array(bd, bu, link)
    d_down = None if setup.adapt_down else np.array([[d] for d, _ in caps], dtype=np.float64)
    return _Prices(
        t,
        bd,
        bu,
        d_down_tier=d_down,
        d_up_tier=None,
        up_values=up_values,
        up_choice=up_choice,
        down_values=down_values,
        down_choice=down_choice,
    )


def _byte_table(specs: Sequence[MethodSpec], values: Floats, *, up: bool, message: _Bytes) -> Ints:
    return np.array(
        [
            [message(s, float(v), s.wire_up if up else s.wire_down) for v in row]
            for s, row in zip(specs, values, strict=True)
        ],
        dtype=np.int64,
    )


def _first_fit(
    down_levels: Ints | None,
    down_fixed: Ints | None,
    up: Ints,
    lengths: Index,
    deadlines: Floats,
    link: _Link,
    size: int,
    *,
    skip: NDArray[np.bool_] | None = None,
) -> Index:
    """[J, size]: per (configuration j, client c) the first level lv < lengths[j] whose seconds
    are within deadlines[j], -1 where none is. Download bytes: ``down_levels[j, lv]`` or
    ``down_fixed[j, c]`` ([J, 1]: one per j); upload bytes: ``up[j, lv]`` ([J, 1]: one per j)."""
    J = len(lengths)
    choice = np.full((J, size), -1, dtype=np.intp)
    todo = np.arange(J * size, dtype=np.intp)
    if skip is not None:
        todo = todo[~skip.ravel()]
    flat = choice.reshape(-1)
    for lv in range(int(lengths.max())):
        j, c = np.divmod(todo, size)
        live = lv < lengths[j]
        if not live.all():
            todo, j, c = todo[live], j[live], c[live]
        if not todo.size:
            break
        if down_levels is not None:
            bd = down_levels[j, lv]
        else:
            assert down_fixed is not None
            bd = down_fixed[j, 0] if down_fixed.shape[1] == 1 else down_fixed[j, c]
        bu = up[j, min(lv, up.shape[1] - 1)] if up.shape[1] > 1 else up[j, 0]
        t = client_seconds_array(bd, bu, link.at(c))
        fit = t <= deadlines[j]
        flat[todo[fit]] = lv
        todo = todo[~fit]
    return choice


# ---------------------------------------------------------------------------------------------
# Rounds: configurations x rounds x sampled clients


@dataclass
class _Walk:
    """One round policy's walk of some configurations: per round and per client-round tallies."""

    seconds: Floats  # [I, R]
    bytes: Ints  # [I, R], every download + the kept uploads
    kept: Ints  # [I, R]
    late: Ints  # [I]: sampled client-rounds past the deadline
    tier_late: Ints  # [I, T]


def _walk(
    prices: _Prices,
    units: Index,
    pos: Index,
    deadlines: Floats,
    weights: Floats,
    tier_weights: Floats,
    *,
    deadline_rounds: bool,
    clients_per_round: int,
) -> _Walk:
    """``settle_round`` and ``fleet_round``'s sums for configurations ``units`` on the sampled
    positions ``pos`` [R, k] (columns in client id order, as the sampling sorts them)."""
    rounds, k = pos.shape
    t_client = prices.seconds[units]  # [I, U]
    t = t_client[:, pos]  # [I, R, k]
    d = deadlines[:, None, None]
    if prices.bytes_down.shape[1] == 1:
        down = prices.bytes_down[units] * k  # [I, 1]: every round alike
    else:
        down = prices.bytes_down[units][:, pos].sum(axis=2)
    up_each = prices.bytes_up[units]
    if not deadline_rounds:
        seconds = t.max(axis=2)
        kept = np.full(seconds.shape, k, dtype=np.int64)
        up = up_each * k if up_each.shape[1] == 1 else up_each[:, pos].sum(axis=2)
    else:
        m = clients_per_round
        on_time = t <= d
        n_on = on_time.sum(axis=2)
        kept = np.minimum(n_on, m).astype(np.int64)
        if m <= k:
            mth = np.partition(t, m - 1, axis=2)[:, :, m - 1]  # the m-th arrival
            finish = np.where(n_on == k, t.max(axis=2), deadlines[:, None])
            seconds = np.where(n_on >= m, mth, finish)
        else:
            seconds = np.where(n_on == k, t.max(axis=2), deadlines[:, None])
        if up_each.shape[1] == 1:
            up = kept * up_each
        else:  # the first m arrivals by (t, client id) among those on time
            taken = on_time
            if m <= k and (n_on > m).any():
                before = t < mth[:, :, None]
                tie = t == mth[:, :, None]
                need = m - before.sum(axis=2, keepdims=True)
                first_m = before | (tie & (np.cumsum(tie, axis=2) <= need))
                taken = np.where((n_on > m)[:, :, None], first_m, on_time)
            up = (up_each[:, pos] * taken).sum(axis=2)
    late_client = (t_client > deadlines[:, None]).astype(np.float64)  # [I, U]
    return _Walk(
        seconds=np.ascontiguousarray(seconds, dtype=np.float64),
        bytes=np.broadcast_to(down + up, (len(units), rounds)).astype(np.int64),
        kept=np.broadcast_to(kept, (len(units), rounds)).astype(np.int64),
        late=np.rint(late_client @ weights).astype(np.int64),
        tier_late=np.rint(late_client @ tier_weights).astype(np.int64),
    )


def _tier_densities(
    values: Floats | None, choice: Index | None, constant: Floats | None, units: Index,
    tier_weights: Floats,
) -> tuple[Floats, Floats, Floats]:  # fmt: skip
    """(median, min, max) [I, T] of the densities the tier's client-rounds encode at: constant
    per (configuration, tier), or counted from each client's choice among ``values``."""
    n_tiers = tier_weights.shape[1]
    if constant is not None:
        c = np.broadcast_to(constant[units], (len(units), n_tiers)).astype(np.float64)
        return c, c, c
    assert values is not None and choice is not None
    vals = values[units][:, ::-1]  # ascending (the candidates are descending)
    width = vals.shape[1]
    chosen = choice[units]
    counts = np.stack(
        [(chosen == width - 1 - a).astype(np.float64) @ tier_weights for a in range(width)],
        axis=2,
    )  # [I, T, L] client-rounds per ascending value
    counts = np.rint(counts).astype(np.int64)
    cum = np.cumsum(counts, axis=2)
    total = cum[:, :, -1:]
    mid = total // 2
    at_mid = (cum > mid).argmax(axis=2)
    below_mid = (cum > mid - 1).argmax(axis=2)
    rows = np.arange(len(units))[:, None]
    hi = vals[rows, at_mid]
    lo = vals[rows, below_mid]
    median = np.where(total[:, :, 0] % 2 == 1, hi, (lo + hi) / 2)
    smallest = vals[rows, (cum > 0).argmax(axis=2)]
    largest = vals[rows, (cum >= total).argmax(axis=2)]
    return median, smallest, largest


# ---------------------------------------------------------------------------------------------
# The estimate


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
    if (budget_seconds is None) == (budget_bytes is None):
        raise ValueError("give exactly one of budget_seconds and budget_bytes.")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 2:
        raise FleetError(f"estimate rounds must be an integer >= 2, but got {rounds!r}.")
    if max_rounds is not None and max_rounds < 0:
        raise FleetError(f"max_rounds must be >= 0, but got {max_rounds}.")
    compute = _check_run(num_clients, clients_per_round, compute_seconds)
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
    onehot = np.zeros((len(ids), n_tiers))
    onehot[np.arange(len(ids)), links.tier[ids]] = 1.0
    weights = {w: np.bincount(p.ravel(), minlength=len(ids)).astype(np.float64)
               for w, p in positions.items()}  # fmt: skip
    tier_weights = {w: onehot * weights[w][:, None] for w in walks}
    deadline_of = np.array([np.inf if d is None else d for _, d in unit_keys], dtype=np.float64)
    widest = max(max(len(ids), rounds * w[1]) for w in walks)
    chunk = max(1, CHUNK_ELEMENTS // widest)
    message = _Bytes()
    by_unit: dict[int, list[int]] = {}
    for i, u in zip(members, unit_items, strict=True):
        by_unit.setdefault(u, []).append(i)
    for start in range(0, len(unit_keys), chunk):
        stop = min(start + chunk, len(unit_keys))
        specs = [unit_keys[u][0] for u in range(start, stop)]
        prices = _prices(
            specs,
            deadline_of[start:stop],
            setup0,
            links=links,
            ids=ids,
            compute=compute,
            message=message,
        )
        for w in walks:
            mine = [
                (i, u - start)
                for u in range(start, stop)
                for i in by_unit[u]
                if (items[i][1].round_policy, items[i][1].sampled_per_round(
                    clients_per_round, num_clients)) == w
            ]  # fmt: skip
            if not mine:
                continue
            units = np.array([u for _, u in mine], dtype=np.intp)
            dl = deadline_of[start:stop][units]
            walk = _walk(
                prices,
                units,
                positions[w],
                dl,
                weights[w],
                tier_weights[w],
                deadline_rounds=w[0] == "deadline",
                clients_per_round=clients_per_round,
            )
            tiers = (
                _tier_densities(prices.down_values, prices.down_choice, prices.d_down_tier, units,
                                tier_weights[w]),
                _tier_densities(prices.up_values, prices.up_choice, prices.d_up_tier, units,
                                tier_weights[w]),
            )  # fmt: skip
            _finish(
                items,
                [i for i, _ in mine],
                out,
                walk,
                tiers,
                tier_sampled=np.rint(weights[w] @ onehot).astype(np.int64),
                sampled=w[1],
                seed=seed,
                num_clients=num_clients,
                clients_per_round=clients_per_round,
                budget_seconds=budget_seconds,
                budget_bytes=budget_bytes,
                max_rounds=max_rounds,
            )


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
    cum_s = np.cumsum(walk.seconds, axis=1)  # in order, as the walk's running total
    cum_b = np.cumsum(walk.bytes, axis=1)
    over = cum_s > limit_s if limit_s is not None else cum_b > (budget_bytes or 0)
    first_over = np.where(over.any(axis=1), over.argmax(axis=1), walked)
    kept_total = walk.kept.sum(axis=1)
    empty = (walk.kept == 0).sum(axis=1)
    sampled_total = walked * sampled
    names = items[which[0]][1].fleet.tier_names
    (dd_med, dd_min, dd_max), (du_med, du_min, du_max) = tiers
    estimate = (
        f"seeded Monte Carlo over {walked} rounds (the trainer's rounds 1..{walked} at seed "
        f"{seed}); rounds within them exact, beyond them at their mean"
    )
    for row, i in enumerate(which):
        spec, setup = items[i]
        stop = int(min(first_over[row], cap))
        walk_bytes = int(cum_b[row, -1])
        mean_s = float(sums[row]) / walked
        mean_b = walk_bytes / walked
        if stop < walked:
            bought, exact = stop, True
            total_s = float(cum_s[row, stop - 1]) if stop else 0.0
            total_b = float(int(cum_b[row, stop - 1]) if stop else 0)
        else:
            done_s, done_b = float(cum_s[row, -1]), walk_bytes
            if limit_s is not None:
                more = math.floor(max(limit_s - done_s, 0.0) / mean_s) if mean_s > 0 else 0
            else:
                more = (
                    math.floor(max((budget_bytes or 0) - done_b, 0) / mean_b) if mean_b > 0 else 0
                )
            more = int(min(more, cap - walked))
            bought, exact = walked + more, False
            total_s, total_b = done_s + more * mean_s, done_b + more * mean_b
        late = int(walk.late[row])
        dropped = sampled_total - int(kept_total[row])
        d_down, d_up = uniform_densities(spec)
        tier_rows = []
        for t, name in enumerate(names):
            count = int(tier_sampled[t])
            if not count:
                continue
            tier_rows.append(
                TierEstimate(
                    tier=name,
                    sampled=count,
                    d_down=float(dd_med[row, t]),
                    d_up=float(du_med[row, t]),
                    d_down_min=float(dd_min[row, t]),
                    d_down_max=float(dd_max[row, t]),
                    d_up_min=float(du_min[row, t]),
                    d_up_max=float(du_max[row, t]),
                    late=int(walk.tier_late[row, t]) / count,
                )
            )
        out[i] = FleetEstimate(
            method=spec.method,
            n=spec.n,
            d_down=d_down,
            d_up=d_up,
            round_policy=setup.round_policy,
            density_policy=setup.density_policy,
            deadline_seconds=setup.deadline_seconds,
            clients_per_round=clients_per_round,
            sampled_per_round=setup.sampled_per_round(clients_per_round, num_clients),
            rounds_walked=walked,
            mean_seconds=mean_s,
            seconds_stderr=float(stdevs[row]) / math.sqrt(walked),
            mean_bytes=mean_b,
            mean_kept=int(kept_total[row]) / walked,
            late_fraction=late / sampled_total,
            dropped_fraction=dropped / sampled_total,
            empty_rounds=int(empty[row]) / walked,
            rounds=bought,
            exact=exact,
            total_seconds=total_s,
            total_bytes=total_b,
            tiers=tuple(tier_rows),
            estimate=estimate,
        )


# ---------------------------------------------------------------------------------------------
# Deadlines and the dense reference, for many configurations


def default_deadlines(
    specs: Sequence[MethodSpec],
    fleet: Fleet,
    *,
    seed: int,
    num_clients: int,
    compute_seconds: float = 0.0,
    over_selection: float,
) -> list[float]:
    """``[default_deadline(spec, fleet, ...) for spec in specs]``: the 1/over_selection quantile
    (nearest rank) of the population's client seconds at each configuration's uniform
    densities; the population in chunks of configurations (memory bounded)."""
    uniform = FleetSetup(fleet=fleet, over_selection=over_selection)
    compute = _non_negative(compute_seconds, "compute seconds")
    for spec in specs:
        check_fleet_method(spec.method, "uniform")
    links = link_arrays(fleet, num_clients, seed)
    everybody = _Link(links.down_bps, links.up_bps, links.rtt_s, compute)
    q = 1.0 / uniform.over_selection
    at = max(0, math.ceil(round(q * num_clients, 9)) - 1)
    message = _Bytes()
    dens = [uniform_densities(s) for s in specs]
    bd = np.array([[message(s, d, s.wire_down)] for s, (d, _) in zip(specs, dens, strict=True)])
    bu = np.array([[message(s, u, s.wire_up)] for s, (_, u) in zip(specs, dens, strict=True)])
    out: list[float] = []
    chunk = max(1, CHUNK_ELEMENTS // num_clients)
    for start in range(0, len(specs), chunk):
        t = client_seconds_array(bd[start : start + chunk], bu[start : start + chunk], everybody)
        out += np.partition(t, at, axis=1)[:, at].tolist()
    return out


def dense_reference_seconds_fast(
    fleet: Fleet,
    *,
    n: int,
    seed: int,
    num_clients: int,
    clients_per_round: int,
    compute_seconds: float = 0.0,
    rounds: int,
) -> float:
    """``planner.fleet.dense_reference_seconds``: the mean of the first ``rounds`` sync rounds of
    dense LoRA (dense fp32) at n entries, uniform densities, on the shared draws."""
    compute = _check_run(num_clients, clients_per_round, compute_seconds)
    spec = MethodSpec(method="dense", n=n, encoding="dense", precision="fp32")
    links = link_arrays(fleet, num_clients, seed)
    pos = sampled_ids(seed, num_clients, min(clients_per_round, num_clients), rounds)
    message = _Bytes()
    t = client_seconds_array(
        np.array([message(spec, 1.0, spec.wire_down)], dtype=np.int64),
        np.array([message(spec, 1.0, spec.wire_up)], dtype=np.int64),
        _link(links, pos, compute),
    )
    return math.fsum(t.max(axis=1).tolist()) / rounds


__all__ = [
    "CHUNK_ELEMENTS",
    "LinkArrays",
    "client_seconds_array",
    "default_deadlines",
    "dense_reference_seconds_fast",
    "estimate_fleet_many",
    "link_arrays",
    "sampled_ids",
]
