"""The planner's estimate of one configuration on a fleet: a seeded Monte Carlo over the
trainer's own rounds (``estimate_fleet``, the reference walk that ``planner.fleet_batch``'s fast
path is tested equal to), and the deadline the planner assumes when none is given."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from planner.budget import BUDGET_RTOL
from planner.fleet._clients import client_pricer
from planner.fleet._data import Fleet, FleetError
from planner.fleet._links import assign_links
from planner.fleet._rounds import check_compute_seconds, price_fleet_rounds
from planner.fleet._setup import DEFAULT_OVER_SELECTION, FleetSetup
from planner.limits import check_derived, is_int
from planner.method_spec import MethodSpec, uniform_densities

ESTIMATE_ROUNDS = 500  # seeded rounds the planner walks per policy before extrapolating


def default_deadline(
    spec: MethodSpec,
    fleet: Fleet,
    *,
    seed: int,
    num_clients: int,
    compute_seconds: float = 0.0,
    over_selection: float = DEFAULT_OVER_SELECTION,
) -> float:
    """The deadline the planner assumes when none is given: the 1/over_selection quantile
    (nearest rank) of the population's client seconds at the config's uniform densities, so that
    over-selecting ceil(m * over_selection) clients brings about m by the deadline."""
    uniform = FleetSetup(fleet=fleet, over_selection=over_selection)
    pricer = client_pricer(spec, uniform, check_compute_seconds(compute_seconds))
    everybody = pricer.clients(fleet, num_clients, seed, range(num_clients))
    times = sorted(p.seconds for p in everybody)
    q = 1.0 / uniform.over_selection
    quantile = times[max(0, math.ceil(round(q * len(times), 9)) - 1)]
    try:
        return check_derived(
            quantile,
            "the default deadline (the clients' seconds at the 1/over-selection quantile)",
            hint="give a deadline in seconds (--deadline)",
        )
    except ValueError as exc:
        raise FleetError(str(exc)) from None


@dataclass(frozen=True, kw_only=True)
class TierEstimate:
    """One tier's clients over the estimate's rounds (each sampled client once per round)."""

    tier: str
    sampled: int  # client-rounds of this tier
    d_down: float  # median density encoded at
    d_up: float
    d_down_min: float
    d_down_max: float
    d_up_min: float
    d_up_max: float
    late: float  # share of them past the deadline (0.0 without one)


@dataclass(frozen=True, kw_only=True)
class FleetEstimate:
    """The planner's answer for one configuration under one (round, density) policy pair."""

    method: str
    n: int
    d_down: float  # the config's densities (bandwidth: the caps)
    d_up: float
    round_policy: str
    density_policy: str
    deadline_seconds: float | None
    clients_per_round: int
    sampled_per_round: int
    rounds_walked: int  # R: seeded rounds priced round by round
    mean_seconds: float  # per round, over the R rounds
    seconds_stderr: float  # standard error of that mean
    mean_bytes: float  # per round, all sampled clients, both directions (dropped uploads: 0)
    mean_kept: float  # clients aggregated per round
    late_fraction: float  # sampled clients with t_c > deadline (0.0 without one)
    dropped_fraction: float  # sampled clients whose upload is not aggregated
    empty_rounds: float  # share of rounds nobody made (no server step)
    rounds: int  # affordable under the budget (and max_rounds)
    exact: bool  # True: the budget ran out within the R walked rounds (rounds is exact)
    total_seconds: float
    total_bytes: float
    tiers: tuple[TierEstimate, ...]
    estimate: str  # the method, in words


def check_estimate(
    *, budget_seconds: float | None, budget_bytes: int | None, max_rounds: int | None, rounds: int
) -> None:
    """An estimate's budget (exactly one of seconds and bytes), round cap and walk length, as
    ``estimate_fleet`` and its fast path (``planner.fleet_batch``) take them."""
    if (budget_seconds is None) == (budget_bytes is None):
        raise ValueError("give exactly one of budget_seconds and budget_bytes.")
    if not is_int(rounds) or rounds < 2:
        raise FleetError(f"estimate rounds must be an integer >= 2, but got {rounds!r}.")
    if max_rounds is not None and max_rounds < 0:
        raise FleetError(f"max_rounds must be >= 0, but got {max_rounds}.")


