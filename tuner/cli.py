"""`floss-tune` (and `floss tune`): run, resume or join a study; show it; export it.

Thin: parse, call the library, render. Imports nothing heavy at module import (torch, optuna,
transformers load inside the commands), so `floss --help` stays fast.

Precedence of run settings, written once (``base_config``): CLI flag > --config file > default.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from planner import command
from planner.command import fail, new_app, run_typer
from planner.method_spec import DEFAULT_KEEP_RATE
from planner.parse import parse_floats, parse_names, parse_plan_grid, parse_precisions
from planner.plan_types import DEFAULT_HEURISTIC_DOWN, REF_RANK
from planner.settings import DEFAULT_BUDGET
from trainer import interrupt  # stdlib only
from tuner.settings import DEFAULT_STORAGE, DEFAULT_STUDY, METRICS, PRUNERS, SAMPLERS

app = new_app(
    no_args_is_help=True,
    help_text="Optuna over every configuration the budget affords (FLoSS rank, d_down, d_up, "
    "top-k; optionally dense, SparseAdapter, AdapterLTH, FFA-LoRA), priced round by round: short "
    "runs under the budget pick the configuration before the expensive full training.",
)

# What the fleet options and the others of the base config fall back to when not given.
BASE = "the base config's"

STORAGE_HELP = (
    "Optuna storage: an SQLAlchemy URL (sqlite:///FILE.db, postgresql://..., mysql://...) or a "
    "journal file path; several workers may share one"
)
Storage = Annotated[
    str, typer.Option("--storage", "-s", help=STORAGE_HELP, envvar="FLOSS_TUNE_STORAGE")
]
StudyName = Annotated[str, typer.Option("--study-name", "-n", help="study name in the storage")]


def base_config(config_file: Path | None, overrides: dict[str, Any]) -> Any:
    """CLI flag > config file > RunConfig default."""
    from trainer.config import RunConfig
    from trainer.config_files import read_config_mapping

    data = read_config_mapping(config_file) if config_file is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return RunConfig.from_dict(data)


def rerun_command(ctx: typer.Context) -> str:
    """The command that resumes an interrupted study: the same command line again."""
    words = ctx.command_path.split()  # ['floss-tune', 'run'] or ['floss', 'tune', 'run']
    if sys.argv[1 : len(words)] != words[1:]:  # not started from a command line
        return f"{ctx.command_path} with the same options"
    return shlex.join([*words, *sys.argv[len(words) :]])


@app.command("run")
@interrupt.graceful  # first Ctrl-C/SIGTERM: stop the trial at its round boundary, exit 130
def run_command(
    ctx: typer.Context,
    budget: command.Budget = DEFAULT_BUDGET,
    n_trials: Annotated[
        int,
        typer.Option(
            help="finished trials (complete or pruned) the study aims for, shared "
            "by every worker and by reruns"
        ),
    ] = 20,
    budget_scale: Annotated[
        float, typer.Option(help="trials train on this fraction of the budget, in (0, 1]")
    ] = 1.0,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="base run config (YAML/JSON) of floss-train"),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(help="network profile name or file (default: the base config's, thesis)"),
    ] = None,
    up_slowdown: Annotated[
        float | None, typer.Option(help="S: uplink = downlink / S (default: the profile's uplink)")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="model name, local path or hub id (default all-minilm-l6-v2)")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="fortunes, debian-packages, csv, jsonl, parquet, hf, 20newsgroups "
            "(default fortunes)"
        ),
    ] = None,
    data_path: Annotated[str | None, typer.Option(help="data file or folder")] = None,
    num_clients: Annotated[
        int | None, typer.Option(help="clients in the population (default 100)")
    ] = None,
    clients_per_round: Annotated[
        int | None, typer.Option(help="clients sampled per round (default 10)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, mps (default auto)")] = None,
    ranks: Annotated[str, typer.Option(help="LoRA ranks to search")] = "1,2,4,8,16,32,64",
    d_down: Annotated[str, typer.Option(help="download densities to search")] = ",".join(
        ["1"] + [f"1/{2**i}" for i in range(1, 9)]
    ),
    d_up: Annotated[str, typer.Option(help="upload densities to search")] = ",".join(
        ["1"] + [f"1/{2**i}" for i in range(1, 9)]
    ),
    ref_rank: Annotated[int, typer.Option(help="rank of the dense reference round")] = REF_RANK,
    min_rounds: Annotated[
        int, typer.Option(help="configs affording fewer rounds are left out")
    ] = 1,
    max_rounds: Annotated[
        int | None, typer.Option(help="cap on the rounds of a run (full budget) (default: none)")
    ] = None,
    methods: Annotated[
        str,
        typer.Option(
            help="methods to search, priced under the same budget: floss, dense, "
            "sparseadapter, adapterlth, ffa (comma-separated)"
        ),
    ] = "floss",
    topk: Annotated[
        str, typer.Option(help="FLoSS top-k modes to search: global, per-tensor (or both)")
    ] = "global",
    keep_rates: Annotated[
        str | None,
        typer.Option(
            help="AdapterLTH keep rates per round to search (default: the base run's "
            f"keep_rate, {DEFAULT_KEEP_RATE:g} as in the thesis)"
        ),
    ] = None,
    bits_down: Annotated[
        str | None,
        typer.Option(
            "--bits-down",
            "--precisions-down",
            help="download value precisions to search, a comma list of bit widths or schemes "
            "(e.g. 32,8,4 or fp32,q8,rh4; default: the base run's, not searched)",
            show_default=False,
        ),
    ] = None,
    bits_up: Annotated[
        str | None,
        typer.Option(
            "--bits-up",
            "--precisions-up",
            help="upload value precisions to search, as --bits-down",
            show_default=False,
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help=f"objective, validation split only: {', '.join(METRICS)} (served model = "
            "P masked to the download mask, as FLASC evaluates; _server = the dense P). "
            "Default: val_accuracy, val_loss for task lm"
        ),
    ] = None,
    levels: Annotated[
        int, typer.Option(help="fidelity checkpoints: 1/2^(L-1), ..., 1/2, 1 of the budget")
    ] = 4,
    search: Annotated[
        str,
        typer.Option(
            help="halving: floss's compute-aware successive halving (every configuration at a "
            "low fidelity, the best retrained deeper within --max-client-steps; docs/tuner.md) | "
            "optuna: --sampler proposes, --pruner stops trials early"
        ),
    ] = "halving",
    pruner: Annotated[
        str, typer.Option(help=f"{', '.join(PRUNERS)} (sha = successive halving; --search optuna)")
    ] = "sha",
    reduction_factor: Annotated[int, typer.Option(help="eta of sha/hyperband")] = 2,
    sampler: Annotated[str, typer.Option(help=", ".join(SAMPLERS))] = "tpe",
    seed: Annotated[
        int | None,
        typer.Option(help="sampler seed (give each worker its own; default: none, random)"),
    ] = None,
    tune_lr: Annotated[
        bool, typer.Option(help="also search client and server learning rates")
    ] = False,
    seeds: Annotated[
        bool, typer.Option(help="enqueue dense LoRA and the d_up = d_down/S family first")
    ] = True,
    trial_clients_per_round: Annotated[
        int | None,
        typer.Option(help="trials train this many of the sampled clients per round (default: all)"),
    ] = None,
    max_client_steps: Annotated[
        int | None,
        typer.Option(
            help="compute cap: client optimizer steps over the whole study (default: none)"
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="this worker starts no trial after this many seconds (default: none)"),
    ] = None,
    fleet: Annotated[str | None, command.fleet_option(f"{BASE}, none")] = None,
    round_policies: Annotated[
        str | None,
        typer.Option(
            help="fleet round policies to search: sync, deadline (default: the base config's)"
        ),
    ] = None,
    density_policies: Annotated[
        str | None,
        typer.Option(
            help="fleet density policies to search (floss): uniform, tiered, bandwidth "
            "(default: the base config's)"
        ),
    ] = None,
    deadlines: Annotated[
        str | None,
        typer.Option(
            help="fleet round deadlines to search, seconds (deadline rounds and bandwidth "
            "densities; default: the base config's deadline_seconds)"
        ),
    ] = None,
    over_selection: Annotated[float | None, command.over_selection_option(BASE)] = None,
    tier_densities: Annotated[str | None, command.tier_densities_option(BASE)] = None,
    density_grid: Annotated[str | None, command.density_grid_option(BASE)] = None,
    storage: Storage = DEFAULT_STORAGE,
    study_name: StudyName = DEFAULT_STUDY,
    heartbeat: Annotated[
        int,
        typer.Option(
            "--heartbeat",
            help="seconds between a worker's heartbeats (SQLite, PostgreSQL): a trial whose "
            "worker missed 3 is marked failed and retried once by a surviving worker",
            envvar="FLOSS_TUNE_HEARTBEAT",
        ),
    ] = 30,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            "-e",
            help="export the recommendation to this folder (checked before the study starts)",
        ),
    ] = None,
) -> None:
    """Run a study, or resume/join the one named by --storage and --study-name."""
    from tuner.rdb import DatabaseLost
    from tuner.runner import PlanArgs, run_tuning
    from tuner.settings import TuneSettings, check_methods, check_topks

    try:
        settings = TuneSettings(
            storage=storage,
            study_name=study_name,
            n_trials=n_trials,
            timeout_seconds=timeout,
            max_client_steps=max_client_steps,
            budget_scale=budget_scale,
            levels=levels,
            search=search,  # type: ignore[arg-type]
            pruner=pruner,  # type: ignore[arg-type]
            reduction_factor=reduction_factor,
            sampler=sampler,  # type: ignore[arg-type]
            seed=seed,
            tune_lr=tune_lr,
            seed_heuristics=seeds,
            trial_clients_per_round=trial_clients_per_round,
            metric=metric,
            heartbeat_seconds=heartbeat,
        )
        from planner.paths import check_output_dir
        from tuner.rdb import check_reachable
        from tuner.storage import check_storage_file, storage_kind

        storage_kind(storage)  # refuse an unknown scheme before loading a model
        check_storage_file(storage)  # and a storage file that cannot be written
        check_reachable(storage)  # and a database server that is down or refuses us
        if export is not None:  # before the study runs, not after it
            check_output_dir(export, what="--export")
        rank_grid, d_down_grid, d_up_grid = parse_plan_grid(ranks=ranks, d_down=d_down, d_up=d_up)
        args = PlanArgs(
            budget=budget,
            ranks=rank_grid,
            d_down=d_down_grid,
            d_up=d_up_grid,
            heuristic_down=DEFAULT_HEURISTIC_DOWN,
            ref_rank=ref_rank,
            min_rounds=min_rounds,
            max_rounds=max_rounds,
            methods=check_methods(parse_names(methods)),
            topks=check_topks(parse_names(topk)),
            keep_rates=(
                None if keep_rates is None else tuple(parse_floats(keep_rates, name="--keep-rates"))
            ),
            precisions_down=parse_precisions(bits_down, name="--bits-down"),
            precisions_up=parse_precisions(bits_up, name="--bits-up"),
            round_policies=() if round_policies is None else parse_names(round_policies),
            density_policies=() if density_policies is None else parse_names(density_policies),
            deadlines=(
                () if deadlines is None else tuple(parse_floats(deadlines, name="--deadlines"))
            ),
        )
        from planner.budget import parse_budget

        parse_budget(budget)
        base = base_config(
            config,
            {
                "network": profile,
                "up_slowdown": up_slowdown,
                "model": model,
                "data": data,
                "data_path": data_path,
                "num_clients": num_clients,
                "clients_per_round": clients_per_round,
                "device": device,
                "fleet": fleet,
                "over_selection": over_selection,
                "tier_densities": tier_densities,
                "density_grid": density_grid,
            },
        )
        check_tune_options(
            base,
            args,
            seed=seed,
            given={
                k
                for k, v in {
                    "over_selection": over_selection,
                    "tier_densities": tier_densities,
                    "density_grid": density_grid,
                    "round_policies": round_policies,
                    "density_policies": density_policies,
                    "deadlines": deadlines,
                    "keep_rates": keep_rates,
                    "num_clients": num_clients,
                    "clients_per_round": clients_per_round,
                }.items()
                if v is not None
            },
        )
        from tuner.runner import fleet_setup_for

        fleet_setup_for(base, args.method_grid(base))  # a bad fleet search: one line, now
        study = run_tuning(base, args, settings, log=lambda m: typer.echo(m, err=True))
    except DatabaseLost as exc:  # mid-study: what finished is in the database
        fail(f"{exc}; finished trials are kept; resume with: {rerun_command(ctx)}", code=3)
    except ValueError as exc:
        fail(str(exc))
    except interrupt.Interrupted as exc:
        typer.echo(f"interrupted: {exc}; resume with: {rerun_command(ctx)}", err=True)
        raise typer.Exit(code=interrupt.EXIT_CODE) from None
    _show(study)
    if export is not None:
        _export(study, export)


def check_tune_options(base: Any, args: Any, *, given: set[str], seed: int | None) -> None:
    """floss-tune run's numbers within their ranges and no option without effect: the table
    of ``planner.options`` that floss-plan, floss-train and the API use."""
    from planner import limits, options

    limits.check_fields(
        {k: getattr(base, k) for k in ("num_clients", "clients_per_round", "over_selection")},
        spell=lambda f: options.flag(f) if f in given else f,
    )
    limits.check_fields(
        {"min_rounds": args.min_rounds, "max_rounds": args.max_rounds, "seed": seed},
        spell=options.flag,
    )
    for d in args.deadlines:
        limits.check(d, "deadline_seconds", name="--deadlines")
    context = options.Context(
        fleet=base.fleet is not None,
        round_policies=frozenset(args.round_policies or (base.round_policy,)),
        density_policies=frozenset(args.density_policies or (base.density_policy,)),
        methods=frozenset(args.methods),
        partition=base.partition,
        deadline=bool(args.deadlines) or base.deadline_seconds is not None,
    )
    note = options.check(context, given, flags=options.TUNE_FLAGS)
    if note is not None:
        typer.echo(note, err=True)


def _show(study: Any, *, wide: bool = False, trial: int | None = None) -> None:
    """The study's table (100 columns at most unless ``wide``), its footnote and the
    recommendation; or one trial's details (tuner.show)."""
    import shutil

    from rich.console import Console

    from tuner.report import recommendation_line
    from tuner.show import DEFAULT_WIDTH, WIDE_WIDTH, footnote, trial_details, trials_table

    columns = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    # markup off: labels and reasons are printed as they are
    console = Console(width=min(columns, DEFAULT_WIDTH), highlight=False, markup=False)
    if trial is not None:
        try:
            details = trial_details(study, trial)
        except ValueError as exc:
            fail(str(exc))
        for part in details:
            console.print(part)
        return
    # --wide: the table as wide as its cells (past the terminal's edge if need be)
    table_console = (
        Console(width=max(columns, WIDE_WIDTH), highlight=False, markup=False) if wide else console
    )
    table_console.print(trials_table(study, wide=wide))
    console.print(footnote(study, wide=wide), style="dim")
    console.print(recommendation_line(study))


