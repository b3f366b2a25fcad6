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
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

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
    check_fleet_method,
    link_draws,
)
from planner.network import BITS_PER_BYTE, MBPS
from planner.rowstats import fsum_stdev_rows
from planner.sampling import sample_clients
from planner.schedule import MethodSpec, topk_message_bytes, uniform_densities

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Index = NDArray[np.intp]

CHUNK_ELEMENTS = 1 << 18  # entries per array of one chunk (2 MiB of float64)
HALVES_ELEMENTS = 1 << 21  # memoised client-seconds halves of one pricing (16 MiB)
THREADS_ENV = "FLOSS_PLAN_THREADS"  # chunks priced side by side; unset: ``threads()`` decides


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
KEEP_FREED_BYTES = 64 << 20  # arrays below this come from and return to the heap


def keep_freed_memory() -> bool:
    """Let this process reuse the memory of freed arrays instead of returning it to the system
    (glibc only; False elsewhere). A fleet plan allocates ~2 GB of short-lived chunk arrays in
    turn; by default each above 128 KiB is a fresh mmap, so every page is faulted in again:
    110,000 minor faults, a quarter second of system time for the default grid (measured). For
    a short-lived process such as floss-plan; a long-running service keeps the default."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None or "libc.so" not in name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, KEEP_FREED_BYTES) == 1
    return mallopt(M_TRIM_THRESHOLD, 4 * KEEP_FREED_BYTES) == 1 and ok


def threads() -> int:
    """Chunks priced side by side (numpy releases the GIL; each chunk's numbers are its own, so
    the results do not depend on it): ``$FLOSS_PLAN_THREADS``, else 2 when a core is idle (the
    1-minute load average at most the cores less one), else 1 (a busy machine: two threads
    measured slower than one)."""
    given = os.environ.get(THREADS_ENV)
    if given is not None:
        try:
            return max(1, int(given))
        except ValueError:
            raise FleetError(f"{THREADS_ENV} must be an integer, but got {given!r}.") from None
    cores = os.cpu_count() or 1
    try:
        idle = os.getloadavg()[0] <= cores - 1
    except OSError:  # no load average on this system
        idle = False
    return 2 if cores >= 2 and idle else 1


@dataclass(frozen=True)
class LinkArrays:
    """The run's client links as arrays, in the units ``round_seconds`` computes with."""

    down_bps: Floats  # down_mbps * MBPS
    up_bps: Floats  # up_mbps * MBPS
    rtt_s: Floats  # rtt_ms / 1000.0
    tier: Index  # index into fleet.tier_names


@lru_cache(maxsize=8)
def link_arrays(fleet: Fleet, num_clients: int, seed: int) -> LinkArrays:
    """``assign_links(fleet, num_clients, seed)`` as arrays (read-only; cached), from the same
    seeded draws (``link_draws``) without building a ClientLink per client: a measured row's
    numbers, or the tier's medians times the client's factor, as ``assign_links`` multiplies."""
    picks, factors = link_draws(fleet, num_clients, seed)
    index = np.array(picks, dtype=np.intp)
    if fleet.measured:
        rows = fleet.measured
        names = {name: i for i, name in enumerate(fleet.tier_names)}
        down = np.array([lk.down_mbps for lk in rows], dtype=np.float64)[index]
        up = np.array([lk.up_mbps for lk in rows], dtype=np.float64)[index]
        rtt = np.array([lk.rtt_ms for lk in rows], dtype=np.float64)[index]
        tier = np.array([names[lk.tier] for lk in rows], dtype=np.intp)[index]
    else:
        f = np.array(factors, dtype=np.float64)
        tiers = fleet.tiers
        down = np.array([t.down_mbps for t in tiers], dtype=np.float64)[index] * f
        up = np.array([t.up_mbps for t in tiers], dtype=np.float64)[index] * f
        rtt = np.array([t.rtt_ms for t in tiers], dtype=np.float64)[index]
        tier = index
    arrays = LinkArrays(down_bps=down * MBPS, up_bps=up * MBPS, rtt_s=rtt / 1000.0, tier=tier)
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
    """Message bytes of a density: the encoder's answer for k = ``spec.topk_entries``, memoised by
    what they depend on (n, the tensors, the encoding, the density, the precision)."""

    def __init__(self) -> None:
        self._memo: dict[tuple[int, tuple[int, ...], str, float, str], int] = {}

    def __call__(self, spec: MethodSpec, density: float, precision: str) -> int:
        key = (spec.n, spec.tensor_sizes, spec.encoding, density, precision)
        got = self._memo.get(key)
        if got is None:
            got = self._memo[key] = topk_message_bytes(spec, spec.topk_entries(density), precision)
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


