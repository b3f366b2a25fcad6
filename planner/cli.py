"""`floss-plan`, and the `plan` and `profiles` commands the umbrella ``floss_cli`` mounts.

Thin: parse, call planner.plan, render; never imports torch, nor any package above it.

Precedence of settings, written once here: CLI flag > profile file > built-in default.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Collection
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from planner import limits, options
from planner.budget import BUDGET_HELP, parse_budget
from planner.encoding import ENCODING_CHOICES, parse_precision
from planner.model import MAX_RANK
from planner.parse import fmt_density, parse_density, parse_methods
from planner.parse import parse_densities as parse_densities  # tuner/space.py & co. (for now)
from planner.parse import parse_ints as parse_ints  # re-exported until they import planner.parse
from planner.parse import parse_precisions as parse_precisions
from planner.paths import check_output_file
from planner.plan import (
    DEFAULT_DENSITIES,
    DEFAULT_HEURISTIC_DOWN,
    DEFAULT_NUM_CLIENTS,
    DEFAULT_RANKS,
    REF_RANK,
    Plan,
    PlanSettings,
    plan,
)
from planner.profiles import DEFAULT_MODEL, DEFAULT_NETWORK, list_profiles, load_model, load_network
from planner.progress import working
from planner.render import FORMATS, render_fleet_plan, render_plan, write_output
from planner.schedule import DEFAULT_KEEP_RATE, METHODS
from planner.work import NOTE_SECONDS, check_plan_work

DEFAULT_OVER_SELECTION = 1.3  # planner.fleet's (not imported: plain floss-plan stays lean)

app = typer.Typer(
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    help="floss: communication-budget planning and autotuning for federated LoRA with sparse "
    "communication (FLoSS / FLASC).",
)


MAX_SEED = 2**63 - 1  # trainer.config.MAX_SEED: the sampling seeds floss-train accepts


def fail(message: str, code: int = 2) -> NoReturn:
    """One readable line on stderr and a non-zero exit: how every user mistake ends."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


