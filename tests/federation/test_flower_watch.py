"""Issue 20: a Flower run a person can watch. The ServerApp's lines (start, rounds, resume, the
end-of-run summary) go through Flower's own log handlers, which `flwr run --stream` and
`flwr log` carry; a dropped client's line names round, client, partition-id, node and cause;
summary.json counts the dropped clients. In process (federation.inprocess), the real apps."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flwr.app import Context, Message

from trainer.config import RunConfig

ClientFn = Callable[[Message, Context], Message]


def _cfg(fed_kwargs: dict[str, Any], **changes: Any) -> RunConfig:
    return RunConfig(**{**fed_kwargs, "eval_every": 0, "eval_test": False, **changes})


def _fail_in_round(node_of: Callable[[], int], round_: int) -> Callable[[ClientFn], ClientFn]:
    def wrap(app: ClientFn) -> ClientFn:
        def client(message: Message, context: Context) -> Message:
            if context.node_id == node_of() and message.metadata.group_id == str(round_):
                raise RuntimeError(f"node {context.node_id} lost power mid-round")
            return app(message, context)

        return client

    return wrap


def test_the_run_is_told_in_flowers_log_with_every_drop_named(
    fed_kwargs: dict[str, Any], harness: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from flwr.common.logger import FLOWER_LOGGER

    config = _cfg(fed_kwargs)
    harness.run(config)
    node = next(w.node_id for w in harness.grid.wire if w.group_id == "2" and w.direction == "down")
    seen: list[str] = []

    class Keep(logging.Handler):  # stands where Flower's log uploader and console stand
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    keep = Keep(level=logging.INFO)
    FLOWER_LOGGER.addHandler(keep)
    out = tmp_path / "out"
    try:
        strategy = harness.run(config, client=_fail_in_round(lambda: node, 2), out_dir=str(out))
    finally:
        FLOWER_LOGGER.removeHandler(keep)
    [drop] = strategy.dropped
    client = drop.client
    text = "\n".join(seen)
    assert seen[0].startswith(f"floss on Flower: floss, rank {config.rank}, {config.rounds} rounds")
    assert f"results in {out}" not in seen[0] and f"go to {out}" in seen[0]
    assert all(f"round {r}/{config.rounds}: loss" in text for r in (1, 2, 3)), text
    assert re.search(
        rf"round 2: dropped client {client} \(partition-id {client}, node {node}\): round 2, "
        rf"client {client} \(node {node}\), upload: the ClientApp failed: .*lost power",
        text,
    ), text
    assert seen[-1].startswith(f"finished 3/3 rounds: {strategy.records[-1].cum_bytes:,} payload")
    assert seen[-1].endswith(f"1 client(s) dropped; results in {out}")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dropped_clients"] == 1
    [entry] = summary["dropped"]
    assert (entry["round"], entry["client"], entry["node"]) == (2, client, node)
    assert entry["bytes_down"] > 0 and "lost power" in entry["reason"]
    assert list(summary) == sorted(summary)


def test_a_run_without_out_dir_says_it_writes_nothing(
    fed_kwargs: dict[str, Any], harness: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="federation.server"):
        harness.run(_cfg(fed_kwargs))
    assert "out-dir is not set: this run writes no records, checkpoint or adapter" in caplog.text
    assert "1 client(s) dropped" not in caplog.text and "; nothing written" in caplog.text


def test_a_flower_run_without_out_dir_writes_to_a_folder_per_run(
    fed_kwargs: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On a real engine (simulation, deployment) a run config with no out-dir writes to
    $FLOSS_FLOWER_RESULTS/run-<run id> and says so first; the in-process harness (tests,
    benches) writes nothing. The grid here is the harness's, marked as a real engine."""
    from federation.client import make_client_app
    from federation.config import AppSettings, to_run_config
    from federation.inprocess import InProcessGrid, partition_configs, run_inprocess
    from federation.server import make_server_app

    class EngineGrid(InProcessGrid):
        in_process = False

    config = _cfg(fed_kwargs)
    grid = EngineGrid(
        make_client_app(),
        partition_configs(config.num_clients),
        run_config=to_run_config(config, AppSettings()),
        run_id=4242,
    )
    with caplog.at_level(logging.INFO, logger="federation.server"):
        run_inprocess(make_server_app(), grid)
    out = (tmp_path / "flower-results" / "run-4242").resolve()
    assert f"out-dir is not set: results go to {out} (a folder per run" in caplog.text
    assert f"results in {out}" in caplog.text and "nothing written" not in caplog.text
    assert {"config.yaml", "rounds.jsonl", "summary.json"} <= {p.name for p in out.iterdir()}
    rounds = (out / "rounds.jsonl").read_text().splitlines()
    assert len(rounds) == config.rounds


def test_lines_reach_flowers_handlers_only_while_the_app_runs() -> None:
    from flwr.common.logger import FLOWER_LOGGER

    from federation.server import flower_log_stream, logger

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    keep = Keep(level=logging.INFO)
    FLOWER_LOGGER.addHandler(keep)
    try:
        with flower_log_stream():
            logger.info("round 1/2: shown")
        logger.info("after the run: not Flower's")
    finally:
        FLOWER_LOGGER.removeHandler(keep)
    assert seen == ["round 1/2: shown"]


def test_a_resume_is_told_in_flowers_log(
    fed_kwargs: dict[str, Any], harness: Any, tmp_path: Path
) -> None:
    from flwr.common.logger import FLOWER_LOGGER

    from federation.wire import FederationError

    config = _cfg(fed_kwargs, checkpoint_every=1, rounds=2)
    out = tmp_path / "out"

    def everyone_fails_in_round_2(app: ClientFn) -> ClientFn:
        def client(message: Message, context: Context) -> Message:
            if message.metadata.group_id == "2":
                raise RuntimeError("the power went out")
            return app(message, context)

        return client

    with pytest.raises(FederationError, match="no client update arrived"):
        harness.run(config, client=everyone_fails_in_round_2, out_dir=str(out))
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    keep = Keep(level=logging.INFO)
    FLOWER_LOGGER.addHandler(keep)
    try:
        harness.run(config, out_dir=str(out))  # the ServerApp started again
    finally:
        FLOWER_LOGGER.removeHandler(keep)
    assert f"resuming from the checkpoint of round 1 in {out}" in seen, seen
    assert seen[-1].startswith("finished 2/2 rounds: ")
