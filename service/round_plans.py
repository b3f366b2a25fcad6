"""Round plans: the next round of a running federation, client by client, on the links the
clients measured.

The round is priced by ``planner.fleet``'s own functions, the ones floss-train's fleet rounds and
``floss-plan --fleet`` use: the density policy gives each client its (d_down, d_up)
(``client_densities``: uniform, tiered by the client's tier, bandwidth by its link and the
deadline), bytes come from ``planner.encoding.resolve_encoding`` and seconds from
``client_seconds``; the round policy settles whose upload the server keeps (``settle_round``:
sync keeps everyone, deadline the first ``clients_per_round`` arrivals by the deadline). The
clients given are the fleet (``measured_fleet``), so a round plan equals ``fleet_round`` of a run
whose sampled clients have these links (a test pins it). Ties in arrival go to the client given
first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from planner.encoding import kept_entries, resolve_encoding
from planner.network import transfer_seconds
from service.errors import FieldError
from service.round_plan_schemas import RoundPlanRequest, RunSpec
from service.schemas import given_fields

MAX_ROUND_TIERS = 64  # distinct client tiers in one round plan


@dataclass(frozen=True)
class RoundPolicy:
    """How the next round treats its clients: a round policy (sync, deadline) and a density
    policy (uniform, tiered, bandwidth), docs/fleets.md; each from the request, else the
    study's recommendation, else sync/uniform."""

    density: str = "uniform"
    round: str = "sync"
    deadline: float | None = None
    clients_per_round: int | None = None  # deadline: the uploads waited for (None: all given)
    tier_densities: str | None = None
    density_grid: str | None = None
    adapt_down: bool = False


def round_policy_of(req: RoundPlanRequest, study: dict[str, Any] | None = None) -> RoundPolicy:
    """The request's policy fields over the study's (``study``: the recommended candidate's
    round_policy, density_policy and deadline with its run config's fleet fields)."""
    base = study or {}

    def pick(field: str, key: str) -> Any:
        value = getattr(req, field)
        return base.get(key) if value is None else value

    return RoundPolicy(
        density=str(pick("policy", "density_policy") or "uniform"),
        round=str(pick("round_policy", "round_policy") or "sync"),
        deadline=pick("deadline", "deadline"),
        clients_per_round=pick("clients_per_round", "clients_per_round"),
        tier_densities=pick("tier_densities", "tier_densities"),
        density_grid=pick("density_grid", "density_grid"),
        adapt_down=bool(pick("adapt_down", "adapt_down") or False),
    )


def _policy_field(message: str) -> str:
    """The round-plan field a planner.fleet message is about."""
    low = message.lower()
    for words, field in (
        ("tier densit", "tier_densities"),
        ("density grid", "density_grid"),
        ("density policy", "policy"),
        ("fleets support", "run.method"),
        ("deadline", "deadline"),
    ):
        if words in low:
            return field
    return "policy"


def _fleet_setup(req: RoundPlanRequest, run: RunSpec, policy: RoundPolicy) -> Any:
    """The planner's FleetSetup for this round: the clients' measured links as the fleet."""
    from planner.fleet import (
        DEFAULT_GRID,
        MEASURED_TIER,
        ClientLink,
        FleetSetup,
        check_fleet_method,
        measured_fleet,
        parse_grid,
        parse_tier_densities,
    )

    distinct = {c.tier for c in req.clients}
    if len(distinct) > MAX_ROUND_TIERS:  # one derived tier each: keep the fleet small
        raise FieldError(
            "clients",
            f"the clients name {len(distinct)} tiers; a round plan takes at most {MAX_ROUND_TIERS}",
            f"at most {MAX_ROUND_TIERS} distinct tier values",
        )
    links = tuple(
        ClientLink(
            tier=c.tier or MEASURED_TIER,
            down_mbps=float(c.down_mbps),
            up_mbps=float(c.up_mbps),
            rtt_ms=float(c.rtt_ms),
        )
        for c in req.clients
    )
    tiers: tuple[tuple[str, float, float], ...] = ()
    try:
        check_fleet_method(run.method, policy.density)
        if policy.density == "tiered":
            if policy.tier_densities is None:
                raise FieldError("tier_densities", "tiered densities need tier_densities")
            tiers = parse_tier_densities(policy.tier_densities)
            named = {t for t, _, _ in tiers}
            for i, c in enumerate(req.clients):
                if c.tier is None or c.tier not in named:
                    raise FieldError(
                        f"clients.{i}.tier",
                        f"client {c.id!r} has tier {c.tier!r}, which tier_densities "
                        f"({policy.tier_densities}) does not name",
                        f"one of {', '.join(sorted(named))}",
                    )
            present = {link.tier for link in links}
            tiers = tuple(t for t in tiers if t[0] in present)  # a round may miss a tier
        if policy.round != "deadline" and req.clients_per_round is not None:
            raise FieldError(
                "clients_per_round",
                "applies to deadline rounds only (a sync round waits for every client)",
                "null, or round_policy deadline",
            )
        return FleetSetup(
            fleet=measured_fleet(links, name="round-plan"),
            round_policy=policy.round,
            deadline_seconds=policy.deadline,
            density_policy=policy.density,
            tier_densities=tiers,
            grid=DEFAULT_GRID if policy.density_grid is None else parse_grid(policy.density_grid),
            adapt_down=policy.adapt_down,
        )
    except FieldError:
        raise
    except ValueError as exc:
        raise FieldError(_policy_field(str(exc)), str(exc)) from None


