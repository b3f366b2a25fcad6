"""Client prices of many configurations under a density policy (``client_densities``, vectorised)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from planner.fleet import FleetSetup, grid_under
from planner.fleet_batch._links import (
    Floats,
    Index,
    Ints,
    LinkArrays,
    _Bytes,
    _Halves,
    _link,
    client_seconds_array,
)
from planner.method_spec import MethodSpec, uniform_densities


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
    up_values, up_len = _padded([grid_under(setup.grid, u) for _, u in caps])
    up_bytes = _byte_table(specs, up_values, up=True, message=message)
    up_tab, up_rows = halves.table(up_bytes, up=True)
    rows = np.arange(len(specs))
    down_values: Floats | None = None
    down_choice: Index | None = None
    stuck: NDArray[np.bool_] | None = None
    if setup.adapt_down:  # d_down first: the largest for which the smallest d_up fits
        down_values, down_len = _padded([grid_under(setup.grid, d) for d, _ in caps])
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
    first = 0
    a0, b0 = a.dense(0), b.dense(0)
    if skip is None and a0 is not None and b0 is not None:  # level 0 for everybody: dense
        seconds = down_tab[a0]
        seconds += up_tab[b0]
        fit = seconds <= deadlines[:, None]
        choice = np.where(fit, 0, -1).astype(np.intp, copy=False)
        late = np.logical_not(fit, out=fit)
        if not (lengths > 1).all():
            late &= (lengths > 1)[:, None]
        todo = np.flatnonzero(late)
        first = 1
    else:
        choice = np.full((J, size), -1, dtype=np.intp)
        seconds = np.full((J, size), np.nan)
        todo = np.arange(J * size, dtype=np.intp)
        if skip is not None:
            todo = todo[~skip.ravel()]
    flat, flat_seconds = choice.reshape(-1), seconds.reshape(-1)
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
