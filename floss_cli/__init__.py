"""The umbrella ``floss`` command, above every package: it mounts each package's own CLI.

``floss plan`` and ``floss profiles`` (planner), ``floss train`` (trainer), ``floss tune``
(tuner), ``floss flower-app`` (federation), ``floss serve`` (service). A package whose extra
is not installed is left out of the help rather than failing it. The single-purpose entry
points (``floss-plan``, ``floss-train``, ``floss-tune``) stay where they are; nothing below
imports this module.
"""

from __future__ import annotations

import typer

__all__ = ["build_app", "main"]

HELP = (
    "floss: communication-budget planning and autotuning for federated LoRA with sparse "
    "communication (FLoSS / FLASC)."
)
MOUNTS = (("trainer.cli", "train"), ("tuner.cli", "tune"), ("service.cli", "serve"))


def build_app() -> typer.Typer:
    from planner.cli import plan_command, profiles_command
    from planner.command import new_app

    app = new_app(help_text=HELP, no_args_is_help=True)
    app.command("plan")(plan_command)
    app.command("profiles")(profiles_command)
    for module, name in MOUNTS:
        try:
            mod = __import__(module, fromlist=["app"])
        except ImportError:  # that package's extra is not installed
            continue
        app.add_typer(mod.app, name=name)
    from federation.cli import flower_app_command  # no flwr import: always there

    app.command("flower-app")(flower_app_command)
    return app


def main() -> None:
    """Entry point of `floss`."""
    from planner.command import run_typer

    run_typer(build_app(), prog_name="floss")
