"""Rounds: ``settle_round`` and ``fleet_round``'s sums for configurations x sampled clients x rounds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from planner.fleet_batch._links import Floats, Index, Ints
from planner.fleet_batch._prices import _Prices


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
    late_client: NDArray[np.float32] | None,
    weights: NDArray[np.float32] | None,
    *,
    deadline_rounds: bool,
    clients_per_round: int,
) -> _Walk:
    """``settle_round`` and ``fleet_round``'s sums for configurations ``units`` on the sampled
    positions ``pos`` [R, k] (columns in client id order, as the sampling sorts them);
    ``late_client`` [J, U]: 1 where a client misses its configuration's deadline; ``weights``
    [U, 1 + T]: each client's rounds in this walk, in all and per tier. Arrays are [I, k, R]:
    reductions over the sampled clients run along whole rows of rounds."""
    rounds, k = pos.shape
    count = len(units)
    contiguous = units[-1] - units[0] + 1 == count
    pick = slice(int(units[0]), int(units[-1]) + 1) if contiguous else units
    t_client = prices.seconds[pick]  # [I, U]
    by_client = np.ascontiguousarray(pos.T)  # [k, R]
    t = t_client[:, by_client]  # [I, k, R]
    m = clients_per_round
    down_each, up_each = prices.bytes_down[pick], prices.bytes_up[pick]
    down = down_each * k if down_each.shape[1] == 1 else down_each[:, by_client].sum(axis=1)
    if not deadline_rounds:
        seconds = t.max(axis=1)
        kept = np.full((count, rounds), k, dtype=np.int64)
        up = up_each * k if up_each.shape[1] == 1 else up_each[:, by_client].sum(axis=1)
    else:
        on_time = t <= deadlines[:, None, None]
        n_on = on_time.sum(axis=1)
        kept = np.minimum(n_on, m).astype(np.int64)
        full = n_on >= m if m <= k else n_on == k
        # the round ends at the m-th (or last) arrival where enough arrive by D (so it is <= D),
        # else at D
        seconds = np.where(full, _order_statistic(t, min(m, k)), deadlines[:, None])
        if up_each.shape[1] == 1:
            up = kept * up_each
        else:  # the kept: those in by the round's end, or (more than m) the first m by (t, id)
            taken = t <= seconds[:, None, :]
            ups = up_each[:, by_client]  # [I, k, R]
            ups *= taken  # the tie break below picks among the taken alone
            up = ups.sum(axis=1)
            tied = taken.sum(axis=1) > m  # several at the m-th arrival's time: ids decide
            if tied.any():
                crowd = t.transpose(0, 2, 1)[tied]
                v = seconds[tied][:, None]
                before = crowd < v
                tie = crowd == v
                need = m - before.sum(axis=1, keepdims=True)
                first_m = before | (tie & (np.cumsum(tie, axis=1) <= need))
                up[tied] = (ups.transpose(0, 2, 1)[tied] * first_m).sum(axis=1)
    if late_client is None or weights is None:  # not asked: round costs only
        late = np.zeros((count, 1), dtype=np.int64)
    else:
        late = np.rint(late_client[pick] @ weights).astype(np.int64)  # [I, 1 + T]
    return _Walk(
        seconds=seconds,
        bytes=np.broadcast_to(down + up, (count, rounds)).astype(np.int64),
        kept=kept,
        late=late[:, 0],
        tier_late=late[:, 1:],
    )


def _order_statistic(t: Floats, m: int) -> Floats:
    """[I, R]: the m-th smallest (1-based) of t [I, k, R] along its middle axis, exactly (a value
    of t). Kept as the q = min(m, k - m + 1) extreme planes, each new client's plane inserted by
    elementwise max/min (q * k passes over [I, R], contiguous; cheaper than partitioning the
    [I * R, k] lanes for the few sampled clients of a round)."""
    k = t.shape[1]
    smallest = m <= k - m + 1
    q = m if smallest else k - m + 1
    keep, drop = (np.minimum, np.maximum) if smallest else (np.maximum, np.minimum)
    planes = [np.array(t[:, 0, :])]  # sorted: planes[0] the most extreme
    spare = np.empty_like(planes[0])
    for i in range(1, k):
        x = np.array(t[:, i, :])
        for j in range(len(planes)):
            keep(planes[j], x, out=spare)
            drop(planes[j], x, out=x)
            planes[j], spare = spare, planes[j]
        if len(planes) < q:
            planes.append(x)
    return planes[q - 1]


def _tier_densities(
    values: Floats | None,
    choice: Index | None,
    constant: Floats | None,
    units: Index,
    present: Index,
    tiers: Index,
    weights: Floats,
    n_tiers: int,
) -> tuple[Floats, Floats, Floats]:
    """(median, min, max) [I, T] of the densities the tier's client-rounds encode at: constant
    per (configuration, tier), or counted from each client's choice among ``values`` (clients
    ``present`` with tier ``tiers`` and ``weights`` client-rounds)."""
    if constant is not None:
        c = np.broadcast_to(constant[units], (len(units), n_tiers)).astype(np.float64)
        return c, c, c
    assert values is not None and choice is not None
    vals = values[units][:, ::-1]  # ascending (the candidates are descending)
    width = vals.shape[1]
    chosen = choice[units][:, present]
    key = (np.arange(len(units))[:, None] * n_tiers + tiers[None, :]) * width + chosen
    counts = np.bincount(
        key.ravel(),
        weights=np.broadcast_to(weights, key.shape).ravel(),
        minlength=len(units) * n_tiers * width,
    )
    counts = np.rint(counts).astype(np.int64).reshape(len(units), n_tiers, width)[:, :, ::-1]
    cum = np.cumsum(counts, axis=2)  # client-rounds per ascending value, cumulated
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
