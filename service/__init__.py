"""floss serve: the planner and the autotuner over HTTP (FastAPI + uvicorn, extra ``serve``).

Layering: ``service`` imports planner, tuner and (in worker processes only) trainer; nothing
imports ``service`` but the umbrella ``floss`` command. See docs/service.md.

This face names the package's public API (docs/contracts.md, "Package faces"); each name is
imported from its home module on first use, so ``floss --help`` loads no FastAPI.
"""

from __future__ import annotations

from planner import lazy_face

# name -> the module it lives in
_HOMES = {
    "ServeConfig": "service.config",
    "ServeError": "service.config",
    "create_app": "service.app",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_face(__name__, _HOMES)