def estimate_fleet(
    spec: MethodSpec,
    setup: FleetSetup,
    *,
    seed: int,
    num_clients: int,
    clients_per_round: int,
    compute_seconds: float = 0.0,
    budget_seconds: float | None,
    budget_bytes: int | None,
    max_rounds: int | None = None,
    rounds: int = ESTIMATE_ROUNDS,
) -> FleetEstimate:
    """Seeded Monte Carlo over the trainer's own rounds 1..R (``fleet_round`` at ``seed``): what
    the budget buys is counted round by round while it lasts within them (exact: the trainer's
    run prices the very same rounds), and beyond them at their mean cost (floor of the budget
    left over the mean seconds, or bytes, per round). Means, shares and tier densities are over
    the R rounds. ``seconds_stderr`` is the standard error of the mean round seconds: the
    extrapolated rounds carry about that relative error (docs/fleets.md states the tolerance)."""
    check_estimate(
        budget_seconds=budget_seconds,
        budget_bytes=budget_bytes,
        max_rounds=max_rounds,
        rounds=rounds,
    )
    limit_s = None if budget_seconds is None else budget_seconds * (1 + BUDGET_RTOL)
    deadline = setup.deadline_seconds
    links = assign_links(setup.fleet, num_clients, seed)
    cap = math.inf if max_rounds is None else max_rounds
    seconds: list[float] = []
    cum_s = 0.0
    cum_b = walk_bytes = 0
    within: int | None = None  # rounds bought, once the budget ran out within the walk
    late = dropped = sampled_total = kept_total = empty = 0
    by_tier: dict[str, list[tuple[float, float, bool]]] = {t: [] for t in setup.fleet.tier_names}
    for price in price_fleet_rounds(
        spec,
        setup,
        seed=seed,
        num_clients=num_clients,
        clients_per_round=clients_per_round,
        compute_seconds=compute_seconds,
    ):
        if len(seconds) == rounds:
            break
        if within is None:
            over = (
                cum_s + price.seconds > limit_s
                if limit_s is not None
                else cum_b + price.bytes_total > (budget_bytes or 0)
            )
            if over or len(seconds) >= cap:
                within = len(seconds)
        seconds.append(price.seconds)
        walk_bytes += price.bytes_total
        if within is None:
            cum_s += price.seconds
            cum_b += price.bytes_total
        kept = set(price.kept or ())
        kept_total += len(kept)
        empty += not kept
        sampled_total += len(price.clients)
        for c, t, dd, du in zip(
            price.clients,
            price.client_seconds,
            price.client_d_down,
            price.client_d_up,
            strict=True,
        ):
            is_late = deadline is not None and t > deadline
            late += is_late
            dropped += c not in kept
            by_tier[links[c].tier].append((dd, du, is_late))
    walked = len(seconds)
    mean_s = math.fsum(seconds) / walked
    stderr = statistics.stdev(seconds) / math.sqrt(walked)
    mean_b = walk_bytes / walked  # over the whole walk (cum_b stops with the budget)
    if within is not None:
        bought, exact = within, True
        total_s, total_b = cum_s, float(cum_b)
    else:
        if limit_s is not None:
            more = math.floor(max(limit_s - cum_s, 0.0) / mean_s) if mean_s > 0 else 0
        else:
            more = math.floor(max((budget_bytes or 0) - cum_b, 0) / mean_b) if mean_b > 0 else 0
        more = int(min(more, cap - walked))
        bought, exact = walked + more, False
        total_s, total_b = cum_s + more * mean_s, cum_b + more * mean_b
    return FleetEstimate(
        method=spec.method,
        n=spec.n,
        d_down=uniform_densities(spec)[0],
        d_up=uniform_densities(spec)[1],
        round_policy=setup.round_policy,
        density_policy=setup.density_policy,
        deadline_seconds=deadline,
        clients_per_round=clients_per_round,
        sampled_per_round=setup.sampled_per_round(clients_per_round, num_clients),
        rounds_walked=walked,
        mean_seconds=mean_s,
        seconds_stderr=stderr,
        mean_bytes=mean_b,
        mean_kept=kept_total / walked,
        late_fraction=late / sampled_total,
        dropped_fraction=dropped / sampled_total,
        empty_rounds=empty / walked,
        rounds=bought,
        exact=exact,
        total_seconds=total_s,
        total_bytes=total_b,
        tiers=tuple(_tier_estimate(t, rows) for t, rows in by_tier.items() if rows),
        estimate=(
            f"seeded Monte Carlo over {walked} rounds (the trainer's rounds 1..{walked} at seed "
            f"{seed}); rounds within them exact, beyond them at their mean"
        ),
    )


def _tier_estimate(tier: str, rows: list[tuple[float, float, bool]]) -> TierEstimate:
    downs = [r[0] for r in rows]
    ups = [r[1] for r in rows]
    return TierEstimate(
        tier=tier,
        sampled=len(rows),
        d_down=statistics.median(downs),
        d_up=statistics.median(ups),
        d_down_min=min(downs),
        d_down_max=max(downs),
        d_up_min=min(ups),
        d_up_max=max(ups),
        late=sum(r[2] for r in rows) / len(rows),
    )
