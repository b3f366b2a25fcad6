"""All trainable parameters as views into one flat float32 buffer: the adapter vector P.

Loading a client's start state is ``flat.copy_(P)``, top-k runs on one vector, and the local
optimizer steps one tensor. Autograd accumulates into existing ``.grad`` tensors in place, so the
per-parameter gradients are views into one flat gradient buffer too (checked after a backward).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Slice:
    name: str
    start: int
    stop: int


class FlatAdapter:
    """The trainable parameters of ``model`` (in ``named_parameters`` order) as views of ``flat``."""

    def __init__(self, model: Any, device: torch.device) -> None:
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters")
        n = sum(p.numel() for _, p in params)
        self.flat = torch.zeros(n, dtype=torch.float32, device=device)
        self.grad = torch.zeros_like(self.flat)
        self.flat.grad = self.grad
        self.params = [p for _, p in params]
        slices = []
        offset = 0
        for name, p in params:
            size = p.numel()
            view = self.flat[offset : offset + size].view_as(p)
            view.copy_(p.data.float())
            p.data = view
            p.grad = self.grad[offset : offset + size].view_as(p)
            slices.append(Slice(name, offset, offset + size))
            offset += size
        self.slices = tuple(slices)

    @property
    def n(self) -> int:
        return int(self.flat.numel())

    def zero_grad(self) -> None:
        self.grad.zero_()

    def check_grad_views(self) -> None:
        """Raise if autograd replaced a gradient instead of accumulating into the flat buffer."""
        lo = self.grad.data_ptr()
        hi = lo + self.grad.numel() * self.grad.element_size()
        for p in self.params:
            if p.grad is None or not lo <= p.grad.data_ptr() < hi:
                raise RuntimeError("a gradient left the flat buffer; local training would be wrong")

    def slice_of(self, fragment: str) -> list[Slice]:
        return [s for s in self.slices if fragment in s.name]
