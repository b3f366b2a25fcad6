"""The FastAPI application: routes only; the work is in ``plans``, ``studies`` and ``web``.

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
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from service import errors
from service.cancel import Cancelled, run_while_connected
from service.config import ServeConfig
from service.docs_ui import install_docs
from service.errors import FieldError
from service.limits import check_plan_work
from service.page import install_page
from service.paths import DataRootScope, data_root_scope
from service.plans import PlanCache, cached_plan_body, plan_body, run_adapter_size
from service.round_plans import round_plan, round_policy_of
from service.schemas import (
    PlanRequest,
    PlanResponse,
    RoundPlanRequest,
    RoundPlanResponse,
    RunSpec,
    StudyRequest,
)
from service.security import BodyLimit, TokenGuard
from service.studies import StudyManager

REAP_SECONDS = 1.0
StudyName = Annotated[str, Path(max_length=128, description="the study's name")]
PROFILE_KINDS = ("network", "model", "fleet")
FLAGS = {
    "network": "floss-plan --profile",
    "model": "floss-plan --model",
    "fleet": "floss-plan --fleet",
}


def _fleet_numbers(path: str) -> dict[str, Any]:
    from planner.fleet import load_fleet

    f = load_fleet(path)
    return {
        "tiers": [
            {
                "name": t.name,
                "weight": t.weight,
                "down_mbps": t.down_mbps,
                "up_mbps": t.up_mbps,
                "rtt_ms": t.rtt_ms,
                "spread_sigma": t.spread_sigma,
            }
            for t in f.tiers
        ],
        "measured_clients": len(f.measured),
        "source": f.source,
    }


def _profile_entry(entry: Any) -> dict[str, Any]:
    from planner.profiles import load_model, load_network

    out: dict[str, Any] = {
        "name": entry.name,
        "description": entry.description,
        "origin": "built-in" if entry.origin == "built-in" else "user",
    }
    try:
        if entry.kind == "network":
            n = load_network(str(entry.path))
            out.update(
                down_mbps=n.down_mbps,
                up_mbps=n.up_mbps,
                rtt_ms=n.rtt_ms,
                spread_sigma=n.spread_sigma,
                up_slowdown=n.up_slowdown,
                source=n.source,
            )
        elif entry.kind == "fleet":
            out.update(_fleet_numbers(str(entry.path)))
        else:
            m = load_model(str(entry.path))
            out.update(
                hidden_size=m.hidden_size,
                num_labels=m.num_labels,
                adapter_params_rank16=m.adapter_params(16),
                source=m.source,
            )
    except ValueError:
        # by name only: the parser's message may quote the file (the service never echoes one)
        out["error"] = (
            f"{entry.path.name} is not a readable {entry.kind} profile; "
            f"{FLAGS[entry.kind]} {entry.path} says why"
        )
    return out


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

    # ---- health and profiles -------------------------------------------------------------
    @app.get("/api/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness, and how many tuning workers run."""
        return {
            "status": "ok",
            "workers": len(studies.live_workers()),
            "max_workers": config.max_workers,
            "plan_cache": {"size": config.plan_cache, "hits": cache.hits, "misses": cache.misses},
        }

    @app.get("/api/profiles", tags=["profiles"])
    def profiles() -> dict[str, list[dict[str, Any]]]:
        """Every network, model and fleet profile visible by name (built-in and
        $FLOSS_PROFILE_DIR), with its numbers (a fleet: its tiers, or its measured clients)."""
        from planner.profiles import list_profiles

        return {k: [_profile_entry(e) for e in list_profiles(k)] for k in PROFILE_KINDS}  # type: ignore[arg-type]

    @app.get("/api/profiles/{kind}", tags=["profiles"])
    def profiles_of(kind: str) -> list[dict[str, Any]]:
        """The profiles of one kind: network, model or fleet."""
        from planner.profiles import list_profiles

        if kind not in PROFILE_KINDS:
            raise FieldError("kind", f"unknown profile kind {kind!r}", "network, model or fleet")
        return [_profile_entry(e) for e in list_profiles(kind)]  # type: ignore[arg-type]

    # ---- plans ------------------------------------------------------------------------------
    @app.post(
        "/api/plan",
        tags=["plan"],
        response_class=Response,
        responses={200: {"model": PlanResponse, "description": "the plan"}},
    )
    async def plan_route(req: PlanRequest, request: Request) -> Response:
        """floss-plan over HTTP: the same settings (field for flag) and the same rows as
        `floss-plan --format json`, the short list first. Bounded up front (--max-plan-work);
        a plan whose client disconnects is stopped."""
        check_plan_work(req, config.max_plan_work)  # before any work: 422 naming the limit
        body = cached_plan_body(req, cache)
        if body is None:

            def gone(seconds: float) -> None:
                _log(f"plan stopped after {seconds:.1f} s: its client disconnected")

            try:
                body = await run_while_connected(
                    request.is_disconnected,
                    plan_body,
                    req,
                    config.data_root_resolved,
                    cache,
                    on_cancel=gone,
                )
            except Cancelled:
                return Response(status_code=499)  # nobody reads it: the client has gone
        return Response(content=body, media_type="application/json")

    @app.post("/api/round-plan", tags=["plan"], response_model=RoundPlanResponse)
    def round_plan_route(req: RoundPlanRequest) -> dict[str, Any]:
        """The next round of a running federation: each sampled client's densities under the
        density policy (uniform: the run's d_down and d_up for everyone; tiered: its tier's;
        bandwidth: the largest d_up that meets the deadline on its link), its bytes and
        seconds on the link it measured, and whose upload the round policy keeps (sync: all;
        deadline: the first clients_per_round arrivals by the deadline). The run is a study's
        recommendation (`study`, with its policy point on a fleet) or given (`run`; floss,
        dense or ffa, whose rounds all cost the same)."""
        if (req.study is None) == (req.run is None):
            raise FieldError(
                "study" if req.study is None else "run",
                "give exactly one of study and run",
                "study: a study name, or run: {method, rank, d_down, d_up, model, ...}",
            )
        if req.study is not None:
            cand, full = studies.recommended_candidate(req.study)
            method = str(cand.get("method", "floss"))
            if method not in ("floss", "dense", "ffa"):
                raise FieldError(
                    "study",
                    f"study {req.study!r} recommends {method}, whose round cost depends on its "
                    "mask schedule; round plans price floss, dense and ffa",
                    "a study recommending floss, dense or ffa",
                )
            run = RunSpec(
                method=method,  # type: ignore[arg-type]
                rank=int(cand["rank"]),
                d_down=float(cand["d_down"]),
                d_up=float(cand["d_up"]),
                precision=str(full.get("precision", "fp32")),
                precision_down=full.get("precision_down"),
                precision_up=full.get("precision_up"),
                encoding=str(full.get("encoding", "auto")),
            )
            fleet: dict[str, Any] = {}
            if full.get("fleet") is not None:  # a fleet study: its recommended policy point
                fleet = {
                    "round_policy": cand.get("round_policy") or full.get("round_policy"),
                    "density_policy": cand.get("density_policy") or full.get("density_policy"),
                    "deadline": cand.get("deadline", full.get("deadline_seconds")),
                    "clients_per_round": full.get("clients_per_round"),
                    "tier_densities": full.get("tier_densities"),
                    "density_grid": full.get("density_grid"),
                    "adapt_down": full.get("adapt_down"),
                }
            return round_plan(
                req,
                run=run,
                n=int(cand["n"]),
                source=f"study {req.study}",
                policy=round_policy_of(req, fleet),
            )
        assert req.run is not None
        n = run_adapter_size(req.run, config.data_root_resolved)
        return round_plan(req, run=req.run, n=n, source="run", policy=round_policy_of(req))

    # ---- studies ----------------------------------------------------------------------------
    @app.get("/api/studies", tags=["studies"])
    def list_studies() -> list[dict[str, Any]]:
        """Every study in the storage (also those made by floss-tune itself), with its state,
        progress and recommendation."""
        return studies.list()

    @app.post("/api/studies", tags=["studies"], status_code=201)
    async def submit_study(req: StudyRequest) -> dict[str, Any]:
        """Create a study in the storage and start a floss-tune worker process on it (429 when
        --max-workers are busy)."""
        async with submit_lock:
            checked = await run_in_threadpool(studies.prepare_submit, req)
            worker = studies.spawn(checked)
        return {"name": req.name, "state": "running", "pid": worker.proc.pid}

    @app.get("/api/studies/{name}", tags=["studies"])
    def show_study(name: StudyName) -> dict[str, Any]:
        """One study: state, progress, every trial, the recommendation and its run config."""
        return studies.show(name)

    @app.post("/api/studies/{name}/resume", tags=["studies"])
    async def resume_study(name: StudyName) -> dict[str, Any]:
        """Start a worker again on an unfinished study (finished trials are kept; interrupted
        ones are retried)."""
        async with submit_lock:
            req = await run_in_threadpool(studies.prepare_resume, name)
            worker = studies.spawn(req)
        return {"name": name, "state": "running", "pid": worker.proc.pid}

    @app.post("/api/studies/{name}/stop", tags=["studies"])
    async def stop_study(
        name: StudyName,
        force: Annotated[bool, Query(description="SIGKILL instead of an interrupt")] = False,
    ) -> dict[str, Any]:
        """Interrupt the study's worker (it stops at the next round boundary; the running trial
        is retried on resume). force=true kills it at once."""
        return await run_in_threadpool(studies.stop, name, force=force)

    @app.get(
        "/api/studies/{name}/export.zip",
        tags=["studies"],
        response_class=Response,
        responses={200: {"content": {"application/zip": {}}}},
    )
    def export_study(name: StudyName) -> Response:
        """floss-tune export of the recommendation, zipped: run.yaml/run.json, PEFT and Flower
        configs, trials.csv, rounds.csv, pareto.png."""
        data = studies.export_zip(name)
        return Response(
            content=data,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}.zip"'},
        )

    @app.get(
        "/api/studies/{name}/plot.png",
        tags=["studies"],
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    def plot_study(name: StudyName) -> Response:
        """The metric against the bytes each trial sent, the Pareto front and the
        recommendation marked."""
        return Response(content=studies.plot_png(name), media_type="image/png")

    # ---- the page (service/page.py) ----------------------------------------------------
    install_page(app, config=config, studies=studies, submit_lock=submit_lock)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> JSONResponse:
        return JSONResponse({"detail": "no icon"}, status_code=404)

    return app
