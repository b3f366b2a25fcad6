"""`floss-plan`, and the `plan` and `profiles` commands the umbrella ``floss_cli`` mounts.

Thin: parse, call planner.plan, render; never imports torch, nor any package above it.

Precedence of settings (CLI flag > profile file > built-in default) is ``planner.settings``'.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from planner import command, limits, options
from planner.command import fail, given_options, new_app, run_typer
from planner.limits import DEFAULT_OVER_SELECTION
from planner.method_spec import DEFAULT_KEEP_RATE, METHODS
from planner.paths import check_output_file
from planner.plan import plan
from planner.plan_types import DEFAULT_NUM_CLIENTS, REF_RANK, Plan, PlanSettings
from planner.profiles import DEFAULT_MODEL, DEFAULT_NETWORK, list_profiles
from planner.progress import working
from planner.render import FORMATS, render_fleet_plan, render_plan, write_output
from planner.settings import (
    DEFAULT_BUDGET,
    DEFAULT_DENSITIES_TEXT,
    DEFAULT_HEURISTIC_TEXT,
    DEFAULT_RANKS_TEXT,
    build_settings,
    check_plan_options,
)
from planner.work import NOTE_SECONDS, check_plan_work

if TYPE_CHECKING:  # planner.fleet loads only when a fleet is planned
    from planner.fleet_request import FleetOptions

app = new_app(
    help_text="floss: communication-budget planning and autotuning for federated LoRA with "
    "sparse communication (FLoSS / FLASC).",
    no_args_is_help=True,
)


METHOD_HELP = (
    f"{' | '.join(METHODS)} | all, or a comma list: every method under the same budget. "
    "sparseadapter and adapterlth are priced on the seeded schedule (--seed, --num-clients)"
)


@app.command("plan")
def plan_command(
    budget: command.Budget = DEFAULT_BUDGET,
    profile: Annotated[
        str,
        typer.Option("--profile", "-p", help="network profile name or file (see `floss profiles`)"),
    ] = DEFAULT_NETWORK,
    down: Annotated[
        float | None, typer.Option(help="downlink in Mbps (10^6 bit/s); overrides the profile")
    ] = None,
    up: Annotated[
        float | None, typer.Option(help="uplink in Mbps (10^6 bit/s); overrides the profile")
    ] = None,
    up_slowdown: Annotated[
        float | None, typer.Option(help="S: uplink = downlink / S (the thesis uses 1, 4, 16)")
    ] = None,
    rtt_ms: Annotated[
        float | None, typer.Option(help="round-trip latency in ms, paid once per transfer")
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="model profile name or file, or a Hugging Face config.json / model folder",
        ),
    ] = DEFAULT_MODEL,
    lora_params: Annotated[
        int | None, typer.Option(help="raw adapter size at --ref-rank instead of a model profile")
    ] = None,
    num_labels: Annotated[
        int | None,
        typer.Option(
            help="classifier labels: a trainable head of hidden*L+L (default: the model "
            "profile's, e.g. 24 fortunes categories for all-minilm-l6-v2; 0 = no head)",
            show_default=False,
        ),
    ] = None,
    head_params: Annotated[
        int, typer.Option(help="extra trainable entries sent with the adapter")
    ] = 0,
    ref_rank: Annotated[
        int, typer.Option(help="rank of the dense reference round (FLASC default 16)")
    ] = REF_RANK,
    ranks: Annotated[str, typer.Option(help="comma-separated LoRA ranks")] = DEFAULT_RANKS_TEXT,
    d_down: Annotated[
        str, typer.Option(help="download densities, e.g. 1,1/4,0.0625")
    ] = DEFAULT_DENSITIES_TEXT,
    d_up: Annotated[str, typer.Option(help="upload densities")] = DEFAULT_DENSITIES_TEXT,
    heuristic_d_down: Annotated[
        str, typer.Option(help="download densities of the recommended d_up = d_down/S family")
    ] = DEFAULT_HEURISTIC_TEXT,
    clients_per_round: Annotated[
        int, typer.Option("--clients-per-round", "-c", help="sampled clients m per round")
    ] = 10,
    method: Annotated[str, typer.Option("--method", help=METHOD_HELP)] = "floss",
    num_clients: Annotated[
        int,
        typer.Option(
            help="clients in the population, as floss-train: who is sampled when "
            "(sparseadapter/adapterlth send positions to clients lacking the mask)"
        ),
    ] = DEFAULT_NUM_CLIENTS,
    seed: Annotated[
        int, typer.Option(help="seed of the client sampling (sparseadapter/adapterlth schedule)")
    ] = 0,
    keep_rate: Annotated[
        float,
        typer.Option(
            help=f"adapterlth: share of the mask kept per round (thesis {DEFAULT_KEEP_RATE:g})"
        ),
    ] = DEFAULT_KEEP_RATE,
    lth_floor: Annotated[
        str | None,
        typer.Option(
            help="adapterlth: density floor, e.g. 1/64 (default none: k shrinks to 1)",
            show_default=False,
        ),
    ] = None,
    precision: Annotated[
        str,
        typer.Option(
            help="value precision on the wire: fp32, fp16, bf16, q8/q4/q2/q1 (nearest), "
            "sr8/sr4/sr2/sr1 (unbiased stochastic rounding), rh8/rh4/rh2/rh1 (rotation codes, "
            "EDEN-style), stc1 (sign x mean), or a bit width 32/16/8/4/2/1 "
            "(= fp32, bf16, q8, rh4, rh2, rh1)"
        ),
    ] = "fp32",
    precision_down: Annotated[
        str | None,
        typer.Option(
            "--precision-down",
            "--bits-down",
            help="download precisions to price, a comma list of schemes or bit widths, e.g. "
            "fp32,8,4 (default: --precision)",
            show_default=False,
        ),
    ] = None,
    precision_up: Annotated[
        str | None,
        typer.Option(
            "--precision-up",
            "--bits-up",
            help="upload precisions to price, as --precision-down (default: --precision)",
            show_default=False,
        ),
    ] = None,
    encoding: Annotated[
        str, typer.Option(help="auto (cheapest per message), dense, coo, bitmap, rice")
    ] = "auto",
    compute_seconds: Annotated[
        float, typer.Option(help="local compute seconds per round (default 0: communication only)")
    ] = 0.0,
    min_rounds: Annotated[
        int, typer.Option(help="configs affording fewer rounds are infeasible")
    ] = 1,
    max_rounds: Annotated[
        int | None, typer.Option(help="cap on rounds (more are not needed)")
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="table, json, csv or yaml")
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="write to this file instead of stdout (its folder must exist)"
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="table: every feasible config, not just the short list")
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option(
            help="table: at most this many rows (default: all of them)", show_default=False
        ),
    ] = None,
    fleet: command.Fleet = None,
    round_policy: Annotated[
        str,
        typer.Option(
            help="with --fleet: sync (the slowest sampled client sets the pace), deadline "
            "(over-select, keep the first m by --deadline), or a comma list"
        ),
    ] = "sync,deadline",
    deadline: Annotated[
        float | None,
        typer.Option(
            help="with --fleet: the round deadline D in seconds (deadline rounds; the bandwidth "
            "policy's per-client target). Default: the 1/over-selection quantile of the clients' "
            "seconds at the config's densities",
            show_default=False,
        ),
    ] = None,
    over_selection: command.OverSelection = None,
    density_policy: Annotated[
        str | None,
        typer.Option(
            help="with --fleet: uniform, tiered (--tier-densities), bandwidth (the largest grid "
            "d_up whose transfer meets the deadline on each client's link), or a comma list "
            "(default: uniform,bandwidth, and tiered when --tier-densities is given)",
            show_default=False,
        ),
    ] = None,
    tier_densities: command.TierDensities = None,
    density_grid: command.DensityGrid = None,
    adapt_down: Annotated[
        bool,
        typer.Option(
            "--adapt-down",
            help="with --fleet, bandwidth policy: adapt each client's d_down too",
        ),
    ] = False,
    max_dropped: Annotated[
        float | None,
        typer.Option(
            help="with --fleet: the short list flags deadline rows that drop more than this "
            "share of the sampled clients' uploads (default 0.3; over-selecting 1.3x drops 0.23)",
            show_default=False,
        ),
    ] = None,
    progress: Annotated[
        bool,
        typer.Option(
            help="a progress display on stderr while planning (only when stderr is a terminal)"
        ),
    ] = True,
) -> None:
    """Turn a budget and a network into the feasible (rank, d_down, d_up) configurations of each
    method, and a short list with the reason for each row. With --fleet: each configuration under
    each round and density policy, on a fleet of per-client links, priced by a seeded Monte Carlo
    of the trainer's rounds (--d-down/--d-up: the caps of the bandwidth policy) and short-listed
    per policy pair (--all: every row)."""
    given = given_options()
    try:
        _check_output_options(output_format, limit=limit, output=output)
        settings = build_settings(
            budget=budget,
            profile=profile,
            down=down,
            up=up,
            up_slowdown=up_slowdown,
            rtt_ms=rtt_ms,
            model=model,
            lora_params=lora_params,
            num_labels=num_labels,
            head_params=head_params,
            ref_rank=ref_rank,
            ranks=ranks,
            d_down=d_down,
            d_up=d_up,
            heuristic_d_down=heuristic_d_down,
            clients_per_round=clients_per_round,
            precision=precision,
            encoding=encoding,
            compute_seconds=compute_seconds,
            min_rounds=min_rounds,
            max_rounds=max_rounds,
            method=method,
            num_clients=num_clients,
            seed=seed,
            keep_rate=keep_rate,
            lth_floor=lth_floor,
            precision_down=precision_down,
            precision_up=precision_up,
        )
        check_plan_options(
            given,
            fleet=fleet,
            round_policy=round_policy,
            density_policy=density_policy,
            tier_densities=tier_densities,
            method=method,
            deadline=deadline,
        )
        if fleet is not None:
            from planner.fleet_request import FleetOptions

            fleet_options = FleetOptions(
                fleet=fleet,
                round_policy=round_policy,
                deadline=deadline,
                over_selection=(
                    DEFAULT_OVER_SELECTION if over_selection is None else over_selection
                ),
                density_policy=density_policy,
                tier_densities=tier_densities,
                density_grid=density_grid,
                adapt_down=adapt_down,
                max_dropped=max_dropped,
            )
            with working(f"planning on fleet {fleet}", enabled=progress):
                text = _fleet_text(
                    settings,
                    fleet_options,
                    given=given,
                    fmt=output_format,
                    limit=limit,
                    show_all=show_all,
                )
        else:
            text = _plan_text(
                settings, fmt=output_format, limit=limit, show_all=show_all, progress=progress
            )
        write_output(text, output)
        if output is not None:  # the plan went to the file: one line says so
            typer.echo(
                f"wrote the {'fleet ' if fleet is not None else ''}plan "
                f"({output_format}, {len(text.encode()):,} bytes) to {output}"
            )
    except ValueError as exc:
        fail(str(exc))


def _check_output_options(output_format: str, *, limit: int | None, output: Path | None) -> None:
    """--format, --limit and --output, refused before the plan is computed, not after."""
    if output_format not in FORMATS:
        raise ValueError(
            f"--format must be one of {', '.join(FORMATS)}, but got {output_format!r}."
        )
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, but got {limit}.")
    limits.check_fields({"limit": limit}, spell=options.flag)
    if output is not None:
        check_output_file(output, what="--output")


def _plan_text(
    settings: PlanSettings, *, fmt: str, limit: int | None, show_all: bool, progress: bool
) -> str:
    """The plan on one network, rendered; a note first when it is minutes of work."""
    seconds = check_plan_work(settings)  # refused above its stated limit, before work
    if seconds > NOTE_SECONDS:
        typer.echo(
            f"note: about {seconds:,.0f} s of work (the seeded schedules of sparseadapter/"
            f"adapterlth over {settings.num_clients:,} clients, as measured on a 2-core "
            "machine).",
            err=True,
        )
    with working("planning", enabled=progress):
        result: Plan = plan(settings)
    return render_plan(result, fmt=fmt, limit=limit, show_all=show_all)


def _fleet_text(
    settings: PlanSettings,
    fleet_options: FleetOptions,
    *,
    given: set[str],
    fmt: str,
    limit: int | None,
    show_all: bool,
) -> str:
    """The plan on a fleet (``planner.fleet_request.fleet_plan``), rendered."""
    from planner.fleet_batch import keep_freed_memory
    from planner.fleet_request import fleet_plan

    keep_freed_memory()  # a short-lived process: fewer page faults (planner.fleet_batch)
    result = fleet_plan(settings, fleet_options, given=given)
    return render_fleet_plan(result, fmt=fmt, limit=limit, show_all=show_all)


@app.command("profiles")
def profiles_command(
    kind: Annotated[
        str | None, typer.Argument(help="network, model or fleet (default: all three)")
    ] = None,
) -> None:
    """List the network, model and fleet profiles visible by name (built-in and
    $FLOSS_PROFILE_DIR)."""
    from rich.console import Console
    from rich.table import Table

    if kind not in (None, "network", "model", "fleet"):
        fail(f"profile kind must be network, model or fleet, but got {kind!r}.")
    table = Table(title="profiles (user folders in $FLOSS_PROFILE_DIR shadow built-ins)")
    for col in ("kind", "name", "description", "from"):
        table.add_column(col)
    for e in list_profiles(kind):  # type: ignore[arg-type]
        table.add_row(
            e.kind, e.name, e.description, e.origin if e.origin != "built-in" else "built-in"
        )
    Console(width=120).print(table)


def plan_main() -> None:
    """Entry point of `floss-plan`: the plan command itself (`floss-plan profiles` lists profiles).

    A one-shot process: what is loaded by now lives until it exits, so the cyclic collector is
    told to skip it (``gc.freeze``), and to skip everything at the exit's own collection, which
    walks every object left (measured: ~20 ms of a default fleet plan's exit, ~9 ms of a plain
    one's)."""
    gc.freeze()
    try:
        _plan_main()
    finally:
        gc.freeze()


def _plan_main() -> None:
    """floss-plan's commands, on the process's arguments."""
    if len(sys.argv) > 1 and sys.argv[1] == "profiles":
        run_typer(app, prog_name="floss-plan", args=sys.argv[1:])
    single = new_app()
    single.command()(plan_command)
    run_typer(single, prog_name="floss-plan")
