"""Default deadlines and the dense reference round, for many configurations."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from planner.fleet import (
    Fleet,
    FleetSetup,
    check_compute_seconds,
    check_fleet_method,
    check_run,
)
from planner.fleet_batch import _machine
from planner.fleet_batch._links import (
    Floats,
    _Bytes,
    _Halves,
    _Link,
    _link,
    client_seconds_array,
    link_arrays,
    sampled_ids,
)
from planner.method_spec import MethodSpec, uniform_densities


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
    compute = check_compute_seconds(compute_seconds)
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
    order = np.lexsort((bu, bd))  # configurations sharing a download size share its half
    out = np.empty(len(specs))
    chunk = max(1, _machine.CHUNK_ELEMENTS // num_clients)
    workers = _machine.threads()
    parts = np.array_split(order, workers)  # one part a thread, each with its own halves

    def run(part: int) -> None:
        halves = _Halves(everybody)
        mine = parts[part]
        for start in range(0, len(mine), chunk):
            these = mine[start : start + chunk]
            out[these] = kth_smallest(halves.seconds(bd[these], bu[these]), at)

    _machine.side_by_side(run, range(workers), workers)
    return [float(x) for x in out.tolist()]


def kth_smallest(values: Floats, k: int) -> Floats:
    """Row-wise ``np.partition(values, k, axis=1)[:, k]``, exactly, cheaper for long rows: the
    k-th value lies between two order statistics of a strided sample with high probability;
    counting the values below the lower one says where it falls among those between (checked
    per row: a row where it does not falls back to np.partition)."""
    rows, n = values.shape
    if n < 4096:
        return np.partition(values, k, axis=1)[:, k]
    sample = values[:, :: n // 1024]
    size = sample.shape[1]
    q = k / n
    margin = 5 * math.sqrt(size * q * (1 - q)) + 2  # sample ranks: 5 standard deviations
    ranks = [max(0, math.floor(q * size - margin)), min(size - 1, math.ceil(q * size + margin))]
    lo, hi = np.partition(sample, ranks, axis=1)[:, ranks].T
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
    compute = check_run(num_clients, clients_per_round, compute_seconds)
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
