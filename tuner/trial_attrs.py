"""The user attributes a trial stores: their keys, and the test-split metrics of a finished run.

The values are JSON, so the reports, ``floss-tune show`` and the export read a study back without
re-running anything (docs/tuner.md). Selection reads validation metrics only: the test-split
metrics (``TEST_METRICS``) are stored on complete trials for the reports and the export, and
nothing that ranks, prunes or recommends trials reads them. This module imports nothing heavy.

Kept beside the code that writes them: ``ATTR_OWNER`` (``tuner.orphans``: the process training
a trial), ``ATTR_RUNG`` and ``ATTR_FRACTION`` (``tuner.rungs``: successive halving), and the
study's own attributes ``ATTR_TARGET`` and ``ATTR_SPACE`` (``tuner.study``).
"""

from __future__ import annotations

import math
from typing import Any

# user attribute keys (JSON values; exports read them back without re-running anything)
ATTR_KEY = "key"
ATTR_CANDIDATE = "candidate"
ATTR_CONFIG = "config"
ATTR_FULL_CONFIG = "full_config"
ATTR_RECORDS = "records"
ATTR_STEPS = "client_steps"
ATTR_END = "end"  # complete | pruned | diverged | capped | duplicate | interrupted
ATTR_DUPLICATE_OF = "duplicate_of"
ATTR_SETTLES_AS = "settles_as"  # a duplicate's: label of the other candidate its trial is
ATTR_RETRY_OF = "retry_of"  # an enqueued retry of an interrupted trial
ATTR_CHECKPOINTS = "checkpoint_rounds"  # the round of each fidelity step (1/8, 1/4, ... of spend)
ATTR_VAL_EXAMPLES = "val_examples"  # how many validation texts the value was measured on
ATTR_RESUMED = "resumed_from"  # {"round": R, "trial": N | None}: went on from a checkpoint
# reported on complete trials, never selected on (attribute names = RunResult fields)
TEST_METRICS = ("test_accuracy", "test_accuracy_server", "test_loss", "test_loss_server")


def test_split_metrics(result: Any, records: list[dict[str, Any]]) -> dict[str, float]:
    """Test-split metrics of a finished run (RunResult, else its last record); finite ones."""
    last = records[-1] if records else {}
    out = {}
    for name in TEST_METRICS:
        value = getattr(result, name, None)
        if value is None:
            value = last.get(name)
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[name] = float(value)
    return out
