"""The Flower app runs floss-train's round: for the same config and seed its final P equals
floss-train's bit for bit on the CPU, its records match, and every message's payload is the
number of bytes the planner predicts (per client, round by round), driven in process through
the real ServerApp and ClientApp (Flower's protobuf serde on every message, no Ray)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch

from planner.schedule import price_rounds
from trainer.budget import method_spec
from trainer.config import RunConfig
from trainer.run import train

CASES = [
    {"method": "floss"},
    {"method": "floss", "topk": "per-tensor", "precision": "fp16", "encoding": "rice"},
    {"method": "dense"},
    {"method": "sparseadapter"},
    {"method": "adapterlth", "keep_rate": 0.5},
    {"method": "ffa"},
    {"method": "floss", "precision": "sr4"},  # stochastic rounding seeded by (seed, round, client)
    {"method": "sparseadapter", "precision": "q8"},
    # each direction decodes with its own precision (8-bit down, unbiased 4-bit up)
    {"method": "floss", "precision_down": "q8", "precision_up": "sr4"},
    # rotation codes: the rotation seed travels in the payload's header
    {"method": "floss", "precision_down": "rh4", "precision_up": "rh2"},
    # error feedback: each node keeps its own residual between rounds (context.state)
    {"method": "floss", "error_feedback": True, "rounds": 5},
]


@pytest.mark.parametrize("changes", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_flower_run_equals_floss_train(
    fed_kwargs: dict[str, Any], harness: Any, changes: dict[str, Any]
) -> None:
    config = RunConfig(**{**fed_kwargs, **changes})
    reference = train(config, progress=False)
    strategy = harness.run_as_train(config, reference)

    # each message's payload bytes are the planner's per-client prediction, round by round
    adapter = strategy.trainee.adapter
    sizes = tuple(s.stop - s.start for s in adapter.slices)
    spec = method_spec(config, n=adapter.n, tensor_sizes=sizes if config.topk != "global" else ())
    prices = itertools.islice(  # an endless schedule: the run's rounds
        price_rounds(
            spec,
            network=config.network_profile(),
            seed=config.seed,
            num_clients=config.num_clients,
            clients_per_round=config.clients_per_round,
        ),
        config.rounds,
    )
    client_of = {node: c for c, node in strategy.nodes.items()}
    for price in prices:
        train_msgs = [w for w in harness.grid.wire if w.group_id == str(price.round)]
        down = {client_of[w.node_id]: w.payload_bytes for w in train_msgs if w.direction == "down"}
        up = {client_of[w.node_id]: w.payload_bytes for w in train_msgs if w.direction == "up"}
        assert sorted(down) == list(price.clients) == sorted(up)
        assert [down[c] for c in price.clients] == list(price.bytes_down)
        assert [up[c] for c in price.clients] == list(price.bytes_up)
        # what Flower's serde adds around a payload is small and does not grow with it
        for w in train_msgs:
            assert 0 < w.message_bytes - w.payload_bytes < 600


def test_model_loaded_once_per_client_process(fed_kwargs: dict[str, Any], harness: Any) -> None:
    from federation import client

    config = RunConfig(**{**fed_kwargs, "seed": 1, "rounds": 2, "eval_every": 0})
    before = client.LOADS["count"]
    harness.run(config)  # 4 nodes, 2 rounds, one process
    assert client.LOADS["count"] == before + 1


def test_payload_travels_as_uint8_array_without_header() -> None:
    from federation.wire import STYPE, payload_record

    payload = bytes(range(256)) * 3
    array = payload_record(payload)["payload"]
    assert (array.dtype, array.shape, array.stype) == ("uint8", (768,), STYPE)
    assert array.data == payload


def test_run_config_round_trips(fed_kwargs: dict[str, Any]) -> None:
    import tomllib

    from federation.appdir import to_toml
    from federation.config import AppSettings, from_run_config, to_run_config

    config = RunConfig(**{**fed_kwargs, "target_modules": ("query", "value"), "budget": "3GB"})
    settings = AppSettings(out_dir="runs/x", round_timeout=30)
    values = tomllib.loads(to_toml(to_run_config(config, settings)))
    assert values["num-server-rounds"] == 3 and values["lora-rank"] == 4
    assert values["lora-target-modules"] == "query,value"
    assert from_run_config(values) == (config, settings)


def test_app_folder_is_a_valid_flower_app(fed_kwargs: dict[str, Any], tmp_path: Any) -> None:
    import tomllib

    from flwr.common.config import validate_config

    from federation.appdir import write_app
    from federation.config import from_run_config

    config = RunConfig(**{**fed_kwargs, "method": "sparseadapter", "checkpoint_every": 5})
    write_app(tmp_path / "app", config)
    project = tomllib.loads((tmp_path / "app" / "pyproject.toml").read_text())
    ok, errors, _ = validate_config(project, check_module=True, project_dir=tmp_path / "app")
    assert ok, errors
    assert from_run_config(project["tool"]["flwr"]["app"]["config"])[0] == config
    assert "flwr run" in (tmp_path / "app" / "README.md").read_text()


@pytest.mark.parametrize(
    ("method", "mask_rate", "kinds", "longest"),
    [
        ("fedsrd", 0.9, {"chain"}, 2),  # small deltas: a node that missed two gets both
        ("fedsrd-e", 0.9, {"chain"}, 2),
        ("fedsrd", 0.1, {"chain", "dense"}, 1),  # large deltas: two missed cost more than P
    ],
)
def test_flower_fedsrd_equals_floss_train(
    fed_kwargs: dict[str, Any],
    harness: Any,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    mask_rate: float,
    kinds: set[str],
    longest: int,
) -> None:
    """FedSRD's downloads on Flower: each sampled node gets the deltas it missed back to back
    (a chain, added to the P it holds in its context state) or a dense P, whichever is
    cheaper, exactly the catch-up floss-train prices; P and every record are floss-train's."""
    from trainer.fedsrd import FedSRD

    config = RunConfig(**{**fed_kwargs, "method": method, "rounds": 6, "srd_mask_rate": mask_rate})
    reference = train(config, progress=False)
    shipped: list[tuple[str, int]] = []  # (kind, deltas) of every Flower download
    build = FedSRD._catch_up_message

    def spy(self: FedSRD, p: torch.Tensor, client: int, nbytes: int) -> None:
        build(self, p, client, nbytes)
        kind = self.messages[client][0]
        shipped.append((kind, len(self.chains[client][1]) if kind == "chain" else 0))

    monkeypatch.setattr(FedSRD, "_catch_up_message", spy)
    strategy = harness.run_as_train(config, reference)
    assert {kind for kind, _ in shipped} == kinds
    assert max(n for _, n in shipped) == longest
    client_of = {node: c for c, node in strategy.nodes.items()}
    for record in strategy.records:  # the bytes recorded are the payloads that travelled
        wire = [w for w in harness.grid.wire if w.group_id == str(record.round)]
        down = {client_of[w.node_id]: w.payload_bytes for w in wire if w.direction == "down"}
        up = {client_of[w.node_id]: w.payload_bytes for w in wire if w.direction == "up"}
        assert [down[c] for c in sorted(down)] == record.client_bytes_down
        assert [up[c] for c in sorted(up)] == record.client_bytes_up
