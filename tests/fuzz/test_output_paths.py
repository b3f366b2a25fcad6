"""Output paths are checked before any work, and a run folder is not overwritten by accident."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fuzz_common import RUN_DIR, make_world, snapshot

from planner.paths import OutputPathError, check_output_dir, check_output_file
from trainer.errors import TrainerError
from trainer.paths import RUN_DIRS, TMP_CHECKPOINT_PREFIX, check_run_dir, clear_run


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/proc/x", "--out '/proc/x' is on a kernel pseudo file system (/proc, /sys, /dev); "),
        ("/dev/null", "--out '/dev/null' is a character device, not a folder."),
        ("/sys/kernel/x", "--out '/sys/kernel/x' is on a kernel pseudo file system"),
        ("", "--out must be a path, but got ''."),
    ],
)
def test_check_output_dir_refuses_special_places(path: str, message: str) -> None:
    with pytest.raises(OutputPathError) as info:
        check_output_dir(path, what="--out")
    assert str(info.value).startswith(message)


def test_check_output_dir_refuses_files_and_paths_through_files(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    with pytest.raises(OutputPathError, match=r"^--out '.*f\.txt' is a file, not a folder\.$"):
        check_output_dir(f, what="--out")
    with pytest.raises(OutputPathError, match=r"f\.txt/sub': '.*f\.txt' is a file, not a folder"):
        check_output_dir(f / "sub", what="--out")
    assert check_output_dir(tmp_path / "new" / "deeper", what="--out") == tmp_path / "new/deeper"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]  # nothing created, no probe


def test_a_folder_that_cannot_be_written_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission bits do not stop root, so the probe's failure is simulated there."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    if os.geteuid() == 0:
        import tempfile

        def refuse(*_a: object, **_k: object) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    try:
        with pytest.raises(OutputPathError, match=r"cannot write in '.*ro' \(permission denied\)"):
            check_output_dir(folder / "out", what="--out-dir")
    finally:
        folder.chmod(0o700)


def test_check_output_file(tmp_path: Path) -> None:
    assert check_output_file("/dev/null", what="-o") == Path("/dev/null")  # a usual idiom
    with pytest.raises(OutputPathError, match="is a folder, not a file"):
        check_output_file(tmp_path, what="-o")
    with pytest.raises(OutputPathError, match=r"folder '.*missing' does not exist"):
        check_output_file(tmp_path / "missing" / "p.json", what="-o")
    existing = tmp_path / "p.json"
    existing.write_text("keep")
    assert check_output_file(existing, what="-o") == existing
    assert existing.read_text() == "keep"


def test_a_run_folder_needs_resume_or_overwrite(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    run = world / RUN_DIR
    with pytest.raises(TrainerError) as info:
        check_run_dir(run, resume=False, overwrite=False)
    assert str(info.value) == (
        f"--out-dir '{run}' already holds a run (rounds.jsonl, summary.json, checkpoint/, "
        "adapter/); continue it with --resume, replace it with --overwrite, or give another "
        "--out-dir."
    )
    assert check_run_dir(run, resume=True, overwrite=False) == run
    assert check_run_dir(run, resume=False, overwrite=True) == run
    with pytest.raises(TrainerError, match="give one of them, not both"):
        check_run_dir(run, resume=True, overwrite=True)
    with pytest.raises(TrainerError, match=r"^--resume: no checkpoint in '.*new/checkpoint'\.$"):
        check_run_dir(world / "new", resume=True, overwrite=False)
    # a run stopped before its first round (config.yaml, empty records) is not a run yet
    fresh = world / "fresh"
    fresh.mkdir()
    (fresh / "config.yaml").write_text("rank: 4\n")
    (fresh / "rounds.jsonl").write_text("")
    assert check_run_dir(fresh, resume=False, overwrite=False) == fresh


def test_clear_run_removes_only_what_a_run_writes(tmp_path: Path) -> None:
    run = make_world(tmp_path) / RUN_DIR
    (run / "notes.txt").write_text("mine")
    (run / f"{TMP_CHECKPOINT_PREFIX}123").mkdir()
    removed = clear_run(run)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    assert "rounds.jsonl" in removed and "checkpoint/" in removed and "adapter/" in removed
    assert snapshot(run) == {"notes.txt": b"mine"}


def test_the_run_file_names_are_the_trainers() -> None:
    from trainer import checkpoint, records, session

    assert {
        checkpoint.CHECKPOINT_DIR,
        checkpoint.OLD_DIR,
        session.ADAPTER_DIR,
        session.BASE_DIR,
    } == set(RUN_DIRS)
    assert checkpoint.TMP_PREFIX == TMP_CHECKPOINT_PREFIX
    assert {records.CSV_NAME, records.JSONL_NAME} <= {"rounds.csv", "rounds.jsonl"}


def _stub_train(seen: dict[str, object]) -> object:
    import types

    def train(config: object, **kwargs: object) -> None:
        seen.update(kwargs)
        raise RuntimeError("stop before the model")

    return types.SimpleNamespace(train=train)


def test_floss_train_refuses_an_existing_run_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from fuzz_common import invoke

    from trainer.cli import app

    world = make_world(tmp_path)
    before = snapshot(world)
    seen: dict[str, object] = {}
    monkeypatch.setitem(sys.modules, "trainer.run", _stub_train(seen))
    outcome = invoke(app, "floss-train", ["--out-dir", RUN_DIR, "--rank", "4"], cwd=world)
    assert outcome.code == 2 and not seen
    assert outcome.stderr.startswith(f"error: --out-dir '{RUN_DIR}' already holds a run (")
    assert outcome.stderr.endswith("replace it with --overwrite, or give another --out-dir.\n")
    assert snapshot(world) == before
    outcome = invoke(app, "floss-train", ["--out-dir", RUN_DIR, "--overwrite"], cwd=world)
    assert "stop before the model" in (outcome.crash or "")
    assert seen["overwrite"] is True and seen["resume"] is False
    assert snapshot(world) == before  # train() clears, once everything is checked


def test_train_overwrite_clears_the_previous_run_once_everything_is_checked(
    tmp_path: Path,
) -> None:
    """A real tiny run: the old checkpoint and notes differ; --overwrite removes only the run's."""
    import csv

    from trainer.config import RunConfig
    from trainer.run import train

    data = tmp_path / "task.csv"
    with data.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for i in range(40):
            w.writerow([f"word{i % 4} other{i % 3}", f"l{i % 2}"])
    kwargs = {
        "model": "tiny-random-bert", "data": "csv", "data_path": str(data),
        "min_examples_per_class": 5, "num_clients": 2, "clients_per_round": 2, "max_length": 8,
        "rank": 2, "rounds": 1, "device": "cpu",
    }  # fmt: skip
    out = tmp_path / "run"
    train(RunConfig(**kwargs, checkpoint_every=1), out_dir=out, progress=False)
    (out / "notes.txt").write_text("mine")
    assert (out / "checkpoint").is_dir()
    with pytest.raises(TrainerError):  # refused before it writes: the old run is untouched
        train(RunConfig(**{**kwargs, "max_length": 9999}), out_dir=out, overwrite=True)
    assert (out / "checkpoint").is_dir()
    train(RunConfig(**kwargs), out_dir=out, progress=False, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    # the old checkpoint is gone; the one there is the new run's end (every run leaves one)
    meta = json.loads((out / "checkpoint" / "meta.json").read_text())
    assert meta["config"]["checkpoint_every"] == 0 and meta["round"] == 1
    assert len((out / "rounds.jsonl").read_text().splitlines()) == 1
