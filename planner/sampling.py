"""Per-round randomness, one source for the trainer and the planner (pure Python).

Every random choice of a round is a function of (seed, round, client) alone, so a resumed run
draws what an uninterrupted one would, and the planner can price the very clients the trainer
will sample. ``round_draws`` is exactly the trainer's sampling: the m clients of round r, sorted,
then one bandwidth factor per sampled client from the same generator.
"""

from __future__ import annotations

import random
from functools import lru_cache

from planner.network import NetworkProfile, client_bandwidth_factors


def round_seed(seed: int, round_: int, client: int = -1) -> int:
    """A 63-bit seed that depends only on (seed, round, client)."""
    return random.Random(f"floss/{seed}/{round_}/{client}").getrandbits(63)


def round_draws(
    *, seed: int, round_: int, num_clients: int, clients_per_round: int, network: NetworkProfile
) -> tuple[list[int], list[float]]:
    """(sampled client ids, sorted; their bandwidth factors) of 1-based round ``round_``."""
    if num_clients < 1:
        raise ValueError(f"num_clients must be at least 1, but got {num_clients}.")
    if clients_per_round < 1:
        raise ValueError(f"clients_per_round must be at least 1, but got {clients_per_round}.")
    sampled, rng = _sample(seed, round_, num_clients, clients_per_round)
    factors = client_bandwidth_factors(network, len(sampled), rng)
    return sampled, factors


def _sample(
    seed: int, round_: int, num_clients: int, count: int
) -> tuple[list[int], random.Random]:
    """The round's client ids (sorted) and the generator after drawing them."""
    if num_clients < 1:
        raise ValueError(f"num_clients must be at least 1, but got {num_clients}.")
    if count < 1:
        raise ValueError(f"clients per round must be at least 1, but got {count}.")
    rng = random.Random(_round_seed(seed, round_))
    return sorted(rng.sample(range(num_clients), min(count, num_clients))), rng


@lru_cache(maxsize=1 << 12)
def _round_seed(seed: int, round_: int) -> int:
    """``round_seed(seed, round_)`` memoised: a fleet plan samples each round at m (sync) and at
    ceil(m * over_selection) (deadline) from the same generator seed."""
    return round_seed(seed, round_)


@lru_cache(maxsize=1 << 16)
def sample_clients(seed: int, round_: int, num_clients: int, count: int) -> tuple[int, ...]:
    """The ``count`` client ids of round ``round_`` (sorted), drawn as ``round_draws`` draws its
    ids: with ``count`` = m the very same clients. A fleet round over-selects with a larger
    ``count`` from the same generator (planner.fleet)."""
    return tuple(_sample(seed, round_, num_clients, count)[0])


@lru_cache(maxsize=1 << 16)
def cached_draws(
    seed: int, round_: int, num_clients: int, clients_per_round: int, network: NetworkProfile
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """``round_draws`` memoised (the planner walks the same draws for many configurations)."""
    sampled, factors = round_draws(
        seed=seed,
        round_=round_,
        num_clients=num_clients,
        clients_per_round=clients_per_round,
        network=network,
    )
    return tuple(sampled), tuple(factors)
