"""Server optimizers on the pseudo-gradient g = mean of the clients' decoded Delta_i.

Delta_i = P_start - P_end is a descent direction, so each step is ``P -= lr * f(g)``:
FedAvg (SGD, lr 1 = plain averaging), FedAvgM (heavy-ball momentum) and FedAdam (Reddi et al.
2021; Adam with betas (0.9, 0.999), eps 1e-8 (docs/trainer.md), optional decoupled weight decay as
in FLASC's AdamW). The step functions are pure in-place updates that mirror torch.optim's
single-tensor formulas, so a hand-written reference with torch.optim.Adam agrees (tests).
"""

from __future__ import annotations

import torch

from trainer.config import RunConfig

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def fedavg_step(p: torch.Tensor, g: torch.Tensor, *, lr: float) -> None:
    p.add_(g, alpha=-lr)


def fedavgm_step(
    p: torch.Tensor, g: torch.Tensor, buf: torch.Tensor, *, step: int, lr: float, momentum: float
) -> None:
    """buf = momentum * buf + g (buf = g on the first step); P -= lr * buf."""
    if step == 1:
        buf.copy_(g)
    else:
        buf.mul_(momentum).add_(g)
    p.add_(buf, alpha=-lr)


def fedadam_step(
    p: torch.Tensor,
    g: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    *,
    step: int,
    lr: float,
    betas: tuple[float, float] = ADAM_BETAS,
    eps: float = ADAM_EPS,
    weight_decay: float = 0.0,
) -> None:
    """One Adam step at 1-based ``step`` (AdamW-style decay when weight_decay > 0)."""
    beta1, beta2 = betas
    if weight_decay:
        p.mul_(1 - lr * weight_decay)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    bias1 = 1 - beta1**step
    bias2_sqrt = (1 - beta2**step) ** 0.5
    denom = (v.sqrt() / bias2_sqrt).add_(eps)
    p.addcdiv_(m, denom, value=-lr / bias1)


class ServerState:
    """The dense adapter vector P and the server optimizer's moments."""

    def __init__(self, p: torch.Tensor, config: RunConfig) -> None:
        self.p = p.detach().clone()
        self.m = torch.zeros_like(self.p)  # Adam first moment, or FedAvgM's momentum buffer
        self.v = torch.zeros_like(self.p)  # Adam second moment
        self.step_count = 0
        self.kind = config.server_optimizer
        self.lr = config.server_lr
        self.momentum = config.server_momentum
        self.weight_decay = config.server_weight_decay

    def step(self, g: torch.Tensor) -> None:
        self.step_count += 1
        if self.kind == "fedadam":
            fedadam_step(
                self.p,
                g,
                self.m,
                self.v,
                step=self.step_count,
                lr=self.lr,
                weight_decay=self.weight_decay,
            )
        elif self.kind == "fedavgm":
            fedavgm_step(
                self.p, g, self.m, step=self.step_count, lr=self.lr, momentum=self.momentum
            )
        else:
            fedavg_step(self.p, g, lr=self.lr)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"p": self.p, "m": self.m, "v": self.v}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], *, step_count: int) -> None:
        for key in ("p", "m", "v"):
            getattr(self, key).copy_(tensors[key])
        self.step_count = step_count
