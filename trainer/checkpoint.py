"""Checkpoints: server state as safetensors (P, optimizer moments, masks) + JSON meta + manifest.

All randomness of a round is derived from (seed, round, client) — client sampling, bandwidth
draws, batch order and dropout — so there is no generator state to carry: restoring P, the
server moments, the method's masks and the round number reproduces an uninterrupted run bit for
bit on the CPU.

A checkpoint is one folder, ``OUT/checkpoint/``, replaced as a whole:

* ``state.safetensors`` (tensors), ``meta.json`` (round, step count, config, method state,
  records) and ``manifest.json`` (format, round, and each file's size and sha256), written to
  ``OUT/checkpoint.tmp-<pid>/`` and fsynced;
* then swapped in by two renames, ``checkpoint -> checkpoint.old`` and
  ``checkpoint.tmp-<pid> -> checkpoint``, each followed by an fsync of OUT. At every instant
  either ``checkpoint/`` or (between the two renames) ``checkpoint.old/`` is a complete
  checkpoint, and loading takes ``checkpoint/`` when it exists, else ``checkpoint.old/``.
  Temp folders left by a crash are never read and are removed by the next successful save.

Loading checks the manifest before trusting anything (sizes, checksums, the round in the meta,
the format) and then the tensors against this run's adapter size n; any mismatch is refused with
one ``TrainerError`` line naming the file, and nothing is written before that check passes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.errors import TrainerError
from trainer.paths import checkpoint_round as checkpoint_round  # re-exported
from trainer.paths import resume_note as resume_note  # re-exported
from trainer.records import json_safe

CHECKPOINT_DIR = "checkpoint"
OLD_DIR = "checkpoint.old"  # the previous checkpoint while the new one is renamed in
TMP_PREFIX = "checkpoint.tmp-"  # + pid: a checkpoint being written
TENSORS = "state.safetensors"
META = "meta.json"
MANIFEST = "manifest.json"
FORMAT = 2  # 1: tensors + meta replaced one by one, no manifest (could mix rounds)
# keys whose change does not alter the trajectory, so a resumed run may differ in them
RESUMABLE_CHANGES = frozenset({"rounds", "budget", "max_rounds", "checkpoint_every", "device"})
SERVER_TENSORS = ("p", "m", "v")  # ServerState.state_dict: float32 vectors of length n
MASK_TENSOR = "mask_positions"  # FixedMask.state: sorted int64 positions in [0, n)
RESIDUAL_TENSOR = "residuals"  # Method.state with error feedback: float32 (clients, n)
SRD_PAYLOAD_TENSOR = "srd_payloads"  # FedSRD.state: every delta's payload back to back, uint8

# Fault injection for the crash tests: called as ``fault_hook(point, round)`` at each point of
# ``FAULT_POINTS`` while a checkpoint is written (a test makes it raise or kill the process).
FAULT_POINTS = (
    "after-tensors",
    "after-meta",
    "after-manifest",
    "before-swap",
    "mid-swap",
    "after-swap",
)
fault_hook: Callable[[str, int], None] | None = None


@dataclass(frozen=True)
class Checkpoint:
    round: int
    step_count: int
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]


def _fault(point: str, round_: int) -> None:
    if fault_hook is not None:
        fault_hook(point, round_)


def _fsync_dir(path: Path) -> None:
    """Make a folder's entries (new files, renames) durable; a no-op where folders cannot be
    opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _json_bytes(obj: Any) -> bytes:
    # JSON has no NaN: a round nobody aggregated (train_loss NaN) is written as null
    return (json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False) + "\n").encode(
        "utf-8"
    )


ADAPTER_CONFIG = "adapter_config.json"


def canonical_adapter_config(folder: Path) -> Path:
    """Rewrite PEFT's ``adapter_config.json`` in ``folder`` with sorted keys and a sorted
    ``target_modules``: LoraConfig keeps the modules as a set, written in hash order, which
    differs between processes, so two identical runs (a floss-train run and its Flower twin)
    would write different files."""
    path = folder / ADAPTER_CONFIG
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data.get("target_modules"), list):
        data["target_modules"] = sorted(data["target_modules"])
    path.write_bytes(_json_bytes(data))
    return path


