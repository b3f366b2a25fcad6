"""How much work a plan request may ask of the service, known before any of it is done.

A plan of the uniform methods (floss, dense, ffa) costs the same for any population: their
rounds are alike, so the planner prices one and extrapolates. The mask-sharing methods
(sparseadapter, adapterlth) walk their seeded schedule round by round until every client holds
the current mask: about ``num_clients * (ln num_clients + 0.58)`` client draws per configuration
(the coupon collector's expectation), or ``clients_per_round * max_rounds`` when that is fewer.
``plan_work`` is that bound over the request's grid; the service refuses a request whose bound
is over ``--max-plan-work`` with a 422 that names the limit and the largest population that fits
(floss-plan on the command line has no such limit). Measured on the 2-core CI machine (shared):
the default grid with every method took 7.9 s at 10,000 clients (6.9 M draws), 13.7 s at 30,000
(22.9 M) and 61 s at 100,000 (84.7 M); the default limit, 20 M draws, is about 10-20 s there.
"""

from __future__ import annotations

from planner.work import draws_per_configuration
from service.errors import FieldError
from service.schemas import PlanRequest


def mask_configurations(req: PlanRequest) -> int:
    """The grid's sparseadapter and adapterlth configurations (rank x density x precisions)."""
    from planner.method_spec import MASK_METHODS
    from planner.parse import parse_densities, parse_ints, parse_methods, parse_precisions

    methods = [m for m in parse_methods(str(req.method)) if m in MASK_METHODS]
    if not methods:
        return 0
    ranks = len(set(parse_ints(str(req.ranks), name="--ranks")))
    d_up = len(set(parse_densities(str(req.d_up), name="--d-up")))
    pairs = 1
    for axis in (req.precision_down, req.precision_up):
        if axis is not None:
            pairs *= len(set(parse_precisions(axis, name="precision")))
    per_rank = sum(d_up if m == "sparseadapter" else 1 for m in methods)
    return ranks * per_rank * pairs


def plan_work(req: PlanRequest) -> float:
    """An upper bound of the client draws the plan walks (0 for the uniform methods)."""
    configs = mask_configurations(req)
    if configs == 0:
        return 0.0
    return configs * draws_per_configuration(req.num_clients, req.clients_per_round, req.max_rounds)


def largest_population(req: PlanRequest, limit: int) -> int:
    """The largest num_clients whose plan stays within ``limit`` (the other settings kept)."""
    configs = mask_configurations(req)
    low, high = req.clients_per_round, req.num_clients
    while low < high:
        mid = (low + high + 1) // 2
        cost = configs * draws_per_configuration(mid, req.clients_per_round, req.max_rounds)
        low, high = (mid, high) if cost <= limit else (low, mid - 1)
    return low


def check_plan_work(req: PlanRequest, limit: int) -> None:
    """FieldError (422, on num_clients) when the plan would walk more than ``limit`` draws."""
    work = plan_work(req)
    if work <= limit:
        return
    configs = mask_configurations(req)
    fits = largest_population(req, limit)
    raise FieldError(
        "num_clients",
        f"this plan walks the mask-sharing schedule (sparseadapter, adapterlth) of {configs} "
        f"configurations over {req.num_clients:,} clients: up to {work:,.0f} client draws, over "
        f"this service's limit of {limit:,} (--max-plan-work)",
        f"at most {fits:,} clients for this grid, a max_rounds, fewer ranks or densities, "
        "methods floss/dense/ffa (no limit), or floss-plan on the command line",
    )
