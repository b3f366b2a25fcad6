"""floss serve: the planner and the autotuner over HTTP (FastAPI + uvicorn, extra ``serve``).

Layering: ``service`` imports planner, tuner and (in worker processes only) trainer; nothing
imports ``service`` but the umbrella ``floss`` command. See docs/service.md.

This face names the package's public API (docs/contracts.md, "Package faces"); each name is
imported from its home module on first use, so ``floss --help`` loads no FastAPI.
"""

from __future__ import annotations

from planner import lazy_face

# home module -> the names it gives the face
_FACE = {
    "service.app": ("create_app",),
    "service.config": ("ServeConfig", "ServeError"),
}
__all__ = sorted(name for names in _FACE.values() for name in names)
__getattr__ = lazy_face(__name__, _FACE)
