"""The join of planner and trainer: a base RunConfig and a budget in, a finished study out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from planner.budget import parse_budget
from planner.method_spec import DEFAULT_KEEP_RATE
from planner.plan_types import DEFAULT_DENSITIES, DEFAULT_HEURISTIC_DOWN, REF_RANK, PlanSettings
from tuner.build import AdapterSize, build_space
from tuner.grid import MethodGrid
from tuner.objective import Objective
from tuner.search_space import SearchSpace, TensorSizes
from tuner.settings import TuneError, TuneSettings
from tuner.storage import trial_checkpoints
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
    methods: tuple[str, ...] = ("floss",)
    topks: tuple[str, ...] = ("global",)
    keep_rates: tuple[float, ...] | None = None  # None: the base run's keep_rate
    precisions_down: tuple[str, ...] = ()  # () : the base run's download precision only
    precisions_up: tuple[str, ...] = ()  # () : the base run's upload precision only
    # fleets (the base config's fleet): () = the base run's policy / deadline only
    round_policies: tuple[str, ...] = ()
    density_policies: tuple[str, ...] = ()
    deadlines: tuple[float, ...] = ()

    def method_grid(self, config: Any) -> MethodGrid:
        """The methods searched; AdapterLTH's floor (and, unless given, its keep rate) are the
        base run's (``lth_floor``, ``keep_rate``); on a fleet, the policy lists default to the
        base run's policies and deadline."""
        keep = self.keep_rates or (float(getattr(config, "keep_rate", DEFAULT_KEEP_RATE)),)
        fleet: dict[str, Any] = {}
        if getattr(config, "fleet", None) is not None:
            base_deadline = getattr(config, "deadline_seconds", None)
            fleet = {
                "round_policies": self.round_policies or (config.round_policy,),
                "density_policies": self.density_policies or (config.density_policy,),
                "deadlines": self.deadlines or (() if base_deadline is None else (base_deadline,)),
            }
        elif self.round_policies or self.density_policies or self.deadlines:
            raise TuneError(
                "--round-policies, --density-policies and --deadlines need a fleet "
                "(--fleet NAME|PATH)."
            )
        return MethodGrid(
            methods=self.methods,
            topks=self.topks,
            keep_rates=keep,
            lth_floor=getattr(config, "lth_floor", None),
            precisions_down=self.precisions_down or (config.wire_precisions[0],),
            precisions_up=self.precisions_up or (config.wire_precisions[1],),
            **fleet,
        )


def fleet_setup_for(config: Any, grid: MethodGrid) -> Any:
    """The base run's fleet setup (None without a fleet), every policy point of ``grid`` checked
    against it: a bad fleet file, tiered without a density for each tier, is one line."""
    from trainer.errors import TrainerError

    if getattr(config, "fleet", None) is None:
        return None
    from dataclasses import replace

    try:
        # the base run's own policies may lack a deadline that only the searched lists give
        setup = replace(
            config,
            round_policy="sync",
            density_policy="uniform",
            deadline_seconds=None,
        ).fleet_setup()
    except TrainerError as exc:
        raise TuneError(str(exc)) from None
    from tuner.grid import fleet_grid

    fleet_grid(grid, setup)
    return setup


DENSE_SEED = "dense LoRA baseline"  # tuner.seeds.with_seeds's reason for FLoSS at d 1|1


def seed_reasons(space: SearchSpace, config: Any) -> SearchSpace:
    """The reasons of the seeds as they train: FLoSS at d 1|1 and the reference rank is dense
    LoRA on one network or under uniform densities, but under tiered densities every client
    trains at its tier's densities and under bandwidth densities at the largest grid density its
    link affords (1|1 the caps): there the seed is labelled with that, not "dense"."""
    from dataclasses import replace

    def real(c: Any) -> Any:
        if c.method != "floss" or not c.why.startswith(DENSE_SEED):
            return c
        if c.density_policy == "tiered":
            why = f"reference rank at the tiers' densities {tiers_text(config)}"
        elif c.density_policy == "bandwidth":
            why = "reference rank, each client at the densities its link affords (caps 1|1)"
        else:
            return c
        return replace(c, why=why + c.why.removeprefix(DENSE_SEED))  # ", nearest on the grid"

    return replace(
        space,
        candidates=tuple(real(c) for c in space.candidates),
        seeds=tuple(real(c) for c in space.seeds),
    )


def tiers_text(config: Any) -> str:
    """'lte 1/4|1/16, wifi 1|1/4' from the base run's tier densities."""
    from planner.fleet import parse_tier_densities
    from tuner.candidate import density_label

    text = getattr(config, "tier_densities", None)
    if not text:
        return "(none given)"
    return ", ".join(
        f"{tier} {density_label(down)}|{density_label(up)}"
        for tier, down, up in parse_tier_densities(text)
    )


