"""A run's links as arrays and a client's seconds, in the units and order ``round_seconds`` uses."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from planner.fleet import (
    Fleet,
    link_draws,
)
from planner.fleet_batch import _machine
from planner.method_spec import MethodSpec, topk_message_bytes
from planner.network import BITS_PER_BYTE, MBPS
from planner.sampling import sample_clients

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Index = NDArray[np.intp]


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
            if (len(self._memo) + 1) * got.size > _machine.HALVES_ELEMENTS:
                self._memo.clear()
            self._memo[up, nbytes] = got
        return got

    def table(self, nbytes: Ints, *, up: bool) -> tuple[Floats, Index]:
        """(one half per distinct byte count [V, U], each entry's row in it, shaped as nbytes)."""
        values, rows = np.unique(nbytes, return_inverse=True)
        table = np.stack([self.half(int(b), up=up) for b in values.tolist()])
        return table, rows.reshape(np.shape(nbytes))

    def seconds(self, bytes_down: Ints, bytes_up: Ints) -> Floats:
        """[J, U]: every client's seconds for configuration j's (bytes_down[j], bytes_up[j]),
        each row the sum of its two halves (no table of them gathered)."""
        t = np.empty((len(bytes_down), self.link.down_bps.size))
        for row, (down, up) in enumerate(zip(bytes_down.tolist(), bytes_up.tolist(), strict=True)):
            np.add(self.half(down, up=False), self.half(up, up=True), out=t[row])
        return t
