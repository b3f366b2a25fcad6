"""The join of planner and trainer: a base RunConfig and a budget in, a finished study out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from planner.budget import parse_budget
from planner.plan import DEFAULT_DENSITIES, DEFAULT_HEURISTIC_DOWN, REF_RANK, PlanSettings
from tuner.objective import Objective
from tuner.settings import TuneSettings
from tuner.space import SearchSpace, build_space
from tuner.study import run_study

if TYPE_CHECKING:
    import optuna

    from planner.model import ModelProfile

# Fields of the base config that do not change what a trial measures: workers on other machines
# may set them differently and still join the study.
MACHINE_FIELDS = ("device", "amp", "checkpoint_every")


@dataclass(frozen=True, kw_only=True)
class PlanArgs:
    """The planner's grids and limits for the search space (defaults: the planner's)."""

    budget: str = "50-dense-rounds"
    ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    d_down: tuple[float, ...] = DEFAULT_DENSITIES
    d_up: tuple[float, ...] = DEFAULT_DENSITIES
    heuristic_down: tuple[float, ...] = DEFAULT_HEURISTIC_DOWN
    ref_rank: int = REF_RANK
    min_rounds: int = 1
    max_rounds: int | None = None


def metric_for(config: Any) -> str:
    """Validation accuracy for classification, validation loss for language modelling."""
    return "val_loss" if config.task == "lm" else "val_accuracy"


def trainer_adapter_size(config: Any, workload: Any) -> Callable[[int], int]:
    """n(r) as the trainer builds it: trainable entries of the LoRA-wrapped base model."""
    from dataclasses import replace

    from trainer.modeling import wrap_lora

    def size(rank: int) -> int:
        model = wrap_lora(workload.base_model, replace(config, rank=rank, method="floss"))
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    return size


def model_profile_for(
    config: Any, adapter_size: Callable[[int], int] | None = None, *, num_labels: int = 0
) -> tuple[ModelProfile, int, int]:
    """(model profile, num_labels, head_params) that give the trainer's adapter size n(r).

    With the trainer's own sizes (``adapter_size``), two ranks give n(r) = a*r + h exactly (LoRA
    is linear in r; h is the trainable head), so the planner prices exactly what the trainer
    sends. Without it, the planner's profile of the same model name and a head of
    ``num_labels``.
    """
    from planner.model import raw_model_profile

    if adapter_size is not None:
        n1, n2 = adapter_size(1), adapter_size(2)
        per_rank, head = n2 - n1, 2 * n1 - n2
        return raw_model_profile(per_rank * REF_RANK, ref_rank=REF_RANK), 0, head
    from planner.profiles import load_model

    return load_model(config.model), num_labels, 0


def plan_settings_for(
    config: Any, args: PlanArgs, *, model: ModelProfile, num_labels: int, head_params: int
) -> PlanSettings:
    """The planner's view of the base run: its network, clients per round, wire format."""
    return PlanSettings(
        model=model,
        network=config.network_profile(),
        budget=parse_budget(args.budget),
        ranks=args.ranks,
        d_down=args.d_down,
        d_up=args.d_up,
        heuristic_down=args.heuristic_down,
        ref_rank=args.ref_rank,
        clients_per_round=config.clients_per_round,
        num_labels=num_labels,
        head_params=head_params,
        precision=config.precision,
        encoding=config.encoding,
        compute_seconds=config.compute_seconds,
        min_rounds=args.min_rounds,
        max_rounds=args.max_rounds,
    )


def space_meta(
    space: SearchSpace, *, config: Any, args: PlanArgs, settings: TuneSettings, metric: str
) -> dict[str, Any]:
    """What a study was made for; a worker or a resume with anything else is refused."""
    base = {k: v for k, v in config.to_dict().items() if k not in (*MACHINE_FIELDS, "rounds")}
    return {
        **space.summary(),
        "metric": metric,
        "budget": args.budget,
        "budget_scale": settings.budget_scale,
        "levels": settings.levels,
        "tune_lr": settings.tune_lr,
        "trial_clients_per_round": settings.trial_clients_per_round,
        "base_config": base,
    }


def run_tuning(
    config: Any,
    args: PlanArgs,
    settings: TuneSettings,
    *,
    log: Callable[[str], None] = lambda _msg: None,
) -> optuna.Study:
    """Prepare the workload once, build the feasible space, and run (or join) the study."""
    from trainer.errors import DivergedError
    from trainer.modeling import target_modules
    from trainer.run import prepare, train

    log(f"preparing {config.model} on {config.data} (read, tokenize, load once)")
    workload = prepare(config)
    sizes = trainer_adapter_size(config, workload)
    model, num_labels, head = model_profile_for(config, sizes)
    space = build_space(
        plan_settings_for(config, args, model=model, num_labels=num_labels, head_params=head),
        budget_scale=settings.budget_scale,
    )
    metric = metric_for(config)
    log(
        f"search space: {len(space.candidates)} feasible configs over ranks {space.ranks}; "
        f"trial budget {space.trial_budget:,.4g} {space.budget_kind} "
        f"(x{settings.budget_scale:g} of {space.full_budget:,.4g}); objective {metric}; "
        f"trial rounds {min(c.rounds for c in space.candidates)}.."
        f"{max(c.rounds for c in space.candidates)} (cap them with --max-rounds)"
    )
    objective = Objective(
        space=space,
        base_config=config,
        settings=settings,
        train_fn=train,
        metric=metric,
        workload=workload,
        diverged=(DivergedError,),
        log=log,
    )
    meta = space_meta(space, config=config, args=args, settings=settings, metric=metric)
    meta["target_modules"] = target_modules(config, workload.base_model)
    meta["adapter_size_ref_rank"] = sizes(args.ref_rank)
    return run_study(settings, space, objective, space_meta=meta, log=log)
