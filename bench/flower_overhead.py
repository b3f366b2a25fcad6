"""What Flower costs beside floss-train: wall time per round and bytes per message.

Wall time per round (rounds 2.. averaged; round 1 warms up) of the same config in
floss-train, the in-process harness (real ServerApp/ClientApp, Flower's serde on every message)
and, with ``--simulation``, Flower's simulation engine (Ray). Bytes: the serialised Flower message
(``flwr.common.serde.message_to_proto``) beside the codec payload it carries, for the run's own
messages and for a 1M-entry payload (dense fp32 and top-1/16), as ratios and as bytes added
per message. The loopback deployment's traffic (``flwr ls``) is measured by
tests/federation/test_flower_engines.py::test_loopback_deployment.

    OMP_NUM_THREADS=1 python bench/flower_overhead.py --rounds 4 [--simulation]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import tempfile
from pathlib import Path
from statistics import mean
from typing import Any

WORDS = ["rocket orbit planet", "bread cheese apple", "guitar piano song"]


def _task(path: Path) -> Path:
    rng = random.Random(0)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for label, vocab in enumerate(WORDS):
            for _ in range(80):
                w.writerow([" ".join(rng.choices(vocab.split(), k=rng.randint(3, 10))), label])
    return path


def _per_round(records: list[Any]) -> float:
    walls = [r.wall_seconds for r in records[1:]] or [r.wall_seconds for r in records]
    return mean(walls)


def _message_bytes(payload_len: int) -> tuple[int, int]:
    """(serialised bytes of a train message carrying a payload of payload_len, payload_len)."""
    from flwr.app import Message, MessageType
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.common.serde import message_to_proto
    from flwr.supercore.task_identity import TaskIdentity

    from federation.wire import DOWNLOAD, message_content

    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID
    meta = {"round": 1, "client": 0, "k": 1, "kind": "full", "version": 0, "digest": "0" * 16}
    payload = os.urandom(payload_len)
    msg = Message(message_content(DOWNLOAD, payload, meta), 2, MessageType.TRAIN, group_id="1")
    return len(message_to_proto(msg).SerializeToString()), payload_len


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--per-round", type=int, default=2)
    ap.add_argument("--model", default="tiny-random-bert")
    ap.add_argument("--simulation", action="store_true", help="also Flower's Ray engine")
    args = ap.parse_args()

    from federation.client import make_client_app
    from federation.config import to_run_config
    from federation.inprocess import InProcessGrid, partition_configs, run_inprocess
    from federation.server import make_server_app
    from planner.encoding import kept_entries, resolve_encoding
    from trainer.config import RunConfig
    from trainer.run import train

    tmp = Path(tempfile.mkdtemp(prefix="flower-bench-"))
    config = RunConfig(
        model=args.model,
        data="csv",
        data_path=str(_task(tmp / "task.csv")),
        min_examples_per_class=10,
        num_clients=args.clients,
        clients_per_round=args.per_round,
        max_length=32,
        rank=8,
        rounds=args.rounds,
        d_down=0.25,
        d_up=1 / 16,
        eval_every=0,
        eval_test=False,
        device="cpu",
    )
    rows: list[tuple[str, float]] = []
    t = train(config, progress=False)
    rows.append(("floss-train", _per_round(t.records)))
    box: dict[str, Any] = {}
    server = make_server_app(on_finish=lambda s: box.update(s=s))
    grid = InProcessGrid(
        make_client_app(), partition_configs(config.num_clients), run_config=to_run_config(config)
    )
    run_inprocess(server, grid)
    rows.append(("in-process harness", _per_round(box["s"].records)))
    same = bool((box["s"].final_p == t.final_p).all())
    if args.simulation:
        from flwr.simulation import run_simulation

        run_simulation(
            server_app=make_server_app(config, on_finish=lambda s: box.update(sim=s)),
            client_app=make_client_app(config),
            num_supernodes=config.num_clients,
            backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
        )
        rows.append(("simulation engine (Ray)", _per_round(box["sim"].records)))

    base = rows[0][1]
    print(f"n = {t.adapter_size:,}; {config.rounds} rounds x {config.clients_per_round} clients")
    print(f"final P equal (in-process vs floss-train): {same}\n")
    print("| engine | wall s / round | vs floss-train |")
    print("|---|---|---|")
    for name, sec in rows:
        print(f"| {name} | {sec:.3f} | {sec / base:.3f}x |")

    train_msgs = [w for w in grid.wire if w.message_type == "train"]
    print("\n| message | payload bytes | serialised bytes | added | ratio |")
    print("|---|---|---|---|---|")
    for direction in ("down", "up"):
        ws = [w for w in train_msgs if w.direction == direction]
        p, m = ws[0].payload_bytes, ws[0].message_bytes
        print(f"| run's {direction}load | {p:,} | {m:,} | {m - p} | {m / p:.4f} |")
    n = 1_000_000
    for label, k in (("1M dense fp32", n), ("1M top-1/16 fp32", kept_entries(n, 1 / 16))):
        _, size = resolve_encoding(n, k, encoding="auto", precision="fp32")
        m, p = _message_bytes(size)
        print(f"| {label} | {p:,} | {m:,} | {m - p} | {m / p:.6f} |")


if __name__ == "__main__":
    main()
