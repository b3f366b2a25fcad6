"""Building the search space: every configuration the budget affords, priced exactly.

A candidate is a method with its parameters (``tuner.grid.MethodGrid``): FLoSS at (rank, d_down,
d_up) in either top-k mode; dense LoRA and FFA-LoRA at a rank (d = 1 both ways); SparseAdapter at
a rank and a mask density (its d_up); AdapterLTH at a rank and a keep rate. Each is priced round
by round by ``planner.schedule`` on the base run's seeded clients (``planner.pricing``) under the
full budget (the exported run's rounds; ``--min-rounds``/``--max-rounds`` apply) and under the
trial budget (the budget times ``--budget-scale``, the round cap scaled alike). A candidate must
afford one trial round and ``--min-rounds`` full rounds. The budget is resolved as floss-plan and
floss-train resolve it (``planner.pricing.Population.resolve``).

Heterogeneous fleets (``build_space(fleet=...)``): every candidate is priced at each policy point
of the grid with ``planner.fleet.price_fleet_rounds``, and an ``N-dense-rounds`` budget counts in
the fleet's dense round (``planner.fleet.dense_reference_seconds``), as ``floss-train --fleet
--budget`` resolves it. A point whose deadline no client can meet is infeasible.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from planner.budget import Budget, resolve_budget
from planner.fleet import FleetError, FleetSetup
from planner.plan_rows import adapter_size as planner_adapter_size
from planner.plan_types import PlanSettings
from planner.pricing import Population, Pricing, PricingError, Spend, totals
from tuner.candidate import Candidate, density_key
from tuner.grid import MethodGrid, fleet_grid
from tuner.search_space import SearchSpace, TensorSizes, spec_of
from tuner.seeds import with_seeds
from tuner.settings import (
    TuneError,
    check_budget_scale,
)

AdapterSize = Callable[[str, int], int]  # (method, rank) -> n, entries of P as trained


def scaled_budget(budget: Budget, scale: float) -> Budget:
    check_budget_scale(scale)
    if scale == 1.0:
        return budget
    amount = budget.amount * scale
    if budget.kind == "bytes":
        amount = float(math.floor(amount))
        if amount < 1:
            raise TuneError(f"--budget-scale {scale} leaves less than one byte of {budget.text!r}.")
    return replace(budget, amount=amount, text=f"{budget.text} x {scale:g}")


def planner_sizes(settings: PlanSettings) -> AdapterSize:
    """n(method, rank) from the planner's model profile (FFA-LoRA: B and the head only)."""

    def size(method: str, rank: int) -> int:
        return planner_adapter_size(settings, rank, method=method)

    return size


def planner_tensor_sizes(settings: PlanSettings) -> TensorSizes:
    """P's tensors from the planner's model profile: A (r x d_in) and B (d_out x r) of every
    targeted module, then the head (weight, bias). The order does not change a top-k price."""

    def sizes(method: str, rank: int) -> tuple[int, ...]:
        model = settings.model
        if not model.modules:
            raise TuneError(
                f"per-tensor top-k needs the module shapes of {model.name!r}; give a model "
                "profile, not a raw adapter size."
            )
        out: list[int] = []
        for m in model.modules:
            pair = [m.d_out * rank] if method == "ffa" else [rank * m.d_in, m.d_out * rank]
            out += pair * m.count
        labels = settings.num_labels
        if labels:
            out += [model.hidden_size * labels, labels]
        if settings.head_params:
            out.append(settings.head_params)
        return tuple(out)

    return sizes


def _configs(
    settings: PlanSettings, grid: MethodGrid
) -> list[tuple[str, str, int, float, float, float | None]]:
    """(method, topk, rank, d_down, d_up, keep_rate) of every configuration on the grids."""
    out: list[tuple[str, str, int, float, float, float | None]] = []
    for method in grid.methods:
        for rank in settings.ranks:
            if method == "floss":
                for topk in grid.topks:
                    for dd in settings.d_down:
                        for du in settings.d_up:
                            if topk != "global" and dd == du == 1.0:
                                continue  # every entry is sent: the top-k mode does not matter
                            out.append((method, topk, rank, dd, du, None))
            elif method == "sparseadapter":
                out += [(method, "global", rank, du, du, None) for du in settings.d_up]
            elif method == "adapterlth":
                out += [(method, "global", rank, 1.0, 1.0, k) for k in grid.keep_rates]
            else:  # dense, ffa
                out.append((method, "global", rank, 1.0, 1.0, None))
    return out