def save_checkpoint(
    out_dir: Path,
    *,
    round: int,
    step_count: int,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> Path:
    """Write the checkpoint aside, then swap it in whole (see the module docstring)."""
    from safetensors.torch import save

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"{TMP_PREFIX}{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    parts = {
        TENSORS: save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}),
        META: _json_bytes({"format": FORMAT, "round": round, "step_count": step_count, **meta}),
    }
    for name, point in ((TENSORS, "after-tensors"), (META, "after-meta")):
        _write_durably(tmp / name, parts[name])
        _fault(point, round)
    manifest = {
        "format": FORMAT,
        "round": round,
        "files": {
            name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in parts.items()
        },
    }
    _write_durably(tmp / MANIFEST, _json_bytes(manifest))
    _fault("after-manifest", round)
    _fsync_dir(tmp)
    _fault("before-swap", round)
    final, old = out_dir / CHECKPOINT_DIR, out_dir / OLD_DIR
    if final.exists():
        if old.exists():  # left by an earlier crash; ``final`` is newer and complete
            shutil.rmtree(old)
        os.rename(final, old)
        _fsync_dir(out_dir)
        _fault("mid-swap", round)
    os.rename(tmp, final)
    _fsync_dir(out_dir)
    _fault("after-swap", round)
    for leftover in [old, *out_dir.glob(f"{TMP_PREFIX}*")]:
        shutil.rmtree(leftover, ignore_errors=True)
    return final


def find_checkpoint(out_dir: Path) -> Path | None:
    """``checkpoint/``, or ``checkpoint.old/`` when a crash came between the two renames."""
    for name in (CHECKPOINT_DIR, OLD_DIR):
        if (out_dir / name).is_dir():
            return out_dir / name
    return None


def _refuse(path: Path, problem: str) -> TrainerError:
    return TrainerError(f"--resume: checkpoint file {str(path)!r} {problem}; not resuming.")


