"""Checkpoints survive a crash at any point of their writing, and damaged ones are refused.

A crash (SIGKILL of a forked process, or of a real ``floss-train`` subprocess) at each named
point of ``save_checkpoint`` must leave a folder from which ``--resume`` reproduces the
uninterrupted run bit for bit (final P equal with ``torch.equal``), or refuses with one line;
never a silently different run. Damaged or mixed checkpoints are refused with one line naming
the file, and nothing in the run folder is overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from trainer import checkpoint as ck
from trainer.config import RunConfig
from trainer.errors import TrainerError
from trainer.run import RunResult, train

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

IGNORED = {"wall_seconds"}
CRASH_ROUND = 2  # round 1's checkpoint exists when round 2's is cut short


def _strip(result: RunResult) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.to_dict().items() if k not in IGNORED} for r in result.records]


def _config(kwargs: dict[str, Any], **changes: Any) -> RunConfig:
    return RunConfig(**{**kwargs, "checkpoint_every": 1, **changes})


@pytest.fixture(scope="module")
def reference(
    robust_kwargs: dict[str, Any], robust_workload: Any, tmp_path_factory: pytest.TempPathFactory
) -> RunResult:
    """The uninterrupted run every resumed one must equal."""
    out = tmp_path_factory.mktemp("reference")
    return train(_config(robust_kwargs), workload=robust_workload, out_dir=out, progress=False)


def _killed_at(point: str, round_: int) -> Callable[[str, int], None]:
    def hook(at: str, r: int) -> None:
        if (at, r) == (point, round_):
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _run_forked_and_kill(
    config: RunConfig, workload: Any, out: Path, point: str, round_: int
) -> None:
    """Train in a forked child that SIGKILLs itself at ``point`` of round ``round_``'s checkpoint."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99  # the run finished without reaching the point
        try:
            torch.set_num_threads(1)
            ck.fault_hook = _killed_at(point, round_)
            train(config, workload=workload, out_dir=out, progress=False)
        except BaseException:
            traceback.print_exc()
            code = 98
        os._exit(code)
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the child killed at {point} did not finish in time")
        time.sleep(0.02)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
        f"the child was not killed at {point} (status {status})"
    )


def _only_checkpoint_left(out: Path) -> None:
    """After a successful save, no temp or old folder remains."""
    leftovers = sorted(p.name for p in out.glob("checkpoint*"))
    assert leftovers == [ck.CHECKPOINT_DIR]


@needs_fork
@pytest.mark.parametrize("point", ck.FAULT_POINTS)
def test_killed_while_checkpointing_resumes_bit_identical(
    point: str,
    robust_kwargs: dict[str, Any],
    robust_workload: Any,
    reference: RunResult,
    tmp_path: Path,
) -> None:
    config = _config(robust_kwargs)
    _run_forked_and_kill(config, robust_workload, tmp_path, point, CRASH_ROUND)
    folder = ck.find_checkpoint(tmp_path)
    assert folder is not None
    saved_round = json.loads((folder / ck.MANIFEST).read_text())["round"]
    assert saved_round == (CRASH_ROUND if point == "after-swap" else CRASH_ROUND - 1)
    resumed = train(config, workload=robust_workload, out_dir=tmp_path, progress=False, resume=True)
    assert reference.final_p is not None and resumed.final_p is not None
    assert torch.equal(reference.final_p, resumed.final_p)
    assert _strip(resumed) == _strip(reference)
    jsonl = (tmp_path / "rounds.jsonl").read_text().splitlines()
    assert [json.loads(line)["round"] for line in jsonl] == [1, 2, 3]
    _only_checkpoint_left(tmp_path)


@needs_fork
def test_killed_before_the_first_checkpoint_is_refused_then_a_fresh_run_cleans_up(
    robust_kwargs: dict[str, Any], robust_workload: Any, reference: RunResult, tmp_path: Path
) -> None:
    config = _config(robust_kwargs)
    _run_forked_and_kill(config, robust_workload, tmp_path, "before-swap", 1)
    assert ck.find_checkpoint(tmp_path) is None
    assert list(tmp_path.glob(f"{ck.TMP_PREFIX}*"))  # complete, but never swapped in: ignored
    with pytest.raises(TrainerError, match=r"^--resume: no checkpoint in .*checkpoint'\.$"):
        train(config, workload=robust_workload, out_dir=tmp_path, progress=False, resume=True)
    again = train(config, workload=robust_workload, out_dir=tmp_path, progress=False)
    assert again.final_p is not None and reference.final_p is not None
    assert torch.equal(again.final_p, reference.final_p)
    _only_checkpoint_left(tmp_path)


