"""The synthetic CSV task of the tests, and the RunConfig fields of tiny runs on it.

Every test that trains the tiny random BERT writes its data with :func:`write_task`: labelled
rows whose words come from one small vocabulary per label, drawn from ``random.Random(seed)``.
Each caller keeps its own vocabulary, row count and sentence length, so the file it writes is
byte for byte the one it wrote before this module existed (tests compare seeded runs)."""

from __future__ import annotations

import csv
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TINY_MODEL = "tiny-random-bert"

# three topics of eight words: the trainer, Flower and robustness tasks
TOPICS: dict[str, tuple[str, ...]] = {
    "space": ("rocket", "orbit", "planet", "star", "moon", "galaxy", "launch", "comet"),
    "food": ("bread", "cheese", "apple", "soup", "pasta", "butter", "garlic", "onion"),
    "music": ("guitar", "piano", "song", "drum", "melody", "violin", "chord", "rhythm"),
}
# words mixed into the trainer task's sentences (half of each sentence, on average)
FILLER: tuple[str, ...] = (
    "the", "a", "of", "and", "to", "in", "is", "was", "it", "for", "on", "with", "as", "by", "at",
)  # fmt: skip
# four topics of five words: the tuner's and the service's studies
STUDY_TOPICS: dict[str, tuple[str, ...]] = {
    "cats": ("whiskers", "purr", "meow", "kitten", "litter"),
    "ships": ("anchor", "harbor", "sail", "hull", "captain"),
    "stars": ("galaxy", "nebula", "orbit", "comet", "telescope"),
    "bread": ("flour", "yeast", "oven", "crust", "dough"),
}
# two topics of three words: the smallest tuning tasks (fleet tuning, trial resume)
PAIR_TOPICS: dict[str, tuple[str, ...]] = {
    "cats": ("purr", "meow", "kitten"),
    "ships": ("anchor", "sail", "hull"),
}


def write_task(
    path: Path,
    *,
    rows_per_label: int,
    words: int | tuple[int, int],
    topics: Mapping[str, Sequence[str]] = TOPICS,
    filler: Sequence[str] = (),
    clients: int | None = None,
    seed: int = 0,
) -> Path:
    """A CSV of ``text,label`` rows (``text,label,client`` with ``clients``), label by label.

    ``words``: the sentence length, fixed or drawn in ``[low, high]``. Without ``filler`` a
    sentence is ``rng.choices(vocabulary, k=length)``; with it, each word comes from the label's
    vocabulary or the filler, half and half. ``clients``: row i of a label goes to client
    ``c{i % clients}``."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"] if clients is None else ["text", "label", "client"])
        for label, vocab in topics.items():
            for i in range(rows_per_label):
                length = words if isinstance(words, int) else rng.randint(*words)
                if filler:
                    chosen = [
                        rng.choice(vocab if rng.random() < 0.5 else filler) for _ in range(length)
                    ]
                else:
                    chosen = rng.choices(vocab, k=length)
                row = [" ".join(chosen), label]
                w.writerow(row if clients is None else [*row, f"c{i % clients}"])
    return path


def write_trainer_task(path: Path) -> Path:
    """The trainer tests' task: 80 rows of each of three topics, half filler, six clients."""
    return write_task(path, rows_per_label=80, words=(4, 14), filler=FILLER, clients=6)


def write_flower_task(path: Path) -> Path:
    """The Flower tests' task: 40 rows of each of three topics, 3 to 10 words."""
    return write_task(path, rows_per_label=40, words=(3, 10))


def write_robust_task(path: Path) -> Path:
    """The robustness tests' task: 30 rows of each of three topics (six words each), 3 to 8 words."""
    topics = {label: vocab[:6] for label, vocab in TOPICS.items()}
    return write_task(path, rows_per_label=30, words=(3, 8), topics=topics)


def write_study_task(folder: Path) -> Path:
    """``texts.csv`` of the tuner's and the service's studies: 40 rows of six words each of
    four topics."""
    return write_task(folder / "texts.csv", rows_per_label=40, words=6, topics=STUDY_TOPICS)


def write_pair_task(folder: Path) -> Path:
    """``texts.csv`` of the smallest tuning tasks: 30 rows of five words each of two topics."""
    return write_task(folder / "texts.csv", rows_per_label=30, words=5, topics=PAIR_TOPICS)


# RunConfig fields of a fast run on the trainer task (data_path added by the caller)
TRAINER_RUN: dict[str, Any] = {
    "model": TINY_MODEL,
    "data": "csv",
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
# ... on the Flower task: 4 clients, 2 a round, sparse both ways
FLOWER_RUN: dict[str, Any] = {
    **TRAINER_RUN,
    "num_clients": 4,
    "clients_per_round": 2,
    "d_down": "1/4",
    "d_up": "1/8",
}
# a base run of a second or so on the robustness task (a tuning base: no rank, rounds or seed)
ROBUST_BASE: dict[str, Any] = {
    "model": TINY_MODEL,
    "data": "csv",
    "min_examples_per_class": 5,
    "num_clients": 4,
    "clients_per_round": 2,
    "max_examples_per_client": 8,
    "max_eval_examples": 8,
    "max_length": 12,
    "device": "cpu",
}
ROBUST_RUN: dict[str, Any] = {**ROBUST_BASE, "rank": 2, "rounds": 3, "eval_every": 0, "seed": 0}
# A study's base run on the study task, as the tuner's and the service's tests submit it
# (data_path relative to the service's data root, where the tests write texts.csv).
TINY_STUDY_BASE: dict[str, Any] = {
    "model": TINY_MODEL,
    "data": "csv",
    "data_path": "texts.csv",
    "min_examples_per_class": 10,
    "num_clients": 8,
    "clients_per_round": 4,
    "batch_size": 8,
    "max_length": 16,
    "max_eval_examples": 32,
    "client_lr": 0.05,
    "server_lr": 0.01,
    "device": "cpu",
    "up_slowdown": 16,
}


def write_base_config(folder: Path, fields: Mapping[str, Any]) -> Path:
    """``base.yaml`` in ``folder``: a tuning study's base run config (``--config``)."""
    import yaml

    path = folder / "base.yaml"
    path.write_text(yaml.safe_dump(dict(fields)), encoding="utf-8")
    return path


def write_study_config(folder: Path) -> Path:
    """``base.yaml`` of the tuner's tiny study on the study task; the full run checkpoints
    (trials must not: they have no out_dir)."""
    data = write_study_task(folder)
    return write_base_config(
        folder, {**TINY_STUDY_BASE, "data_path": str(data), "checkpoint_every": 5}
    )


def write_fleet_study_config(folder: Path) -> Path:
    """``base.yaml`` of the tuner's fleet studies on the pair task."""
    cfg = {
        "model": TINY_MODEL,
        "data": "csv",
        "data_path": str(write_pair_task(folder)),
        "min_examples_per_class": 10,
        "num_clients": 8,
        "clients_per_round": 3,
        "batch_size": 8,
        "max_length": 12,
        "max_eval_examples": 16,
        "client_lr": 0.05,
        "server_lr": 0.01,
        "device": "cpu",
    }
    return write_base_config(folder, cfg)
