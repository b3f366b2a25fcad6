"""``/api/studies``: tuning studies, their workers, exports and plots.

Routes that start or signal workers are ``async``: a worker is forked from the event loop's own
thread, which lives as long as the service (the worker's death signal follows the thread that
forked it)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from service.schemas import StudyRequest
from service.studies import StudyManager

StudyName = Annotated[str, Path(max_length=128, description="the study's name")]


def router(studies: StudyManager, submit_lock: asyncio.Lock) -> APIRouter:
    r = APIRouter(tags=["studies"])

    @r.get("/api/studies")
    def list_studies() -> list[dict[str, Any]]:
        """Every study in the storage (also those made by floss-tune itself), with its state,
        progress and recommendation."""
        return studies.list()

    @r.post("/api/studies", status_code=201)
    async def submit_study(req: StudyRequest) -> dict[str, Any]:
        """Create a study in the storage and start a floss-tune worker process on it (429 when
        --max-workers are busy)."""
        async with submit_lock:
            checked = await run_in_threadpool(studies.prepare_submit, req)
            worker = studies.spawn(checked)
        return {"name": req.name, "state": "running", "pid": worker.proc.pid}

    @r.get("/api/studies/{name}")
    def show_study(name: StudyName) -> dict[str, Any]:
        """One study: state, progress, every trial, the recommendation and its run config."""
        return studies.show(name)

    @r.post("/api/studies/{name}/resume")
    async def resume_study(name: StudyName) -> dict[str, Any]:
        """Start a worker again on an unfinished study (finished trials are kept; interrupted
        ones are retried)."""
        async with submit_lock:
            req = await run_in_threadpool(studies.prepare_resume, name)
            worker = studies.spawn(req)
        return {"name": name, "state": "running", "pid": worker.proc.pid}

    @r.post("/api/studies/{name}/stop")
    async def stop_study(
        name: StudyName,
        force: Annotated[bool, Query(description="SIGKILL instead of an interrupt")] = False,
    ) -> dict[str, Any]:
        """Interrupt the study's worker (it stops at the next round boundary; the running trial
        is retried on resume). force=true kills it at once."""
        return await run_in_threadpool(studies.stop, name, force=force)

    @r.get(
        "/api/studies/{name}/export.zip",
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

    @r.get(
        "/api/studies/{name}/plot.png",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    def plot_study(name: StudyName) -> Response:
        """The metric against the bytes each trial sent, the Pareto front and the
        recommendation marked."""
        return Response(content=studies.plot_png(name), media_type="image/png")

    return r
