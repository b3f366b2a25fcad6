"""planner.schedule prices what the trainer sends: every method, both top-k modes, round by round
(per client bytes, densities, simulated seconds); budgets stop within one round; AdapterLTH's
keep-rate schedule and floor."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import trainer.session as run_module
from planner.method_spec import METHODS, SRD_METHODS, MethodSpec, lth_next_density, mask_entries
from planner.model import model_profile_from_hf_config
from planner.profiles import load_network
from planner.schedule import price_rounds
from trainer.budget import budget_rounds, method_spec, reference_adapter_size
from trainer.cli import merge_config
from trainer.config import RunConfig
from trainer.run import train

ROUNDS = 6  # 6 clients, 3 a round: every client is sampled more than once


@pytest.fixture(scope="module")
def spread_network(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A network whose clients differ, so the seeded bandwidth factors matter."""
    path = tmp_path_factory.mktemp("net") / "spread.toml"
    path.write_text("down_mbps = 20.0\nup_mbps = 2.0\nrtt_ms = 30.0\nspread_sigma = 0.7\n")
    return str(path)


def _config(tiny_kwargs: dict[str, Any], network: str, **changes: Any) -> RunConfig:
    base = {
        **tiny_kwargs,
        "rounds": ROUNDS,
        "eval_every": 0,
        "eval_test": False,
        "network": network,
        "d_down": "1/4",
        "d_up": "1/16",
        "compute_seconds": 0.25,
    }
    return RunConfig(**{**base, **changes})


def _train_logged(
    config: RunConfig, workload: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, list[list[int]], list[list[int]], list[int], tuple[int, ...]]:
    """Train, recording each round's per-client download and upload payload sizes."""
    downs: list[list[int]] = []
    ups: list[list[int]] = []
    seen: dict[str, Any] = {}
    make = run_module.make_method

    def logged(cfg: RunConfig, *, n: int, slices: Any) -> Any:
        method = make(cfg, n=n, slices=slices)
        seen["n"], seen["sizes"] = n, tuple(s.stop - s.start for s in slices)
        download, upload = method.download, method.upload

        def down(p: Any, clients: list[int], **kw: Any) -> Any:
            out = download(p, clients, **kw)
            downs.append(list(out[1]))
            ups.append([])
            return out

        def up(delta: Any, **kw: Any) -> Any:
            sent = upload(delta, **kw)
            ups[-1].append(sent.nbytes)
            return sent

        method.download, method.upload = down, up
        return method

    monkeypatch.setattr(run_module, "make_method", logged)
    result = train(config, workload=workload, progress=False)
    return result, downs, ups, [seen["n"]], seen["sizes"]


