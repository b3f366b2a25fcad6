"""`floss flower-app`: a runnable Flower app folder for any run config (thin; no flwr import).

`floss-tune export` writes one for its recommendation; this writes one for a config of your own
(the `config.yaml` floss-train saved, a `run.yaml`), so any run floss can simulate can be
deployed on Flower as it is. The config is checked as floss-train checks it before anything
slow (``trainer.preflight``); a folder that holds anything is left alone unless --overwrite is
given; the app writes its results to an output folder named in its config, and the command
printed runs one SuperNode per client.
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
    results: Annotated[
        Path | None,
        typer.Option(
            "--results",
            help="where the ServerApp writes records, checkpoints and the adapter (the app's "
            "out-dir; default: OUT_DIR-results beside the app, outside the folder Flower packs)",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="write into a folder that is not empty (floss's three files are replaced, "
            "other files kept)",
        ),
    ] = False,
) -> None:
    """Write OUT_DIR/pyproject.toml, floss_app.py and README.md; print the command that runs it."""
    from federation.appdir import APP_FILES, run_command, write_app
    from federation.config import AppSettings
    from trainer.config import RunConfig
    from trainer.errors import TrainerError
    from trainer.paths import check_output_dir
    from trainer.preflight import preflight

    try:
        run = RunConfig.load(config)
        preflight(run)  # what floss-train refuses before training, refused here too
        folder = check_output_dir(out_dir, what="flower-app folder")
        held = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        if held and not overwrite:
            shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
            raise TrainerError(
                f"flower-app folder {str(folder)!r} is not empty ({shown}); pass --overwrite to "
                f"replace {', '.join(APP_FILES)} in it (other files are kept), or pick another"
            )
        default = folder.parent / f"{folder.name}-results"  # flwr run packs the app folder
        out = (results if results is not None else default).expanduser().resolve()
        check_output_dir(out, what="--results")
        write_app(folder, run, AppSettings(out_dir=str(out)))
    except (TrainerError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    replaced = [name for name in APP_FILES if name in held]
    if replaced:
        typer.echo(f"replaced {', '.join(replaced)} in {folder}")
    typer.echo(f"{folder}: a runnable Flower app of {config}; results go to {out}")
    typer.echo(f"run it on Flower's simulation ({_nodes_text(run)}):")
    typer.echo(f"  {run_command(folder, run)}")


def _nodes_text(run: object) -> str:
    from trainer.config import RunConfig

    assert isinstance(run, RunConfig)
    if run.partition == "natural":
        return "one SuperNode per client of the data's client column: put their count for N"
    return f"one SuperNode per client: {run.num_clients}, {run.clients_per_round} a round"


app.command()(flower_app_command)