# The CLI's default strings spell the planner's own default grids, so the two cannot drift.
DEFAULT_RANKS_TEXT = ",".join(str(r) for r in DEFAULT_RANKS)
DEFAULT_DENSITIES_TEXT = ",".join(fmt_density(d) for d in DEFAULT_DENSITIES)


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
    settings = PlanSettings(
        model=model_profile,
        network=network,
        budget=parse_budget(budget),
        ranks=parse_ints(ranks, name="--ranks"),
        d_down=parse_densities(d_down, name="--d-down"),
        d_up=parse_densities(d_up, name="--d-up"),
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


METHOD_HELP = (
    f"{' | '.join(METHODS)} | all, or a comma list: every method under the same budget. "
    "sparseadapter and adapterlth are priced on the seeded schedule (--seed, --num-clients)"
)


@app.command("plan")
def plan_command(
    budget: Annotated[str, typer.Option("--budget", "-b", help=BUDGET_HELP)] = "50-dense-rounds",
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
    ] = ",".join(str(Fraction(d)) for d in DEFAULT_HEURISTIC_DOWN),
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
        float, typer.Option(help="adapterlth: share of the mask kept per round (thesis 0.98)")
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
    fleet: Annotated[
        str | None,
        typer.Option(
            help="a fleet of per-client links instead of one network: a name (`floss profiles "
            "fleet`) or a .toml (tiers) / .csv (measured clients) file. Prices the grids under "
            "each policy pair by a seeded Monte Carlo of the trainer's rounds (--d-down/--d-up: "
            "the caps of the bandwidth policy) and short-lists per pair; --all shows every row",
            show_default=False,
        ),
    ] = None,
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
    over_selection: Annotated[
        float,
        typer.Option(help="with --fleet: deadline rounds sample ceil(m x this) clients (FedScale)"),
    ] = DEFAULT_OVER_SELECTION,
    density_policy: Annotated[
        str | None,
        typer.Option(
            help="with --fleet: uniform, tiered (--tier-densities), bandwidth (the largest grid "
            "d_up whose transfer meets the deadline on each client's link), or a comma list "
            "(default: uniform,bandwidth, and tiered when --tier-densities is given)",
            show_default=False,
        ),
    ] = None,
    tier_densities: Annotated[
        str | None,
        typer.Option(
            help="with --fleet: d_down:d_up per tier, e.g. lte=1/4:1/16,wifi=1:1/4,5g=1:1",
            show_default=False,
        ),
    ] = None,
    density_grid: Annotated[
        str | None,
        typer.Option(
            help="with --fleet: the densities the bandwidth policy picks from "
            "(default 1,1/2,...,1/256)",
            show_default=False,
        ),
    ] = None,
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
    each round and density policy, on a fleet of per-client links."""
    given = _given_options()
    try:
        if output_format not in FORMATS:
            raise ValueError(
                f"--format must be one of {', '.join(FORMATS)}, but got {output_format!r}."
            )
        if limit is not None and limit < 1:
            raise ValueError(f"--limit must be at least 1, but got {limit}.")
        limits.check_fields({"limit": limit}, spell=options.flag)
        if output is not None:  # before the plan is computed, not after
            check_output_file(output, what="--output")
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
            with working(f"planning on fleet {fleet}", enabled=progress):
                text = _fleet_text(
                    settings,
                    fleet=fleet,
                    round_policy=round_policy,
                    deadline=deadline,
                    over_selection=over_selection,
                    density_policy=density_policy,
                    tier_densities=tier_densities,
                    density_grid=density_grid,
                    adapt_down=adapt_down,
                    max_dropped=max_dropped,
                    output_format=output_format,
                    limit=limit,
                    show_all=show_all,
                    given=given,
                )
        else:
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
            text = render_plan(result, fmt=output_format, limit=limit, show_all=show_all)
        write_output(text, output)
        if output is not None:  # the plan went to the file: one line says so
            typer.echo(
                f"wrote the {'fleet ' if fleet is not None else ''}plan "
                f"({output_format}, {len(text.encode()):,} bytes) to {output}"
            )
    except ValueError as exc:
        fail(str(exc))


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


def _given_options() -> set[str]:
    """Parameters the user set on the command line (not defaults) of the running command."""
    try:  # newer typer vendors click as typer._click
        from typer._click import get_current_context
    except ImportError:  # pragma: no cover - typer on plain click
        from click import get_current_context  # type: ignore[assignment,unused-ignore]

    ctx = get_current_context(silent=True)
    if ctx is None:
        return set()
    given = set()
    for name in ctx.params:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            given.add(name)
    return given


def _fleet_text(
    settings: PlanSettings,
    *,
    fleet: str,
    round_policy: str,
    deadline: float | None,
    over_selection: float,
    density_policy: str | None,
    tier_densities: str | None,
    density_grid: str | None,
    adapt_down: bool,
    max_dropped: float | None,
    output_format: str,
    limit: int | None,
    show_all: bool,
    given: set[str],
) -> str:
    from planner.fleet_batch import keep_freed_memory
    from planner.fleet_request import FleetOptions, fleet_plan

    keep_freed_memory()  # a short-lived process: fewer page faults (planner.fleet_batch)
    options = FleetOptions(
        fleet=fleet,
        round_policy=round_policy,
        deadline=deadline,
        over_selection=over_selection,
        density_policy=density_policy,
        tier_densities=tier_densities,
        density_grid=density_grid,
        adapt_down=adapt_down,
        max_dropped=max_dropped,
    )
    result = fleet_plan(settings, options, given=given)
    return render_fleet_plan(result, fmt=output_format, limit=limit, show_all=show_all)


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


def _quit_now(_signum: int, _frame: object) -> None:
    """Ctrl-C or SIGTERM where nothing needs finishing: one line, exit 130, no traceback.

    The trainer's and the tuner's commands put a graceful handler in place while they work
    (``trainer.interrupt``: finish the round, save, say how to resume)."""
    os.write(2, b"interrupted.\n")  # not sys.stderr: the handler may interrupt a write to it
    os._exit(130)


def run_typer(typer_app: typer.Typer, *, prog_name: str, args: list[str] | None = None) -> None:
    """Run a Typer app so that usage errors (a bad flag value) end in one line too, exit 2, and
    an interrupt in one line, exit 130.

    The trainer's and tuner's entry points use this as well.
    """
    if threading.current_thread() is not threading.main_thread():
        _run_typer(typer_app, prog_name=prog_name, args=args)
        return
    previous = {sig: signal.signal(sig, _quit_now) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _run_typer(typer_app, prog_name=prog_name, args=args)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def _run_typer(typer_app: typer.Typer, *, prog_name: str, args: list[str] | None) -> None:
    try:  # newer typer vendors click as typer._click
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - typer on plain click
        from click.exceptions import ClickException  # type: ignore[assignment,unused-ignore]
    from typer import Abort

    command = typer.main.get_command(typer_app)
    twice = repeated_option(command, sys.argv[1:] if args is None else args, prog_name)
    if twice is not None:
        typer.echo(f"error: {twice}", err=True)
        sys.exit(2)
    try:
        code = command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # the help text, as click prints it
            sys.exit(exc.exit_code)
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except Abort:
        typer.echo("aborted.", err=True)
        sys.exit(130)
    except ValueError as exc:  # click's path check on an argument holding a NUL byte
        if "null byte" not in str(exc):
            raise
        typer.echo("error: an argument holds a NUL byte (\\x00); no path can.", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


def repeated_option(command: Any, args: list[str], prog_name: str) -> str | None:
    """The one line refusing an option given twice (``--precision-down 8 --bits-down 4``, or
    ``--rank 4 --rank 8``: click would keep the last without a word), else None. Subcommands
    are followed; what does not parse is left to click, which says what is wrong."""
    try:  # newer typer vendors click as typer._click
        import typer._click as click  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # pragma: no cover - typer on plain click
        import click  # type: ignore[no-redef,unused-ignore]
    try:
        ctx = click.Context(command, info_name=prog_name, resilient_parsing=True)
        _, rest, order = command.make_parser(ctx).parse_args(args=list(args))
    except (click.ClickException, ValueError, TypeError):
        return None
    seen: dict[int, int] = {}
    for param in order:
        if isinstance(param, click.Option) and not param.multiple and not param.count:
            seen[id(param)] = seen.get(id(param), 0) + 1
            if seen[id(param)] == 2:
                names = [*param.opts, *param.secondary_opts]
                used = [a.split("=", 1)[0] for a in args if a.split("=", 1)[0] in names]
                spelled = " and ".join(dict.fromkeys(used)) or names[0]
                as_ = f" (as {spelled})" if len(set(used)) > 1 else ""
                return f"{names[0]} is given more than once{as_}; give it once."
    if isinstance(command, click.Group) and rest:
        sub = command.get_command(ctx, rest[0])
        if sub is not None:
            return repeated_option(sub, rest[1:], f"{prog_name} {rest[0]}")
    return None


def plan_main() -> None:
    """Entry point of `floss-plan`: the plan command itself (`floss-plan profiles` lists profiles)."""
    if len(sys.argv) > 1 and sys.argv[1] == "profiles":
        run_typer(app, prog_name="floss-plan", args=sys.argv[1:])
    single = typer.Typer(rich_markup_mode="rich", add_completion=False)
    single.command()(plan_command)
    run_typer(single, prog_name="floss-plan")
