"""How tuning scales with workers on one PostgreSQL study: wall time and finished trials per hour
at 1, 2 and 4 `floss-tune run` workers, and the database round trips each trial costs.

Every worker count runs the same study (the trainer's tiny random BERT on a small synthetic CSV,
the same search and seed) in a fresh database of one PostgreSQL server on 127.0.0.1 (loopback):
a temporary server of its own (tests/tuner/pg_cluster.py: initdb + pg_ctl as the `postgres`
user, stopped by PID at the end), or the server of --storage-base. The workers start together,
each with OMP_NUM_THREADS=1 and --device cpu, and the wall time runs from their start to the
last one's exit (process start-up and model loading included: that is what a user waits for).
Round trips are SQL statements plus commits, as each worker counts them itself (its last log
line: tuner.worker.log_round_trips), summed over the workers and divided by the study's
finished trials.

On a machine with C cores, more than C workers only share the same cores: trials per hour stop
growing at C workers (at 1 when the other cores are busy). Run it where the workers have a core
(or a GPU: --device cuda, one worker per GPU) each to see the scaling the database allows.

Quick (~10 min on 2 shared cores):  python bench/tuner_workers.py
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "tuner"))  # pg_cluster: the tests' temporary server

WORDS = {
    "cats": "whiskers purr meow kitten litter",
    "ships": "anchor harbor sail hull captain",
    "stars": "galaxy nebula orbit comet telescope",
    "bread": "flour yeast oven crust dough",
}
BASE = {
    "model": "tiny-random-bert",
    "data": "csv",
    "min_examples_per_class": 10,
    "num_clients": 8,
    "clients_per_round": 4,
    "batch_size": 8,
    "max_length": 16,
    "max_eval_examples": 32,
    "client_lr": 0.05,
    "server_lr": 0.01,
    "up_slowdown": 16,
}
# --objective fake: the tests' millisecond trainer (tests/tuner/tuner_fakes.py) behind the real
# run_study, so the workers do nothing but coordinate through the database: its ceiling.
FAKE_WORKER = """
import sys
from tuner.objective import Objective
from tuner.settings import TuneSettings
from tuner.study import run_study
from tuner_fakes import FakeConfig, FakeTrain, small_space

storage, n_trials, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
space = small_space()
settings = TuneSettings(storage=storage, study_name="bench", n_trials=n_trials, seed=seed,
                        pruner="none", levels=1)
log = lambda m: print(m, file=sys.stderr, flush=True)
obj = Objective(space=space, base_config=FakeConfig(), settings=settings,
                train_fn=FakeTrain(space), log=log)
