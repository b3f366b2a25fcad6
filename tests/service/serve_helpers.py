"""Helpers of the service tests: a real `floss serve` process (stdlib HTTP, bounded waits), and
a finished study made without training (`make_fake_study`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(port: int, path: str) -> Any:
    status, body = call(port, "GET", path)
    assert status == 200, body
    return json.loads(body)


def wait_for(check: Any, *, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = check()
        except (OSError, urllib.error.URLError):
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {seconds:g} s")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ")[-1][0] != "Z"  # a zombie has ended
    except OSError:
        return False


# A study's base run on the tiny model, as the service's process tests submit it (data_path
# relative to the service's data root, where the tests write texts.csv).
TINY_STUDY_BASE: dict[str, Any] = {
    "model": "tiny-random-bert",
    "data": "csv",
    "data_path": "texts.csv",
    "min_examples_per_class": 10,
    "num_clients": 8,
    "clients_per_round": 4,
    "batch_size": 8,
    "max_length": 16,
    "max_eval_examples": 32,
    "client_lr": 0.05,
    "server_lr": 0.01,
    "device": "cpu",
    "up_slowdown": 16,
}


def start_service(tmp: Path, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`floss serve` on 127.0.0.1:port, storage and folders in ``tmp``, output to ``log``;
    ``extra`` flags replace the defaults of the same name (an option is given once)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("FLOSS_SERVE_TOKEN", None)
    defaults = {
        "--storage": f"sqlite:///{tmp / 'studies.db'}",
        "--data-root": str(tmp / "data"),
        "--work-dir": str(tmp / "work"),
        "--max-workers": "1",
        "--log-level": "warning",
    }
    for flag in extra:
        defaults.pop(flag, None)
    args = [x for pair in defaults.items() for x in pair]
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "--port", str(port), *args, *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            env=env,
        )


def make_fake_study(storage: str, name: str = "fake") -> None:
    """A finished study in ``storage`` with the trial attributes floss-tune writes (candidate,
    records, full run config), made without training: three complete trials and a pruned one."""
    import optuna
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from planner.profiles import load_model
    from trainer.config import RunConfig
    from tuner.storage import open_storage

    model = load_model("all-minilm-l6-v2")
    study = optuna.create_study(
        storage=open_storage(storage), study_name=name, direction="maximize"
    )
    study.set_user_attr("floss_space", {"metric": "val_accuracy"})
    dists = {
        "rank": IntDistribution(1, 64),
        "d_down": CategoricalDistribution([1.0, 0.25]),
        "d_up": CategoricalDistribution([1.0, 0.0625]),
    }
    for i, (rank, d_down, d_up, acc, state) in enumerate(
        [
            (16, 1.0, 1.0, 0.60, TrialState.COMPLETE),
            (8, 0.25, 0.0625, 0.70, TrialState.COMPLETE),
            (4, 0.25, 0.0625, 0.65, TrialState.COMPLETE),
            (2, 1.0, 0.0625, 0.30, TrialState.PRUNED),
        ]
    ):
        n = model.adapter_params(rank, num_labels=model.num_labels)
        per_round = 10_000 * rank
        cand = {
            "method": "floss",
            "topk": "global",
            "rank": rank,
            "d_down": d_down,
            "d_up": d_up,
            "n": n,
            "rounds": 4,
            "full_rounds": 40,
            "bytes_per_round": per_round,
            "full_bytes": 40 * per_round,
            "why": "",
        }
        records = [
            {
                "round": r,
                "cum_bytes": r * per_round,
                "cum_sim_seconds": r * 0.5,
                "val_accuracy": acc,
                "client_steps": 10,
            }
            for r in range(1, 5)
        ]
        full = RunConfig(rank=rank, d_down=d_down, d_up=d_up, rounds=40).to_dict()
        study.add_trial(
            create_trial(
                state=state,
                value=acc if state == TrialState.COMPLETE else None,
                params={"rank": rank, "d_down": d_down, "d_up": d_up},
                distributions=dists,
                intermediate_values={1: acc},
                user_attrs={
                    "candidate": cand,
                    "records": records,
                    "full_config": full,
                    "client_steps": 40,
                    "key": f"k{i}",
                },
            )
        )
