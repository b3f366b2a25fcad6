"""Local training of one client on the shared model, and evaluation of the served and server P.

Two models can be evaluated (docs/trainer.md, "Evaluation"): the *served* model, the server's P
as the next round's clients receive it (masked to the download mask, through the wire precision:
what a client holds, as FLASC evaluates), and the *server* model, the server's dense P.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from trainer.config import RunConfig
from trainer.flat import FlatAdapter
from trainer.modeling import autocast
from trainer.tokens import TokenizedText, client_batches, make_batch

EVAL_BATCH = 64


@dataclass(frozen=True)
class LocalResult:
    loss: float  # mean training loss over the client's batches
    steps: int


def local_optimizer(config: RunConfig, adapter: FlatAdapter) -> torch.optim.Optimizer:
    """A fresh optimizer over the one flat tensor (state does not carry across rounds)."""
    params = [adapter.flat]
    if config.client_optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.client_lr, momentum=config.client_momentum)
    if config.client_optimizer == "adam":
        return torch.optim.Adam(params, lr=config.client_lr)
    return torch.optim.AdamW(params, lr=config.client_lr, weight_decay=0.01)


def train_client(
    model: Any,
    adapter: FlatAdapter,
    data: TokenizedText,
    rows: torch.Tensor,
    *,
    config: RunConfig,
    generator: torch.Generator,
    grad_mask: torch.Tensor | None,
    amp: torch.dtype | None,
    scaler: Any = None,
) -> LocalResult:
    """E local epochs of minibatch steps over ``rows`` (shuffled by ``generator``), in place on P."""
    opt = local_optimizer(config, adapter)
    lm = config.task == "lm"
    device = adapter.flat.device
    total = torch.zeros((), device=device)
    steps = 0
    model.train()
    for _ in range(config.local_epochs):
        for batch_rows in client_batches(
            data.lengths,
            rows,
            batch_size=config.batch_size,
            generator=generator,
            group_by_length=config.group_by_length,
        ):
            batch = make_batch(data, batch_rows, lm=lm)
            adapter.zero_grad()
            with autocast(device, amp):
                loss = model(**batch).loss
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            if steps == 0:
                adapter.check_grad_views()
            if grad_mask is not None:
                adapter.grad.mul_(grad_mask)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            total += loss.detach().float()
            steps += 1
    return LocalResult(loss=float(total) / max(steps, 1), steps=steps)


@torch.no_grad()
def evaluate(
    model: Any, data: TokenizedText, rows: torch.Tensor, *, lm: bool, amp: torch.dtype | None
) -> tuple[float, float | None]:
    """(mean loss, accuracy or None for LM); rows sorted by length so padding is minimal."""
    model.eval()
    device = data.ids.device
    order = rows[torch.argsort(data.lengths[rows], stable=True)]
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    for start in range(0, len(order), EVAL_BATCH):
        batch = make_batch(data, order[start : start + EVAL_BATCH], lm=lm)
        with autocast(device, amp):
            out = model(**batch)
        if lm:
            tokens = int((batch["labels"][:, 1:] != -100).sum())
            loss_sum += out.loss.double() * tokens
            count += tokens
        else:
            logits = out.logits.float()
            loss_sum += torch.nn.functional.cross_entropy(
                logits, batch["labels"], reduction="sum"
            ).double()
            correct += (logits.argmax(dim=-1) == batch["labels"]).sum()
            count += len(batch["labels"])
    loss = float(loss_sum) / max(count, 1)
    if lm:
        return loss, None
    acc = float(correct) / max(count, 1)
    return (loss if math.isfinite(loss) else float("nan")), acc


def evaluate_models(
    model: Any,
    adapter: FlatAdapter,
    data: TokenizedText,
    rows: Mapping[str, torch.Tensor],
    *,
    served: torch.Tensor | Sequence[tuple[torch.Tensor, float]],
    server: torch.Tensor,
    lm: bool,
    amp: torch.dtype | None,
) -> dict[str, float | None]:
    """``RoundRecord`` fields for each split in ``rows`` (``"val"``, ``"test"``):
    ``{split}_loss``/``{split}_accuracy`` of the served vector and ``{split}_loss_server``/
    ``{split}_accuracy_server`` of the server's dense P. When the two vectors are equal (d_down = 1
    at fp32, or a mask that P already obeys) each split is evaluated once and both get its numbers.
    ``served`` may be a mixture, ``[(vector, share), ...]`` (fleets whose clients receive their
    own download densities, ``trainer.round.served_models``): its metrics are the share-weighted
    means of each vector's. Leaves the evaluated vector in ``adapter.flat``; the caller reloads
    what it needs next."""
    mixture = [(served, 1.0)] if isinstance(served, torch.Tensor) else list(served)
    out: dict[str, float | None] = {}
    for vector, share in mixture:
        adapter.flat.copy_(vector)
        for split, split_rows in rows.items():
            loss, acc = evaluate(model, data, split_rows, lm=lm, amp=amp)
            for key, value in ((f"{split}_loss", loss), (f"{split}_accuracy", acc)):
                if key not in out:
                    out[key] = None if value is None else share * value
                else:
                    prev = out[key]
                    out[key] = None if prev is None or value is None else prev + share * value
    if len(mixture) == 1 and torch.equal(mixture[0][0], server):
        out.update({f"{k}_server": v for k, v in list(out.items())})
        return out
    adapter.flat.copy_(server)
    for split, split_rows in rows.items():
        loss, acc = evaluate(model, data, split_rows, lm=lm, amp=amp)
        out[f"{split}_loss_server"] = loss
        out[f"{split}_accuracy_server"] = acc
    return out
