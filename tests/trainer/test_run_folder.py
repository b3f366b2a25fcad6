"""Issue 20: identical runs write byte-identical run folders. Two floss-train processes with
different hash seeds (PEFT keeps target_modules as a set, written in hash order) give the same
bytes in every file but the two that hold wall-clock seconds (rounds.csv/jsonl, and the
checkpoint's copy of them), and those agree once wall_seconds is dropped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TRAIN = "from trainer.cli import main; main()"
WALL_CLOCK = {"rounds.csv", "rounds.jsonl"}


def run(tmp_path: Path, config: Path, name: str, hash_seed: str) -> Path:
    out = tmp_path / name
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", TRAIN, "--config", str(config), "--out-dir", str(out),
         "--no-progress"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


def test_identical_runs_write_identical_files(tmp_path: Path, tiny_kwargs: dict[str, Any]) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**tiny_kwargs, "rounds": 2, "checkpoint_every": 1}))
    a = files(run(tmp_path, config, "a", "1"))
    b = files(run(tmp_path, config, "b", "2"))
    assert a.keys() == b.keys()
    assert "adapter/adapter_config.json" in a
    differ = [name for name in a if a[name].read_bytes() != b[name].read_bytes()]
    assert set(differ) <= WALL_CLOCK | {n for n in a if n.startswith("checkpoint")}, differ
    for name in WALL_CLOCK & set(a):
        assert _without_wall(a[name]) == _without_wall(b[name]), name
    adapter = json.loads(a["adapter/adapter_config.json"].read_text())
    assert adapter["target_modules"] == sorted(adapter["target_modules"])
    assert list(adapter) == sorted(adapter)
    # every JSON file of the folder has its keys sorted, but the tokenizers library's own
    # tokenizer.json (a fixed order of its own: the vocabulary by id; equal bytes above)
    for name, path in a.items():
        if name.endswith(".json") and Path(name).name != "tokenizer.json":
            assert _keys_sorted(json.loads(path.read_text())), name
    print(f"{len(a)} files; differing only in wall-clock time: {sorted(differ)}")


def _without_wall(path: Path) -> list[Any]:
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]
    lines = [line.split(",") for line in path.read_text().splitlines()]
    at = lines[0].index("wall_seconds")
    return [row[:at] + row[at + 1 :] for row in lines]


def _keys_sorted(obj: Any) -> bool:
    if isinstance(obj, dict):
        return list(obj) == sorted(obj) and all(_keys_sorted(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_keys_sorted(v) for v in obj)
    return True
