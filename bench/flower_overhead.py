"""What Flower costs beside floss-train: wall time per round and bytes per message.

Wall time per round (rounds 2.. averaged; round 1 warms up) of the same config in
floss-train, the in-process harness (real ServerApp/ClientApp, Flower's serde on every message)
and, with ``--simulation``, Flower's simulation engine (Ray). Bytes: the serialised Flower message
(``flwr.common.serde.message_to_proto``) beside the codec payload it carries, for the run's own
messages and for a 1M-entry payload (dense fp32 and top-1/16), as ratios and as bytes added
per message. The loopback deployment's traffic (``flwr ls``) is measured by
tests/federation/test_flower_engines.py::test_loopback_deployment.

``--deployment`` (issue 20): the same run as floss-train's whole command (``floss-train --config``,
process start to exit) and as a loopback deployment (``federation.loopback``: a SuperLink and one
SuperNode per client on 127.0.0.1, ``flwr run`` to finished), side by side and alternating,
``--repeats`` times: Flower's default ``--isolation subprocess`` (a ClientApp process per
message) and ``--isolation process`` with floss's long-lived ClientApp process per SuperNode
(``federation.worker``). Each deployment starts fresh (nothing loaded) and runs the run twice:
run 1 (the workers load the model) and run 2 (the same run config, another out-dir). The final P
of every run is compared with floss-train's, bit for bit.

    OMP_NUM_THREADS=1 python bench/flower_overhead.py --rounds 4 [--simulation]
    OMP_NUM_THREADS=1 python bench/flower_overhead.py --deployment --model all-minilm-l6-v2 \
        --clients 4 --per-round 2 --rounds 3 --repeats 2
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import subprocess
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

VARIANTS = ("subprocess", "process", "process+fast")
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


def _rounds_seconds(out: Path) -> float:
    """The run's rounds (sum of the records' wall seconds: sampling to the server step)."""
    import json

    lines = (out / "rounds.jsonl").read_text().splitlines()
    return sum(float(json.loads(line)["wall_seconds"]) for line in lines)


def _floss_train(config: Any, folder: Path) -> tuple[dict[str, Any], Any]:
    """The whole ``floss-train --config`` command: wall seconds, rounds seconds; its final P."""
    import shutil

    from safetensors.torch import load_file

    from federation.loopback import _REPO

    cfg = config.save(folder / "run.yaml")
    env = {**os.environ, "PYTHONPATH": _REPO}
    args = [shutil.which("floss-train") or "floss-train", "--config", str(cfg),
            "--out-dir", str(folder / "out"), "--no-progress"]  # fmt: skip
    load = os.getloadavg()[0]
    start = time.monotonic()
    subprocess.run(args, env=env, check=True, capture_output=True)
    row = {
        "wall": time.monotonic() - start,
        "rounds": _rounds_seconds(folder / "out"),
        "load": load,
    }
    return row, load_file(str(folder / "out" / "checkpoint" / "state.safetensors"))["p"]


def _worker_lines(folder: Path) -> list[str]:
    return [
        line
        for log in sorted((folder / "logs").glob("worker-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "answered in" in line
    ]


def _deployment(
    config: Any, folder: Path, isolation: str, want: Any, fast: bool
) -> list[dict[str, Any]]:
    """Runs of the app on a fresh loopback deployment (two with workers: the second finds the
    model loaded): the command's wall seconds, Flower's ServerApp elapsed, the rounds."""
    from safetensors.torch import load_file

    from federation.appdir import write_app
    from federation.config import AppSettings
    from federation.loopback import Loopback

    app = folder / "app"
    write_app(app, config, AppSettings(out_dir=str(folder / "out-1"), node_wait_seconds=120))
    rows = []
    deploy = folder / "deploy"
    with Loopback(deploy, nodes=config.num_clients, isolation=isolation, fast_waits=fast) as lb:
        ready = lb.wait_ready()
        for i in (1,) if isolation == "subprocess" else (1, 2):
            out = folder / f"out-{i}"
            load = os.getloadavg()[0]
            res = lb.run(app, run_config=f"out-dir='{out}'")
            got = load_file(str(out / "checkpoint" / "state.safetensors"))["p"]
            lines = _worker_lines(lb.folder)
            loads = [re.search(r"model loads (\d+)", x) for x in lines]
            rows.append({
                "run": i, "wall": res.wall_seconds, "elapsed": res.elapsed,
                "rounds": _rounds_seconds(out), "ready": ready, "load": load,
                "status": res.status.get("status"), "equal": bool((got == want).all()),
                "tasks": len(lines), "max_loads": max((int(m[1]) for m in loads if m), default=0),
            })  # fmt: skip
    return rows


def deployment_bench(config: Any, repeats: int, isolations: list[str]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="flower-deploy-"))
    config = type(config)(**{**config.to_dict(), "checkpoint_every": config.rounds})
    table: list[tuple[str, int, dict[str, Any]]] = []
    for rep in range(repeats):
        base = tmp / f"rep{rep}"
        row, want = _floss_train(config, base / "floss-train")
        table.append(("floss-train (whole command)", rep, row))
        print(f"rep {rep}: floss-train {row}", flush=True)
        for variant in isolations:
            isolation, _, fast = variant.partition("+")
            for row in _deployment(config, base / variant, isolation, want, bool(fast)):
                name = f"--isolation {isolation}{' + federation.supernode' if fast else ''}"
                table.append((f"{name}, run {row['run']}", rep, row))
                print(f"rep {rep}: {variant} {row}", flush=True)
    print(f"\n{config.model}: {config.num_clients} SuperNodes, {config.rounds} rounds x "
          f"{config.clients_per_round} clients\n")  # fmt: skip
    print("| engine | rep | load avg | command s | vs floss-train | outside the ServerApp s "
          "| ServerApp before/after the rounds s | rounds s | final P equal | worker answers, "
          "max model loads |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    base = {rep: row["wall"] for name, rep, row in table if name.startswith("floss-train")}
    for name, rep, row in table:
        ratio = row["wall"] / base[rep]
        if "elapsed" in row:
            outside, inside = f"{row['wall'] - row['elapsed']:.1f}", row["elapsed"] - row["rounds"]
            equal = str(row["equal"])
        else:  # floss-train: start-up (imports, data, model) and the end, in its one process
            outside, inside, equal = "", row["wall"] - row["rounds"], "(reference)"
        answers = f"{row['tasks']}, {row['max_loads']}" if row.get("tasks") else ""
        print(f"| {name} | {rep} | {row['load']:.1f} | {row['wall']:.1f} | {ratio:.2f}x "
              f"| {outside} | {inside:.1f} | {row['rounds']:.1f} | {equal} | {answers} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--per-round", type=int, default=2)
    ap.add_argument("--model", default="tiny-random-bert")
    ap.add_argument("--simulation", action="store_true", help="also Flower's Ray engine")
    ap.add_argument("--deployment", action="store_true", help="floss-train vs loopback deployments")
    ap.add_argument("--repeats", type=int, default=1, help="--deployment: alternating repeats")
    ap.add_argument(
        "--isolation",
        action="append",
        choices=VARIANTS,
        help="--deployment: the SuperNodes' isolation modes to run (default all); +fast: "
        "SuperNodes started by federation.supernode (short idle waits)",
    )
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
    if args.deployment:
        deployment_bench(config, args.repeats, args.isolation or list(VARIANTS))
        return
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
