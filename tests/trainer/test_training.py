"""End-to-end rounds on the tiny random BERT: equivalence, bytes, resume, baselines, outputs."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch

from planner.encoding import kept_entries, resolve_encoding, value_bytes
from trainer.config import RunConfig
from trainer.errors import DivergedError
from trainer.modeling import wrap_lora
from trainer.run import round_seed, train
from trainer.tokens import client_batches, make_batch

IGNORED = {"wall_seconds"}


def _cfg(kwargs: dict[str, Any], **changes: Any) -> RunConfig:
    return RunConfig(**{**kwargs, **changes})


def _same_records(a: list[Any], b: list[Any]) -> bool:
    strip = lambda r: {k: v for k, v in r.to_dict().items() if k not in IGNORED}  # noqa: E731
    return [strip(r) for r in a] == [strip(r) for r in b]


def reference_dense_fedadam(config: RunConfig, wl: Any) -> torch.Tensor:
    """A straightforward FedAdam LoRA loop: per-parameter state copies, torch.optim everywhere."""
    model = wrap_lora(wl.base_model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    server = [torch.nn.Parameter(p.detach().clone()) for p in params]
    server_opt = torch.optim.Adam(
        server, lr=config.server_lr, betas=(0.9, 0.999), eps=1e-8, foreach=False
    )
    clients = [torch.as_tensor(r) for r in wl.client_rows(config)]
    for r in range(1, config.rounds + 1):
        sampled = sorted(
            random.Random(round_seed(config.seed, r)).sample(
                range(len(clients)), config.clients_per_round
            )
        )
        deltas = [torch.zeros_like(s) for s in server]
        for c in sampled:
            with torch.no_grad():
                for p, s in zip(params, server, strict=True):
                    p.copy_(s)
            seed = round_seed(config.seed, r, c)
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            opt = torch.optim.SGD(params, lr=config.client_lr, momentum=config.client_momentum)
            model.train()
            rows = clients[c]
            for _ in range(config.local_epochs):
                for batch_rows in client_batches(
                    wl.tokens.lengths,
                    rows,
                    batch_size=config.batch_size,
                    generator=gen,
                    group_by_length=config.group_by_length,
                ):
                    opt.zero_grad()
                    model(**make_batch(wl.tokens, batch_rows, lm=False)).loss.backward()
                    opt.step()
            for d, p, s in zip(deltas, params, server, strict=True):
                d += (s - p).detach() / len(sampled)
        for s, d in zip(server, deltas, strict=True):
            s.grad = d
        server_opt.step()
    return torch.cat([s.detach().reshape(-1) for s in server])


def test_floss_at_full_density_equals_dense_fedadam(
    tiny_kwargs: dict[str, Any], tiny_workload: Any
) -> None:
    config = _cfg(tiny_kwargs, method="floss", d_down=1, d_up=1, rounds=2, eval_every=0)
    result = train(config, workload=tiny_workload, progress=False)
    expected = reference_dense_fedadam(config, tiny_workload)
    assert result.final_p is not None
    assert torch.allclose(result.final_p, expected, atol=1e-6, rtol=0)
    # and it moved: the comparison is not between two untouched initialisations
    init = reference_dense_fedadam(_cfg(tiny_kwargs, rounds=1, server_lr=1e-12), tiny_workload)
    assert not torch.allclose(result.final_p, init, atol=1e-4)
    dense = train(
        _cfg(tiny_kwargs, method="dense", rounds=2, eval_every=0),
        workload=tiny_workload,
        progress=False,
    )
    assert dense.final_p is not None and torch.equal(dense.final_p, result.final_p)


@pytest.mark.parametrize(
    ("encoding", "precision", "d_down", "d_up"),
    [
        ("auto", "fp32", 0.25, 1 / 16),
        ("coo", "fp16", 0.5, 0.1),
        ("rice", "bf16", 1 / 64, 1 / 64),
        ("bitmap", "fp32", 1.0, 0.5),
    ],
)
def test_bytes_equal_planner_prediction(
    tiny_kwargs: dict[str, Any],
    tiny_workload: Any,
    encoding: str,
    precision: str,
    d_down: float,
    d_up: float,
) -> None:
    config = _cfg(
        tiny_kwargs,
        encoding=encoding,
        precision=precision,
        d_down=d_down,
        d_up=d_up,
        rounds=2,
        eval_every=0,
    )
    result = train(config, workload=tiny_workload, progress=False)
    n = result.adapter_size
    down = resolve_encoding(n, kept_entries(n, d_down), encoding=encoding, precision=precision)[1]
    up = resolve_encoding(n, kept_entries(n, d_up), encoding=encoding, precision=precision)[1]
    m = config.clients_per_round
    for rec in result.records:
        assert (rec.bytes_down, rec.bytes_up, rec.bytes_total) == (down, up, m * (down + up))
    assert result.records[-1].cum_bytes == 2 * m * (down + up)


def test_resume_is_bit_identical(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, tmp_path: Path
) -> None:
    config = _cfg(tiny_kwargs, rounds=4, checkpoint_every=2, d_down=0.5, d_up=0.25, eval_every=2)
    full = train(config, workload=tiny_workload, out_dir=tmp_path / "full", progress=False)
    cut = train(
        config,
        workload=tiny_workload,
        out_dir=tmp_path / "cut",
        progress=False,
        on_round=lambda rec: rec.round < 2,
    )
    assert cut.stopped_early and len(cut.records) == 2
    resumed = train(
        config, workload=tiny_workload, out_dir=tmp_path / "cut", progress=False, resume=True
    )
    assert full.final_p is not None and resumed.final_p is not None
    assert torch.equal(full.final_p, resumed.final_p)
    assert _same_records(full.records, resumed.records)
    lines = (tmp_path / "cut" / "rounds.jsonl").read_text().splitlines()
    assert len(lines) == 4


def test_resume_refuses_a_changed_config(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, tmp_path: Path
) -> None:
    from trainer.errors import TrainerError

    config = _cfg(tiny_kwargs, rounds=2, checkpoint_every=1, eval_every=0)
    train(config, workload=tiny_workload, out_dir=tmp_path, progress=False)
    with pytest.raises(TrainerError, match="differs from the checkpoint's in client_lr"):
        train(
            _cfg(tiny_kwargs, rounds=3, checkpoint_every=1, eval_every=0, client_lr=0.5),
            workload=tiny_workload,
            out_dir=tmp_path,
            progress=False,
            resume=True,
        )


def _support(p: torch.Tensor | None) -> torch.Tensor:
    assert p is not None
    return (p != 0).nonzero().reshape(-1)


def test_sparseadapter_mask_never_changes(tiny_kwargs: dict[str, Any], tiny_workload: Any) -> None:
    cfg = dict(tiny_kwargs, method="sparseadapter", d_up=0.25, eval_every=0)
    short = train(_cfg(cfg, rounds=2), workload=tiny_workload, progress=False)
    long = train(_cfg(cfg, rounds=5), workload=tiny_workload, progress=False)
    n = long.adapter_size
    k = kept_entries(n, 0.25)
    assert torch.equal(_support(short.final_p), _support(long.final_p))
    assert _support(long.final_p).numel() == k
    recs = long.records
    assert recs[0].d_down == 1.0 and all(r.d_down == k / n for r in recs[1:])
    assert all(r.bytes_up == k * value_bytes("fp32") for r in recs[1:])  # values only
    assert recs[1].bytes_down > k * 4  # first download after the prune carries positions


def test_adapterlth_density_shrinks(tiny_kwargs: dict[str, Any], tiny_workload: Any) -> None:
    config = _cfg(
        tiny_kwargs, method="adapterlth", keep_rate=0.5, lth_floor=0.3, rounds=4, eval_every=0
    )
    result = train(config, workload=tiny_workload, progress=False)
    densities = [r.d_up for r in result.records]
    assert densities[0] == 1.0
    assert densities[1] == pytest.approx(0.5, abs=1e-3) and densities[2] == pytest.approx(
        0.3, abs=1e-3
    )
    assert densities[3] == densities[2]
    assert _support(result.final_p).numel() == kept_entries(result.adapter_size, 0.3)


def test_ffa_never_changes_a(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    config = _cfg(tiny_kwargs, method="ffa", rounds=2, eval_every=0)
    result = train(config, workload=tiny_workload, out_dir=tmp_path, progress=False)
    init = {
        n: p.detach() for n, p in wrap_lora(tiny_workload.base_model, config).named_parameters()
    }
    saved = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    a_keys = [k for k in saved if "lora_A" in k]
    b_keys = [k for k in saved if "lora_B" in k]
    assert a_keys and b_keys
    for key in a_keys:
        match = [
            v
            for n, v in init.items()
            if n.endswith(key.split("base_model.model.")[-1].replace(".weight", ".default.weight"))
        ]
        assert len(match) == 1 and torch.equal(saved[key], match[0])
    assert any(saved[k].abs().sum() > 0 for k in b_keys)  # B moved from its zero init
    full = train(
        _cfg(tiny_kwargs, method="dense", rounds=1, eval_every=0),
        workload=tiny_workload,
        progress=False,
    )
    assert result.adapter_size < full.adapter_size  # P holds B and the head only


def test_divergence_writes_record_then_raises(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, tmp_path: Path
) -> None:
    config = _cfg(tiny_kwargs, server_optimizer="fedavg", server_lr=1e38, rounds=3)
    with pytest.raises(DivergedError, match="diverged in round") as info:
        train(config, workload=tiny_workload, out_dir=tmp_path, progress=False)
    rounds = (tmp_path / "rounds.jsonl").read_text().splitlines()
    assert info.value.record is not None and len(rounds) == info.value.record.round


def test_adapter_loads_with_peft(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from trainer.client import evaluate

    result = train(
        _cfg(tiny_kwargs, rounds=2), workload=tiny_workload, out_dir=tmp_path, progress=False
    )
    base = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "base_model"))
    model = PeftModel.from_pretrained(base, str(tmp_path / "adapter"))
    rows = torch.as_tensor(tiny_workload.val_rows(_cfg(tiny_kwargs)))
    loss, acc = evaluate(model, tiny_workload.tokens, rows, lm=False, amp=None)
    # the saved adapter is the server's dense P, so it matches the server-side evaluation
    assert acc == result.final_val_accuracy_server
    assert loss == pytest.approx(result.final_val_loss_server, abs=1e-5)
    assert (
        (tmp_path / "rounds.csv").read_text().splitlines()[0].startswith("round,rank,d_down,d_up")
    )
