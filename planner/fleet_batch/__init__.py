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

from planner.fleet_batch._costs import ROUND_BLOCK, RoundCost, fleet_round_costs
from planner.fleet_batch._deadlines import (
    default_deadlines,
    dense_reference_seconds_fast,
    kth_smallest,
)
from planner.fleet_batch._estimate import estimate_fleet_many
from planner.fleet_batch._links import LinkArrays, client_seconds_array, link_arrays, sampled_ids
from planner.fleet_batch._machine import (
    CHUNK_ELEMENTS,
    THREADS_ENV,
    keep_freed_memory,
    threads,
)

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
