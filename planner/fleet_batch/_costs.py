"""Round costs of one run, block by block: what a budget counts (planner.pricing)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from planner.fleet import (
    FleetError,
    FleetSetup,
    check_fleet_method,
    check_run,
)
from planner.fleet_batch._links import _Bytes, link_arrays
from planner.fleet_batch._prices import _prices
from planner.fleet_batch._rounds import _walk
from planner.limits import is_int
from planner.method_spec import MethodSpec
from planner.sampling import sample_clients


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
    priced ``ROUND_BLOCK`` rounds at a time on the shared draws (planner.pricing counts budgets
    with it)."""
    compute = check_run(num_clients, clients_per_round, compute_seconds)
    check_fleet_method(spec.method, setup.density_policy)
    if not is_int(first) or first < 1:
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
