"""Top-k masks and real messages: every vector a round moves goes through planner.codec.

``send`` returns what the receiver decodes (so fp16/bf16 and b-bit precision loss is real) and the
payload's length, which ``planner.codec.encode`` has already checked against ``planner.encoding``.
Stochastic rounding (``sr*``) draws from ``message_seed(seed, round, client, direction)``: a
function of the run's seed, the round and the client alone, as every other random choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from planner import codec
from planner.encoding import kept_entries
from planner.sampling import round_seed
from trainer.flat import Slice

DOWNLOAD, UPLOAD = 1, 2  # stream tags: a message's rounding never shares draws with sampling


def message_seed(seed: int, round_: int, client: int, direction: int) -> tuple[int, int]:
    """The numpy seed of one message's stochastic rounding: (round_seed(seed, round, client),
    direction). Downloads use client -1 (one message for every sampled client)."""
    return (round_seed(seed, round_, client), direction)


@dataclass(frozen=True)
class Sent:
    """What arrived: the decoded dense vector, the payload size and the encoding used."""

    vector: torch.Tensor
    nbytes: int
    encoding: str
    k: int
    payload: bytes = field(default=b"", repr=False)  # the bytes on the wire (federation sends them)


def topk_positions(x: torch.Tensor, k: int) -> torch.Tensor:
    """Sorted positions of the k entries of largest |x| (ties: whichever torch.topk keeps)."""
    n = x.numel()
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], but got {k}.")
    if k == n:
        return torch.arange(n, device=x.device)
    return torch.topk(x.abs(), k, sorted=False).indices.sort().values


def select_positions(
    x: torch.Tensor, density: float, *, mode: str, slices: Sequence[Slice]
) -> torch.Tensor:
    """Global top-k (k = kept_entries(n, d)) or per-tensor top-k (k_t = kept_entries(n_t, d))."""
    if mode == "global" or density >= 1.0:
        return topk_positions(x, kept_entries(x.numel(), density))
    parts = [
        topk_positions(x[s.start : s.stop], kept_entries(s.stop - s.start, density)) + s.start
        for s in slices
    ]
    return torch.cat(parts)  # slices are in order, so the result is sorted


def mask_from_positions(positions: torch.Tensor, n: int) -> torch.Tensor:
    mask = torch.zeros(n, dtype=torch.bool, device=positions.device)
    mask[positions] = True
    return mask


def send(
    x: torch.Tensor,
    positions: torch.Tensor,
    *,
    encoding: str,
    precision: str,
    seed: codec.Seed = None,
) -> Sent:
    """Encode x at ``positions`` (an n-vector message with positions) and decode it."""
    n = x.numel()
    pos = positions.cpu().numpy()
    vals = x[positions].detach().float().cpu().numpy()
    payload, used = codec.encode(pos, vals, n=n, encoding=encoding, precision=precision, seed=seed)
    dense = codec.decode(payload, n=n, k=len(pos), encoding=used, precision=precision)
    return Sent(torch.from_numpy(dense).to(x.device), len(payload), used, len(pos), payload)


def send_values(
    x: torch.Tensor, positions: torch.Tensor, *, precision: str, seed: codec.Seed = None
) -> Sent:
    """Values only, for a mask both ends already hold: k values, no positions (k * v bytes)."""
    k = int(positions.numel())
    vals = x[positions].detach().float().cpu().numpy()
    payload, used = codec.encode(
        np.arange(k), vals, n=k, encoding="dense", precision=precision, seed=seed
    )
    decoded = codec.decode(payload, n=k, k=k, encoding="dense", precision=precision)
    out = torch.zeros_like(x)
    out[positions] = torch.from_numpy(decoded).to(x.device)
    return Sent(out, len(payload), used, k, payload)