def test_real_floss_train_process_killed_mid_swap_resumes_bit_identical(
    robust_kwargs: dict[str, Any], robust_workload: Any, reference: RunResult, tmp_path: Path
) -> None:
    """A real ``floss-train`` subprocess, SIGKILLed between the two renames of round 2."""
    config = _config(robust_kwargs)
    cfg_path = config.save(tmp_path / "run.yaml")
    out = tmp_path / "out"
    script = (
        "import os, signal, sys\n"
        "import trainer.checkpoint as ck\n"
        "def hook(point, r):\n"
        f"    if (point, r) == ('mid-swap', {CRASH_ROUND}):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "ck.fault_hook = hook\n"
        "from trainer.cli import main\n"
        f"sys.argv = ['floss-train', '--config', {str(cfg_path)!r}, '--out-dir', {str(out)!r},"
        " '--no-progress']\n"
        "main()\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (out / ck.CHECKPOINT_DIR).exists() and (out / ck.OLD_DIR).is_dir()
    resumed = train(config, workload=robust_workload, out_dir=out, progress=False, resume=True)
    assert reference.final_p is not None and resumed.final_p is not None
    assert torch.equal(reference.final_p, resumed.final_p)
    _only_checkpoint_left(out)


# --- damaged and mixed checkpoints -------------------------------------------------------------


@pytest.fixture(scope="module")
def two_rounds(
    robust_kwargs: dict[str, Any], robust_workload: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A run folder checkpointed at round 2, and a copy of its round-1 checkpoint."""
    out = tmp_path_factory.mktemp("two-rounds")
    first = tmp_path_factory.mktemp("round-1") / "checkpoint"

    def keep_round_1(rec: Any) -> None:
        if rec.round == 2:  # the folder still holds round 1's checkpoint here
            shutil.copytree(out / ck.CHECKPOINT_DIR, first)

    config = _config(robust_kwargs, rounds=2)
    train(config, workload=robust_workload, out_dir=out, progress=False, on_round=keep_round_1)
    return out, first


def _rewrite_manifest(folder: Path) -> None:
    """A manifest that matches whatever the files now hold (a consistent forgery)."""
    manifest = json.loads((folder / ck.MANIFEST).read_text())
    for name in manifest["files"]:
        data = (folder / name).read_bytes()
        manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / ck.MANIFEST).write_text(json.dumps(manifest))


def _resave(folder: Path, change: Callable[[dict[str, torch.Tensor]], None]) -> None:
    """Re-save the checkpoint with changed tensors through the real writer (valid manifest)."""
    from safetensors.torch import load_file

    tensors = load_file(str(folder / ck.TENSORS))
    meta = json.loads((folder / ck.META).read_text())
    change(tensors)
    head = {k: meta.pop(k) for k in ("format", "round", "step_count")}
    ck.save_checkpoint(
        folder.parent,
        round=head["round"],
        step_count=head["step_count"],
        tensors=tensors,
        meta=meta,
    )


def _truncate(f: Path) -> None:
    data = (f / ck.TENSORS).read_bytes()
    (f / ck.TENSORS).write_bytes(data[: len(data) // 2])


def _garbage_meta(f: Path) -> None:
    (f / ck.META).write_text("{not json")
    _rewrite_manifest(f)


def _format_1(f: Path) -> None:
    (f / ck.MANIFEST).unlink()


def _bad_mask(t: dict[str, torch.Tensor]) -> None:
    t["mask_positions"] = torch.tensor([0, len(t["p"])], dtype=torch.int64)


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated tensors": (_truncate, r"state\.safetensors' is truncated: \d+ bytes"),
    "empty tensors": (
        lambda f: (f / ck.TENSORS).write_bytes(b""),
        r"state\.safetensors' is empty: 0 bytes",
    ),
    "missing tensors": (lambda f: (f / ck.TENSORS).unlink(), r"state\.safetensors' is missing"),
    "garbage meta": (
        lambda f: (f / ck.META).write_text("{not json"),
        r"meta\.json' is truncated",
    ),
    "garbage meta, forged manifest": (_garbage_meta, r"meta\.json' is not valid JSON"),
    "garbage manifest": (
        lambda f: (f / ck.MANIFEST).write_text("\x00\x01"),
        r"manifest\.json' is not valid JSON",
    ),
    "no manifest (format 1)": (_format_1, r"manifest\.json' is missing \(a checkpoint of an older"),
    "other format": (
        lambda f: (f / ck.MANIFEST).write_text(json.dumps({"format": 1, "round": 2, "files": {}})),
        r"manifest\.json' has format 1, not 2",
    ),
    "wrong tensor shape": (
        lambda f: _resave(f, lambda t: t.update(p=t["p"][:-1].clone())),
        r"state\.safetensors' holds 'p' of shape \(\d+,\) torch\.float32, but this run's adapter",
    ),
    "mask position out of range": (
        lambda f: _resave(f, _bad_mask),
        r"holds mask positions outside \[0, \d+\)",
    ),
}


def _snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _refused(out: Path, robust_kwargs: dict[str, Any], robust_workload: Any, match: str) -> None:
    before = _snapshot(out)
    with pytest.raises(TrainerError, match=match) as info:
        train(
            _config(robust_kwargs, rounds=3),
            workload=robust_workload,
            out_dir=out,
            progress=False,
            resume=True,
        )
    assert "\n" not in str(info.value)
    assert _snapshot(out) == before  # nothing overwritten when refused


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_checkpoint_is_refused_with_one_line(
    damage: str,
    two_rounds: tuple[Path, Path],
    robust_kwargs: dict[str, Any],
    robust_workload: Any,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    shutil.copytree(two_rounds[0], out)
    apply, match = DAMAGE[damage]
    apply(out / ck.CHECKPOINT_DIR)
    _refused(out, robust_kwargs, robust_workload, match)


def test_round_n_tensors_with_round_n_minus_1_meta_are_refused(
    two_rounds: tuple[Path, Path],
    robust_kwargs: dict[str, Any],
    robust_workload: Any,
    tmp_path: Path,
) -> None:
    """Format 1 resumed round-2 tensors with round-1 meta with exit 0; every later round differed."""
    out = tmp_path / "out"
    shutil.copytree(two_rounds[0], out)
    shutil.copy(two_rounds[1] / ck.META, out / ck.CHECKPOINT_DIR / ck.META)
    _refused(
        out, robust_kwargs, robust_workload, r"meta\.json' is (truncated|longer|does not match)"
    )
    # meta and manifest from round 1, tensors from round 2: the tensors no longer match
    shutil.copy(two_rounds[1] / ck.MANIFEST, out / ck.CHECKPOINT_DIR / ck.MANIFEST)
    _refused(out, robust_kwargs, robust_workload, r"state\.safetensors' does not match its sha256")


def test_resume_from_the_old_folder_after_a_mid_swap_crash_only_reads(
    two_rounds: tuple[Path, Path],
    robust_kwargs: dict[str, Any],
    robust_workload: Any,
    tmp_path: Path,
) -> None:
    """Loading finds checkpoint.old/ when checkpoint/ is gone and verifies it like any other."""
    out = tmp_path / "out"
    shutil.copytree(two_rounds[0], out)
    (out / ck.CHECKPOINT_DIR).rename(out / ck.OLD_DIR)
    (out / ck.OLD_DIR / ck.TENSORS).write_bytes(b"")
    _refused(out, robust_kwargs, robust_workload, r"checkpoint\.old/state\.safetensors' is empty")


def test_fault_points_are_the_ones_the_writer_calls(tmp_path: Path) -> None:
    seen: list[str] = []
    ck.fault_hook = lambda point, r: seen.append(point)
    try:
        t = {k: torch.zeros(3) for k in ck.SERVER_TENSORS}
        ck.save_checkpoint(tmp_path, round=1, step_count=1, tensors=t, meta={"records": []})
        ck.save_checkpoint(tmp_path, round=2, step_count=2, tensors=t, meta={"records": []})
    finally:
        ck.fault_hook = None
    assert seen == [p for p in ck.FAULT_POINTS if p != "mid-swap"] + list(ck.FAULT_POINTS)
    _only_checkpoint_left(tmp_path)