@pytest.mark.parametrize("topk", ["global", "per-tensor"])
@pytest.mark.parametrize("method", [m for m in METHODS if m not in SRD_METHODS])  # exact uploads
def test_schedule_prices_every_round(
    method: str,
    topk: str,
    tiny_kwargs: dict[str, Any],
    tiny_workload: Any,
    spread_network: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _config(
        tiny_kwargs, spread_network, method=method, topk=topk, keep_rate=0.7, lth_floor=0.3
    )
    result, downs, ups, (n,), sizes = _train_logged(config, tiny_workload, monkeypatch)
    prices = price_rounds(
        method_spec(config, n=n, tensor_sizes=sizes),
        network=load_network(spread_network),
        seed=config.seed,
        num_clients=config.num_clients,
        clients_per_round=config.clients_per_round,
        compute_seconds=config.compute_seconds,
    )
    sampled_twice = False
    holders: set[int] = set()
    for record, price, down, up in zip(result.records, prices, downs, ups, strict=False):
        assert price.round == record.round
        assert price.bytes_down == down, f"round {record.round} downloads"
        assert price.bytes_up == up, f"round {record.round} uploads"
        assert price.bytes_total == record.bytes_total
        assert round(sum(price.bytes_down) / len(down)) == record.bytes_down
        assert price.d_down == record.d_down and price.d_up == record.d_up
        assert price.seconds == record.sim_seconds  # same function, same draws: bit for bit
        sampled_twice |= bool(holders & set(price.clients))
        holders |= set(price.clients)
    assert len(result.records) == ROUNDS and sampled_twice
    if method in ("sparseadapter", "adapterlth"):  # values only to clients holding the mask
        assert any(len(set(d)) > 1 for d in downs[1:])


@pytest.mark.parametrize(
    ("method", "topk", "down", "up", "feedback"),
    [
        ("floss", "global", "q8", "sr4", False),
        ("floss", "per-tensor", "sr2", "stc1", True),
        ("dense", "global", "q4", "q1", False),
        ("ffa", "global", "bf16", "sr8", False),
        ("sparseadapter", "global", "sr4", "q2", True),
        ("adapterlth", "global", "stc1", "sr1", False),
        ("floss", "global", "rh4", "rh2", False),  # rotation codes: the same bytes as q4/q2
        ("sparseadapter", "global", "rh8", "rh1", True),
    ],
)
def test_schedule_prices_quantized_rounds(
    method: str,
    topk: str,
    down: str,
    up: str,
    feedback: bool,
    tiny_kwargs: dict[str, Any],
    tiny_workload: Any,
    spread_network: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Quantized values (each direction its own precision, error feedback on or off): every
    payload of every round is the planner's price."""
    config = _config(
        tiny_kwargs, spread_network, method=method, topk=topk, keep_rate=0.7, lth_floor=0.3,
        precision_down=down, precision_up=up, error_feedback=feedback,
    )  # fmt: skip
    result, downs, ups, (n,), sizes = _train_logged(config, tiny_workload, monkeypatch)
    prices = price_rounds(
        method_spec(config, n=n, tensor_sizes=sizes),
        network=load_network(spread_network),
        seed=config.seed,
        num_clients=config.num_clients,
        clients_per_round=config.clients_per_round,
        compute_seconds=config.compute_seconds,
    )
    for record, price, down_sizes, up_sizes in zip(result.records, prices, downs, ups, strict=False):
        assert price.bytes_down == down_sizes, f"round {record.round} downloads"
        assert price.bytes_up == up_sizes, f"round {record.round} uploads"
        assert price.bytes_total == record.bytes_total
        assert price.seconds == record.sim_seconds
    assert len(result.records) == ROUNDS


def test_ffa_size_is_b_and_head(
    tiny_workload: Any, tiny_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    """The planner's n for ffa (freeze_a) and for LoRA equal the trainer's, from config.json."""
    from trainer.modeling import wrap_lora

    base = tiny_workload.base_model
    base.config.to_json_file(str(tmp_path / "config.json"))
    profile = model_profile_from_hf_config(tmp_path)
    labels = int(base.config.num_labels)
    for method, freeze in (("floss", False), ("ffa", True)):
        config = RunConfig(**{**tiny_kwargs, "method": method})
        model = wrap_lora(base, config)
        n = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert n == profile.adapter_params(config.rank, num_labels=labels, freeze_a=freeze)


def test_reference_size_is_the_planners(
    tiny_workload: Any, tiny_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    """One source for n at the reference rank: measured on the wrapped model, and equal to the
    planner's profile of the same config.json with the shared default targets and the head."""
    base = tiny_workload.base_model
    base.config.to_json_file(str(tmp_path / "config.json"))
    profile = model_profile_from_hf_config(tmp_path)
    config = RunConfig(**{**tiny_kwargs, "method": "ffa", "ref_rank": 16})
    assert reference_adapter_size(config, base) == profile.adapter_params(
        16, num_labels=int(base.config.num_labels)
    )


@pytest.mark.parametrize("kind", ["seconds", "bytes", "dense-rounds"])
def test_budget_stops_within_one_round(
    kind: str,
    tiny_kwargs: dict[str, Any],
    tiny_workload: Any,
    spread_network: str,
    tmp_path: Path,
) -> None:
    config = _config(tiny_kwargs, spread_network, method="sparseadapter")
    n = sum(p.numel() for p in _wrapped(config, tiny_workload).parameters() if p.requires_grad)
    spec = method_spec(config, n=n)
    network = load_network(spread_network)
    first = list(_take(price_rounds(spec, network=network, seed=0, num_clients=6,
                                    clients_per_round=3, compute_seconds=0.25), 8))  # fmt: skip
    if kind == "bytes":
        amount = sum(p.bytes_total for p in first[:4]) + first[4].bytes_total // 2
        budget = f"{amount}B"
    elif kind == "seconds":
        amount = sum(p.seconds for p in first[:4]) + first[4].seconds / 2
        budget = f"{amount!r}s"
    else:
        budget = "3.5-dense-rounds"
    logs: list[str] = []
    result = train(replace(config, budget=budget, rounds=50), workload=tiny_workload,
                   progress=False, out_dir=tmp_path, log=logs.append)  # fmt: skip
    records = result.records
    assert logs[0].startswith(f"budget {budget}: {len(records)} rounds fit (")
    got = budget_rounds(
        replace(config, budget=budget),
        n=n,
        reference_n=reference_adapter_size(config, tiny_workload.base_model),
        num_clients=6,
        network=network,
    )
    assert len(records) == len(got.rounds) >= 1
    nxt = first[len(records)]
    if kind == "bytes":
        assert records[-1].cum_bytes <= amount < records[-1].cum_bytes + nxt.bytes_total
        assert len(records) == 4
    else:
        limit = got.budget_seconds if kind == "dense-rounds" else amount
        assert limit is not None
        assert records[-1].cum_sim_seconds <= limit < records[-1].cum_sim_seconds + nxt.seconds
    saved = RunConfig.load(tmp_path / "config.yaml")  # --resume continues the same run
    assert saved.budget == budget and saved.rounds == len(records)


def _wrapped(config: RunConfig, workload: Any) -> Any:
    from trainer.modeling import wrap_lora

    return wrap_lora(workload.base_model, config)


def _take(it: Any, k: int) -> Any:
    for _, x in zip(range(k), it, strict=False):
        yield x


def test_rounds_cap_a_budget_on_the_command_line() -> None:
    cfg = merge_config(None, {"budget": "2GB", "rounds": 7})
    assert (cfg.budget, cfg.max_rounds) == ("2GB", 7)
    assert merge_config(None, {"rounds": 7}).rounds == 7


def test_keep_rate_schedule_and_floor() -> None:
    """Round 1 dense; density x keep_rate after each round; the floor; k >= 1 without one."""
    net = load_network("thesis")

    def densities(**kw: Any) -> list[float]:
        spec = MethodSpec(method="adapterlth", n=1000, **kw)
        prices = price_rounds(spec, network=net, seed=0, num_clients=4, clients_per_round=2)
        return [p.d_down for p in _take(prices, 6)]

    assert densities(keep_rate=0.5) == [1.0, 0.5, 0.25, 0.125, 0.063, 0.031]
    assert densities(keep_rate=0.5, floor=0.2) == [1.0, 0.5, 0.25, 0.2, 0.2, 0.2]
    assert densities() == [1.0, 0.98, 0.96, 0.941, 0.922, 0.904]  # the thesis's 0.98
    tiny = MethodSpec(method="adapterlth", n=10, keep_rate=0.1)
    ks = [round(p.d_down * 10) for p in _take(price_rounds(tiny, network=net, seed=0,
                                                           num_clients=4, clients_per_round=2), 5)]  # fmt: skip
    assert ks == [10, 1, 1, 1, 1]
    d = 1.0
    for _ in range(2000):  # far past k = 1: no underflow error, k stays 1
        d = lth_next_density(d, keep_rate=0.5, floor=None)
    assert mask_entries(10**6, d) == 1


def test_trainer_follows_the_keep_rate(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, spread_network: str
) -> None:
    config = _config(tiny_kwargs, spread_network, method="adapterlth", rounds=4)
    result = train(config, workload=tiny_workload, progress=False)
    n = result.adapter_size
    d, expected = 1.0, [1.0]
    for _ in range(3):
        d = lth_next_density(d, keep_rate=0.98, floor=None)
        expected.append(mask_entries(n, d) / n)
    assert [r.d_up for r in result.records] == expected


def test_old_prune_rate_configs_migrate(tmp_path: Path) -> None:
    old = {"method": "adapterlth", "prune_rate": 0.25, "d_up": "1/16"}
    cfg = RunConfig.from_dict(old)
    assert (cfg.keep_rate, cfg.lth_floor) == (0.75, 0.0625)
    assert RunConfig.from_dict({"prune_rate": 0.2}).keep_rate == 0.98  # unused by floss
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    assert RunConfig.load(path) == cfg


def test_one_table_of_default_targets() -> None:
    import planner.model
    import trainer.modeling

    assert trainer.modeling.DEFAULT_TARGETS is planner.model.DEFAULT_TARGETS
    assert planner.model.DEFAULT_TARGETS["gpt2"] == ("c_attn",)
    assert planner.model.DEFAULT_TARGETS["llama"] == ("q_proj", "v_proj")
