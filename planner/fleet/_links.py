"""Each client's link for the whole run, drawn once from (seed, num_clients, fleet).

The one source of the links: ``link_draws`` makes the seeded draws, ``assign_links`` builds a
``ClientLink`` per client from them and ``planner.fleet_batch.link_arrays`` the planner's arrays.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache

from planner.fleet._data import ClientLink, Fleet, FleetError
from planner.limits import is_int


@lru_cache(maxsize=32)
def assign_links(fleet: Fleet, num_clients: int, seed: int) -> tuple[ClientLink, ...]:
    """Client c's link for the whole run, a function of (fleet, num_clients, seed) alone.

    Tiers: each tier gets its share of the clients by largest remainder (exactly 6/3/1 of 10 for
    60/30/10 %), the labels are shuffled, then client c's two links are the tier's medians times
    one lognormal factor exp(N(0, sigma)) (as ``planner.network.client_bandwidth_factors``).
    Measured: the rows in seeded random order, client c the c-th (in passes when the population
    outnumbers the rows, so every row serves floor or ceil of num_clients / rows clients).
    """
    picks, factors = link_draws(fleet, num_clients, seed)
    if fleet.measured:
        return tuple(fleet.measured[i] for i in picks)
    links = []
    for i, f in zip(picks, factors, strict=True):
        t = fleet.tiers[i]
        links.append(
            ClientLink(
                tier=t.name, down_mbps=t.down_mbps * f, up_mbps=t.up_mbps * f, rtt_ms=t.rtt_ms
            )
        )
    return tuple(links)


def link_draws(fleet: Fleet, num_clients: int, seed: int) -> tuple[list[int], list[float]]:
    """``assign_links``'s seeded draws: per client the measured row it takes (factors empty), or
    its tier's index and its lognormal factor (1.0 without spread). The one source of the links:
    ``assign_links`` builds them, ``planner.fleet_batch.link_arrays`` the planner's arrays."""
    if not is_int(num_clients) or num_clients < 1:
        raise FleetError(f"num_clients must be an integer >= 1, but got {num_clients!r}.")
    rng = random.Random(f"floss/fleet/{seed}/{num_clients}")
    if fleet.measured:
        order: list[int] = []
        while len(order) < num_clients:
            perm = list(range(len(fleet.measured)))
            rng.shuffle(perm)
            order += perm
        return order[:num_clients], []
    total = math.fsum(t.weight for t in fleet.tiers)
    quotas = [t.weight / total * num_clients for t in fleet.tiers]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: num_clients - sum(counts)]:
        counts[i] += 1
    labels = [i for i, c in enumerate(counts) for _ in range(c)]
    rng.shuffle(labels)
    sigmas = [t.spread_sigma for t in fleet.tiers]
    gauss, exp = rng.gauss, math.exp
    factors = [exp(gauss(0.0, sigmas[i])) if sigmas[i] else 1.0 for i in labels]
    return labels, factors
