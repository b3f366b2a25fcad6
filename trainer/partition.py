"""Client partitions of the training split: IID, Dirichlet(alpha) over labels, natural."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from trainer.errors import TrainerError

if TYPE_CHECKING:
    from numpy.typing import NDArray

MAX_DIRICHLET_TRIES = 100


def iid_partition(
    train: NDArray[np.int64], num_clients: int, *, seed: int
) -> list[NDArray[np.int64]]:
    if len(train) < num_clients:
        raise TrainerError(f"{len(train)} training examples cannot fill num_clients={num_clients}.")
    order = np.random.default_rng([seed, 0x11D]).permutation(train)
    return [np.sort(part) for part in np.array_split(order, num_clients)]


def dirichlet_partition(
    train: NDArray[np.int64],
    labels: NDArray[np.int64],
    num_clients: int,
    *,
    alpha: float,
    seed: int,
) -> list[NDArray[np.int64]]:
    """Hsu et al. (2019): for each label, client shares ~ Dir(alpha); redraw until no client is empty."""
    if len(train) < num_clients:
        raise TrainerError(f"{len(train)} training examples cannot fill num_clients={num_clients}.")
    rng = np.random.default_rng([seed, 0xD1E])
    train_labels = labels[train]
    for _ in range(MAX_DIRICHLET_TRIES):
        parts: list[list[int]] = [[] for _ in range(num_clients)]
        for label in np.unique(train_labels):
            idx = rng.permutation(train[train_labels == label])
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(np.int64)
            for client, chunk in enumerate(np.split(idx, cuts)):
                parts[client].extend(chunk.tolist())
        if min(len(p) for p in parts) >= 1:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise TrainerError(
        f"dirichlet_alpha={alpha} leaves some of num_clients={num_clients} clients empty in "
        f"{MAX_DIRICHLET_TRIES} draws; use fewer clients or a larger alpha."
    )


def natural_partition(train: NDArray[np.int64], clients: list[str]) -> list[NDArray[np.int64]]:
    """One client per distinct value of the client column, in sorted order of the values."""
    groups: dict[str, list[int]] = {}
    for i in train.tolist():
        groups.setdefault(clients[i], []).append(i)
    return [np.asarray(groups[key], dtype=np.int64) for key in sorted(groups)]


def cap_clients(
    parts: list[NDArray[np.int64]], max_examples: int | None, *, seed: int
) -> list[NDArray[np.int64]]:
    """Keep a seeded random ``max_examples`` of each client (fast trials on big data)."""
    if max_examples is None:
        return parts
    rng = np.random.default_rng([seed, 0xCA9])
    return [
        np.sort(rng.choice(p, size=max_examples, replace=False)) if len(p) > max_examples else p
        for p in parts
    ]


def partition_stats(
    parts: list[NDArray[np.int64]], labels: NDArray[np.int64], *, batch_size: int
) -> dict[str, object]:
    """The partition's shape: clients, examples and distinct labels per client (min, median,
    max), and how many clients hold fewer examples than one batch."""
    sizes = np.asarray([len(p) for p in parts], dtype=np.int64)
    distinct = np.asarray([len(np.unique(labels[p])) for p in parts], dtype=np.int64)

    def summary(values: NDArray[np.int64]) -> dict[str, float]:
        return {
            "min": int(values.min()),
            "median": float(np.median(values)),
            "max": int(values.max()),
        }

    return {
        "clients": len(parts),
        "examples": int(sizes.sum()),
        "examples_per_client": summary(sizes),
        "labels_per_client": summary(distinct),
        "batch_size": batch_size,
        "clients_below_batch": int((sizes < batch_size).sum()),
    }


def describe_partition(stats: dict[str, object], *, partition: str) -> str:
    """One line for the run's log: the shape of the clients, and what a small client does."""
    ex = stats["examples_per_client"]
    lab = stats["labels_per_client"]
    assert isinstance(ex, dict) and isinstance(lab, dict)
    line = (
        f"clients ({partition}): {stats['clients']:,} holding {stats['examples']:,} training "
        f"examples; per client min {ex['min']:,} / median {ex['median']:g} / max {ex['max']:,}, "
        f"labels per client min {lab['min']} / median {lab['median']:g} / max {lab['max']}"
    )
    small = stats["clients_below_batch"]
    if small:
        line += (
            f"; {small:,} clients hold fewer than a batch ({stats['batch_size']}): each trains "
            "one smaller batch per local epoch, and its update counts as much as any other's"
        )
    return line
