"""A prepared workload: data read, split and tokenized once; the base model loaded once.

Many runs (a tuning study) share one ``Workload``; each run wraps its own LoRA copy of the
base model and partitions the training split by its own settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trainer.config import RunConfig
from trainer.data import Split, TextDataset, load_texts, split_indices
from trainer.errors import TrainerError
from trainer.model_check import check_model
from trainer.modeling import load_base_model, load_tokenizer
from trainer.partition import cap_clients, dirichlet_partition, iid_partition, natural_partition
from trainer.tokens import TokenizedText, tokenize

# the RunConfig fields a workload depends on; train() refuses a workload prepared for others
WORKLOAD_FIELDS = (
    "model",
    "task",
    "data",
    "data_path",
    "text_column",
    "label_column",
    "client_column",
    "sections",
    "min_examples_per_class",
    "max_length",
    "val_fraction",
    "test_fraction",
    "seed",
)


def workload_key(config: RunConfig) -> tuple[Any, ...]:
    return (*(getattr(config, f) for f in WORKLOAD_FIELDS), config.partition == "natural")


@dataclass
class Workload:
    key: tuple[Any, ...]
    dataset: TextDataset
    split: Split
    tokens: TokenizedText
    tokenizer: Any
    base_model: Any
    _on_device: dict[str, TokenizedText] = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return self.dataset.num_labels

    def check(self, config: RunConfig) -> None:
        if workload_key(config) != self.key:
            diff = [
                f
                for f, a, b in zip(WORKLOAD_FIELDS, self.key, workload_key(config), strict=False)
                if a != b
            ]
            raise TrainerError(
                f"the workload was prepared for other {', '.join(diff) or 'partition'} settings; "
                "prepare() it again for this config."
            )

    def tokens_on(self, device: torch.device) -> TokenizedText:
        """The token tensors on ``device``, moved once."""
        if str(device) not in self._on_device:
            self._on_device[str(device)] = self.tokens.to(device)
        return self._on_device[str(device)]

    def client_rows(self, config: RunConfig) -> list[np.ndarray]:
        """Each client's rows of the tokenized data (training split only)."""
        train = self.split.train
        if config.partition == "natural":
            assert self.dataset.clients is not None  # load_texts guarantees it
            parts = natural_partition(train, self.dataset.clients)
            parts = [p for p in parts if len(p) >= config.min_client_examples]
            if config.clients_per_round > len(parts):
                held = (
                    f" holding >= min_client_examples={config.min_client_examples} examples"
                    if config.min_client_examples > 1
                    else ""
                )
                raise TrainerError(
                    f"clients_per_round={config.clients_per_round} exceeds the {len(parts)} "
                    f"clients of the natural partition{held}."
                )
        elif config.partition == "dirichlet":
            labels = np.asarray(self.dataset.labels, dtype=np.int64)
            parts = dirichlet_partition(
                train, labels, config.num_clients, alpha=config.dirichlet_alpha, seed=config.seed
            )
        else:
            parts = iid_partition(train, config.num_clients, seed=config.seed)
        return cap_clients(parts, config.max_examples_per_client, seed=config.seed)

    def val_rows(self, config: RunConfig) -> np.ndarray:
        """The validation rows, a seeded subsample of ``max_eval_examples`` when capped."""
        return _capped(self.split.val, config.max_eval_examples, seed=[config.seed, 0xE7A])

    def test_rows(self, config: RunConfig) -> np.ndarray:
        """The test rows (report only, never for choosing), capped like validation with
        an independent seeded subsample; empty when ``test_fraction`` is 0."""
        return _capped(self.split.test, config.max_eval_examples, seed=[config.seed, 0x7E57])


def _capped(rows: np.ndarray, cap: int | None, *, seed: list[int]) -> np.ndarray:
    if cap is None or cap >= len(rows):
        return rows
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(rows, size=cap, replace=False))


def prepare(config: RunConfig) -> Workload:
    """Read, split and tokenize the data and load the base model, once."""
    check_model(config)  # config.json fields and max_length, before the slow part
    dataset = load_texts(config)
    split = split_indices(
        len(dataset.texts),
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        seed=config.seed,
    )
    tokenizer = load_tokenizer(config.model)
    tokens = tokenize(tokenizer, dataset.texts, dataset.labels, max_length=config.max_length)
    base = load_base_model(config, num_labels=dataset.num_labels, tokenizer=tokenizer)
    return Workload(
        key=workload_key(config),
        dataset=dataset,
        split=split,
        tokens=tokens,
        tokenizer=tokenizer,
        base_model=base,
    )
