"""Text sources (fortunes, Debian package descriptions, users' tables, 20NewsGroups, HF
datasets) and the seeded split.

Everything here is plain Python + numpy: a ``TextDataset`` is texts, integer labels, label names
and optional client ids; tokenization happens once, later, in ``trainer.tokens``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainer.debian import debian_rows
from trainer.errors import TrainerError
from trainer.tables import read_table

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
    source: str = ""  # where the texts came from, for the run's log (rows read, which lists)

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


def read_online(config: RunConfig) -> tuple[list[str], list[str]]:
    """20NewsGroups (scikit-learn) or a Hugging Face hub dataset by name; both need a network or
    a cache (a dataset on disk is read by ``trainer.tables``, offline)."""
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


def _local(config: RunConfig) -> bool:
    """data=hf names a dataset on disk (read offline) rather than a hub dataset."""
    return config.data_path is not None and Path(config.data_path).expanduser().exists()


def load_texts(config: RunConfig) -> TextDataset:
    clients: list[str] | None = None
    source = f"data={config.data}" + (f" ({config.data_path})" if config.data_path else "")
    if config.data == "fortunes":
        texts, raw = read_fortunes(config.data_path or FORTUNES_DIR)
    elif config.data == "debian-packages":
        deb = debian_rows(config.data_path, config.sections)
        texts, raw, source = deb.texts, deb.sections, deb.provenance
        clients = deb.maintainers if config.partition == "natural" else None
    elif config.data in ("csv", "jsonl", "parquet") or (config.data == "hf" and _local(config)):
        texts, raw, clients = read_table(config)
    else:
        texts, raw = read_online(config)
    if config.partition == "natural" and clients is None:
        raise TrainerError(
            f"partition='natural' needs a client column; data={config.data!r} has none."
        )
    if config.task == "lm":
        return TextDataset(
            texts=texts,
            labels=[0] * len(texts),
            label_names=["text"],
            clients=clients,
            source=f"{source}: {len(texts):,} texts",
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
        source=f"{source}: {len(rows):,} texts in {len(keep)} classes",
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