def build_space(
    settings: PlanSettings,
    *,
    budget_scale: float = 1.0,
    grid: MethodGrid | None = None,
    num_clients: int | None = None,
    seed: int | None = None,
    adapter_size: AdapterSize | None = None,
    tensor_sizes: TensorSizes | None = None,
    fleet: FleetSetup | None = None,
) -> SearchSpace:
    """Price every configuration on the grids exactly under the full and the trial budget.

    ``num_clients`` and ``seed`` are the base run's (they draw the sampled clients; default: the
    plan settings'). ``fleet``: price on a heterogeneous fleet (its policies are the defaults of
    the grid's policy lists). Raises ``TuneError`` (a ``ValueError``) naming the budget when
    nothing fits.
    """
    check_budget_scale(budget_scale)
    grid = grid or MethodGrid()
    grid = replace(
        grid,
        precisions_down=grid.precisions_down or (settings.precision,),
        precisions_up=grid.precisions_up or (settings.precision,),
    )
    if fleet is not None:
        grid = fleet_grid(grid, fleet)
    elif grid.round_policies:
        raise TuneError("round and density policies need a fleet (--fleet NAME|PATH).")
    seed = int(seed if seed is not None else getattr(settings, "seed", 0))
    num_clients = int(
        num_clients if num_clients is not None else getattr(settings, "num_clients", 100)
    )
    size = adapter_size or planner_sizes(settings)
    cap = settings.max_rounds
    trial_cap = None if cap is None else max(1, math.ceil(cap * budget_scale))
    population = Population.of(
        settings, network=settings.network, fleet=fleet, seed=seed, num_clients=num_clients
    )
    # n of the dense reference round: the planner's model profile on a network (as floss-plan
    # counts it), the trial's adapter sizes on a fleet (as floss-train --fleet counts it)
    reference_n = (
        planner_adapter_size(settings, settings.ref_rank)
        if fleet is None
        else size("dense", settings.ref_rank)
    )
    try:
        kind, full_amount, trial_amount = budget_amounts(
            settings, population, budget_scale=budget_scale, reference_n=reference_n
        )
    except TuneError:
        if fleet is None:
            raise unaffordable(settings, budget_scale=budget_scale, trial_cap=trial_cap) from None
        raise
    pricing = Pricing.on(
        population,
        encoding=settings.encoding,
        precision=settings.precision,
        budget_kind=kind,
        lth_floor=grid.lth_floor,
    )
    tensors = tensor_sizes or planner_tensor_sizes(settings)
    priced: dict[tuple[Any, ...], tuple[Spend, Spend] | None] = {}
    candidates = []
    pairs = [(d, u) for d in grid.precisions_down for u in grid.precisions_up]
    for (method, topk, rank, dd, du, keep), (pd, pu) in itertools.product(
        _configs(settings, grid), pairs
    ):
        n = size(method, rank)
        spec = spec_of(pricing, tensors, method, topk, rank, n, dd, du, keep, precisions=(pd, pu))
        for point in grid.policies(method):
            # tiered densities ignore the run's (d_down, d_up): every client sends and receives
            # its tier's, and the served model is the mixture of the tiers' (trainer.round.
            # served_models); one candidate for all of them, at the first pair of the grid
            dens = (None, None) if point[1] == "tiered" else (density_key(dd), density_key(du))
            memo = (spec.method, n, *dens, keep, spec.tensor_sizes, pd, pu, point)
            if point[1] == "tiered" and memo in priced:
                continue
            if memo not in priced:
                on = pricing.with_policy(*point)
                priced[memo] = (
                    _price(on, spec, settings, full_amount, trial_amount, trial_cap)
                    if _reachable(on, spec)
                    else None
                )
            spends = priced[memo]
            if spends is None:
                continue
            full_spend, trial_spend = spends
            candidates.append(
                Candidate(
                    method=method,
                    topk=topk,
                    rank=rank,
                    d_down=dd,
                    d_up=du,
                    keep_rate=keep,
                    n=n,
                    rounds=trial_spend.rounds,
                    full_rounds=full_spend.rounds,
                    bytes_per_round=round(trial_spend.bytes_per_round),
                    seconds_per_round=trial_spend.seconds_per_round,
                    trial_bytes=trial_spend.bytes,
                    trial_seconds=trial_spend.seconds,
                    full_bytes=full_spend.bytes,
                    full_seconds=full_spend.seconds,
                    precision_down=pd,
                    precision_up=pu,
                    round_policy=point[0],
                    density_policy=point[1],
                    deadline=point[2],
                )
            )
    if not candidates:
        if fleet is None:
            raise unaffordable(settings, budget_scale=budget_scale, trial_cap=trial_cap)
        raise TuneError(
            f"no configuration is feasible under budget {settings.budget.text!r} scaled by "
            f"{budget_scale:g}."
        )
    space = SearchSpace(
        candidates=tuple(candidates),
        seeds=(),
        budget_kind=kind,
        trial_budget=trial_amount,
        full_budget=full_amount,
        pricing=pricing,
        grid=grid,
        tensor_sizes=tensors,
    )
    return with_seeds(space, settings)


