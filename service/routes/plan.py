"""``/api/plan`` (floss-plan over HTTP) and ``/api/round-plan`` (the next round of a running
federation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.cancel import Cancelled, run_while_connected
from service.config import ServeConfig
from service.errors import FieldError
from service.limits import check_plan_work
from service.plans import PlanCache, cached_plan_body, plan_body, run_adapter_size
from service.round_plan_schemas import RoundPlanRequest, RoundPlanResponse, RunSpec
from service.round_plans import round_plan, round_policy_of
from service.schemas import PlanRequest, PlanResponse
from service.studies import StudyManager


def router(
    config: ServeConfig, studies: StudyManager, cache: PlanCache, log: Callable[[str], None]
) -> APIRouter:
    r = APIRouter(tags=["plan"])

    @r.post(
        "/api/plan",
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
                log(f"plan stopped after {seconds:.1f} s: its client disconnected")

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

    @r.post("/api/round-plan", response_model=RoundPlanResponse)
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

    return r
