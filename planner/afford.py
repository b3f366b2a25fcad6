"""What a budget buys of a method's seeded schedule (``planner.schedule``): the rule (the
longest prefix of the rounds within the budget, ``rounds_within_budget``), its closed form for a
schedule that turns steady (``afford``: floss-plan's rows), and the dense reference round that
``N-dense-rounds`` counts in (``dense_reference_round``) (pure Python)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from planner.budget import BUDGET_RTOL
from planner.encoding import message_bytes
from planner.method_spec import MethodSpec
from planner.network import NetworkProfile, fleet_round_seconds
from planner.schedule import ScheduleWalk


def _check_budget(budget_seconds: float | None, budget_bytes: int | None) -> None:
    if (budget_seconds is None) == (budget_bytes is None):
        raise ValueError("give exactly one of budget_seconds and budget_bytes.")
    amount = budget_seconds if budget_seconds is not None else budget_bytes
    if amount is None or not math.isfinite(amount) or amount <= 0:
        raise ValueError(f"a budget must be positive, but got {amount!r}.")


class RoundSpend(Protocol):
    """What a budget counts of a round: its seconds and its bytes (all clients, both ways)."""

    @property
    def seconds(self) -> float: ...

    @property
    def bytes_total(self) -> int: ...


Spent = TypeVar("Spent", bound=RoundSpend)


def rounds_within_budget(
    prices: Iterable[Spent],
    *,
    budget_seconds: float | None,
    budget_bytes: int | None,
    max_rounds: int | None = None,
) -> list[Spent]:
    """The longest prefix of ``prices`` whose cumulative seconds (or bytes: all sampled clients,
    both directions) stay within the budget, at most ``max_rounds`` rounds.

    Seconds are compared with a relative tolerance of ``BUDGET_RTOL`` (so 50 dense rounds buy
    exactly 50 of them despite float sums); bytes exactly.
    """
    _check_budget(budget_seconds, budget_bytes)
    if max_rounds is not None and max_rounds < 0:
        raise ValueError(f"max_rounds must be >= 0, but got {max_rounds}.")
    out: list[Spent] = []
    cum_s = 0.0
    cum_b = 0
    limit_s = None if budget_seconds is None else budget_seconds * (1 + BUDGET_RTOL)
    for price in prices:
        if max_rounds is not None and len(out) >= max_rounds:
            break
        if limit_s is not None:
            if cum_s + price.seconds > limit_s:
                break
            cum_s += price.seconds
        else:
            assert budget_bytes is not None
            if cum_b + price.bytes_total > budget_bytes:
                break
            cum_b += price.bytes_total
        out.append(price)
    return out


@dataclass(frozen=True, kw_only=True)
class Afforded:
    """What a budget buys one method: rounds, totals, and per-round means over those rounds."""

    rounds: int
    total_bytes: int  # all sampled clients, both directions
    total_seconds: float
    mean_bytes_down: float  # per client per round
    mean_bytes_up: float
    mean_seconds: float  # per round
    mean_density: float  # mean k / n of the downloads (mask methods: the mask density)


def afford(
    spec: MethodSpec,
    *,
    network: NetworkProfile,
    seed: int,
    num_clients: int,
    clients_per_round: int,
    compute_seconds: float = 0.0,
    budget_seconds: float | None,
    budget_bytes: int | None,
    max_rounds: int | None = None,
) -> Afforded:
    """Rounds a budget buys: the seeded schedule walked while its cost changes by round, then a
    closed form for the steady rounds (floor(budget left / steady cost)).

    Exact for bytes. Seconds are exact without a bandwidth spread; with one the steady rounds are
    priced by the planner's fleet estimate (the expected slowest of m clients), as FLoSS rows are.
    """
    _check_budget(budget_seconds, budget_bytes)
    walk = ScheduleWalk(
        spec,
        network=network,
        seed=seed,
        num_clients=num_clients,
        clients_per_round=clients_per_round,
        compute_seconds=compute_seconds,
    )
    m = min(clients_per_round, num_clients)
    limit_s = None if budget_seconds is None else budget_seconds * (1 + BUDGET_RTOL)
    rounds = 0
    cum_s = 0.0
    cum_b = 0
    sum_down = sum_up = 0
    sum_density = 0.0
    cap = math.inf if max_rounds is None else max_rounds
    while rounds < cap and not walk.steady:
        price = walk.next()
        if limit_s is not None and cum_s + price.seconds > limit_s:
            break
        if budget_bytes is not None and cum_b + price.bytes_total > budget_bytes:
            break
        rounds += 1
        cum_s += price.seconds
        cum_b += price.bytes_total
        sum_down += sum(price.bytes_down)
        sum_up += sum(price.bytes_up)
        sum_density += price.d_down
    else:
        if rounds < cap:  # steady: the same cost every round from here
            b_down, b_up = walk.steady_bytes()
            per_round_bytes = m * (b_down + b_up)
            seconds = fleet_round_seconds(
                bytes_down=b_down,
                bytes_up=b_up,
                network=network,
                clients_per_round=m,
                compute_seconds=compute_seconds,
            )
            if limit_s is not None:
                more = math.floor(max(limit_s - cum_s, 0.0) / seconds)
                # the float division may land one round either side of the walked sum
                while more > 0 and cum_s + more * seconds > limit_s:
                    more -= 1
            else:
                assert budget_bytes is not None
                more = (budget_bytes - cum_b) // per_round_bytes
            more = int(min(more, cap - rounds))
            rounds += more
            cum_s += more * seconds
            cum_b += more * per_round_bytes
            sum_down += more * m * b_down
            sum_up += more * m * b_up
            density = (walk.k if not spec.uniform else walk.k_down) / spec.n
            sum_density += more * density
    per = max(rounds, 1)
    return Afforded(
        rounds=rounds,
        total_bytes=cum_b,
        total_seconds=cum_s,
        mean_bytes_down=sum_down / (per * m),
        mean_bytes_up=sum_up / (per * m),
        mean_seconds=cum_s / per,
        mean_density=sum_density / per,
    )


@dataclass(frozen=True, kw_only=True)
class ReferenceRound:
    """One dense LoRA round at the reference rank: always the dense encoding, fp32 values."""

    n: int
    bytes_per_client: int  # each direction
    bytes_per_round: int  # all sampled clients, both directions
    seconds: float  # the planner's fleet estimate (expected slowest of m)


def dense_reference_round(
    *, n: int, network: NetworkProfile, clients_per_round: int, compute_seconds: float = 0.0
) -> ReferenceRound:
    """The round that ``N-dense-rounds`` counts in, whatever encoding or precision a run forces."""
    b = message_bytes(n, n, encoding="dense", precision="fp32")
    return ReferenceRound(
        n=n,
        bytes_per_client=b,
        bytes_per_round=clients_per_round * 2 * b,
        seconds=fleet_round_seconds(
            bytes_down=b,
            bytes_up=b,
            network=network,
            clients_per_round=clients_per_round,
            compute_seconds=compute_seconds,
        ),
    )
