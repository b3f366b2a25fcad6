"""The FastAPI application: middleware, lifespan and the routers of ``service.routes`` (one per
resource: health, profiles, plan, studies) and the page; the work is in ``plans``, ``studies``
and ``web``.

Routes that compute (plans, reading studies) are plain ``def``: FastAPI runs them in its thread
pool, so the event loop stays free. Routes that start or signal workers are ``async``: a worker
is forked from the event loop's own thread, which lives as long as the service (the worker's
death signal follows the thread that forked it).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from service import errors
from service.config import ServeConfig
from service.docs_ui import install_docs
from service.page import install_page
from service.paths import DataRootScope, data_root_scope
from service.plans import PlanCache
from service.routes import health, plan, profiles
from service.routes import studies as studies_routes
from service.security import BodyLimit, TokenGuard
from service.studies import StudyManager

REAP_SECONDS = 1.0


def _log(line: str) -> None:
    sys.stderr.write(f"floss serve: {line}\n")
    sys.stderr.flush()


def create_app(config: ServeConfig | None = None) -> FastAPI:
    config = config or ServeConfig()
    studies = StudyManager(config)
    cache = PlanCache(config.plan_cache)
    submit_lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def reaper() -> None:
            while True:
                await asyncio.sleep(REAP_SECONDS)
                if studies.pool.any_ended():
                    await run_in_threadpool(studies.reap)

        with data_root_scope(config.data_root_resolved):  # stored requests are checked again
            studies.recover(resume=config.resume_unfinished, log=_log)
        task = asyncio.create_task(reaper())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await run_in_threadpool(studies.shutdown)

    app = FastAPI(
        title="floss serve",
        version="0.1.0",
        description="The floss planner and autotuner over HTTP: plans (the rows of "
        "`floss-plan --format json`), tuning studies run by floss-tune worker processes "
        "against the Optuna storage, and per-round density plans for a running federation. "
        "Units: Mbps = 10^6 bit/s, MB = 10^6 bytes.",
        lifespan=lifespan,
        docs_url=None,  # served from local files below: no CDN
        redoc_url=None,
    )
    install_docs(app)
    app.state.config = config
    app.state.studies = studies
    app.state.plan_cache = cache
    errors.install(app)
    # every path a request names is checked against this root as the request is read
    app.add_middleware(DataRootScope, root=config.data_root_resolved)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(TokenGuard, token=config.token)  # outermost: checked before anything

    app.include_router(health.router(config, studies, cache))
    app.include_router(profiles.router())
    app.include_router(plan.router(config, studies, cache, _log))
    app.include_router(studies_routes.router(studies, submit_lock))

    # ---- the page (service/page.py) ----------------------------------------------------
    install_page(app, config=config, studies=studies, submit_lock=submit_lock)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> JSONResponse:
        return JSONResponse({"detail": "no icon"}, status_code=404)

    return app
