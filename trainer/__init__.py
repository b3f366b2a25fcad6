"""The trainer: federated LoRA fine-tuning with sparse communication on one machine (torch).

This face names the package's public API (docs/contracts.md, "Package faces"); each name is
imported from its home module on first use, so ``import trainer`` loads no torch until a name
is used.
"""

from __future__ import annotations

from planner import lazy_face

# home module -> the names it gives the face
_FACE = {
    "trainer.config": ("RunConfig",),
    "trainer.errors": ("DivergedError", "TrainerError"),
    "trainer.interrupt": ("Interrupted",),
    "trainer.method_base": ("Method",),
    "trainer.methods": ("make_method",),
    "trainer.records": ("RoundRecord",),
    "trainer.run": ("RunResult", "train"),
    "trainer.session": ("RunSession",),
    "trainer.workload": ("Workload", "prepare"),
}
__all__ = sorted(name for names in _FACE.values() for name in names)
__getattr__ = lazy_face(__name__, _FACE)
