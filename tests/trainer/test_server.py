"""Server optimizer steps: hand-computed values and agreement with torch.optim."""

from __future__ import annotations

import pytest
import torch

from trainer.server import fedadam_step, fedavg_step, fedavgm_step


def test_fedavg_lr1_is_plain_averaging() -> None:
    p = torch.tensor([1.0, 2.0])
    fedavg_step(p, torch.tensor([0.5, -1.0]), lr=1.0)
    assert p.tolist() == [0.5, 3.0]


def test_first_fedadam_step_moves_lr_against_the_sign() -> None:
    # step 1: m = 0.1 g, v = 0.001 g^2; bias-corrected m / sqrt(v) = g / |g|, so P -= lr * sign(g)
    p = torch.zeros(3, dtype=torch.float64)
    g = torch.tensor([2.0, -0.5, 1e-3], dtype=torch.float64)
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    fedadam_step(p, g, m, v, step=1, lr=0.01, eps=0.0)
    assert p.tolist() == pytest.approx([-0.01, 0.01, -0.01])


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_fedadam_matches_torch_adam(weight_decay: float) -> None:
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(50, generator=gen)
    ref = torch.nn.Parameter(start.clone())
    cls = torch.optim.AdamW if weight_decay else torch.optim.Adam
    opt = cls(
        [ref], lr=0.003, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay, foreach=False
    )
    p, m, v = start.clone(), torch.zeros(50), torch.zeros(50)
    for step in range(1, 6):
        g = torch.randn(50, generator=gen)
        ref.grad = g.clone()
        opt.step()
        fedadam_step(p, g, m, v, step=step, lr=0.003, weight_decay=weight_decay)
    assert torch.allclose(p, ref.detach(), atol=1e-7, rtol=0)


def test_fedavgm_matches_torch_sgd_momentum() -> None:
    gen = torch.Generator().manual_seed(1)
    start = torch.randn(20, generator=gen)
    ref = torch.nn.Parameter(start.clone())
    opt = torch.optim.SGD([ref], lr=0.5, momentum=0.9)
    p, buf = start.clone(), torch.zeros(20)
    for step in range(1, 5):
        g = torch.randn(20, generator=gen)
        ref.grad = g.clone()
        opt.step()
        fedavgm_step(p, g, buf, step=step, lr=0.5, momentum=0.9)
    assert torch.allclose(p, ref.detach(), atol=1e-7, rtol=0)