def check_options(req: RoundPlanRequest, run: RunSpec, policy: RoundPolicy) -> None:
    """A request field without effect under the round's policy (``planner.options``' table:
    tier densities need the tiered policy, a density grid the bandwidth one, ...)."""
    from planner import options
    from planner.errors import UnusedOption

    context = options.Context(
        fleet=True,  # the clients given are the fleet
        round_policies=frozenset({policy.round}),
        density_policies=frozenset({policy.density}),
        methods=frozenset({run.method}),
        deadline=policy.deadline is not None,
    )
    try:
        options.check(context, given_fields(req), spell=str)
    except UnusedOption as exc:
        raise FieldError(exc.name, f"needs {exc.rule.needs}") from None


def round_plan(
    req: RoundPlanRequest, *, run: RunSpec, n: int, source: str, policy: RoundPolicy
) -> dict[str, Any]:
    """Each client's densities, bytes and seconds for the next round under ``policy``, and
    whose upload the server keeps: ``planner.fleet``'s client_densities and settle_round, the
    functions floss-train's fleet rounds and floss-plan --fleet price with."""
    from planner.fleet import client_densities, client_seconds, settle_round

    check_options(req, run, policy)
    setup = _fleet_setup(req, run, policy)
    d_down, d_up = (1.0, 1.0) if run.method == "dense" else (float(run.d_down), float(run.d_up))
    p_down, p_up = run.precision_down or run.precision, run.precision_up or run.precision
    messages: dict[tuple[float, str], tuple[int, str, int]] = {}

    def message(density: float, precision: str) -> tuple[int, str, int]:
        """(k, encoding, bytes) of a top-k message at ``density``."""
        key = (density, precision)
        if key not in messages:
            k = kept_entries(n, density)
            enc, size = resolve_encoding(n, k, encoding=run.encoding, precision=precision)
            messages[key] = (k, enc, size)
        return messages[key]

    clients: list[dict[str, Any]] = []
    for c, link in zip(req.clients, setup.fleet.measured, strict=True):
        compute = req.compute_seconds if c.compute_seconds is None else c.compute_seconds
        dd, du = client_densities(
            setup,
            link,
            d_down=d_down,
            d_up=d_up,
            bytes_down=lambda d: message(d, p_down)[2],
            bytes_up=lambda d: message(d, p_up)[2],
            compute_seconds=compute,
        )
        k_down, enc_down, b_down = message(dd, p_down)
        k_up, enc_up, b_up = message(du, p_up)
        clients.append(
            {
                "id": c.id,
                "tier": c.tier,
                "d_down": dd,
                "d_up": du,
                "k_down": k_down,
                "k_up": k_up,
                "bytes_down": b_down,
                "bytes_up": b_up,
                "encoding_down": enc_down,
                "encoding_up": enc_up,
                "seconds_down": transfer_seconds(b_down, c.down_mbps),
                "seconds_up": transfer_seconds(b_up, c.up_mbps),
                "seconds": client_seconds(
                    link, bytes_down=b_down, bytes_up=b_up, compute_seconds=compute
                ),
            }
        )
    m = len(clients) if policy.clients_per_round is None else int(policy.clients_per_round)
    # ties in arrival are broken by the order the clients were given (their index)
    settled = settle_round(
        list(range(len(clients))),
        [c["seconds"] for c in clients],
        clients_per_round=m,
        setup=setup,
    )
    kept = set(settled.kept)
    for i, priced in enumerate(clients):
        priced["kept"] = i in kept
    slowest = max(clients, key=lambda c: c["seconds"])
    return {
        "round": req.round,
        "policy": policy.density,
        "round_policy": policy.round,
        "deadline": setup.deadline_seconds,
        "clients_per_round": min(m, len(clients)),
        "method": run.method,
        "rank": run.rank,
        "n": n,
        "precision_down": p_down,
        "precision_up": p_up,
        "source": source,
        "clients": clients,
        "kept": [c["id"] for c in clients if c["kept"]],
        "dropped": [c["id"] for c in clients if not c["kept"]],
        # sync: the slowest client sets the pace; deadline: the m-th arrival, or the deadline
        "seconds": settled.seconds,
        "slowest": slowest["id"],
        # every download, and the uploads the server keeps (a dropped client's is not taken)
        "bytes_total": sum(c["bytes_down"] + (c["bytes_up"] if c["kept"] else 0) for c in clients),
    }
