"""``/api/health``: liveness, workers and the plan cache."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.config import ServeConfig
from service.plans import PlanCache
from service.studies import StudyManager


def router(config: ServeConfig, studies: StudyManager, cache: PlanCache) -> APIRouter:
    r = APIRouter(tags=["service"])

    @r.get("/api/health")
    def health() -> dict[str, Any]:
        """Liveness, and how many tuning workers run."""
        return {
            "status": "ok",
            "workers": len(studies.live_workers()),
            "max_workers": config.max_workers,
            "plan_cache": {"size": config.plan_cache, "hits": cache.hits, "misses": cache.misses},
        }

    return r