def _read_json(path: Path, raw: bytes | None = None) -> dict[str, Any]:
    try:
        data = json.loads((path.read_bytes() if raw is None else raw).decode("utf-8"))
    except FileNotFoundError:
        raise _refuse(path, "is missing") from None
    except OSError as exc:
        raise _refuse(path, f"cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise _refuse(path, f"is not valid JSON ({first})") from None
    if not isinstance(data, dict):
        raise _refuse(path, "is not a JSON object")
    return data


def _checked_bytes(path: Path, entry: Any) -> bytes:
    """The file's bytes, if they are the ones the manifest lists."""
    if not isinstance(entry, dict) or not isinstance(entry.get("bytes"), int):
        raise _refuse(path.parent / MANIFEST, f"has no valid entry for {path.name}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _refuse(path, "is missing") from None
    except OSError as exc:
        raise _refuse(path, f"cannot be read ({exc.strerror or exc})") from None
    if len(data) != entry["bytes"]:
        what = (
            "is empty"
            if not data
            else "is truncated"
            if len(data) < entry["bytes"]
            else "is longer"
        )
        raise _refuse(path, f"{what}: {len(data)} bytes, the manifest says {entry['bytes']}")
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise _refuse(path, "does not match its sha256 in the manifest (damaged or mixed parts)")
    return data


def _check_tensors(path: Path, tensors: dict[str, torch.Tensor], n: int) -> None:
    names = set(tensors)
    missing = [k for k in SERVER_TENSORS if k not in names]
    extra = sorted(names - {*SERVER_TENSORS, MASK_TENSOR, RESIDUAL_TENSOR, SRD_PAYLOAD_TENSOR})
    if missing or extra:
        what = f"lacks {', '.join(missing)}" if missing else f"has unknown {', '.join(extra)}"
        raise _refuse(path, f"{what} (tensors: {', '.join(sorted(names)) or 'none'})")
    for key in SERVER_TENSORS:
        t = tensors[key]
        if tuple(t.shape) != (n,) or t.dtype != torch.float32:
            raise _refuse(
                path,
                f"holds {key!r} of shape {tuple(t.shape)} {t.dtype}, but this run's adapter "
                f"needs ({n},) torch.float32",
            )
    if RESIDUAL_TENSOR in tensors:
        res = tensors[RESIDUAL_TENSOR]
        if res.dim() != 2 or res.shape[1] != n or res.dtype != torch.float32:
            raise _refuse(
                path,
                f"holds {RESIDUAL_TENSOR!r} of shape {tuple(res.shape)} {res.dtype}, "
                f"not (clients, {n}) torch.float32",
            )
    if SRD_PAYLOAD_TENSOR in tensors:
        raw = tensors[SRD_PAYLOAD_TENSOR]
        if raw.dim() != 1 or raw.dtype != torch.uint8:
            raise _refuse(
                path,
                f"holds {SRD_PAYLOAD_TENSOR!r} of shape {tuple(raw.shape)} {raw.dtype}, "
                "not (bytes,) torch.uint8",
            )
    if MASK_TENSOR in tensors:
        pos = tensors[MASK_TENSOR]
        if pos.dim() != 1 or pos.dtype != torch.int64 or len(pos) > n:
            raise _refuse(
                path,
                f"holds {MASK_TENSOR!r} of shape {tuple(pos.shape)} {pos.dtype}, not <= {n} int64",
            )
        if len(pos) and (int(pos.min()) < 0 or int(pos.max()) >= n):
            raise _refuse(
                path,
                f"holds mask positions outside [0, {n}) "
                f"(min {int(pos.min())}, max {int(pos.max())})",
            )


def checkpoint_records(out_dir: Path) -> list[dict[str, Any]] | None:
    """The records of rounds 1..N that the checkpoint in ``out_dir`` holds, its files checked
    against the manifest (its tensors against the run: ``load_checkpoint``); None when there is
    none, TrainerError naming the file when it is damaged. A tuning trial replays them before it
    resumes."""
    if find_checkpoint(out_dir) is None:
        return None
    _folder, _data, meta = _verified_meta(out_dir)
    return list(meta["records"])


def _verified_meta(out_dir: Path) -> tuple[Path, dict[str, bytes], dict[str, Any]]:
    """(folder, the files' verified bytes, meta) of the checkpoint in ``out_dir``."""
    folder = find_checkpoint(out_dir)
    if folder is None:
        raise TrainerError(f"--resume: no checkpoint in {str(out_dir / CHECKPOINT_DIR)!r}.")
    manifest_path = folder / MANIFEST
    if not manifest_path.exists() and (folder / META).exists():
        raise _refuse(
            manifest_path,
            "is missing (a checkpoint of an older floss, or one whose write was cut short)",
        )
    manifest = _read_json(manifest_path)
    if manifest.get("format") != FORMAT:
        raise _refuse(manifest_path, f"has format {manifest.get('format')!r}, not {FORMAT}")
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != {TENSORS, META}:
        raise _refuse(manifest_path, f"must list exactly {TENSORS} and {META}")
    data = {name: _checked_bytes(folder / name, files[name]) for name in (META, TENSORS)}
    meta = _read_json(folder / META, data[META])
    rnd = manifest.get("round")
    if meta.get("round") != rnd or isinstance(rnd, bool) or not isinstance(rnd, int) or rnd < 1:
        raise _refuse(
            folder / META, f"holds round {meta.get('round')!r}, the manifest round {rnd!r}"
        )
    records = meta.get("records")
    if (
        not isinstance(records, list)
        or len(records) != rnd
        or not all(isinstance(r, dict) and r.get("round") == i + 1 for i, r in enumerate(records))
    ):
        raise _refuse(folder / META, f"does not hold the records of rounds 1..{rnd}")
    step_count = meta.get("step_count")
    if isinstance(step_count, bool) or not isinstance(step_count, int) or step_count < 0:
        raise _refuse(folder / META, f"holds step_count {step_count!r}")
    if not isinstance(meta.get("method"), dict):
        raise _refuse(folder / META, "holds no method state")
    return folder, data, meta


def load_checkpoint(out_dir: Path, *, config: dict[str, Any], n: int) -> Checkpoint:
    """The verified checkpoint of ``out_dir`` for a run with this config and adapter size n."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    folder, data, meta = _verified_meta(out_dir)
    rnd, step_count = meta["round"], meta["step_count"]
    saved = meta.get("config")
    if not isinstance(saved, dict):
        raise _refuse(folder / META, "holds no run config")
    changed = sorted(
        k
        for k in set(saved) | set(config)
        if saved.get(k) != config.get(k) and k not in RESUMABLE_CHANGES
    )
    if changed:
        raise TrainerError(
            f"--resume: the run config differs from the checkpoint's in {', '.join(changed)}."
        )
    try:
        tensors = load(data[TENSORS])
    except (SafetensorError, ValueError, OSError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise _refuse(folder / TENSORS, f"is not a safetensors file ({first})") from None
    _check_tensors(folder / TENSORS, tensors, n)
    return Checkpoint(round=rnd, step_count=step_count, tensors=tensors, meta=meta)
