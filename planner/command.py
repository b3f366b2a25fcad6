"""What every floss command line shares: the one-line failure, the runner, the shared options.

``run_typer`` runs a Typer app so that a usage error ends in one line (exit 2), an interrupt in
one line (exit 130) and an option given twice is refused; ``fail`` is how a command refuses a
user's mistake. The options that mean the same thing on ``floss-plan``, ``floss-train`` and
``floss-tune`` (the budget, the fleet and its tiered and bandwidth settings, over-selection) are
declared here once, with one help text; a command whose default differs says so through the
option's factory (``fleet_option("the base config's, none")``). Imported by the planner's,
trainer's, tuner's and service's command lines and by the umbrella ``floss``; it imports nothing
above the planner.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Annotated, Any, NoReturn

import typer

from planner.budget import BUDGET_HELP
from planner.limits import DEFAULT_OVER_SELECTION

Budget = Annotated[str, typer.Option("--budget", "-b", help=BUDGET_HELP)]


def _with_default(help_text: str, default: str | None) -> str:
    """A shared option's help with the default of the command that declares it: the text's last
    parenthesis takes it (``(FedScale; default: 1.3)``), else it gets one of its own."""
    if default is None:
        return help_text
    if help_text.endswith(")"):
        return f"{help_text[:-1]}; default: {default})"
    return f"{help_text} (default: {default})"


def fleet_option(default: str | None = None) -> Any:
    """``--fleet``; ``default`` says what a command uses when it is not given."""
    return typer.Option(
        "--fleet",
        help=_with_default(
            "a fleet of per-client links instead of one network: a name (`floss profiles "
            "fleet`) or a .toml (tiers) / .csv (measured clients) file; round seconds come from "
            "each client's own link (docs/fleets.md)",
            default,
        ),
        show_default=False,
    )


def tier_densities_option(default: str | None = None) -> Any:
    """``--tier-densities``; ``default`` as for ``fleet_option``."""
    return typer.Option(
        "--tier-densities",
        help=_with_default(
            "with --fleet, tiered densities: d_down:d_up per tier, e.g. "
            "lte=1/4:1/16,wifi=1:1/4,5g=1:1",
            default,
        ),
        show_default=False,
    )


def density_grid_option(default: str | None = "1,1/2,...,1/256") -> Any:
    """``--density-grid``; ``default`` as for ``fleet_option`` (the planner's grid unless told)."""
    return typer.Option(
        "--density-grid",
        help=_with_default(
            "with --fleet, bandwidth densities: the densities a client may take", default
        ),
        show_default=False,
    )


def over_selection_option(default: str | None = f"{DEFAULT_OVER_SELECTION:g}") -> Any:
    """``--over-selection``; ``default`` as for ``fleet_option`` (planner.limits' unless told)."""
    return typer.Option(
        "--over-selection",
        help=_with_default(
            "with --fleet: deadline rounds sample ceil(m x this) clients (FedScale)", default
        ),
        show_default=False,
    )


# The four fleet options with the planner's defaults (floss-plan's; floss-train's over-selection
# and grid). A command whose default differs declares one through its factory above (floss-tune:
# the base config's; floss-train: no fleet and no tiers unless its config file names them).
Fleet = Annotated[str | None, fleet_option()]
TierDensities = Annotated[str | None, tier_densities_option()]
DensityGrid = Annotated[str | None, density_grid_option()]
OverSelection = Annotated[float | None, over_selection_option()]


def new_app(*, help_text: str | None = None, no_args_is_help: bool = False) -> typer.Typer:
    """A Typer app as every floss command builds it (rich help, no shell completion); typer's
    own defaults for what is not given (a help text left out comes from the callback)."""
    given: dict[str, Any] = {"no_args_is_help": True} if no_args_is_help else {}
    if help_text is not None:
        given["help"] = help_text
    return typer.Typer(rich_markup_mode="rich", add_completion=False, **given)


def fail(message: str, code: int = 2) -> NoReturn:
    """One readable line on stderr and a non-zero exit: how every user mistake ends."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code) from None  # the line above is the whole story


def given_options() -> set[str]:
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
