"""One fleet round, priced as the trainer plays it (``fleet_round``; docs/fleets.md has the
formulas).

* the clients are sampled with the trainer's seeded sampling (``planner.sampling``): m of them
  under ``sync``, ceil(m * over_selection) under ``deadline``;
* each sampled client c is priced on its own link (``planner.fleet._clients``: its densities
  under the density policy, its messages' bytes, its seconds t_c);
* ``settle_round`` decides whose upload is aggregated and how long the round lasts: ``sync``
  keeps everybody and lasts max t_c; ``deadline`` keeps the first m arrivals by the deadline D.

The server averages the kept uploads as FLASC does, g = (1/|K|) sum_{c in K} decoded_c (each
decoded_c dense with zeros where c sent nothing); ``trainer.round.server_aggregate`` does this.
Also here: what the run's clients are served (``served_shares``), the fleet's dense reference
round (what ``N-dense-rounds`` counts in) and the check that some client can meet a deadline.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from planner.fleet._clients import client_pricer
from planner.fleet._data import FleetError, in_range
from planner.fleet._links import assign_links
from planner.fleet._setup import FleetSetup, format_density
from planner.limits import is_int
from planner.method_spec import MethodSpec
from planner.sampling import sample_clients
from planner.schedule import RoundPrice


@dataclass(frozen=True)
class Settled:
    """Whose upload the server aggregates (sorted ids) and how long the round lasted."""

    kept: tuple[int, ...]
    seconds: float


def settle_round(
    clients: Sequence[int], seconds: Sequence[float], *, clients_per_round: int, setup: FleetSetup
) -> Settled:
    """sync: everybody, max t_c. deadline: arrivals sorted by (t_c, client id); K = the first m
    with t_c <= D; the round lasts the m-th arrival's time when m arrive by D, else max t_c when
    every sampled client arrived by D, else D."""
    if len(clients) != len(seconds):
        raise ValueError(f"{len(clients)} clients but {len(seconds)} client seconds.")
    if not clients:
        raise ValueError("a round needs at least one sampled client.")
    if setup.round_policy == "sync":
        return Settled(kept=tuple(sorted(clients)), seconds=max(seconds))
    deadline = setup.deadline_seconds
    assert deadline is not None
    arrivals = sorted(zip(seconds, clients, strict=True))
    on_time = [(t, c) for t, c in arrivals if t <= deadline]
    kept = on_time[:clients_per_round]
    if len(on_time) >= clients_per_round:
        finish = kept[-1][0]
    elif len(on_time) == len(arrivals):
        finish = arrivals[-1][0]
    else:
        finish = deadline
    return Settled(kept=tuple(sorted(c for _, c in kept)), seconds=finish)


def check_compute_seconds(compute_seconds: object) -> float:
    """A client's compute seconds a round, within its range (``planner.limits``)."""
    return in_range(compute_seconds, "compute_seconds", "compute seconds")


def check_run(num_clients: int, clients_per_round: int, compute_seconds: float) -> float:
    """A run's population and clients a round (integers >= 1); its compute seconds, checked."""
    for name, value in (("num_clients", num_clients), ("clients_per_round", clients_per_round)):
        if not is_int(value) or value < 1:
            raise FleetError(f"{name} must be an integer >= 1, but got {value!r}.")
    return check_compute_seconds(compute_seconds)


def _mean(values: Sequence[float]) -> float:
    """The mean; exactly the value when all are equal (a uniform round reports its density)."""
    if not values:
        return 0.0
    first = values[0]
    if all(v == first for v in values):
        return first
    return math.fsum(values) / len(values)


def fleet_round(
    spec: MethodSpec,
    setup: FleetSetup,
    *,
    seed: int,
    round_: int,
    num_clients: int,
    clients_per_round: int,
    compute_seconds: float,
) -> RoundPrice:
    """Round ``round_`` (1-based) of a fleet run, a pure function of its arguments.

    ``bytes_up`` is 0 for a client not kept; ``bytes_total`` = every download + the kept uploads;
    ``d_down`` / ``d_up`` = the mean k/n sent (downloads over the sampled, uploads over the kept;
    0.0 when nobody is kept) and ``client_d_down`` / ``client_d_up`` the densities each client
    encodes at; ``seconds`` = the settled round's.
    """
    compute = check_run(num_clients, clients_per_round, compute_seconds)
    if not is_int(round_) or round_ < 1:
        raise FleetError(f"round must be an integer >= 1, but got {round_!r}.")
    pricer = client_pricer(spec, setup, compute)
    count = setup.sampled_per_round(clients_per_round, num_clients)
    sampled = sample_clients(seed, round_, num_clients, count)
    prices = pricer.clients(setup.fleet, num_clients, seed, sampled)
    settled = settle_round(
        sampled, [p.seconds for p in prices], clients_per_round=clients_per_round, setup=setup
    )
    kept = set(settled.kept)
    down = [p.bytes_down for p in prices]
    up = [p.bytes_up if c in kept else 0 for c, p in zip(sampled, prices, strict=True)]
    n = spec.n
    return RoundPrice(
        round=round_,
        clients=list(sampled),
        bytes_down=down,
        bytes_up=up,
        d_down=_mean([p.k_down / n for p in prices]),
        d_up=_mean([p.k_up / n for c, p in zip(sampled, prices, strict=True) if c in kept]),
        seconds=settled.seconds,
        bytes_total=sum(down) + sum(up),
        kept=list(settled.kept),
        client_seconds=[p.seconds for p in prices],
        client_d_down=[p.d_down for p in prices],
        client_d_up=[p.d_up for p in prices],
    )


