"""FedSRD and FedSRD-e (trainer.fedsrd, planner.srd): the rule's pieces against hand-computed small
cases, the server's reconstruction and projection, the bytes recorded against the messages built,
the planner's catch-up downloads round by round, the budget on actual bytes, and resume."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

import trainer.fedsrd as fedsrd_module
import trainer.session as run_module
from planner.encoding import message_bytes
from planner.method_spec import MethodSpec, topk_message_bytes
from planner.profiles import load_network
from planner.schedule import price_rounds
from planner.srd import (
    EXPECTED_KURTOSIS,
    expected_upload_entries,
    pruning_ratio,
    quantile_kept,
)
from trainer.budget import method_spec, srd_pairs
from trainer.config import RunConfig
from trainer.errors import TrainerError
from trainer.fedsrd import (
    FedSRD,
    keep_mask,
    l1_rescale,
    lora_pairs,
    pair_scores,
    pearson_kurtosis,
    project,
    truncate,
)
from trainer.flat import Slice
from trainer.run import train
from trainer.server import ServerState

RULE = {"base": 0.85, "upper": 0.11, "coeff": 0.1}


def test_importance_is_update_times_partner_norm() -> None:
    d_a = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])  # r = 2, d_in = 3
    d_b = torch.tensor([[1.0, -1.0], [2.0, 0.0], [0.0, -3.0]])  # d_out = 3
    a_start = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]])  # row norms 5, 2
    b_end = torch.tensor([[3.0, 5.0], [4.0, 0.0], [0.0, 12.0]])  # column norms 5, 13
    s_a, s_b = pair_scores(d_a, d_b, a_start, b_end)
    assert torch.equal(s_a, torch.tensor([[5.0, 10.0, 2.5], [0.0, 39.0, 13.0]]))
    assert torch.equal(s_b, torch.tensor([[5.0, 2.0], [10.0, 0.0], [0.0, 6.0]]))


def test_kurtosis_and_the_pruning_ratio() -> None:
    # x = (0, 0, 0, 1): mean 1/4, m2 = 3/16, m4 = 21/256, kurtosis 21/256 / (9/256) = 7/3
    assert pearson_kurtosis(torch.tensor([0.0, 0.0, 0.0, 1.0])) == pytest.approx(7 / 3)
    assert math.isnan(pearson_kurtosis(torch.ones(5)))
    assert pruning_ratio(7 / 3, **RULE) == pytest.approx(0.85 + 0.1 * math.log(7 / 3))
    assert pruning_ratio(math.e**2, **RULE) == pytest.approx(0.96)  # saturated at base + upper
    assert pruning_ratio(0.5, **RULE) == 0.85  # ln max(k, 1) = 0
    assert pruning_ratio(math.nan, **RULE) == 0.85
    # the half-normal's Pearson kurtosis, the planner's stated score distribution
    assert pytest.approx(3.8692, abs=1e-4) == EXPECTED_KURTOSIS
    sample = torch.randn(200_000, generator=torch.Generator().manual_seed(0)).abs()
    assert pearson_kurtosis(sample) == pytest.approx(EXPECTED_KURTOSIS, rel=0.02)


def test_quantile_drop_and_l1_rescale() -> None:
    scores = torch.arange(1.0, 11.0)  # 0.85-quantile = 8.65 (linear): 9 and 10 survive
    kept = keep_mask(scores, 0.85)
    assert kept.tolist() == [False] * 8 + [True] * 2
    assert quantile_kept(10, 0.85) == 2 and quantile_kept(10, 0.0) == 10
    assert quantile_kept(100, 0.96) == 4 and quantile_kept(1, 0.96) == 1
    update = torch.tensor([1.0, -2.0, 3.0, -4.0])
    out = l1_rescale(update, torch.tensor([False, False, True, True]))
    assert torch.allclose(out, torch.tensor([0.0, 0.0, 30 / 7, -40 / 7]))
    assert float(out.abs().sum()) == pytest.approx(10.0)
    zero = l1_rescale(torch.zeros(3), torch.tensor([True, False, False]))
    assert torch.equal(zero, torch.zeros(3))
    assert expected_upload_entries((100, 10), **RULE) == 4 + 1


def test_svd_truncation_and_alternating_projection() -> None:
    w = torch.diag(torch.tensor([3.0, 2.0, 1.0]))
    assert torch.allclose(truncate(w, 2), torch.diag(torch.tensor([3.0, 2.0, 0.0])), atol=1e-6)
    assert torch.allclose(truncate(w, 3), w, atol=1e-6)
    b = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])  # d_out 3, r 2
    a = torch.tensor([[2.0, 0.0], [0.0, 4.0]])  # r 2, d_in 2
    d_w = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    d_a, none = project(d_w, a, b, round_index=0)  # even: dA = pinv(B) dW
    assert none is None and d_a is not None
    assert torch.allclose(d_a, torch.tensor([[1.0, 2.0], [1.5, 2.0]]))
    none, d_b = project(d_w, a, b, round_index=1)  # odd: dB = dW pinv(A)
    assert none is None and d_b is not None
    assert torch.allclose(d_b, torch.tensor([[0.5, 0.5], [1.5, 1.0], [2.5, 1.5]]))
    # B near zero next to A: the cut keeps the projection from blowing up
    tiny = torch.full((3, 2), 1e-12)
    d_a, _ = project(d_w, a, tiny, round_index=0)
    assert d_a is not None and torch.equal(d_a, torch.zeros(2, 2))


def _method(method: str, *, rank: int = 2, d_in: int = 4, d_out: int = 5, head: int = 3) -> Any:
    slices = (
        Slice("layer.lora_A.default.weight", 0, rank * d_in),
        Slice("layer.lora_B.default.weight", rank * d_in, rank * (d_in + d_out)),
        Slice("classifier.weight", rank * (d_in + d_out), rank * (d_in + d_out) + head),
    )
    n = slices[-1].stop
    config = RunConfig(method=method, rank=rank, seed=3)
    return FedSRD(config, n=n, slices=slices), n, config


def test_fedsrd_e_equals_fedsrd_on_a_rank_r_average() -> None:
    """Uploads that change B only: the mean of B_c A is rank <= r, so the SVD is exact."""
    gen = torch.Generator().manual_seed(1)
    srd, n, _config = _method("fedsrd")
    srd_e, _, _ = _method("fedsrd-e")
    p = torch.randn(n, generator=gen)
    uploads = []
    for _ in range(3):
        u = torch.zeros(n)
        u[8:18] = torch.randn(10, generator=gen)  # B's entries only
        u[18:] = torch.randn(3, generator=gen)
        uploads.append(u)
    for round_ in (1, 2):
        srd.round = srd_e.round = round_
        got, want = srd_e.target_delta(p, uploads), srd.target_delta(p, uploads)
        assert torch.allclose(got, want, atol=1e-5)
    # a rank-3 mean (A changes too) is not rank 2: the two differ
    uploads[0][:8] = torch.randn(8, generator=gen)
    uploads[1][:8] = torch.randn(8, generator=gen)
    srd.round = srd_e.round = 2
    assert not torch.allclose(srd_e.target_delta(p, uploads), srd.target_delta(p, uploads))


def test_target_delta_by_hand() -> None:
    """One pair, one client: W_c = (B - dB)(A - dA); fedsrd-e's target is W_c itself, put on A
    (round 1) with pinv(B); the head moves by -Delta (Delta = start - end)."""
    srd_e, _n, _ = _method("fedsrd-e", rank=1, d_in=2, d_out=2, head=1)
    p = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.5])  # A = [1 2], B = [3 4]^T, head 0.5
    u = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.25])  # A_c = [1 1], B_c = [2 4]^T
    srd_e.round = 1
    out = srd_e.target_delta(p, [u])
    # dW = B_c A_c - B A = [[2, 2], [4, 4]] - [[3, 6], [4, 8]] = [[-1, -4], [0, -4]]
    # pinv(B) = B^T / 25: dA = [3 4] dW / 25 = [-3, -28] / 25
    assert torch.allclose(out, torch.tensor([-3 / 25, -28 / 25, 0.0, 0.0, -0.25]))
    srd_e.round = 2  # B on even rounds: dB = dW pinv(A), pinv(A) = A^T / 5
    out = srd_e.target_delta(p, [u])
    assert torch.allclose(out, torch.tensor([0.0, 0.0, -9 / 5, -8 / 5, -0.25]))


def test_upload_keeps_the_rule_and_the_l1_norm() -> None:
    srd, n, _config = _method("fedsrd", rank=4, d_in=50, d_out=60, head=40)
    gen = torch.Generator().manual_seed(2)
    start = torch.randn(n, generator=gen)
    delta = torch.randn(n, generator=gen) ** 3  # heavy-tailed: the rule saturates
    sent = srd.upload(delta, round_=1, client=0, start=start)
    for sl in srd.slices:
        part = sent.vector[sl.start : sl.stop]
        kept = int((part != 0).sum())
        assert kept == quantile_kept(sl.stop - sl.start, 0.96)
        assert float(part.abs().sum()) == pytest.approx(
            float(delta[sl.start : sl.stop].abs().sum()), rel=1e-5
        )
    assert sent.nbytes == len(sent.payload) and sent.k == expected_upload_entries(
        (200, 240, 40), **RULE
    )
    with pytest.raises(TrainerError, match="needs the client's start vector"):
        srd.upload(delta, round_=1, client=0)


def test_download_mask_is_seeded_and_sized() -> None:
    srd, _n, _config = _method("fedsrd", rank=4, d_in=50, d_out=60, head=40)
    first, again = srd.mask_positions(1), srd.mask_positions(1)
    assert torch.equal(first, again) and not torch.equal(first, srd.mask_positions(3))
    assert first.numel() == round(0.1 * (200 + 40))  # A and the head on round 1
    assert bool((first < 200).any()) and bool((first >= 440).any())
    assert not bool(((first >= 200) & (first < 440)).any())  # nothing of B
    second = srd.mask_positions(2)
    assert second.numel() == round(0.1 * (240 + 40)) and not bool((second < 200).any())


def test_lora_pairs_need_both_factors() -> None:
    with pytest.raises(TrainerError, match="no lora_B partner"):
        lora_pairs((Slice("x.lora_A.w", 0, 4),), 2)
    with pytest.raises(TrainerError, match="needs LoRA A and B"):
        lora_pairs((Slice("head", 0, 4),), 2)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"srd_base": 0.95, "srd_upper": 0.1}, "srd_base \\+ srd_upper must be below 1"),
        ({"srd_mask_rate": 1.0}, "srd_mask_rate must be below 1, but got 1.0"),
        ({"srd_coeff": -0.1}, "srd_coeff must be a finite number >= 0, but got -0.1"),
        ({"srd_base": "x"}, "srd_base must be a number, but got 'x'"),
    ],
)
def test_bad_srd_settings(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(TrainerError, match=message):
        RunConfig(method="fedsrd", **changes)


def _logged_train(
    config: RunConfig, workload: Any, monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> tuple[Any, list[list[int]], list[int], dict[str, Any]]:
    """Train; log each upload's payload length and every delta message the server built."""
    uploads: list[list[int]] = []
    deltas: list[int] = []
    seen: dict[str, Any] = {}
    make = run_module.make_method
    real_send = fedsrd_module.send

    def logged(cfg: RunConfig, *, n: int, slices: Any) -> Any:
        method: Any = make(cfg, n=n, slices=slices)
        seen["n"], seen["slices"] = n, slices
        upload, download = method.upload, method.download

        def down(*args: Any, **kwargs: Any) -> Any:
            uploads.append([])
            return download(*args, **kwargs)

        def up(delta: Any, **kwargs: Any) -> Any:
            sent = upload(delta, **kwargs)
            uploads[-1].append(len(sent.payload))
            return sent

        method.upload, method.download = up, down
        return method

    def send(*args: Any, **kwargs: Any) -> Any:
        sent = real_send(*args, **kwargs)
        if kwargs.get("seed") is not None and kwargs["seed"][1] == 1:  # a download
            deltas.append(len(sent.payload))
        return sent

    monkeypatch.setattr(run_module, "make_method", logged)
    monkeypatch.setattr(fedsrd_module, "send", send)
    result = train(config, workload=workload, progress=False, **kw)
    return result, uploads, deltas, seen


