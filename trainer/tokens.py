"""Tokenize once per dataset; build batches by indexing, padded to the longest row of the batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TokenizedText:
    """Right-padded token ids [N, max_length], true lengths [N] and labels [N] (CPU or device)."""

    ids: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def to(self, device: torch.device) -> TokenizedText:
        return TokenizedText(self.ids.to(device), self.lengths.to(device), self.labels.to(device))


def tokenize(
    tokenizer: Any, texts: list[str], labels: list[int], *, max_length: int
) -> TokenizedText:
    enc = tokenizer(
        texts,
        truncation=True,
        max_length=max_length,
        padding="max_length",
        return_tensors="pt",
    )
    lengths = enc["attention_mask"].sum(dim=1)
    return TokenizedText(
        ids=enc["input_ids"].long(),
        lengths=lengths.long(),
        labels=torch.tensor(labels, dtype=torch.long),
    )


def make_batch(data: TokenizedText, rows: torch.Tensor, *, lm: bool) -> dict[str, torch.Tensor]:
    """Rows of ``data`` cut to the batch's longest sequence (dynamic padding, no sorting)."""
    lengths = data.lengths[rows]
    width = int(lengths.max())
    ids = data.ids[rows, :width]
    attention = torch.arange(width, device=ids.device)[None, :] < lengths[:, None]
    labels = ids.masked_fill(~attention, -100) if lm else data.labels[rows]
    return {"input_ids": ids, "attention_mask": attention.long(), "labels": labels}


GROUP_BATCHES = 8  # batches per length-sorted mega-chunk (HF's group_by_length uses 50)


def client_batches(
    lengths: torch.Tensor,
    rows: torch.Tensor,
    *,
    batch_size: int,
    generator: torch.Generator,
    group_by_length: bool,
) -> list[torch.Tensor]:
    """One epoch of batches over ``rows``: a fresh random partition each epoch.

    With ``group_by_length`` the shuffled rows are cut into chunks of GROUP_BATCHES batches, each
    chunk sorted by length, split into batches, and the batch order shuffled again. Every batch
    is still a random draw, but batches hold texts of similar length, so dynamic padding pads
    little: on fortunes (median 26 tokens, 6% at 128) a random batch of 16 is ~114 tokens wide.
    """
    order = rows[torch.randperm(len(rows), generator=generator).to(rows.device)]
    if not group_by_length:
        return list(order.split(batch_size))
    chunk = batch_size * GROUP_BATCHES
    batches: list[torch.Tensor] = []
    for part in order.split(chunk):
        by_length = torch.sort(lengths[part], descending=True, stable=True).indices
        batches += list(part[by_length].split(batch_size))
    shuffle = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffle]
