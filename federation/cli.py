"""`floss flower-app`: a runnable Flower app folder for any run config (thin; no flwr import).

`floss-tune export` writes one for its recommendation; this writes one for a config of your own
(the `config.yaml` floss-train saved, a `run.yaml`), so any run floss can simulate can be
deployed on Flower as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    rich_markup_mode="rich",
    add_completion=False,
    help="Write a runnable Flower app folder whose run config is a floss run config.",
)


def flower_app_command(
    out_dir: Annotated[Path, typer.Argument(help="folder to write the app to")],
    config: Annotated[
        Path, typer.Option("--config", "-c", help="run config (.yaml/.yml/.json) of floss-train")
    ],
) -> None:
    """Write OUT_DIR/pyproject.toml, floss_app.py and README.md; print the command that runs it."""
    from federation.appdir import run_command, write_app
    from trainer.config import RunConfig
    from trainer.errors import TrainerError
    from trainer.paths import check_output_dir

    try:
        run = RunConfig.load(config)
        folder = check_output_dir(out_dir, what="flower-app folder")
        write_app(folder, run)
    except (TrainerError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"{folder}: a runnable Flower app of {config}; run it with:")
    typer.echo(f"  {run_command(folder, run)}")


app.command()(flower_app_command)