@pytest.mark.parametrize("method", ["fedsrd", "fedsrd-e"])
def test_bytes_recorded_are_the_messages_built(
    method: str, tiny_kwargs: dict[str, Any], tiny_workload: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = RunConfig(**{**tiny_kwargs, "rounds": 6, "eval_every": 0}, method=method)
    result, uploads, deltas, seen = _logged_train(config, tiny_workload, monkeypatch)
    n = seen["n"]
    dense = message_bytes(n, n, encoding="dense", precision="fp32")
    held: dict[int, int] = {}
    for record, ups in zip(result.records, uploads, strict=True):
        assert record.client_bytes_up == ups  # every upload's real payload
        want = []
        for c in record.clients:  # the deltas each client missed, or a dense P
            want.append(min(sum(deltas[held.get(c, 0) : record.round - 1]), dense))
            held[c] = record.round - 1
        assert record.client_bytes_down == want
        assert record.bytes_total == sum(ups) + sum(want)
    assert len(deltas) == 6 and any(0 < b < dense for r in result.records
                                    for b in r.client_bytes_down)  # fmt: skip
    # the planner prices the same downloads and densities, round by round, exactly
    spec = method_spec(config, n=n, pairs=srd_pairs(seen["slices"]))
    prices = price_rounds(
        spec,
        network=load_network(config.network),
        seed=config.seed,
        num_clients=config.num_clients,
        clients_per_round=config.clients_per_round,
    )
    for record, price in zip(result.records, prices, strict=False):
        assert price.clients == record.clients
        assert price.bytes_down == record.client_bytes_down
        assert price.d_down == record.d_down


def test_planner_walks_fedsrd_catch_ups() -> None:
    """Every client sampled every round: each gets the last delta only; a 1-of-4 schedule
    mostly re-sends missed deltas or a dense P."""
    from planner.profiles import load_network as net

    spec = MethodSpec(method="fedsrd", n=1000, srd_pairs=((200, 300),))
    kw: dict[str, Any] = {"network": net("thesis"), "seed": 0}
    full = price_rounds(spec, **kw, num_clients=4, clients_per_round=4)
    r1, r2, r3 = next(full), next(full), next(full)
    a_delta = topk_message_bytes(spec, 70, "fp32")  # 1/10 of A (200) and the head (500)
    b_delta = topk_message_bytes(spec, 80, "fp32")  # 1/10 of B (300) and the head
    assert r1.bytes_down == [0] * 4 and r1.d_down == 0.0
    assert r2.bytes_down == [a_delta] * 4 and r2.d_down == 70 / 1000
    assert r3.bytes_down == [b_delta] * 4 and r3.d_down == 80 / 1000
    k_up = quantile_kept(200, 0.96) + quantile_kept(300, 0.96) + quantile_kept(500, 0.96)
    assert spec.srd_upload_entries() == k_up == 8 + 12 + 20
    assert r1.bytes_up == [topk_message_bytes(spec, k_up, "fp32")] * 4
    sparse = price_rounds(spec, **kw, num_clients=40, clients_per_round=2)
    rounds = [next(sparse) for _ in range(40)]
    dense = message_bytes(1000, 1000, encoding="dense", precision="fp32")
    assert any(b == dense for r in rounds for b in r.bytes_down)  # long absences: a dense P


def test_budget_stops_on_actual_bytes(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, tmp_path: Path
) -> None:
    lines: list[str] = []
    budget = 60_000
    config = RunConfig(**{**tiny_kwargs, "eval_every": 0}, method="fedsrd", budget=f"{budget}B")
    result = train(
        config, workload=tiny_workload, out_dir=tmp_path, progress=False, log=lines.append
    )
    spent = result.records[-1].cum_bytes
    assert spent <= budget and len(result.records) > 3
    assert budget - spent < 2 * max(r.bytes_total for r in result.records)  # about one round left
    assert result.test_accuracy is not None  # the last round played is the run's last
    assert any("fedsrd stops on the bytes it actually sends" in line for line in lines)
    last = next(line for line in lines if line.startswith("budget spent on actual bytes"))
    assert f"{len(result.records)} rounds, {spent:,} bytes sent" in last
    saved = json.loads((tmp_path / "checkpoint" / "meta.json").read_text())
    assert len(saved["records"]) == len(result.records)


def test_fedsrd_resumes_bit_identical(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, tmp_path: Path
) -> None:
    """The deltas' sizes and who holds which version are in the checkpoint."""
    config = RunConfig(
        **{**tiny_kwargs, "rounds": 5, "eval_every": 0}, method="fedsrd", checkpoint_every=1
    )
    full = train(config, workload=tiny_workload, out_dir=tmp_path / "full", progress=False)
    cut = train(config, workload=tiny_workload, out_dir=tmp_path / "cut", progress=False,
                on_round=lambda rec: rec.round < 3)  # fmt: skip
    assert cut.stopped_early
    resumed = train(config, workload=tiny_workload, out_dir=tmp_path / "cut", progress=False,
                    resume=True)  # fmt: skip
    assert full.final_p is not None and resumed.final_p is not None
    assert torch.equal(full.final_p, resumed.final_p)
    assert [r.client_bytes_down for r in resumed.records] == [
        r.client_bytes_down for r in full.records
    ]


def test_server_step_through_the_optimizer() -> None:
    """fedavg at lr 1 (the authors' server): P moves by the masked target / (1 - mask_rate);
    FedAdam: by the masked Adam step on -target. Nothing moves off the mask."""
    for optimizer, lr in (("fedavg", 1.0), ("fedadam", 0.01)):
        slices = (
            Slice("m.lora_A.w", 0, 2),
            Slice("m.lora_B.w", 2, 4),
            Slice("classifier.weight", 4, 5),
        )
        config = RunConfig(method="fedsrd-e", rank=1, seed=3, server_optimizer=optimizer,
                           server_lr=lr)  # fmt: skip
        srd = FedSRD(config, n=5, slices=slices)
        server = ServerState(torch.tensor([1.0, 2.0, 3.0, 4.0, 0.5]), config)
        srd.round = 1
        u = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.25])
        target = srd.target_delta(server.p, [u])
        before = server.p.clone()
        srd.aggregate(server, [u])
        moved = server.p - before
        kept = srd.mask_positions(1)
        # fedavg: the target itself; Adam's first step: lr * sign(target)
        step = target[kept] if optimizer == "fedavg" else 0.01 * torch.sign(target[kept])
        want = step / 0.1
        assert torch.allclose(moved[kept], want, atol=1e-6)
        rest = torch.ones(5, dtype=torch.bool)
        rest[kept] = False
        assert torch.equal(moved[rest], torch.zeros(int(rest.sum())))
        assert server.step_count == 1
        assert srd.version == 1 and len(srd.sizes) == 1 and srd.last_k == kept.numel()


def test_planner_refuses_what_fedsrd_cannot_send() -> None:
    with pytest.raises(ValueError, match="encoding dense with download precision q8"):
        MethodSpec(method="fedsrd", n=100, encoding="dense", precision="q8")
    with pytest.raises(ValueError, match="LoRA pairs hold more than the adapter's n=100"):
        MethodSpec(method="fedsrd-e", n=100, srd_pairs=((60, 60),))
    with pytest.raises(ValueError, match="srd_mask_rate must be below 1"):
        MethodSpec(method="fedsrd", n=100, srd_mask_rate=1.0)


def test_only_top_k_methods_take_a_per_client_upload_density() -> None:
    """A fleet's per-client d_up is a top-k notion: fedsrd's upload density is its rule's."""
    srd, n, _config = _method("fedsrd")
    with pytest.raises(TrainerError, match="fedsrd has no per-client upload density"):
        srd.upload(torch.ones(n), round_=1, client=0, density=0.5, start=torch.ones(n))
