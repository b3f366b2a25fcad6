"""`floss serve`: check the settings, open the storage, then run uvicorn. Thin.

Imports nothing heavy at module import (FastAPI and uvicorn load when the command runs), so
`floss --help` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from planner.command import fail, new_app, run_typer
from service.config import (
    DEFAULT_HOST,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_PLAN_WORK,
    DEFAULT_MAX_WORKERS,
    DEFAULT_PLAN_CACHE,
    DEFAULT_PORT,
    TOKEN_ENV,
    ServeConfig,
)

app = new_app(
    help_text="Serve the planner and the autotuner over HTTP: a JSON API (schema at /openapi.json, "
    "browsable at /docs) and a page at /. Loopback only unless a token is given.",
)


@app.callback(invoke_without_command=True)
def serve(
    host: Annotated[
        str, typer.Option(help="address to bind; anything but loopback needs --token")
    ] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="TCP port (0: a free one, printed)")] = DEFAULT_PORT,
    storage: Annotated[
        str,
        typer.Option(
            "--storage",
            "-s",
            help="Optuna storage of the studies: sqlite:///FILE.db, postgresql://..., or a "
            "journal file path (the same as floss-tune's)",
            envvar="FLOSS_TUNE_STORAGE",
        ),
    ] = "sqlite:///floss-tune.db",
    max_workers: Annotated[
        int, typer.Option(help="tuning worker processes at once; more studies get 429")
    ] = DEFAULT_MAX_WORKERS,
    data_root: Annotated[
        Path | None,
        typer.Option(
            help="data, model and profile paths in requests must lie under it "
            "(default: no paths accepted)"
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help=f"bearer token every request must carry (or ${TOKEN_ENV}); required for a "
            "non-loopback --host",
            envvar=TOKEN_ENV,
            show_default=False,
        ),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option(help="largest request body accepted (413 beyond)")
    ] = DEFAULT_MAX_BODY_BYTES,
    max_plan_work: Annotated[
        int,
        typer.Option(
            help="client draws a plan of sparseadapter/adapterlth may walk (about N ln N per "
            "configuration for N clients); a plan over it is refused up front with 422"
        ),
    ] = DEFAULT_MAX_PLAN_WORK,
    plan_cache: Annotated[
        int, typer.Option(help="rendered plans kept in memory (0: none)")
    ] = DEFAULT_PLAN_CACHE,
    work_dir: Annotated[
        Path | None,
        typer.Option(help="worker configs and logs (default: a temporary folder)"),
    ] = None,
    resume_unfinished: Annotated[
        bool,
        typer.Option(
            "--resume-unfinished",
            help="at start, start a worker again on each study this service left unfinished "
            "(killed, restarted; not those stopped through the API or failed), oldest first, "
            "up to --max-workers",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Run the service until Ctrl-C (workers are interrupted; their studies resume later)."""
    try:
        import uvicorn

        from service.app import create_app
    except ImportError as exc:
        fail(f"floss serve needs the 'serve' extra: pip install 'floss[serve]' ({exc}).")
    try:
        config = ServeConfig(
            host=host,
            port=port,
            storage=storage,
            max_workers=max_workers,
            data_root=data_root,
            token=token or None,
            max_body_bytes=max_body_bytes,
            plan_cache=plan_cache,
            work_dir=work_dir,
            resume_unfinished=resume_unfinished,
            max_plan_work=max_plan_work,
        )
        application = create_app(config)
        application.state.studies.check_storage()
    except ValueError as exc:
        fail(str(exc))
    typer.echo(
        f"floss serve: storage {application.state.studies.storage_url}, up to {max_workers} "
        f"tuning worker(s), data root {config.data_root_resolved or 'none (no paths accepted)'}"
        f"{', token required' if config.token else ''}; pid {os.getpid()}",
        err=True,
    )
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        timeout_graceful_shutdown=15,
    )


def main() -> None:
    """Entry point of `python -m service.cli`."""
    run_typer(app, prog_name="floss serve")


if __name__ == "__main__":
    main()
