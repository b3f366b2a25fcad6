"""A study request checked as floss-tune run would check it, and the floss-tune run arguments
it becomes: every mistake a FieldError naming its field at submit, never a study that fails later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.errors import FieldError
from service.paths import looks_like_path
from service.schemas import StudyRequest

# floss-tune's fleet flags and the request fields they are
_FLEET_FLAGS = (
    ("--methods", "methods"),
    ("--round-policies", "round_policies"),
    ("--density-policies", "density_policies"),
    ("--deadlines", "deadlines"),
    ("--tier-densities", "base.tier_densities"),
    ("tier densities", "base.tier_densities"),
    ("tiered densities", "base.tier_densities"),
    ("--deadline", "base.deadline_seconds"),
    ("density grid", "base.density_grid"),
    ("over-selection", "base.over_selection"),
)


def check_fleet_search(req: StudyRequest, config: Any) -> None:
    """What floss-tune run checks of a fleet search before its first trial, checked at submit:
    the policy lists need base.fleet, deadline rounds and bandwidth densities need a deadline
    (``deadlines``, or base.deadline_seconds), tiered needs every tier's densities, the fleet
    file must parse. A FieldError naming the field; never a study that fails later."""
    from tuner.runner import PlanArgs, fleet_setup_for

    def names(text: object) -> tuple[str, ...]:  # normalised to comma text as it was read
        return () if text is None else tuple(str(text).split(","))

    try:
        args = PlanArgs(
            methods=tuple(p.strip() for p in str(req.methods).split(",") if p.strip()),
            round_policies=names(req.round_policies),
            density_policies=names(req.density_policies),
            deadlines=tuple(float(d) for d in names(req.deadlines)),
        )
        fleet_setup_for(config, args.method_grid(config))
    except ValueError as exc:  # TuneError, FleetError, TrainerError
        message = str(exc)
        field = "base.fleet"
        for flag, name in _FLEET_FLAGS:
            if flag in message:
                field = name
                break
        if "need a fleet" in message:  # a policy list without base.fleet
            given = [f for f in ("round_policies", "density_policies", "deadlines")
                     if getattr(req, f) is not None]  # fmt: skip
            field = given[0] if given else "base.fleet"
        elif "need a deadline" in message and req.deadlines is None:
            searched = req.round_policies is not None or req.density_policies is not None
            field = "deadlines" if searched else "base.deadline_seconds"
        elif "needs both round and density policies" in message:
            field = "density_policies" if req.density_policies is None else "round_policies"
        raise FieldError(field, message) from None


def checked_request(req: StudyRequest, *, storage_url: str) -> tuple[StudyRequest, Any, str]:
    """(the request with its paths resolved, its RunConfig, the study direction)."""
    from trainer.config import RunConfig
    from tuner.runner import PlanArgs, metric_for
    from tuner.settings import METRIC_DIRECTION, TuneSettings

    base = dict(req.base)  # its paths were confined and parsed as the request was read
    network = base.get("network")
    if isinstance(network, str) and not looks_like_path(network):
        from service.plans import check_profile_name

        check_profile_name(network, kind="network", field="base.network")
    try:
        config = RunConfig.from_dict(base)
    except ValueError as exc:
        raise FieldError("base", str(exc)) from None
    try:
        metric = metric_for(config, req.metric)
        TuneSettings(
            storage=storage_url,
            study_name=req.name,
            n_trials=req.n_trials,
            budget_scale=req.budget_scale,
            levels=req.levels,
            search=req.search,  # type: ignore[arg-type]
            pruner=req.pruner,  # type: ignore[arg-type]
            sampler=req.sampler,  # type: ignore[arg-type]
            seed=req.seed,
            timeout_seconds=req.timeout,
            max_client_steps=req.max_client_steps,
            trial_clients_per_round=req.trial_clients_per_round,
            metric=metric,
        )
        PlanArgs(max_rounds=req.max_rounds, min_rounds=req.min_rounds)
    except ValueError as exc:
        from service.errors import field_of_message

        raise FieldError(field_of_message(str(exc), "metric"), str(exc)) from None
    if req.max_rounds is not None and req.max_rounds < req.min_rounds:
        raise FieldError(
            "max_rounds",
            f"max_rounds ({req.max_rounds}) must be at least min_rounds ({req.min_rounds})",
        )
    check_fleet_search(req, config)
    return req.model_copy(update={"base": base}), config, METRIC_DIRECTION[metric]


def cli_args(req: StudyRequest, config_file: Path, *, storage_url: str) -> list[str]:
    """floss-tune run's arguments for a request, flag for field."""
    args = [
        "run",
        "--config", str(config_file),
        "--budget", req.budget,
        "--n-trials", str(req.n_trials),
        "--budget-scale", repr(req.budget_scale),
        "--ranks", str(req.ranks),
        "--d-down", str(req.d_down),
        "--d-up", str(req.d_up),
        "--ref-rank", str(req.ref_rank),
        "--min-rounds", str(req.min_rounds),
        "--methods", str(req.methods),
        "--topk", str(req.topk),
        "--levels", str(req.levels),
        "--search", req.search,
        "--pruner", req.pruner,
        "--sampler", req.sampler,
        "--tune-lr" if req.tune_lr else "--no-tune-lr",
        "--seeds" if req.seeds else "--no-seeds",
        "--storage", storage_url,
        "--study-name", req.name,
    ]  # fmt: skip
    for flag, value in (
        ("--max-rounds", req.max_rounds),
        ("--metric", req.metric),
        ("--seed", req.seed),
        ("--max-client-steps", req.max_client_steps),
        ("--trial-clients-per-round", req.trial_clients_per_round),
        ("--timeout", req.timeout),
        ("--round-policies", req.round_policies),
        ("--density-policies", req.density_policies),
        ("--deadlines", req.deadlines),
    ):
        if value is not None:
            args += [flag, str(value)]
    return args
