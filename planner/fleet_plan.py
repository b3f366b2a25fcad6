"""``floss-plan --fleet``: every configuration of the plan's grid under every policy pair asked
for, estimated at once (``planner.fleet_batch``), with the short list (``planner.fleet_shortlist``).

Above ``planner.plan`` (it reads ``PlanSettings``) and above the fleet's fast path; the fleet
itself (``planner.fleet``) stands below both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from planner.budget import resolve_budget
from planner.fleet import (
    DEFAULT_GRID,
    DEFAULT_OVER_SELECTION,
    DENSE_REFERENCE_ROUNDS,
    DENSITY_POLICIES,
    ESTIMATE_ROUNDS,
    FLEET_METHODS,
    ROUND_POLICIES,
    Fleet,
    FleetError,
    FleetEstimate,
    FleetSetup,
    check_deadline_reachable,
    check_fleet_method,
    check_run,
    finite_number,
)
from planner.fleet_batch import (
    default_deadlines,
    dense_reference_seconds_fast,
    estimate_fleet_many,
    link_arrays,
)
from planner.fleet_shortlist import (
    DEFAULT_DROP_SHARE,
    fleet_short_list,
    fleet_up_slowdown,
)
from planner.method_spec import MethodSpec, wire_spec
from planner.plan_rows import adapter_size
from planner.plan_types import PlanSettings, heuristic_pairs

MAX_PLAN_CLIENTS = 1_000_000  # a fleet plan draws every client's link (~100 bytes each)


@dataclass(frozen=True, kw_only=True)
class FleetRow:
    """One row of a fleet plan: a configuration, its precisions, and its estimate."""

    rank: int
    precision_down: str
    precision_up: str
    deadline_default: bool  # True: the deadline is default_deadline's, not the user's
    estimate: FleetEstimate
    recommended: bool = False  # on the short list (planner.fleet_shortlist)
    why: str = ""  # the short list's reasons


@dataclass(frozen=True, kw_only=True)
class FleetPlan:
    fleet: Fleet
    settings: PlanSettings
    rows: list[FleetRow]
    budget_seconds: float | None
    budget_bytes: int | None
    dense_reference_seconds: float  # the fleet's dense round (N-dense-rounds counts in it)
    dense_reference_n: int
    rounds_walked: int
    over_selection: float
    grid: tuple[float, ...]
    adapt_down: bool
    up_slowdown: float = 1.0  # S of the thesis heuristic on this fleet (fleet_up_slowdown)
    drop_share: float = 0.3  # short-listed deadline rows dropping more uploads are flagged
    short_list: tuple[int, ...] = ()  # indices of the recommended rows, in the list's order


def default_density_policies(tier_densities: Sequence[object]) -> tuple[str, ...]:
    """uniform and bandwidth; tiered too when tier densities are given."""
    return ("uniform", "bandwidth", "tiered") if tier_densities else ("uniform", "bandwidth")


def plan_fleet(
    settings: PlanSettings,
    *,
    fleet: Fleet,
    round_policies: Sequence[str] = ROUND_POLICIES,
    density_policies: Sequence[str] | None = None,
    deadline_seconds: float | None = None,
    over_selection: float = DEFAULT_OVER_SELECTION,
    tier_densities: tuple[tuple[str, float, float], ...] = (),
    grid: tuple[float, ...] = DEFAULT_GRID,
    adapt_down: bool = False,
    rounds: int = ESTIMATE_ROUNDS,
    drop_share: float | None = None,
) -> FleetPlan:
    """``estimate_fleet`` for each configuration of ``settings`` (methods x ranks x d_down x
    d_up x precision pairs, plus the thesis heuristic's at the reference rank; dense and ffa once
    per rank) under each (density, round) policy pair: dense and ffa under uniform only; and the
    short list (``planner.fleet_shortlist``). Without ``deadline_seconds`` each configuration
    gets ``default_deadline`` at its own densities (a deadline given is checked: one no client
    can meet is one line). All configurations are estimated at once
    (``planner.fleet_batch.estimate_fleet_many``: the same numbers as the walk, row by row)."""
    policies = tuple(density_policies or default_density_policies(tier_densities))
    for policy in policies:
        if policy not in DENSITY_POLICIES:
            raise FleetError(
                f"density policy must be one of {', '.join(DENSITY_POLICIES)}, but got {policy!r}."
            )
    for policy in round_policies:
        if policy not in ROUND_POLICIES:
            raise FleetError(
                f"round policy must be one of {', '.join(ROUND_POLICIES)}, but got {policy!r}."
            )
    if not policies or not round_policies:
        raise FleetError("give at least one round policy and one density policy.")
    share = DEFAULT_DROP_SHARE if drop_share is None else finite_number(drop_share, "drop share")
    if not 0 <= share <= 1:
        raise FleetError(f"the dropped share must be in [0, 1], but got {drop_share!r}.")
    for method in settings.methods:
        check_fleet_method(method, "uniform")
        if method != "floss" and "uniform" not in policies:
            check_fleet_method(method, policies[0])  # dense/ffa have uniform densities only
    s = settings
    base = FleetSetup(
        fleet=fleet,
        deadline_seconds=deadline_seconds,
        over_selection=over_selection,
        tier_densities=tier_densities,
        grid=grid,
        adapt_down=adapt_down,
    )
    seed, num_clients, compute = s.seed, s.num_clients, s.compute_seconds
    ref_n = adapter_size(s, s.ref_rank)
    check_run(num_clients, s.clients_per_round, compute)
    if num_clients > MAX_PLAN_CLIENTS:
        raise FleetError(
            f"a fleet plan draws every client's link: --num-clients must be at most "
            f"{MAX_PLAN_CLIENTS:,}, but got {num_clients:,}."
        )
    link_arrays(fleet, num_clients, seed)  # a bad population is one line before any pricing
    ref = dense_reference_seconds_fast(
        fleet,
        n=ref_n,
        seed=seed,
        num_clients=num_clients,
        clients_per_round=s.clients_per_round,
        compute_seconds=compute,
        rounds=DENSE_REFERENCE_ROUNDS,
    )
    amount = resolve_budget(s.budget, lambda: ref)
    budget_seconds, budget_bytes = amount.seconds, amount.bytes
    up_slowdown = fleet_up_slowdown(fleet, num_clients=num_clients, seed=seed)
    heuristic = heuristic_pairs(s, up_slowdown)
    configs: list[tuple[int, str, str, MethodSpec]] = []  # rank, precisions, spec
    for method in (m for m in FLEET_METHODS if m in s.methods):
        for rank in sorted(set(s.ranks) | ({s.ref_rank} if method == "floss" else set())):
            n = adapter_size(s, rank, method=method)
            densities: list[tuple[float, float]] = [(1.0, 1.0)]
            if method == "floss":
                densities = (
                    [(dd, du) for dd in s.d_down for du in s.d_up] if rank in s.ranks else []
                )
                if rank == s.ref_rank:  # the baseline and the heuristic, on the grid or not
                    densities += [p for p in [(1.0, 1.0), *heuristic] if p not in densities]
            for dd, du in densities:
                for p_down, p_up in s.precision_pairs:
                    spec = wire_spec(
                        method, n, encoding=s.encoding, precision=s.precision,
                        precisions=(p_down, p_up), d_down=dd, d_up=du,
                    )  # fmt: skip
                    configs.append((rank, p_down, p_up, spec))
    if deadline_seconds is None:
        deadlines = default_deadlines(
            [spec for *_, spec in configs],
            fleet,
            seed=seed,
            num_clients=num_clients,
            compute_seconds=compute,
            over_selection=base.over_selection,
        )
    else:
        deadlines = [base.deadline_seconds or deadline_seconds] * len(configs)
    pairs = {  # each policy pair checked once; a configuration's deadline copied in
        (dp, rp): replace(base, round_policy=rp, density_policy=dp, deadline_seconds=deadlines[0])
        for dp in policies
        for rp in round_policies
    } if configs else {}  # fmt: skip
    setups: dict[tuple[str, str, float], FleetSetup] = {}
    items: list[tuple[MethodSpec, FleetSetup]] = []
    meta: list[tuple[int, str, str]] = []
    for (rank, p_down, p_up, spec), deadline in zip(configs, deadlines, strict=True):
        for density_policy in (p for p in policies if spec.method == "floss" or p == "uniform"):
            for round_policy in round_policies:
                key = (round_policy, density_policy, deadline)
                if key not in setups:
                    setups[key] = pairs[density_policy, round_policy].with_deadline(deadline)
                items.append((spec, setups[key]))
                meta.append((rank, p_down, p_up))
    estimates = estimate_fleet_many(
        items,
        clients_per_round=s.clients_per_round,
        budget_seconds=budget_seconds,
        budget_bytes=budget_bytes,
        max_rounds=s.max_rounds,
        rounds=rounds,
        seed=seed,
        num_clients=num_clients,
        compute_seconds=compute,
    )
    if deadline_seconds is not None:
        for (spec, setup), got in zip(items, estimates, strict=True):
            if got.late_fraction == 1.0:  # nobody walked made it: does anybody at all?
                check_deadline_reachable(
                    spec, setup, seed=seed, num_clients=num_clients, compute_seconds=compute
                )
    rows = [
        FleetRow(
            rank=rank,
            precision_down=p_down,
            precision_up=p_up,
            deadline_default=deadline_seconds is None,
            estimate=got,
        )
        for (rank, p_down, p_up), got in zip(meta, estimates, strict=True)
    ]
    why = fleet_short_list(rows, settings=s, up_slowdown=up_slowdown, drop_share=share)
    rows = [replace(r, recommended=True, why=why[i]) if i in why else r for i, r in enumerate(rows)]
    return FleetPlan(
        fleet=fleet,
        settings=s,
        rows=rows,
        budget_seconds=budget_seconds,
        budget_bytes=budget_bytes,
        dense_reference_seconds=ref,
        dense_reference_n=ref_n,
        rounds_walked=rounds,
        over_selection=base.over_selection,
        grid=base.grid,
        adapt_down=adapt_down,
        up_slowdown=up_slowdown,
        drop_share=share,
        short_list=tuple(why),
    )


__all__ = ["MAX_PLAN_CLIENTS", "FleetPlan", "FleetRow", "default_density_policies", "plan_fleet"]
