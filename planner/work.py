"""How long a plan will take, known before any of it is done (pure Python).

The uniform methods (floss, dense, ffa) cost the same for any population: the planner prices one
round and extrapolates. The mask-sharing methods (sparseadapter, adapterlth) walk their seeded
schedule round by round until every client holds the current mask: about
``num_clients * (ln num_clients + 0.58)`` client draws per configuration (the coupon collector's
expectation), or ``clients_per_round * max_rounds`` when that is fewer (the bound
``service.limits`` applies to POST /api/plan).

Measured on the 2-core CI machine (shared; docs/planner.md): the default grid with every method
took 61 s at 100,000 clients (84.7 M draws), so one draw costs about 0.72 us there. floss-plan
says the estimate before work longer than ``NOTE_SECONDS`` and refuses work over
``MAX_PLAN_DRAWS`` (about 5 minutes there) with one line naming the largest population that fits.
"""

from __future__ import annotations

import math

from planner.method_spec import MASK_METHODS
from planner.plan_types import PlanSettings

EULER_GAMMA = 0.5772  # H_N ~ ln N + gamma: coupon collector's draws to see all N clients
SECONDS_PER_DRAW = 61.0 / 84.7e6  # measured: default grid, --method all, 100,000 clients
MAX_PLAN_DRAWS = 400_000_000  # about 5 minutes on the measuring machine
NOTE_SECONDS = 10.0  # longer work is announced with its estimate


def mask_configurations(settings: PlanSettings) -> int:
    """The grid's sparseadapter and adapterlth configurations (rank x density x precisions)."""
    methods = [m for m in settings.methods if m in MASK_METHODS]
    if not methods:
        return 0
    ranks = len({*settings.ranks, settings.ref_rank})
    d_up = len(set(settings.d_up))
    per_rank = sum(d_up if m == "sparseadapter" else 1 for m in methods)
    return ranks * per_rank * len(settings.precision_pairs)


def draws_per_configuration(
    num_clients: int, clients_per_round: int, max_rounds: int | None
) -> float:
    walk = num_clients * (math.log(num_clients) + EULER_GAMMA)
    if max_rounds is not None:
        walk = min(walk, float(clients_per_round) * max_rounds)
    return walk


def plan_draws(settings: PlanSettings, *, num_clients: int | None = None) -> float:
    """An upper bound of the client draws the plan walks (0 for the uniform methods)."""
    configs = mask_configurations(settings)
    if configs == 0:
        return 0.0
    n = settings.num_clients if num_clients is None else num_clients
    return configs * draws_per_configuration(n, settings.clients_per_round, settings.max_rounds)


def largest_population(settings: PlanSettings, limit: float) -> int:
    """The most clients whose plan stays within ``limit`` draws (at least clients_per_round)."""
    low, high = settings.clients_per_round, max(settings.num_clients, settings.clients_per_round)
    while low < high:
        mid = (low + high + 1) // 2
        if plan_draws(settings, num_clients=mid) <= limit:
            low = mid
        else:
            high = mid - 1
    return low


def check_plan_work(settings: PlanSettings) -> float:
    """The estimated seconds of the plan; a ``ValueError`` of one line (what to do) above
    ``MAX_PLAN_DRAWS``."""
    draws = plan_draws(settings)
    seconds = draws * SECONDS_PER_DRAW
    if draws > MAX_PLAN_DRAWS:
        fits = largest_population(settings, MAX_PLAN_DRAWS)
        raise ValueError(
            f"--num-clients {settings.num_clients:,} with sparseadapter/adapterlth: their seeded "
            f"schedules walk about {draws / 1e6:,.0f} M client draws (about "
            f"{seconds / 60:,.0f} minutes; the limit is {MAX_PLAN_DRAWS / 1e6:,.0f} M, about "
            f"{MAX_PLAN_DRAWS * SECONDS_PER_DRAW / 60:.0f} minutes); give --num-clients <= "
            f"{fits:,}, --max-rounds, a smaller grid, or leave those methods out "
            "(--method floss,dense,ffa)."
        )
    return seconds


__all__ = [
    "MAX_PLAN_DRAWS",
    "NOTE_SECONDS",
    "SECONDS_PER_DRAW",
    "check_plan_work",
    "largest_population",
    "mask_configurations",
    "plan_draws",
]