run_study(settings, space, obj, space_meta=space.summary(), log=log)
"""
ROUND_TRIPS = re.compile(r"database round trips: ([\d,]+) from this worker")


def write_inputs(folder: Path) -> Path:
    """The synthetic texts and the base config (yaml) the workers share."""
    import yaml

    rng = random.Random(0)
    data = folder / "texts.csv"
    with data.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for label, words in WORDS.items():
            for _ in range(40):
                w.writerow([" ".join(rng.choices(words.split(), k=6)), label])
    config = folder / "base.yaml"
    config.write_text(yaml.safe_dump({**BASE, "data_path": str(data)}), encoding="utf-8")
    return config


def worker_command(args: argparse.Namespace, config: Path, url: str, seed: int) -> list[str]:
    if args.objective == "fake":
        return [sys.executable, "-c", FAKE_WORKER, url, str(args.trials), str(seed)]
    return [
        sys.executable, "-m", "tuner.cli", "run",
        "--config", str(config),
        "--device", args.device,
        "--budget", "50-dense-rounds",
        "--budget-scale", str(args.budget_scale),
        "--max-rounds", str(args.max_rounds),
        "--ranks", "2,4,8,16",
        "--d-down", "1,1/4,1/16",
        "--d-up", "1,1/4,1/16,1/64",
        "--n-trials", str(args.trials),
        "--seed", "0",
        "--storage", url,
        "--study-name", "bench",
        *args.tune_args,
    ]  # fmt: skip


def run_workers(args: argparse.Namespace, config: Path, url: str, n: int, logs: Path) -> dict[str, Any]:
    """n workers on one fresh study; wall seconds, finished trials, round trips."""
    import optuna

    from tuner.storage import open_storage

    paths = [str(ROOT), str(ROOT / "tests" / "tuner")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(paths)}
    procs = []
    started = time.perf_counter()
    for i in range(n):
        log = (logs / f"w{n}-{i}.log").open("w")
        procs.append((subprocess.Popen(worker_command(args, config, url, i), stdout=log,
                                       stderr=subprocess.STDOUT, env=env, cwd=ROOT), log))  # fmt: skip
    try:
        for proc, _ in procs:
            proc.wait(timeout=args.limit)
    finally:
        for proc, log in procs:
            if proc.poll() is None:  # past --limit: end it by its PID
                proc.kill()
                proc.wait()
            log.close()
    wall = time.perf_counter() - started
    codes = [proc.returncode for proc, _ in procs]
    trips = 0
    for i in range(n):
        found = ROUND_TRIPS.findall((logs / f"w{n}-{i}.log").read_text(errors="replace"))
        trips += int(found[-1].replace(",", "")) if found else 0
    study = optuna.load_study(study_name="bench", storage=open_storage(url))
    done = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.name in ("COMPLETE", "PRUNED") and "duplicate_of" not in t.user_attrs
    ]
    train_seconds = sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in done
        if t.datetime_complete and t.datetime_start
    )
    return {
        "workers": n,
        "exit_codes": codes,
        "wall_seconds": round(wall, 1),
        "finished_trials": len(done),
        "trials_per_hour": round(len(done) / wall * 3600, 1),
        "mean_trial_seconds": round(train_seconds / max(1, len(done)), 2),
        "round_trips": trips,
        "round_trips_per_trial": round(trips / max(1, len(done)), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workers", default="1,2,4", help="worker counts to measure")
    p.add_argument("--trials", type=int, default=12, help="the study's trial target")
    p.add_argument("--budget-scale", type=float, default=0.5)
    p.add_argument("--max-rounds", type=int, default=60)
    p.add_argument("--device", default="cpu", help="cpu here; cuda on a GPU machine")
    p.add_argument(
        "--objective",
        choices=("tiny", "fake"),
        default="tiny",
        help="tiny: floss-tune run on the tiny random BERT; fake: the tests' millisecond "
        "trainer, so only the database coordination is measured (use --trials 200)",
    )
    p.add_argument("--limit", type=float, default=1200, help="seconds before a run is ended")
    p.add_argument(
        "--storage-base",
        default=None,
        help="postgresql://user@host:port (no database): use this server, one database per "
        "worker count (bench_w1, ...; must not exist); default: a temporary server",
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench-out" / "tuner_workers.json")
    p.add_argument("tune_args", nargs="*", help="more floss-tune run options, after --")
    args = p.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"floss-bench-workers-{os.getpid()}"
    work.mkdir(parents=True)
    config = write_inputs(work)
    cluster = None
    if args.storage_base is None:
        from pg_cluster import start_cluster

        cluster = start_cluster()
        print(f"temporary PostgreSQL on 127.0.0.1:{cluster.port} (pid {cluster.pid()})")
    rows = []
    try:
        for n in counts:
            name = f"bench_w{n}"
            if cluster is not None:
                url = cluster.create_database(name)
            else:
                import psycopg

                with psycopg.connect(
                    args.storage_base.replace("postgresql+psycopg", "postgresql") + "/postgres",
                    autocommit=True,
                ) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                url = f"{args.storage_base}/{name}"
            row = run_workers(args, config, url, n, work)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        if cluster is not None:
            cluster.remove()
    meta = {
        "cpu_cores": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "trials": args.trials,
        "budget_scale": args.budget_scale,
        "max_rounds": args.max_rounds,
        "device": args.device,
        "objective": args.objective,
        "tune_args": args.tune_args,
        "logs": str(work),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "runs": rows}, indent=2) + "\n")
    print(f"\n{'workers':>7} {'wall s':>8} {'trials':>6} {'trials/h':>9} {'s/trial':>8} {'trips/trial':>11}")
    for r in rows:
        print(
            f"{r['workers']:>7} {r['wall_seconds']:>8} {r['finished_trials']:>6} "
            f"{r['trials_per_hour']:>9} {r['mean_trial_seconds']:>8} {r['round_trips_per_trial']:>11}"
        )
    print(f"written to {args.out}; worker logs in {work}")


if __name__ == "__main__":
    main()
