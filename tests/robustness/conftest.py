"""A tiny classification task and one prepared tiny-random-bert workload for the robustness tests."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import pytest

WORDS = {
    "space": "rocket orbit planet star moon galaxy",
    "food": "bread cheese apple soup pasta butter",
    "music": "guitar piano song drum melody violin",
}


def write_task(path: Path, *, rows_per_label: int = 30, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for label, vocab in WORDS.items():
            for _ in range(rows_per_label):
                w.writerow([" ".join(rng.choices(vocab.split(), k=rng.randint(3, 8))), label])
    return path


@pytest.fixture(scope="session")
def robust_kwargs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """RunConfig fields of a run of a second or so: tiny random BERT, 3 clients of 4 rows."""
    task = write_task(tmp_path_factory.mktemp("robust-data") / "task.csv")
    return {
        "model": "tiny-random-bert",
        "data": "csv",
        "data_path": str(task),
        "min_examples_per_class": 5,
        "num_clients": 4,
        "clients_per_round": 2,
        "max_examples_per_client": 8,
        "max_eval_examples": 8,
        "max_length": 12,
        "rank": 2,
        "rounds": 3,
        "eval_every": 0,
        "seed": 0,
        "device": "cpu",
    }


@pytest.fixture(scope="session")
def robust_workload(robust_kwargs: dict[str, Any]) -> Any:
    from trainer.config import RunConfig
    from trainer.workload import prepare

    return prepare(RunConfig(**robust_kwargs))