def price_fleet_rounds(
    spec: MethodSpec,
    setup: FleetSetup,
    *,
    seed: int,
    num_clients: int,
    clients_per_round: int,
    compute_seconds: float = 0.0,
) -> Iterator[RoundPrice]:
    """Rounds 1, 2, ... of a fleet run (an unbounded generator of ``fleet_round``)."""
    check_run(num_clients, clients_per_round, compute_seconds)
    r = 0
    while True:
        r += 1
        yield fleet_round(
            spec,
            setup,
            seed=seed,
            round_=r,
            num_clients=num_clients,
            clients_per_round=clients_per_round,
            compute_seconds=compute_seconds,
        )


DENSE_REFERENCE_ROUNDS = 100  # rounds the fleet's dense reference round is averaged over


def served_shares(
    spec: MethodSpec,
    setup: FleetSetup,
    *,
    seed: int,
    num_clients: int,
    compute_seconds: float = 0.0,
) -> tuple[tuple[float, float], ...]:
    """((d_down, share), ...): the download densities the run's clients receive under the setup's
    density policy, each with the share of the run's ``num_clients`` clients (their links drawn
    once, ``assign_links``) that receive it; largest density first, shares summing to 1. One
    entry unless clients get their own d_down (tiered, or bandwidth with ``adapt_down``). The
    trainer scores the served model as this mixture (docs/fleets.md, "What is evaluated")."""
    compute = check_run(num_clients, 1, compute_seconds)
    pricer = client_pricer(spec, setup, compute)
    prices = pricer.clients(setup.fleet, num_clients, seed, range(num_clients))
    counts: dict[float, int] = {}
    for p in prices:
        counts[p.d_down] = counts.get(p.d_down, 0) + 1
    return tuple((d, counts[d] / num_clients) for d in sorted(counts, reverse=True))


def dense_reference_seconds(
    setup: FleetSetup,
    *,
    n: int,
    seed: int,
    num_clients: int,
    clients_per_round: int,
    compute_seconds: float = 0.0,
    rounds: int = DENSE_REFERENCE_ROUNDS,
) -> float:
    """The seconds of the round ``N-dense-rounds`` counts in on a fleet: the mean over the first
    ``rounds`` seeded rounds of dense LoRA (n entries at the reference rank, dense fp32 values)
    under sync rounds and uniform densities, whatever the run's own policies."""
    spec = MethodSpec(method="dense", n=n, encoding="dense", precision="fp32")
    sync = FleetSetup(fleet=setup.fleet)
    prices = price_fleet_rounds(
        spec,
        sync,
        seed=seed,
        num_clients=num_clients,
        clients_per_round=clients_per_round,
        compute_seconds=compute_seconds,
    )
    return math.fsum(next(prices).seconds for _ in range(rounds)) / rounds


def check_deadline_reachable(
    spec: MethodSpec,
    setup: FleetSetup,
    *,
    seed: int,
    num_clients: int,
    compute_seconds: float = 0.0,
) -> None:
    """A deadline that no client of the run can meet at its densities is one line (FleetError):
    every deadline round would end empty, every bandwidth client would be late."""
    if setup.deadline_seconds is None or (
        setup.round_policy != "deadline" and setup.density_policy != "bandwidth"
    ):
        return
    pricer = client_pricer(spec, setup, check_compute_seconds(compute_seconds))
    links = assign_links(setup.fleet, num_clients, seed)
    best = min((pricer.client(link) for link in set(links)), key=lambda p: p.seconds)
    if best.seconds > setup.deadline_seconds:
        raise FleetError(
            f"deadline {setup.deadline_seconds:g} s: no client of fleet {setup.fleet.name!r} can "
            f"meet it (the fastest needs {best.seconds:.4g} s at d_down {format_density(best.d_down)}, "
            f"d_up {format_density(best.d_up)})."
        )