def _export(study: Any, out: Path) -> None:
    from tuner.export import export_study

    try:
        lines = export_study(study, out)
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:  # the folder was checked first; this is a disk that filled or vanished
        fail(f"cannot write the export to {str(out)!r}: {exc.strerror or exc}.")
    for line in lines:
        typer.echo(line)


def _load(storage: str, study_name: str) -> Any:
    from tuner.settings import check_study_name
    from tuner.storage import load_existing_study

    try:
        check_study_name(study_name)
        return load_existing_study(storage, study_name)
    except ValueError as exc:
        fail(str(exc))


@app.command("show")
def show_command(
    storage: Storage = DEFAULT_STORAGE,
    study_name: StudyName = DEFAULT_STUDY,
    wide: Annotated[
        bool,
        typer.Option(
            "--wide",
            help="every column (test split, fidelity step, client steps, simulated seconds, the "
            "full run's plan) and every trial, at the terminal's width",
        ),
    ] = False,
    trial: Annotated[
        int | None,
        typer.Option("--trial", help="one trial's details and rounds", show_default=False),
    ] = None,
) -> None:
    """Print the trials of a study (100 columns at most; waiting trials last), what the columns
    mean, and the recommendation."""
    if trial is not None and wide:
        fail("--trial N shows one trial in full; give it without --wide.")
    _show(_load(storage, study_name), wide=wide, trial=trial)


@app.command("export")
def export_command(
    out_dir: Annotated[Path, typer.Argument(help="folder to write the export to")],
    storage: Storage = DEFAULT_STORAGE,
    study_name: StudyName = DEFAULT_STUDY,
) -> None:
    """Write run.yaml/run.json (floss-train --config), peft/adapter_config.json, trials.csv
    (+ .parquet), rounds.csv and pareto.png for the recommended configuration."""
    from planner.paths import check_output_dir

    try:
        check_output_dir(out_dir, what="export folder")
    except ValueError as exc:
        fail(str(exc))
    _export(_load(storage, study_name), out_dir)


def main() -> None:
    """Entry point of `floss-tune`."""
    run_typer(app, prog_name="floss-tune")


if __name__ == "__main__":  # python -m tuner.cli (the benches run it this way)
    main()
