"""floss serve: the planner and the autotuner over HTTP (FastAPI + uvicorn, extra ``serve``).

Layering: ``service`` imports planner, tuner and (in worker processes only) trainer; nothing
imports ``service`` but the umbrella ``floss`` command. See docs/service.md.
"""

from __future__ import annotations

from service.config import ServeConfig, ServeError

__all__ = ["ServeConfig", "ServeError", "create_app"]


def create_app(config: ServeConfig | None = None) -> object:
    """The FastAPI application (imported here lazily: ``floss --help`` must not load FastAPI)."""
    from service.app import create_app as _create

    return _create(config)