class _Halves:
    """A client's seconds in two exact halves, memoised by byte count.

    t = down(bd) + up(bu), down(bd) = ((rtt + bd*8/down) + compute) + rtt, up(bu) = bu*8/up:
    ``round_seconds``'s operations in its order, so every t is its value bit for bit, and the
    configurations that send the same download (or upload) size share that half. The memo holds
    at most ``HALVES_ELEMENTS`` entries (it starts over beyond: memory stays bounded)."""

    def __init__(self, link: _Link) -> None:
        self.link = link
        self._memo: dict[tuple[bool, int], Floats] = {}

    def half(self, nbytes: int, *, up: bool) -> Floats:
        got = self._memo.get((up, nbytes))
        if got is None:
            lk = self.link
            if up:
                got = (nbytes * BITS_PER_BYTE) / lk.up_bps
            else:
                got = lk.rtt_s + (nbytes * BITS_PER_BYTE) / lk.down_bps
                got += lk.compute_seconds
                got += lk.rtt_s
            if (len(self._memo) + 1) * got.size > HALVES_ELEMENTS:
                self._memo.clear()
            self._memo[up, nbytes] = got
        return got

    def table(self, nbytes: Ints, *, up: bool) -> tuple[Floats, Index]:
        """(one half per distinct byte count [V, U], each entry's row in it, shaped as nbytes)."""
        values, rows = np.unique(nbytes, return_inverse=True)
        table = np.stack([self.half(int(b), up=up) for b in values.tolist()])
        return table, rows.reshape(np.shape(nbytes))

    def seconds(self, bytes_down: Ints, bytes_up: Ints) -> Floats:
        """[J, U]: every client's seconds for configuration j's (bytes_down[j], bytes_up[j])."""
        down, d_rows = self.table(bytes_down, up=False)
        up, u_rows = self.table(bytes_up, up=True)
        t = down[d_rows]
        t += up[u_rows]
        return t


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
        bd = np.array([message(s, d, s.wire_down) for s, (d, _) in zip(specs, dens, strict=True)])
        bu = np.array([message(s, u, s.wire_up) for s, (_, u) in zip(specs, dens, strict=True)])
        d_down = np.array([[d] for d, _ in dens], dtype=np.float64)
        d_up = np.array([[u] for _, u in dens], dtype=np.float64)
        t = _Halves(link).seconds(bd, bu)
        return _Prices(t, bd[:, None], bu[:, None], d_down, d_up)
    if policy == "tiered":
        pairs = [setup.densities_of(name) for name in tiers]
        bd_t = np.array([[message(s, d, s.wire_down) for d, _ in pairs] for s in specs])
        bu_t = np.array([[message(s, u, s.wire_up) for _, u in pairs] for s in specs])
        tier = links.tier[ids]
        bd, bu = bd_t[:, tier], bu_t[:, tier]
        d_down = np.array([[d for d, _ in pairs]] * len(specs), dtype=np.float64)
        d_up = np.array([[u for _, u in pairs]] * len(specs), dtype=np.float64)
        return _Prices(client_seconds_array(bd, bu, link), bd, bu, d_down, d_up)
    return _bandwidth_prices(specs, deadlines, setup, halves=_Halves(link), message=message)


