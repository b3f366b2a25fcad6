"""Checkpoints: server state as safetensors (P, optimizer moments, masks) + JSON meta.

All randomness of a round is derived from (seed, round, client) — client sampling, bandwidth
draws, batch order and dropout — so there is no generator state to carry: restoring P, the
server moments, the method's masks and the round number reproduces an uninterrupted run bit for
bit on the CPU.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.errors import TrainerError

CHECKPOINT_DIR = "checkpoint"
TENSORS = "state.safetensors"
META = "meta.json"
FORMAT = 1
# keys whose change does not alter the trajectory, so a resumed run may differ in them
RESUMABLE_CHANGES = frozenset({"rounds", "checkpoint_every", "device"})


@dataclass(frozen=True)
class Checkpoint:
    round: int
    step_count: int
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]


def save_checkpoint(
    out_dir: Path,
    *,
    round: int,
    step_count: int,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> Path:
    from safetensors.torch import save_file

    folder = out_dir / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (TENSORS + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, folder / TENSORS)
    body = {"format": FORMAT, "round": round, "step_count": step_count, **meta}
    tmp_meta = folder / (META + ".tmp")
    tmp_meta.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp_meta, folder / META)
    return folder


def load_checkpoint(out_dir: Path, *, config: dict[str, Any]) -> Checkpoint:
    from safetensors.torch import load_file

    folder = out_dir / CHECKPOINT_DIR
    if not (folder / META).is_file() or not (folder / TENSORS).is_file():
        raise TrainerError(f"--resume: no checkpoint in {str(folder)!r}.")
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise TrainerError(f"--resume: checkpoint format {meta.get('format')!r} is not {FORMAT}.")
    saved = meta.get("config", {})
    changed = sorted(
        k
        for k in set(saved) | set(config)
        if saved.get(k) != config.get(k) and k not in RESUMABLE_CHANGES
    )
    if changed:
        raise TrainerError(
            f"--resume: the run config differs from the checkpoint's in {', '.join(changed)}."
        )
    return Checkpoint(
        round=int(meta["round"]),
        step_count=int(meta["step_count"]),
        tensors=load_file(str(folder / TENSORS)),
        meta=meta,
    )
