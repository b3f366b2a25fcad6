"""FLoSS on Flower: a ServerApp, a ClientApp and ``FlossStrategy`` that run floss-train's round.

Needs the ``flower`` extra (``pip install -e '.[flower]'``). ``federation.config`` and
``federation.appdir`` import no flwr (the tuner's export writes app folders without it).
See docs/federation.md.

This face names the package's public API (docs/contracts.md, "Package faces"); each name is
imported from its home module on first use, so ``import federation`` loads no flwr.
"""

from __future__ import annotations

from planner import lazy_face

# home module -> the names it gives the face
_FACE = {
    "federation.appdir": ("write_app",),
    "federation.client": ("make_client_app",),
    "federation.config": ("AppSettings", "from_run_config", "to_run_config"),
    "federation.inprocess": ("InProcessGrid", "run_inprocess"),
    "federation.loopback": ("Loopback",),
    "federation.server": ("FlossStrategy", "make_server_app"),
}
__all__ = sorted(name for names in _FACE.values() for name in names)
__getattr__ = lazy_face(__name__, _FACE)