@dataclass(frozen=True)
class _Rows:
    """Which row of a halves table (configuration j, client c, level lv) is priced with:
    ``rows[j, lv]`` (by level), ``rows[j, c]`` (by client) or ``rows[j, 0]`` (one per j)."""

    rows: Index
    by: str  # "level" | "client" | "config"

    def at(self, j: Index, c: Index, lv: int) -> Index:
        if self.by == "level":
            return self.rows[j, lv]
        return self.rows[j, c] if self.by == "client" else self.rows[j, 0]

    def dense(self, lv: int) -> Index | None:
        """[J]: the rows at level lv when every client of j uses the same (else None)."""
        if self.by == "client":
            return None
        return self.rows[:, lv if self.by == "level" else 0]


def _bandwidth_prices(
    specs: Sequence[MethodSpec],
    deadlines: Floats,
    setup: FleetSetup,
    *,
    halves: _Halves,
    message: _Bytes,
) -> _Prices:
    """bandwidth: per client the first grid density that fits (``client_densities``); the
    undecided (configuration, client) pairs are priced level by level, most settle at the first."""
    caps = [uniform_densities(s) for s in specs]
    size = halves.link.down_bps.size
    up_values, up_len = _padded([_candidates(setup.grid, u) for _, u in caps])
    up_bytes = _byte_table(specs, up_values, up=True, message=message)
    up_tab, up_rows = halves.table(up_bytes, up=True)
    rows = np.arange(len(specs))
    down_values: Floats | None = None
    down_choice: Index | None = None
    stuck: NDArray[np.bool_] | None = None
    if setup.adapt_down:  # d_down first: the largest for which the smallest d_up fits
        down_values, down_len = _padded([_candidates(setup.grid, d) for d, _ in caps])
        down_bytes = _byte_table(specs, down_values, up=False, message=message)
        down_tab, down_rows = halves.table(down_bytes, up=False)
        smallest = _Rows(up_rows[rows, up_len - 1][:, None], "config")
        down_choice, _ = _first_fit(
            down_tab, up_tab, _Rows(down_rows, "level"), smallest, down_len, deadlines, size
        )
        stuck = down_choice < 0  # none fits: both the smallest
        down_choice = np.where(stuck, (down_len - 1)[:, None], down_choice)
        bd = np.take_along_axis(down_bytes, down_choice, axis=1)
        a = _Rows(np.take_along_axis(down_rows, down_choice, axis=1), "client")
    else:
        bd = np.array([[message(s, d, s.wire_down)] for s, (d, _) in zip(specs, caps, strict=True)])
        down_tab, down_rows = halves.table(bd, up=False)
        a = _Rows(down_rows, "config")
    up_choice, t = _first_fit(
        down_tab, up_tab, a, _Rows(up_rows, "level"), up_len, deadlines, size, skip=stuck
    )  # t: each client's seconds at its choice (none fits: the last, which it takes)
    up_choice = np.where(up_choice < 0, (up_len - 1)[:, None], up_choice)
    bu = np.take_along_axis(up_bytes, up_choice, axis=1)
    if stuck is not None and stuck.any():  # both the smallest, never scanned
        j, c = np.nonzero(stuck)
        t[j, c] = down_tab[a.rows[j, c], c] + up_tab[up_rows[j, up_len[j] - 1], c]
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
            for s, row in zip(specs, values.tolist(), strict=True)
        ],
        dtype=np.int64,
    )


