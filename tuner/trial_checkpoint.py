"""An interrupted trial's checkpoint: where it is kept, what it holds, its replay and removal.

With a ``checkpoint_root`` folder (``tuner.storage.trial_checkpoints``), a trial that an
interrupt stops at a round boundary leaves the trainer's checkpoint of that round in
``checkpoint_root/<digest of its own configuration's key>/`` (``checkpoint_key``: not the key of
the twin it settles as, whose config differs); the rerun's trial of that configuration replays the
checkpoint's records through the reporter (the same reports, the same pruning decisions) and
trains from the next round on, bit for bit the uninterrupted trial. It counts only the client
steps it trained itself (the interrupted trial keeps those before), and the folder is removed
once the trial ends any other way (docs/tuner.md).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner.candidate import Candidate
from tuner.fidelity import FidelityReporter
from tuner.rungs import fidelity_suffix
from tuner.trial_attrs import ATTR_STEPS
from tuner.trial_config import candidate_key


def checkpoint_key(candidate: Candidate, lrs: dict[str, float], fraction: float | None) -> str:
    """The key of a trial's checkpoint folder: its own candidate (``candidate_key``, not the
    ``trained_key`` it shares with a twin: a checkpoint resumes only its own config), learning
    rates and halving fraction."""
    return candidate_key(candidate, lrs) + fidelity_suffix(fraction)


def trial_checkpoint_dir(root: Path, key: str) -> Path:
    """The folder of one configuration's interrupted-trial checkpoint under ``root``."""
    return root / hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def checkpointed_round(root: Path | None, key: str | None) -> int | None:
    """The round the checkpoint of configuration ``key`` holds (None: none kept)."""
    if root is None or key is None:
        return None
    folder = trial_checkpoint_dir(root, key)
    if not folder.is_dir():
        return None
    from trainer.checkpoint import checkpoint_round

    return checkpoint_round(folder)


def forget_checkpoint(root: Path | None, folder: Path | None) -> None:
    """A trial that ended (not interrupted) needs its checkpoint no more: remove its folder,
    then the study's and the root's when left empty."""
    if folder is None or root is None or not folder.exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    for parent in (root, root.parent):
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break


def saved_records(
    root: Path | None, folder: Path | None, *, number: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """The records an interrupted trial of this configuration checkpointed ([]: none, or a
    damaged checkpoint, which is said and removed: trial ``number`` trains from round 1)."""
    if folder is None or not folder.is_dir():
        return []
    from trainer.checkpoint import checkpoint_records
    from trainer.errors import TrainerError

    try:
        return checkpoint_records(folder) or []
    except TrainerError as exc:
        log(f"trial {number}: {exc} Training from round 1.")
        forget_checkpoint(root, folder)
        return []


def replay_records(
    reporter: FidelityReporter, saved: list[dict[str, Any]], steps_before: int
) -> bool:
    """Feed the checkpoint's records to the reporter as if trained now; False when it says
    stop (pruned or capped). Their client steps are the interrupted trial's (already in
    ``steps_before``): not counted again, for this trial nor for the compute cap."""
    from trainer.records import RoundRecord

    replayed = sum(int(rec.get("client_steps", 0)) for rec in saved)
    reporter.steps_before = max(0, steps_before - replayed)
    go_on = True
    for rec in saved:
        record: Any = RoundRecord.from_dict(rec)  # what train() hands on_round
        if not reporter(record):
            go_on = False
            break
    reporter.client_steps -= sum(int(rec.get("client_steps", 0)) for rec in reporter.records)
    reporter.steps_before = steps_before
    reporter.trial.set_user_attr(ATTR_STEPS, reporter.client_steps)
    return go_on
