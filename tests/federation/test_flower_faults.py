"""Bad nodes, bad payloads and failing clients: one clear error naming them; a failed reply is
dropped from its round (logged) and the round aggregates the rest; a restarted ServerApp
continues from the last checkpoint, bit for bit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from flwr.app import Array, ArrayRecord, Context, Message

from federation.wire import DOWNLOAD, META, PAYLOAD, STYPE, UPLOAD, FederationError, crc32
from trainer.config import RunConfig
from trainer.errors import TrainerError
from trainer.run import train

ClientFn = Callable[[Message, Context], Message]


def _cfg(fed_kwargs: dict[str, Any], **changes: Any) -> RunConfig:
    return RunConfig(**{**fed_kwargs, "eval_every": 0, "eval_test": False, **changes})


def _set_payload(message: Message, record: str, payload: bytes, *, fix_crc: bool) -> None:
    array = Array(dtype="uint8", shape=(len(payload),), stype=STYPE, data=payload)
    message.content[record] = ArrayRecord({PAYLOAD: array})
    if fix_crc:
        message.content.config_records[META]["crc32"] = crc32(payload)


def _tamper_upload(node: int, round_: int, change: Callable[[bytes], bytes], *, fix_crc: bool):
    def wrap(app: ClientFn) -> ClientFn:
        def client(message: Message, context: Context) -> Message:
            reply = app(message, context)
            if context.node_id == node and message.metadata.group_id == str(round_):
                payload = reply.content.array_records[UPLOAD][PAYLOAD].data
                _set_payload(reply, UPLOAD, change(payload), fix_crc=fix_crc)
            return reply

        return client

    return wrap


def _fail(when: Callable[[Message, Context], bool]):
    def wrap(app: ClientFn) -> ClientFn:
        def client(message: Message, context: Context) -> Message:
            if when(message, context):
                raise RuntimeError(f"node {context.node_id} lost power mid-round")
            return app(message, context)

        return client

    return wrap


def _sampled_nodes(harness: Any, round_: int) -> list[int]:
    return [
        w.node_id for w in harness.grid.wire if w.group_id == str(round_) and w.direction == "down"
    ]


def test_node_without_partition_id(fed_kwargs: dict[str, Any], harness: Any) -> None:
    nodes = [{"partition-id": i, "num-partitions": 4} for i in range(3)] + [{}]
    with pytest.raises(FederationError, match=r"node 4.*no partition-id.*--node-config"):
        harness.run(_cfg(fed_kwargs), node_configs=nodes)


def test_partition_id_out_of_range(fed_kwargs: dict[str, Any], harness: Any) -> None:
    nodes = [{"partition-id": i, "num-partitions": 4} for i in (0, 1, 2, 7)]
    with pytest.raises(FederationError, match=r"node 4.*partition-id 7 is out of range.*4 clients"):
        harness.run(_cfg(fed_kwargs), node_configs=nodes)


def test_duplicate_and_missing_partitions(fed_kwargs: dict[str, Any], harness: Any) -> None:
    nodes = [{"partition-id": i} for i in (0, 1, 1, 2)]
    with pytest.raises(FederationError, match=r"nodes 2 and 3 both have partition-id 1"):
        harness.run(_cfg(fed_kwargs), node_configs=nodes)


def test_unknown_run_config_key(fed_kwargs: dict[str, Any]) -> None:
    from federation.config import from_run_config

    with pytest.raises(TrainerError, match="unknown Flower run-config keys: lora-rnak"):
        from_run_config({"lora-rnak": 4})


@pytest.mark.parametrize(
    ("change", "fix_crc", "match"),
    [
        (
            lambda p: p[:-3],
            True,
            r"round 2, client \d \(node \d\), upload: payload of .*\(wrong length",
        ),
        (
            lambda p: bytes([p[0] ^ 0xFF]) + p[1:],
            False,
            r"round 2, client \d .*corrupted payload \(CRC-32",
        ),
    ],
    ids=["wrong-length", "corrupted"],
)
def test_bad_upload_is_dropped_and_the_round_goes_on(
    fed_kwargs: dict[str, Any],
    harness: Any,
    caplog: pytest.LogCaptureFixture,
    change: Callable[[bytes], bytes],
    fix_crc: bool,
    match: str,
) -> None:
    config = _cfg(fed_kwargs)
    clean = harness.run(config)
    node = _sampled_nodes(harness, 2)[0]
    with caplog.at_level(logging.WARNING, logger="federation.server"):
        strategy = harness.run(config, client=_tamper_upload(node, 2, change, fix_crc=fix_crc))
    assert len(strategy.dropped) == 1
    drop = strategy.dropped[0]
    assert drop.round == 2 and strategy.nodes[drop.client] == node
    assert __import__("re").search(match, drop.reason), drop.reason
    assert "dropped client" in caplog.text
    # round 1 as without the fault; round 2 aggregated the other client; all rounds ran
    assert clean.records[0].to_dict() | {"wall_seconds": 0} == strategy.records[0].to_dict() | {
        "wall_seconds": 0
    }
    assert [r.round for r in strategy.records] == [1, 2, 3]
    assert strategy.records[1].bytes_total < clean.records[1].bytes_total
    assert torch.isfinite(strategy.final_p).all()
    assert not torch.equal(strategy.final_p, clean.final_p)


def test_corrupted_download_fails_that_client_only(
    fed_kwargs: dict[str, Any], harness: Any
) -> None:
    config = _cfg(fed_kwargs)
    harness.run(config)
    node = _sampled_nodes(harness, 1)[1]

    def wrap(app: ClientFn) -> ClientFn:
        def client(message: Message, context: Context) -> Message:
            if context.node_id == node and message.metadata.group_id == "1":
                payload = message.content.array_records[DOWNLOAD][PAYLOAD].data
                _set_payload(message, DOWNLOAD, payload[:-1], fix_crc=True)
            return app(message, context)

        return client

    strategy = harness.run(config, client=wrap)
    [drop] = strategy.dropped
    assert drop.round == 1 and strategy.nodes[drop.client] == node
    assert "ClientApp failed" in drop.reason and "download: payload of" in drop.reason
    assert "wrong length" in drop.reason


def test_client_failing_mid_round_is_dropped(fed_kwargs: dict[str, Any], harness: Any) -> None:
    config = _cfg(
        fed_kwargs, method="sparseadapter"
    )  # a fixed mask: the dropped node must get it again
    harness.run(config)
    node = _sampled_nodes(harness, 2)[0]
    strategy = harness.run(
        config,
        client=_fail(lambda m, c: c.node_id == node and m.metadata.group_id == "2"),
    )
    [drop] = strategy.dropped
    assert (drop.round, strategy.nodes[drop.client]) == (2, node)
    assert f"node {node} lost power mid-round" in drop.reason
    assert [r.round for r in strategy.records] == [1, 2, 3]


def test_restarted_server_continues_from_its_checkpoint(
    fed_kwargs: dict[str, Any], harness: Any, tmp_path: Path
) -> None:
    config = _cfg(fed_kwargs, method="sparseadapter", checkpoint_every=1, rounds=3)
    reference = train(
        config.__class__(**{**config.to_dict(), "checkpoint_every": 0}), progress=False
    )
    out = tmp_path / "server"
    everyone_fails_in_round_3 = _fail(lambda m, c: m.metadata.group_id == "3")
    with pytest.raises(
        FederationError, match=r"round 3: no client update arrived.*stays at round 2"
    ):
        harness.run(config, client=everyone_fails_in_round_3, out_dir=str(out))
    assert (out / "checkpoint" / "manifest.json").exists()
    strategy = harness.run(config, out_dir=str(out))  # the ServerApp started again
    assert [r.round for r in strategy.records] == [1, 2, 3]
    assert torch.equal(strategy.final_p, reference.final_p)  # bit for bit
    assert (out / "rounds.jsonl").read_text().count("\n") == 3


def test_a_finished_server_run_is_extended_from_its_last_checkpoint(
    fed_kwargs: dict[str, Any], harness: Any, tmp_path: Path
) -> None:
    """Without checkpoint_every, a finished run still checkpoints its last round (as
    floss-train does), so the same out-dir with more rounds trains only the new ones."""
    from trainer.paths import checkpoint_round

    config = _cfg(fed_kwargs, method="floss", d_down=0.5, d_up=0.25, checkpoint_every=0, rounds=2)
    out = tmp_path / "server"
    harness.run(config, out_dir=str(out))
    assert checkpoint_round(out) == 2
    longer = config.__class__(**{**config.to_dict(), "rounds": 3})
    strategy = harness.run(longer, out_dir=str(out))
    assert [r.round for r in strategy.records] == [1, 2, 3]
    assert checkpoint_round(out) == 3
    assert torch.equal(strategy.final_p, train(longer, progress=False).final_p)  # bit for bit


def test_restarted_fedsrd_server_catches_its_new_nodes_up(
    fed_kwargs: dict[str, Any], harness: Any, tmp_path: Path
) -> None:
    """A restarted ServerApp is a new Flower run: its nodes hold no FedSRD P, so each catches
    up from the seeded init on the deltas the checkpoint kept (or a dense P); P goes on bit for
    bit."""
    config = _cfg(fed_kwargs, method="fedsrd", checkpoint_every=1, rounds=5)
    reference = train(
        config.__class__(**{**config.to_dict(), "checkpoint_every": 0}), progress=False
    )
    out = tmp_path / "server"
    everyone_fails_in_round_4 = _fail(lambda m, c: m.metadata.group_id == "4")
    with pytest.raises(FederationError, match=r"round 4: no client update arrived"):
        harness.run(config, client=everyone_fails_in_round_4, out_dir=str(out))
    strategy = harness.run(config, out_dir=str(out))  # the ServerApp started again
    assert [r.round for r in strategy.records] == [1, 2, 3, 4, 5]
    assert torch.equal(strategy.final_p, reference.final_p)  # bit for bit
    # round 4's nodes held nothing: each was sent the 3 deltas of rounds 1..3, or P if cheaper
    method = strategy.method
    catch_up = min(sum(method.sizes[:3]), method.dense_bytes)
    fresh = [w for w in harness.grid.wire if w.group_id == "4" and w.direction == "down"]
    assert len(fresh) == config.clients_per_round
    assert [w.payload_bytes for w in fresh] == [catch_up] * len(fresh)
    assert strategy.records[3].client_bytes_down == [catch_up] * len(fresh)
