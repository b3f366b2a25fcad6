"""FLoSS on Flower: a ServerApp, a ClientApp and ``FlossStrategy`` that run floss-train's round.

Needs the ``flower`` extra (``pip install -e '.[flower]'``). ``federation.config`` and
``federation.appdir`` import no flwr (the tuner's export writes app folders without it).
See docs/federation.md.

This face names the package's public API (docs/contracts.md, "Package faces"); each name is
imported from its home module on first use, so ``import federation`` loads no flwr.
"""

from __future__ import annotations

from planner import lazy_face

# name -> the module it lives in
_HOMES = {
    "AppSettings": "federation.config",
    "FlossStrategy": "federation.server",
    "InProcessGrid": "federation.inprocess",
    "Loopback": "federation.loopback",
    "from_run_config": "federation.config",
    "make_client_app": "federation.client",
    "make_server_app": "federation.server",
    "run_inprocess": "federation.inprocess",
    "to_run_config": "federation.config",
    "write_app": "federation.appdir",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_face(__name__, _HOMES)
