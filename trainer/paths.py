"""Output folders of floss-train and floss-tune, checked before anything slow; no torch.

``check_output_dir`` / ``check_output_file`` are the planner's (``planner.paths``), raising
``TrainerError`` here. ``check_run_dir`` keeps a finished or checkpointed run from being
overwritten by accident: a rerun into its folder needs ``--resume`` or ``--overwrite``, and
``clear_run`` removes exactly the files a run writes (nothing else in the folder).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from planner import paths as _paths
from trainer.errors import TrainerError

# What train() writes into its out_dir (trainer.records, trainer.checkpoint, trainer.session).
CLIENTS_FILE = "clients.json"  # the data's provenance and the partition's shape
RUN_FILES = ("rounds.jsonl", "rounds.csv", "config.yaml", "summary.json", CLIENTS_FILE)
RUN_DIRS = ("checkpoint", "checkpoint.old", "adapter", "base_model")
TMP_CHECKPOINT_PREFIX = "checkpoint.tmp-"


def check_output_dir(path: str | os.PathLike[str], *, what: str) -> Path:
    """A folder that can be written (or created); TrainerError naming the path otherwise."""
    try:
        return _paths.check_output_dir(path, what=what)
    except _paths.OutputPathError as exc:
        raise TrainerError(str(exc)) from None


def check_output_file(path: str | os.PathLike[str], *, what: str) -> Path:
    """A file that can be written in an existing folder; TrainerError otherwise."""
    try:
        return _paths.check_output_file(path, what=what)
    except _paths.OutputPathError as exc:
        raise TrainerError(str(exc)) from None


def _has_records(folder: Path) -> bool:
    jsonl = folder / "rounds.jsonl"
    try:
        return jsonl.is_file() and jsonl.stat().st_size > 0
    except OSError:
        return False


def run_contents(folder: Path) -> list[str]:
    """What in ``folder`` makes it a run: records of at least one round, a checkpoint, an adapter
    or a summary. A config.yaml alone (a run stopped before its first round) does not count:
    nothing would be lost, and rerunning the same command must work."""
    if not folder.is_dir():
        return []
    found = ["rounds.jsonl"] if _has_records(folder) else []
    found += [name for name in ("summary.json",) if (folder / name).exists()]
    found += [f"{name}/" for name in RUN_DIRS if (folder / name).is_dir()]
    return found


def check_run_dir(
    path: str | os.PathLike[str], *, resume: bool, overwrite: bool, what: str = "--out-dir"
) -> Path:
    """The out folder of a floss-train run: writable, and not holding another run unless the
    user said what to do with it (``--resume`` continues it, ``--overwrite`` replaces it)."""
    if resume and overwrite:
        raise TrainerError(
            "--resume continues the run in --out-dir, --overwrite replaces it; "
            "give one of them, not both."
        )
    folder = check_output_dir(path, what=what)
    if resume and not any((folder / name).is_dir() for name in ("checkpoint", "checkpoint.old")):
        # the same words as trainer.checkpoint.load_checkpoint, said before the model loads
        raise TrainerError(f"--resume: no checkpoint in {str(folder / 'checkpoint')!r}.")
    if resume or overwrite:
        return folder
    held = run_contents(folder)
    if held:
        raise TrainerError(
            f"{what} {str(folder)!r} already holds a run ({', '.join(held)}); continue it with "
            "--resume, replace it with --overwrite, or give another --out-dir."
        )
    return folder


def clear_run(folder: Path) -> list[str]:
    """Remove the files a previous run wrote into ``folder`` (only those); returns their names."""
    removed = []
    for name in RUN_FILES:
        if (folder / name).is_file():
            (folder / name).unlink()
            removed.append(name)
    for name in RUN_DIRS:
        if (folder / name).is_dir():
            shutil.rmtree(folder / name)
            removed.append(f"{name}/")
    for tmp in sorted(folder.glob(f"{TMP_CHECKPOINT_PREFIX}*")):
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        removed.append(tmp.name)
    return removed


def checkpoint_round(out_dir: Path) -> int | None:
    """The round the checkpoint in ``out_dir`` holds (``checkpoint/``, else ``checkpoint.old/``
    as trainer.checkpoint reads them), from its manifest alone: cheap, no torch, so a CLI can say
    it before a model loads. None when there is none or it cannot be read
    (``trainer.checkpoint.load_checkpoint`` then says exactly what is wrong)."""
    for name in ("checkpoint", "checkpoint.old"):
        if (out_dir / name).is_dir():
            try:
                manifest = json.loads((out_dir / name / "manifest.json").read_text("utf-8"))
            except (OSError, ValueError):
                return None
            rnd = manifest.get("round") if isinstance(manifest, dict) else None
            ok = isinstance(rnd, int) and not isinstance(rnd, bool) and rnd >= 1
            return rnd if ok else None
    return None


def resume_note(out_dir: Path) -> str:
    """The line a resumed run prints first: from which round it goes on."""
    rnd = checkpoint_round(out_dir)
    where = str(out_dir / "checkpoint")
    if rnd is None:
        return f"resuming from the checkpoint in {where!r}"
    return f"resuming from round {rnd + 1}: the checkpoint in {where!r} holds rounds 1..{rnd}"
