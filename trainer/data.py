"""Text sources (fortunes, CSV, JSONL, 20NewsGroups, HF datasets) and the seeded split.

Everything here is plain Python + numpy: a ``TextDataset`` is texts, integer labels, label names
and optional client ids; tokenization happens once, later, in ``trainer.tokens``.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainer.errors import TrainerError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from trainer.config import RunConfig

FORTUNES_DIR = "/usr/share/games/fortunes"


@dataclass(frozen=True)
class TextDataset:
    texts: list[str]
    labels: list[int]  # all 0 for language modelling
    label_names: list[str]
    clients: list[str] | None = None  # natural partition key, one per text

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


@dataclass(frozen=True)
class Split:
    train: NDArray[np.int64]
    val: NDArray[np.int64]
    test: NDArray[np.int64]


def read_fortunes(folder: str | Path) -> tuple[list[str], list[str]]:
    """(texts, category) from a fortune folder: texts are separated by lines holding only '%'."""
    root = Path(folder)
    if not root.is_dir():
        raise TrainerError(f"fortunes folder {str(root)!r} does not exist (apt install fortunes).")
    texts: list[str] = []
    cats: list[str] = []
    for path in sorted(root.iterdir()):
        if not path.is_file() or path.suffix in (".dat", ".u8") or path.name.startswith("."):
            continue
        raw = path.read_bytes().decode("utf-8", errors="replace")
        chunk: list[str] = []
        for line in [*raw.splitlines(), "%"]:
            if line.strip() == "%":
                text = "\n".join(chunk).strip()
                if text:
                    texts.append(text)
                    cats.append(path.name)
                chunk = []
            else:
                chunk.append(line)
    if not texts:
        raise TrainerError(f"fortunes folder {str(root)!r} holds no fortune files.")
    return texts, cats


def _rows_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _rows_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise TrainerError(f"{str(path)!r} line {i} is not JSON.") from None
        if not isinstance(row, dict):
            raise TrainerError(f"{str(path)!r} line {i} is not a JSON object.")
        rows.append(row)
    return rows


def read_table(config: RunConfig) -> tuple[list[str], list[str], list[str] | None]:
    """(texts, labels, clients or None) from a CSV or JSONL file."""
    path = Path(str(config.data_path))
    if not path.is_file():
        raise TrainerError(f"data_path {str(path)!r} is not a file.")
    try:
        rows = _rows_csv(path) if config.data == "csv" else _rows_jsonl(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TrainerError(f"cannot read {str(path)!r}: {exc}.") from None
    if not rows:
        raise TrainerError(f"{str(path)!r} holds no rows.")
    need = [config.text_column]
    if config.task == "classification":
        need.append(config.label_column)
    if config.partition == "natural":
        need.append(config.client_column)
    for col in need:
        if col not in rows[0]:
            raise TrainerError(
                f"{str(path)!r} has no column {col!r} (columns: {', '.join(map(str, rows[0]))})."
            )
    texts, labels, clients = [], [], []
    for i, row in enumerate(rows, start=1):
        text = row.get(config.text_column)
        if not isinstance(text, str) or not text.strip():
            raise TrainerError(f"{str(path)!r} row {i} has an empty {config.text_column!r}.")
        texts.append(text)
        label = row.get(config.label_column, "")
        if config.task == "classification" and (label is None or str(label) == ""):
            raise TrainerError(f"{str(path)!r} row {i} has no {config.label_column!r}.")
        labels.append(str(label))
        clients.append(str(row.get(config.client_column, "")))
    has_clients = config.partition == "natural"
    return texts, labels, clients if has_clients else None


def read_online(config: RunConfig) -> tuple[list[str], list[str]]:
    """20NewsGroups (scikit-learn) or a Hugging Face dataset; both need a network or a cache."""
    offline = (
        os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    )
    try:
        if config.data == "20newsgroups":
            from sklearn.datasets import fetch_20newsgroups

            bunch = fetch_20newsgroups(subset="all", remove=("headers", "footers", "quotes"))
            return list(bunch.data), [bunch.target_names[t] for t in bunch.target]
        if offline:
            raise OSError("HF_HUB_OFFLINE=1")
        import datasets

        ds = datasets.load_dataset(str(config.data_path), split="train")
        feature = ds.features.get(config.label_column)
        names = getattr(feature, "names", None)
        labels = [names[v] if names else str(v) for v in ds[config.label_column]]
        return list(ds[config.text_column]), labels
    except ImportError as exc:
        raise TrainerError(
            f"data={config.data!r} needs the package {exc.name!r}; install it."
        ) from None
    except Exception as exc:  # network, cache and dataset errors all mean "not available here"
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise TrainerError(
            f"data={config.data!r} ({config.data_path or 'default'}) is not available offline "
            f"and could not be downloaded: {first}"
        ) from None


def load_texts(config: RunConfig) -> TextDataset:
    clients: list[str] | None = None
    if config.data == "fortunes":
        texts, raw = read_fortunes(config.data_path or FORTUNES_DIR)
    elif config.data in ("csv", "jsonl"):
        texts, raw, clients = read_table(config)
    else:
        texts, raw = read_online(config)
    if config.partition == "natural" and clients is None:
        raise TrainerError(
            f"partition='natural' needs a client column; data={config.data!r} has none."
        )
    if config.task == "lm":
        return TextDataset(
            texts=texts, labels=[0] * len(texts), label_names=["text"], clients=clients
        )
    counts = Counter(raw)
    keep = sorted(c for c, n in counts.items() if n >= config.min_examples_per_class)
    if len(keep) < 2:
        raise TrainerError(
            f"only {len(keep)} label(s) have >= min_examples_per_class="
            f"{config.min_examples_per_class} examples; classification needs at least 2."
        )
    index = {c: i for i, c in enumerate(keep)}
    rows = [i for i, c in enumerate(raw) if c in index]
    return TextDataset(
        texts=[texts[i] for i in rows],
        labels=[index[raw[i]] for i in rows],
        label_names=keep,
        clients=[clients[i] for i in rows] if clients is not None else None,
    )


def split_indices(n: int, *, val_fraction: float, test_fraction: float, seed: int) -> Split:
    """A seeded random train/validation/test split of n examples."""
    order = np.random.default_rng([seed, 0x5E1]).permutation(n)
    n_val = max(1, round(n * val_fraction))
    n_test = round(n * test_fraction)
    if n - n_val - n_test < 1:
        raise TrainerError(f"{n} examples leave no training data after the validation/test split.")
    return Split(
        val=np.sort(order[:n_val]),
        test=np.sort(order[n_val : n_val + n_test]),
        train=np.sort(order[n_val + n_test :]),
    )
