"""Shared fixtures: a small synthetic CSV task and one prepared tiny-model workload."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import pytest

WORDS = {
    "space": "rocket orbit planet star moon galaxy launch comet",
    "food": "bread cheese apple soup pasta butter garlic onion",
    "music": "guitar piano song drum melody violin chord rhythm",
}
FILLER = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "it",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
]


def write_task(path: Path, *, rows_per_label: int = 80, clients: int = 6, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label", "client"])
        for label, vocab in WORDS.items():
            words = vocab.split()
            for i in range(rows_per_label):
                text = " ".join(
                    rng.choice(words if rng.random() < 0.5 else FILLER)
                    for _ in range(rng.randint(4, 14))
                )
                w.writerow([text, label, f"c{i % clients}"])
    return path


@pytest.fixture(scope="session")
def task_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_task(tmp_path_factory.mktemp("data") / "task.csv")


@pytest.fixture(scope="session")
def tiny_kwargs(task_csv: Path) -> dict[str, Any]:
    """RunConfig fields of a fast run on the tiny random BERT."""
    return {
        "model": "tiny-random-bert",
        "data": "csv",
        "data_path": str(task_csv),
        "min_examples_per_class": 10,
        "num_clients": 6,
        "clients_per_round": 3,
        "max_length": 16,
        "rank": 4,
        "rounds": 3,
        "eval_every": 1,
        "seed": 0,
        "device": "cpu",
    }


@pytest.fixture(scope="session")
def tiny_workload(tiny_kwargs: dict[str, Any]) -> Any:
    from trainer.config import RunConfig
    from trainer.workload import prepare

    return prepare(RunConfig(**tiny_kwargs))