def metric_for(config: Any, metric: str | None = None) -> str:
    """The objective: ``metric`` when given, else the served model's validation accuracy for
    classification and validation loss for language modelling (which has no accuracy)."""
    if metric is None:
        return "val_loss" if config.task == "lm" else "val_accuracy"
    if config.task == "lm" and "accuracy" in metric:
        raise TuneError(f"--metric {metric}: task 'lm' has no accuracy; use val_loss.")
    return metric


def trainer_adapter_size(config: Any, workload: Any) -> AdapterSize:
    """n(method, r) as the trainer builds it: trainable entries of the LoRA-wrapped base model
    (FFA-LoRA freezes A). LoRA is linear in r, so ranks 1 and 2 give n = a*r + h per family."""

    from trainer.modeling import wrap_lora

    fits: dict[str, tuple[int, int]] = {}

    def trainable(method: str, rank: int) -> int:
        model = wrap_lora(workload.base_model, config.sized_as(method, rank))
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def size(method: str, rank: int) -> int:
        family = "ffa" if method == "ffa" else "floss"
        if family not in fits:
            n1, n2 = trainable(family, 1), trainable(family, 2)
            fits[family] = (n2 - n1, 2 * n1 - n2)
        per_rank, head = fits[family]
        return per_rank * rank + head

    return size


def trainer_tensor_sizes(config: Any, workload: Any) -> TensorSizes:
    """P's tensors as the trainer flattens them (its per-tensor top-k slices), per rank."""

    from trainer.modeling import wrap_lora

    cache: dict[tuple[str, int], tuple[int, ...]] = {}

    def sizes(method: str, rank: int) -> tuple[int, ...]:
        if (method, rank) not in cache:
            model = wrap_lora(workload.base_model, config.sized_as(method, rank))
            cache[(method, rank)] = tuple(p.numel() for p in model.parameters() if p.requires_grad)
        return cache[(method, rank)]

    return sizes


def model_profile_for(
    config: Any, adapter_size: AdapterSize | None = None, *, num_labels: int = 0
) -> tuple[ModelProfile, int, int]:
    """(model profile, num_labels, head_params) that give the trainer's adapter size n(r).

    With the trainer's own sizes (``adapter_size``), two ranks give n(r) = a*r + h exactly (LoRA
    is linear in r; h is the trainable head), so the planner prices exactly what the trainer
    sends. Without it, the planner's profile of the same model name and a head of
    ``num_labels``.
    """
    from planner.model import raw_model_profile

    if adapter_size is not None:
        n1, n2 = adapter_size("floss", 1), adapter_size("floss", 2)
        per_rank, head = n2 - n1, 2 * n1 - n2
        return raw_model_profile(per_rank * REF_RANK, ref_rank=REF_RANK), 0, head
    from planner.profiles import load_model

    return load_model(config.model), num_labels, 0


def plan_settings_for(
    config: Any, args: PlanArgs, *, model: ModelProfile, num_labels: int, head_params: int
) -> PlanSettings:
    """The planner's view of the base run: its network, clients per round, wire format."""
    # population and seed draw the sampled clients of each round (planner.sampling)
    population = {"num_clients": config.num_clients, "seed": config.seed}
    return PlanSettings(
        **{k: v for k, v in population.items() if k in PlanSettings.__dataclass_fields__},
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

    metric = metric_for(config, settings.metric)
    grid = args.method_grid(config)  # refuse a bad method list before loading a model
    fleet = fleet_setup_for(config, grid)  # and a bad fleet or policy list
    log(f"preparing {config.model} on {config.data} (read, tokenize, load once)")
    workload = prepare(config)
    sizes = trainer_adapter_size(config, workload)
    model, num_labels, head = model_profile_for(config, sizes)
    space = build_space(
        plan_settings_for(config, args, model=model, num_labels=num_labels, head_params=head),
        budget_scale=settings.budget_scale,
        grid=grid,
        num_clients=config.num_clients,
        seed=config.seed,
        adapter_size=sizes,
        tensor_sizes=trainer_tensor_sizes(config, workload),
        fleet=fleet,
    )
    space = replace(  # the trials' clients per round, stored once for every trial key
        seed_reasons(space, config), trial_clients_per_round=settings.trial_clients_per_round
    )
    log(
        f"search space: {len(space.candidates)} feasible configs of {', '.join(space.methods)} "
        f"over ranks {space.ranks}; "
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
        checkpoint_root=trial_checkpoints(settings.storage, settings.study_name),
    )
    meta = space_meta(space, config=config, args=args, settings=settings, metric=metric)
    meta["target_modules"] = target_modules(config, workload.base_model)
    meta["adapter_size_ref_rank"] = sizes("floss", args.ref_rank)
    return run_study(settings, space, objective, space_meta=meta, log=log)
