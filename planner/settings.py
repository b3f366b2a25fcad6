"""A plan's settings built from text, once: ``floss-plan``'s flags and ``POST /api/plan``'s fields.

``build_settings`` applies the precedence (CLI flag or request field > profile file > built-in
default), parses each value (``planner.parse``) and checks what a single value cannot
(``--num-clients`` against ``--clients-per-round``, ``ffa`` without module shapes) into one
``PlanSettings``; ``check_plan_options`` refuses a given option that would change nothing
(``planner.options``' table). The default texts spell the planner's own default grids, so a flag's
default and the grid it stands for cannot drift. Pure Python: no torch, nothing above the planner.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from planner import limits, options
from planner.budget import parse_budget
from planner.encoding import ENCODING_CHOICES, parse_precision
from planner.limits import MAX_SEED
from planner.method_spec import DEFAULT_KEEP_RATE, METHODS
from planner.model import MAX_RANK
from planner.parse import (
    fmt_densities,
    fmt_fractions,
    parse_densities,
    parse_density,
    parse_methods,
    parse_plan_grid,
    parse_precisions,
)
from planner.plan_types import (
    DEFAULT_DENSITIES,
    DEFAULT_HEURISTIC_DOWN,
    DEFAULT_NUM_CLIENTS,
    DEFAULT_RANKS,
    PlanSettings,
)
from planner.profiles import load_model, load_network

DEFAULT_BUDGET = "50-dense-rounds"
# The CLI's default strings spell the planner's own default grids, so the two cannot drift.
DEFAULT_RANKS_TEXT = ",".join(str(r) for r in DEFAULT_RANKS)
DEFAULT_DENSITIES_TEXT = fmt_densities(DEFAULT_DENSITIES)
DEFAULT_HEURISTIC_TEXT = fmt_fractions(DEFAULT_HEURISTIC_DOWN)


def build_settings(
    *,
    budget: str,
    profile: str,
    down: float | None,
    up: float | None,
    up_slowdown: float | None,
    rtt_ms: float | None,
    model: str,
    lora_params: int | None,
    num_labels: int | None,
    head_params: int,
    ref_rank: int,
    ranks: str,
    d_down: str,
    d_up: str,
    heuristic_d_down: str,
    clients_per_round: int,
    precision: str,
    encoding: str,
    compute_seconds: float,
    min_rounds: int,
    max_rounds: int | None,
    method: str = "floss",
    num_clients: int = DEFAULT_NUM_CLIENTS,
    seed: int = 0,
    keep_rate: float = DEFAULT_KEEP_RATE,
    lth_floor: str | None = None,
    precision_down: str | None = None,
    precision_up: str | None = None,
) -> PlanSettings:
    from planner.model import raw_model_profile

    network = load_network(profile).with_links(
        down_mbps=down, up_mbps=up, up_slowdown=up_slowdown, rtt_ms=rtt_ms
    )
    if ref_rank < 1:
        raise ValueError(f"--ref-rank must be >= 1, but got {ref_rank}.")
    if ref_rank > MAX_RANK:
        raise ValueError(f"--ref-rank must be at most 2**31 - 1, but got {ref_rank}.")
    model_profile = (
        raw_model_profile(lora_params, ref_rank=ref_rank)
        if lora_params is not None
        else load_model(model)
    )
    if num_labels is None:
        num_labels = model_profile.num_labels  # the head the default task trains
    if num_labels < 0:
        raise ValueError(f"--num-labels must be >= 0, but got {num_labels}.")
    methods = parse_methods(method)
    if "ffa" in methods and lora_params is not None:
        raise ValueError(
            "--method ffa needs the module shapes (A is frozen, B alone is sent): give a model "
            "profile instead of --lora-params."
        )
    if num_clients < clients_per_round:
        raise ValueError(
            f"--num-clients ({num_clients}) must be at least --clients-per-round "
            f"({clients_per_round})."
        )
    if seed < 0:
        raise ValueError(f"--seed must be >= 0, but got {seed}.")
    if seed > MAX_SEED:  # as floss-train: torch takes seeds below 2**63 only
        raise ValueError(f"--seed must be at most 2**63 - 1 = {MAX_SEED}, but got {seed}.")
    if not 0 < keep_rate <= 1:
        raise ValueError(f"--keep-rate must be in (0, 1], but got {keep_rate!r}.")
    floor = None if lth_floor is None else parse_density(lth_floor, name="--lth-floor")
    precision = parse_precision(precision, name="--precision")
    if encoding not in ENCODING_CHOICES:
        raise ValueError(
            f"--encoding must be one of {', '.join(ENCODING_CHOICES)}, but got {encoding!r}."
        )
    parsed_budget = parse_budget(budget)
    rank_grid, d_down_grid, d_up_grid = parse_plan_grid(ranks=ranks, d_down=d_down, d_up=d_up)
    settings = PlanSettings(
        model=model_profile,
        network=network,
        budget=parsed_budget,
        ranks=rank_grid,
        d_down=d_down_grid,
        d_up=d_up_grid,
        heuristic_down=parse_densities(heuristic_d_down, name="--heuristic-d-down"),
        ref_rank=ref_rank,
        clients_per_round=clients_per_round,
        num_labels=num_labels,
        head_params=head_params,
        precision=precision,
        encoding=encoding,
        compute_seconds=compute_seconds,
        min_rounds=min_rounds,
        max_rounds=max_rounds,
        methods=methods,
        num_clients=num_clients,
        seed=seed,
        keep_rate=keep_rate,
        floor=floor,
        precision_down=parse_precisions(precision_down, name="--precision-down"),
        precision_up=parse_precisions(precision_up, name="--precision-up"),
    )
    limits.check_fields(  # after the checks above, whose messages say more
        {
            "num_clients": num_clients,
            "clients_per_round": clients_per_round,
            "compute_seconds": compute_seconds,
            "min_rounds": min_rounds,
            "max_rounds": max_rounds,
            "head_params": head_params,
            "num_labels": num_labels,
            "lora_params": lora_params,
            "keep_rate": keep_rate,
            "seed": seed,
        },
        spell=options.flag,
    )
    return settings


def check_plan_options(
    given: Collection[str],
    *,
    fleet: str | None,
    round_policy: str,
    density_policy: str | None,
    tier_densities: str | None,
    method: str | list[str],
    deadline: float | None,
    spell: Callable[[str], str] = options.flag,
) -> None:
    """Refuse a given option that would change nothing (``planner.options``' table); floss-plan
    and POST /api/plan alike. A network option with --fleet: ``planner.fleet_request``."""
    try:
        methods: tuple[str, ...] = parse_methods(
            method if isinstance(method, str) else ",".join(method)
        )
    except ValueError:
        methods = METHODS  # build_settings says what is wrong with it
    context = options.plan_context(
        fleet=fleet is not None,
        round_policy=round_policy,
        density_policy=density_policy,
        tier_densities=tier_densities,
        methods=methods,
        deadline=deadline is not None,
    )
    options.check(context, given, spell=spell)