def _first_fit(
    down_tab: Floats,
    up_tab: Floats,
    a: _Rows,
    b: _Rows,
    lengths: Index,
    deadlines: Floats,
    size: int,
    *,
    skip: NDArray[np.bool_] | None = None,
) -> tuple[Index, Floats]:
    """([J, size], [J, size]): per (configuration j, client c) the first level lv < lengths[j]
    whose seconds down_tab[a] + up_tab[b] are within deadlines[j], -1 where none is; and those
    seconds (where none is: the last level's; NaN where ``skip``)."""
    J = len(lengths)
    choice = np.full((J, size), -1, dtype=np.intp)
    flat = choice.reshape(-1)
    seconds = np.full((J, size), np.nan)
    flat_seconds = seconds.reshape(-1)
    first = 0
    a0, b0 = a.dense(0), b.dense(0)
    if skip is None and a0 is not None and b0 is not None:  # level 0 for everybody: dense
        t = down_tab[a0]
        t += up_tab[b0]
        fit = t <= deadlines[:, None]
        choice[fit] = 0
        seconds[...] = t
        todo = np.flatnonzero(~fit & (lengths > 1)[:, None])
        first = 1
    else:
        todo = np.arange(J * size, dtype=np.intp)
        if skip is not None:
            todo = todo[~skip.ravel()]
    for lv in range(first, int(lengths.max())):
        j, c = np.divmod(todo, size)
        live = lv < lengths[j]
        if not live.all():
            todo, j, c = todo[live], j[live], c[live]
        if not todo.size:
            break
        t = down_tab[a.at(j, c, lv), c] + up_tab[b.at(j, c, lv), c]
        fit = t <= deadlines[j]
        flat[todo[fit]] = lv
        flat_seconds[todo] = t
        todo = todo[~fit]
    return choice, seconds


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
        seconds = np.repeat(deadlines[:, None], rounds, axis=1)  # nobody in time: D
        full = n_on >= m if m <= k else n_on == k
        lanes = t.transpose(0, 2, 1)[full]  # [S, k]: rounds the m-th (or last) arrival ends
        mth = np.partition(lanes, m - 1, axis=1)[:, m - 1] if m <= k else lanes.max(axis=1)
        seconds[full] = mth
        if up_each.shape[1] == 1:
            up = kept * up_each
        else:  # the kept: those on time, or (more on time than m) the first m by (t, id)
            ups = up_each[:, by_client]  # [I, k, R]
            last = np.full(n_on.shape, np.inf)
            last[full] = mth  # the m-th arrival: nobody later is kept
            taken = on_time & (t <= last[:, None, :])
            up = (ups * taken).sum(axis=1)
            tied = taken.sum(axis=1) > m  # several at the m-th arrival's time: ids decide
            if tied.any():
                crowd = t.transpose(0, 2, 1)[tied]
                v = last[tied][:, None]
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
    workers = threads()
    chunk = max(1, min(CHUNK_ELEMENTS // widest, -(-len(unit_keys) // workers)))
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

    starts = range(0, len(unit_keys), chunk)
    if workers > 1 and len(starts) > 1:  # numpy releases the GIL: chunks overlap
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, starts))
    else:
        for start in starts:
            run(start)


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
        tier_rows = tuple(
            _record(
                TierEstimate,
                tier=name,
                sampled=counts[t],
                d_down=dd_med[row][t],
                d_up=du_med[row][t],
                d_down_min=dd_min[row][t],
                d_down_max=dd_max[row][t],
                d_up_min=du_min[row][t],
                d_up_max=du_max[row][t],
                late=tier_late[row][t] / counts[t],
            )
            for t, name in enumerate(names)
            if counts[t]
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


# ---------------------------------------------------------------------------------------------
# Round costs of one run, block by block (what a budget counts)


@dataclass(frozen=True, slots=True)
class RoundCost:
    """Round ``round`` of a fleet run: its seconds and bytes_total, as ``fleet_round``'s."""

    round: int
    seconds: float
    bytes_total: int


ROUND_BLOCK = 256  # rounds priced at once by fleet_round_costs


def fleet_round_costs(
    spec: MethodSpec,
    setup: FleetSetup,
    *,
    seed: int,
    num_clients: int,
    clients_per_round: int,
    compute_seconds: float = 0.0,
    first: int = 1,
) -> Iterator[RoundCost]:
    """Rounds first, first + 1, ... of a fleet run (an unbounded generator): each one's
    ``seconds`` and ``bytes_total`` exactly as ``planner.fleet.price_fleet_rounds`` gives them,
    priced ``ROUND_BLOCK`` rounds at a time on the shared draws (tuner.pricing counts budgets
    with it)."""
    compute = _check_run(num_clients, clients_per_round, compute_seconds)
    check_fleet_method(spec.method, setup.density_policy)
    if isinstance(first, bool) or not isinstance(first, int) or first < 1:
        raise FleetError(f"round must be an integer >= 1, but got {first!r}.")
    links = link_arrays(setup.fleet, num_clients, seed)
    count = setup.sampled_per_round(clients_per_round, num_clients)
    deadline = np.array([np.inf if setup.deadline_seconds is None else setup.deadline_seconds])
    message = _Bytes()
    start = first
    while True:
        draws = np.array(
            [
                sample_clients(seed, r, num_clients, count)
                for r in range(start, start + ROUND_BLOCK)
            ],
            dtype=np.intp,
        ).reshape(ROUND_BLOCK, count)
        ids = np.unique(draws)
        prices = _prices(
            [spec], deadline, setup, links=links, ids=ids, compute=compute, message=message
        )
        walk = _walk(
            prices,
            np.zeros(1, dtype=np.intp),
            np.searchsorted(ids, draws),
            deadline,
            None,
            None,
            deadline_rounds=setup.round_policy == "deadline",
            clients_per_round=clients_per_round,
        )
        for r, (sec, nbytes) in enumerate(
            zip(walk.seconds[0].tolist(), walk.bytes[0].tolist(), strict=True), start=start
        ):
            yield RoundCost(round=r, seconds=sec, bytes_total=nbytes)
        start += ROUND_BLOCK


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
    bd = np.array([message(s, d, s.wire_down) for s, (d, _) in zip(specs, dens, strict=True)])
    bu = np.array([message(s, u, s.wire_up) for s, (_, u) in zip(specs, dens, strict=True)])
    halves = _Halves(everybody)
    order = np.lexsort((bu, bd))  # configurations sharing a download size share its half
    out = np.empty(len(specs))
    chunk = max(1, CHUNK_ELEMENTS // num_clients)
    for start in range(0, len(specs), chunk):
        mine = order[start : start + chunk]
        out[mine] = kth_smallest(halves.seconds(bd[mine], bu[mine]), at)
    return [float(x) for x in out.tolist()]


def kth_smallest(values: Floats, k: int) -> Floats:
    """Row-wise ``np.partition(values, k, axis=1)[:, k]``, exactly, cheaper for long rows: the
    k-th value lies between two order statistics of a strided sample with high probability;
    counting the values below the lower one says where it falls among those between (checked
    per row: a row where it does not falls back to np.partition)."""
    rows, n = values.shape
    if n < 4096:
        return np.partition(values, k, axis=1)[:, k]
    sample = np.sort(values[:, :: n // 1024], axis=1)
    size = sample.shape[1]
    margin = 4 * math.sqrt(size) + 2  # sample ranks: ~4 standard deviations of the rank
    lo = sample[:, max(0, math.floor(k / n * size - margin))]
    hi = sample[:, min(size - 1, math.ceil(k / n * size + margin))]
    at_least = values >= lo[:, None]
    below = n - np.count_nonzero(at_least, axis=1)
    band = at_least & (values <= hi[:, None])
    inside = np.count_nonzero(band, axis=1)
    out = np.empty(rows)
    for r, (b, m) in enumerate(zip(below.tolist(), inside.tolist(), strict=True)):
        j = k - b
        row = values[r]
        out[r] = np.partition(row[band[r]], j)[j] if 0 <= j < m else np.partition(row, k)[k]
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
    "ROUND_BLOCK",
    "THREADS_ENV",
    "LinkArrays",
    "RoundCost",
    "client_seconds_array",
    "default_deadlines",
    "dense_reference_seconds_fast",
    "estimate_fleet_many",
    "fleet_round_costs",
    "keep_freed_memory",
    "kth_smallest",
    "link_arrays",
    "sampled_ids",
    "threads",
]