def budget_amounts(
    settings: PlanSettings, population: Population, *, budget_scale: float, reference_n: int
) -> tuple[str, float, float]:
    """(kind, full amount, trial amount) of the budget where the run happens, as floss-plan and
    floss-train resolve it (``planner.pricing.Population.resolve``): ``N-dense-rounds`` is N x
    the dense reference round of ``reference_n`` entries (on a fleet the mean of its first
    seeded sync, uniform rounds), a time is seconds, a size bytes."""
    trial_budget = scaled_budget(settings.budget, budget_scale)
    dense = functools.cache(lambda: population.dense_round_seconds(reference_n))
    full = resolve_budget(settings.budget, dense)
    trial = resolve_budget(trial_budget, dense)
    return full.kind, full.amount, trial.amount


def unaffordable(
    settings: PlanSettings, *, budget_scale: float, trial_cap: int | None
) -> TuneError:
    """Why no configuration on a network fits the budget, in the planner's words when its plan
    of the full or the trial budget is empty (asked only once the space came out empty)."""
    from planner.errors import PlanError
    from planner.plan import plan

    try:
        plan(settings)
        plan(
            replace(
                settings,
                budget=scaled_budget(settings.budget, budget_scale),
                min_rounds=1,
                max_rounds=trial_cap,
            )
        )
    except PlanError as exc:
        return TuneError(f"no feasible configuration: {exc}")
    return TuneError(
        f"no configuration is feasible under budget {settings.budget.text!r} scaled by "
        f"{budget_scale:g}."
    )


def _reachable(pricing: Pricing, spec: Any) -> bool:
    """False when the candidate's deadline is one no client of the fleet can meet (floss-train
    refuses such a run before round 1)."""
    from planner.fleet import check_deadline_reachable

    if pricing.fleet is None:
        return True
    try:
        check_deadline_reachable(
            spec,
            pricing.fleet,
            seed=pricing.seed,
            num_clients=pricing.num_clients,
            compute_seconds=pricing.compute_seconds,
        )
    except FleetError:
        return False
    return True


def _price(
    pricing: Pricing,
    spec: Any,
    settings: PlanSettings,
    full_amount: float,
    trial_amount: float,
    trial_cap: int | None,
) -> tuple[Spend, Spend] | None:
    """(full, trial) spend of one configuration; None when it misses ``--min-rounds`` or one
    trial round."""
    label = f"{spec.method} n={spec.n} d_down={spec.d_down:g} d_up={spec.d_up:g}"
    try:
        full, prices = pricing.within(
            spec, budget=full_amount, max_rounds=settings.max_rounds, label=label
        )
    except PricingError as exc:  # more rounds than a per-round schedule can price
        raise TuneError(str(exc)) from None
    if full.rounds < settings.min_rounds:
        return None
    if prices is None:
        trial, _ = pricing.within(spec, budget=trial_amount, max_rounds=trial_cap, label=label)
    else:  # the trial's rounds are a prefix of the full run's (same seed, smaller budget)
        trial = totals(pricing.prefix(prices, budget=trial_amount, max_rounds=trial_cap))
    return (full, trial) if trial.rounds >= 1 else None
