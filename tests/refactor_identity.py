"""Behaviour-preserving refactors: the same outputs, byte for byte, before and after.

Runs a fixed set of ``floss-plan --format json`` argument lists and one seeded ``floss-train``
run on the tiny random BERT twice: once with the source tree of a git revision (``--before``,
checked out into a temporary worktree) and once with this working tree, then compares every
output byte for byte. The only field left out is ``wall_seconds`` (the wall clock, different on
every run of the same tree) in ``rounds.jsonl``, ``rounds.csv`` and the checkpoint's
``meta.json``, and so the manifest's hash of ``meta.json``; the adapter, the checkpoint tensors
and every other file are compared as bytes.

    python tests/refactor_identity.py --before 774bb85          # exit 0 when identical
    python tests/refactor_identity.py --before HEAD~3 --keep /tmp/ident   # keep the outputs

Not a pytest module (the name does not start with ``test_``): it takes about a minute and
needs git history, so it runs by hand around a restructuring.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PLAN_CASES: list[list[str]] = [
    [],
    ["--budget", "50-dense-rounds", "--up-slowdown", "16"],
    ["--budget", "2h", "--down", "100", "--up", "5", "--all"],
    ["--budget", "20GB", "--ranks", "4,16", "--d-down", "1,1/4,1/16", "--d-up", "1/16,1/64"],
    ["--budget", "30-dense-rounds", "--method", "all"],
    ["--budget", "50-dense-rounds", "--precision-down", "8", "--precision-up", "rh4"],
    [
        "--budget",
        "40-dense-rounds",
        "--density-policy",
        "tiered",
        "--tier-densities",
        "lte=1/4:1/16,wifi=1:1/4,5g=1/2:1/8",
        "--fleet",
        "mixed-mobile",
        "--num-clients",
        "2000",
        "--ranks",
        "8",
        "--d-down",
        "1/4,1/16",
        "--d-up",
        "1/16",
    ],
    ["--budget", "40-dense-rounds", "--fleet", "mixed-mobile", "--num-clients", "500"],
    ["--budget", "25-dense-rounds", "--method", "fedsrd", "--ranks", "16"],
]

TRAIN_ARGS = [
    "--model",
    "tiny-random-bert",
    "--data",
    "csv",
    "--min-examples-per-class",
    "10",
    "--num-clients",
    "6",
    "--clients-per-round",
    "3",
    "--max-length",
    "16",
    "--rank",
    "4",
    "--rounds",
    "3",
    "--eval-every",
    "1",
    "--seed",
    "0",
    "--device",
    "cpu",
    "--no-progress",
]

WORDS = ["rocket orbit planet star moon", "bread cheese apple soup pasta", "guitar piano song drum"]


def write_task(path: Path) -> None:
    rng = random.Random(0)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label", "client"])
        for label, vocab in enumerate(WORDS):
            for i in range(60):
                text = " ".join(rng.choice(vocab.split()) for _ in range(rng.randint(4, 12)))
                w.writerow([text, f"l{label}", f"c{i % 6}"])


def run_tree(tree: Path, out: Path, task: Path) -> None:
    """Every case's outputs from the source in ``tree``, written under ``out``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import planner, trainer; print(planner.__file__, trainer.__file__)",
        ],
        env=env,
        cwd=out,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not all(Path(p).resolve().is_relative_to(tree.resolve()) for p in where):
        raise SystemExit(f"the packages come from {where}, not from {tree}")
    for i, args in enumerate(PLAN_CASES):
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "from planner.cli import plan_main; plan_main()",
                "--format",
                "json",
                "--no-progress",
                *args,
            ],
            env=env,
            cwd=out,
            capture_output=True,
        )
        (out / f"plan{i}.json").write_bytes(proc.stdout)
        (out / f"plan{i}.rc").write_text(str(proc.returncode))
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from trainer.cli import main; main()",
            *TRAIN_ARGS,
            "--data-path",
            str(task),
            "--out-dir",
            str(out / "run"),
        ],
        env=env,
        cwd=out,
        capture_output=True,
        check=True,
    )


def _drop_wall(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _drop_wall(v) for k, v in obj.items() if k != "wall_seconds"}
    if isinstance(obj, list):
        return [_drop_wall(v) for v in obj]
    return obj


def _strip_wall(path: Path) -> bytes:
    if path.name == "meta.json":
        return json.dumps(_drop_wall(json.loads(path.read_text())), sort_keys=True).encode()
    if path.name == "manifest.json":  # its meta.json entry hashes the wall clock too
        manifest = json.loads(path.read_text())
        manifest["files"].pop("meta.json", None)
        return json.dumps(manifest, sort_keys=True).encode()
    if path.name == "rounds.jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row in rows:
            row.pop("wall_seconds", None)
        return "\n".join(json.dumps(r, sort_keys=True) for r in rows).encode()
    if path.name == "rounds.csv":
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        for row in rows:
            row.pop("wall_seconds", None)
        return json.dumps(rows, sort_keys=True).encode()
    return path.read_bytes()


def digest(root: Path) -> dict[str, str]:
    """sha256 of every output file, keyed by its path under ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha256(_strip_wall(p)).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git revision of the tree before the change")
    ap.add_argument("--keep", type=Path, help="keep both output folders here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="floss-ident-"))
    before_tree = work / "before-src"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(before_tree), args.before],
        check=True,
        capture_output=True,
    )
    try:
        task = work / "task.csv"
        write_task(task)
        outs = {"before": work / "before", "after": work / "after"}
        for name, tree in (("before", before_tree), ("after", REPO)):
            outs[name].mkdir()
            run_tree(tree, outs[name], task)
        a, b = digest(outs["before"]), digest(outs["after"])
        differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        print(f"{len(a)} output files before, {len(b)} after; {len(differ)} differ")
        for k in differ:
            print(f"  differs: {k}")
        if args.keep:
            shutil.copytree(
                work, args.keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("before-src")
            )
        return 1 if differ else 0
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(before_tree)],
            capture_output=True,
        )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
