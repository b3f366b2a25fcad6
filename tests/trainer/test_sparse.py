"""Top-k masks and real messages (bytes equal the planner's prediction)."""

from __future__ import annotations

import pytest
import torch

from planner.encoding import kept_entries, message_bytes, resolve_encoding, value_bytes
from trainer.flat import Slice
from trainer.sparse import select_positions, send, send_values, topk_positions


@pytest.mark.parametrize(("n", "k"), [(10, 1), (10, 3), (10, 10), (1000, 37), (4097, 1024)])
def test_topk_keeps_exactly_the_k_largest(n: int, k: int) -> None:
    gen = torch.Generator().manual_seed(n + k)
    x = torch.randn(n, generator=gen)
    pos = topk_positions(x, k)
    assert pos.numel() == k
    assert bool((pos[1:] > pos[:-1]).all())  # sorted, distinct
    kept = x.abs()[pos]
    dropped = torch.ones(n, dtype=torch.bool)
    dropped[pos] = False
    if k < n:
        assert float(kept.min()) >= float(x.abs()[dropped].max())
    assert sorted(x.abs()[pos].tolist()) == sorted(x.abs().tolist())[n - k :]


def test_topk_by_magnitude_not_sign() -> None:
    x = torch.tensor([0.1, -5.0, 2.0, -0.2, 3.0])
    assert topk_positions(x, 2).tolist() == [1, 4]


def test_topk_rejects_bad_k() -> None:
    with pytest.raises(ValueError, match="k must be in"):
        topk_positions(torch.ones(4), 0)


def test_per_tensor_topk_takes_k_from_each_tensor() -> None:
    x = torch.tensor([9.0, 8.0, 7.0, 6.0, 0.1, 0.2, 0.3, 0.4])
    slices = (Slice("a", 0, 4), Slice("b", 4, 8))
    assert select_positions(x, 0.5, mode="global", slices=slices).tolist() == [0, 1, 2, 3]
    assert select_positions(x, 0.5, mode="per-tensor", slices=slices).tolist() == [0, 1, 6, 7]


@pytest.mark.parametrize("encoding", ["auto", "dense", "coo", "bitmap", "rice"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("density", [1.0, 0.25, 1 / 64])
def test_send_bytes_equal_planner_prediction(encoding: str, precision: str, density: float) -> None:
    n = 3000
    x = torch.randn(n, generator=torch.Generator().manual_seed(1))
    k = kept_entries(n, density)
    sent = send(x, topk_positions(x, k), encoding=encoding, precision=precision)
    assert sent.nbytes == resolve_encoding(n, k, encoding=encoding, precision=precision)[1]
    assert sent.k == k
    kept = sent.vector != 0
    assert int(kept.sum()) == k
    if precision == "fp32":
        assert torch.equal(sent.vector[kept], x[kept])
    else:  # lossy on the wire, but close
        assert torch.allclose(sent.vector[kept], x[kept], rtol=1e-2)


def test_send_values_costs_k_values() -> None:
    x = torch.randn(100, generator=torch.Generator().manual_seed(2))
    pos = topk_positions(x, 10)
    sent = send_values(x, pos, precision="fp16")
    assert (
        sent.nbytes
        == 10 * value_bytes("fp16")
        == message_bytes(10, 10, encoding="dense", precision="fp16")
    )
    assert torch.allclose(sent.vector[pos], x[pos], rtol=1e-3)
    assert int((sent.vector != 0).sum()) == 10
