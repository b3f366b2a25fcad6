"""The trainer: federated LoRA fine-tuning with sparse communication on one machine (torch).

This face names the package's public API (docs/contracts.md, "Package faces"); each name is
imported from its home module on first use, so ``import trainer`` loads no torch until a name
is used.
"""

from __future__ import annotations

from planner import lazy_face

# name -> the module it lives in
_HOMES = {
    "DivergedError": "trainer.errors",
    "Interrupted": "trainer.interrupt",
    "Method": "trainer.method_base",
    "RoundRecord": "trainer.records",
    "RunConfig": "trainer.config",
    "RunResult": "trainer.run",
    "RunSession": "trainer.session",
    "TrainerError": "trainer.errors",
    "Workload": "trainer.workload",
    "make_method": "trainer.methods",
    "prepare": "trainer.workload",
    "train": "trainer.run",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_face(__name__, _HOMES)
