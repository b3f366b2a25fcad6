"""Does floss-tune pick well, and cheaply? Grid vs floss-tune vs random search vs the heuristic.

One workload (real MiniLM + fortunes, bench.common.RECIPE), one budget (50 dense rounds at
S = 16, times --scale so it fits this CPU), one grid of FLoSS configurations (--ranks x --d-down
x --d-up). No round cap: every configuration trains until its whole budget is spent.

(a) ground truth: every grid configuration trained on the whole budget (floss-train), with
    validation accuracy at 1/8, 1/4, 1/2 and all of the budget and test accuracy at the end;
(b) floss-tune (TPE + successive halving, heuristic seeds first), stopped at a compute cap of
    --cap times the grid's client optimizer steps, one study per --study-seeds seed;
(c) random search over the same grid, no pruning, the same cap, the same study seeds;
(d) the thesis heuristic with no search: d_up = d_down / S at each d_down of --heuristic-down
    (compute 0).
Each pick is a recommendation made on VALIDATION accuracy; its regret is the grid's best TEST
accuracy minus the pick's TEST accuracy from (a), in points. Compute = client steps spent / the
grid's. Also: Spearman rank correlation, over the grid, between validation accuracy at a short
budget fraction and test accuracy at the full budget (can short runs rank configs at all?).

Everything is stored under --out (runs.jsonl, one SQLite study per search): a rerun resumes.

Recipe: bench/common.py's, except that clients take their one local step with SGD (lr 0.5,
--client-optimizer/--client-lr) rather than one Adam step: one Adam step from a fresh optimizer
is a sign vector, among whose entries top-k picks ties (bench/quantization.py). The first
results in docs/results.md ran with `--client-optimizer adam --client-lr 1e-3`.

Quick (< 15 min here):  python bench/tuner_quality.py --quick
Full (hours):           python bench/tuner_quality.py
"""

from __future__ import annotations

import argparse
import itertools
import math
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    PARTITION_CHANGES,
    RECIPE,
    TASKS,
    ResultStore,
    mean_sd,
    spearman,
)

SHORT = (0.125, 0.25, 0.5)
# Evaluation sets large enough to resolve a point: >= 1,000 validation and 1,000 test texts,
# evaluated whole (fortunes' 4 categories hold 4,638 texts: 22 % each is ~1,020; the recipe's
# clients use 30 x 16 training texts, so the larger held-out share costs no training data).
EVAL: dict[str, dict[str, Any]] = {
    "fortunes": {"val_fraction": 0.22, "test_fraction": 0.22, "max_eval_examples": None},
    "debian-packages": {},  # bench.common.TASKS: 15 % + 15 %, ~1,280 each, whole
}
DEFAULT_PARTITION = {"fortunes": "iid", "debian-packages": "natural"}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dense-rounds", type=float, default=50.0)
    p.add_argument("--scale", type=float, default=0.2, help="share of the budget that fits here")
    p.add_argument("--up-slowdown", type=float, default=16.0)
    p.add_argument("--ranks", default="4,16")
    p.add_argument("--d-down", default="1,1/4,1/16")
    p.add_argument("--d-up", default="1,1/16,1/64,1/256")
    p.add_argument("--heuristic-down", default="1,1/4,1/16")
    p.add_argument("--cap", type=float, default=0.25, help="search compute cap, share of grid's")
    p.add_argument("--study-seeds", default="0,1,2")
    p.add_argument("--levels", type=int, default=3, help="floss-tune --levels")
    p.add_argument("--seed", type=int, default=0, help="training seed of the studies' runs")
    p.add_argument("--train-seeds", default="0,1",
                   help="training seeds of the ground truth: a cell's accuracy is their mean")
    p.add_argument("--task", choices=sorted(TASKS), default="fortunes")
    p.add_argument("--partition", default=None,
                   help="iid | dirichlet | natural (default: iid on fortunes, natural on debian)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", default=RECIPE["model"], help="tiny-random-bert: a smoke test")
    p.add_argument("--client-optimizer", default="sgd",
                   help="sgd by default; the first results ran with adam (see above)")
    p.add_argument("--client-lr", type=float, default=0.5)
    p.add_argument("--out", type=Path, default=Path("bench-out/tuner_quality"))
    p.add_argument("--grid-only", action="store_true",
                   help="train (a) only, e.g. a part of the grid per process, then merge runs.jsonl")  # fmt: skip
    p.add_argument(
        "--quick",
        action="store_true",
        help="rank 16 only, 3x4 grid, 1.5 dense rounds, one study seed",
    )
    args = p.parse_args()
    if args.quick:
        args.scale, args.ranks, args.study_seeds = 0.03, "16", "0"
        args.d_down, args.d_up, args.train_seeds = "1,1/4,1/16", "1,1/16,1/64,1/256", "0"
    args.partition = args.partition or DEFAULT_PARTITION[args.task]
    return args


def recipe(args: argparse.Namespace) -> dict[str, Any]:
    """bench.common.RECIPE with this bench's task, evaluation sets, model and client optimizer."""
    return {**RECIPE, **TASKS[args.task], **EVAL[args.task],
            **PARTITION_CHANGES.get((args.task, args.partition), {}),
            "partition": args.partition, "model": args.model,
            "client_optimizer": args.client_optimizer, "client_lr": args.client_lr}  # fmt: skip


def densities(text: str) -> list[float]:
    return [float(Fraction(x)) for x in text.split(",")]


def budget_text(args: argparse.Namespace) -> str:
    return f"{args.dense_rounds * args.scale:g}-dense-rounds"


def key_of(method: str, rank: int, d_down: float, d_up: float) -> str:
    if method != "floss":
        d_down = d_up = 1.0
    return (
        f"{method}|r{rank}|{Fraction(d_down).limit_denominator(1 << 20)}|"
        f"{Fraction(d_up).limit_denominator(1 << 20)}"
    )


def ground_truth(args: argparse.Namespace, store: ResultStore) -> dict[str, dict[str, Any]]:
    """Every grid configuration on the whole budget, once per training seed; returns key -> the
    mean row over seeds (accuracies averaged, client steps summed per seed and averaged)."""
    from bench.budget_frontier import train_one
    from trainer.config import RunConfig
    from trainer.run import prepare

    grid = list(itertools.product(
        [int(r) for r in args.ranks.split(",")], densities(args.d_down), densities(args.d_up)
    ))  # fmt: skip
    seeds = [int(x) for x in args.train_seeds.split(",")]
    per_seed: dict[str, list[dict[str, Any]]] = {}
    for seed in seeds:
        wl = None
        for rank, dd, du in grid:
            key = key_of("floss", rank, dd, du)
            name = f"{key}|seed{seed}"
            if not store.done(name):
                cfg = RunConfig(**recipe(args), seed=seed, up_slowdown=args.up_slowdown,
                                budget=budget_text(args), method="floss", rank=rank, d_down=dd,
                                d_up=du)  # fmt: skip
                if wl is None:
                    wl = prepare(cfg)
                row = train_one(cfg, wl)
                row.update(name=name, key=key, seed=seed, rank=rank, d_down=dd, d_up=du)
                store.add(row)
                print(f"grid {name:34} rounds {row['rounds']:4d}  val {row['val_accuracy']:.4f}  "
                      f"test {row['test_accuracy']:.4f}  steps {row['client_steps']}", flush=True)  # fmt: skip
            per_seed.setdefault(key, []).append(store.rows[name])
    return {key: _mean_row(rows) for key, rows in per_seed.items()}


def _mean_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One grid cell over its training seeds: mean accuracies and steps, the seeds' test spread,
    and seed 0's curve (the studies train on seed --seed)."""
    out = dict(rows[0])
    for k in ("val_accuracy", "test_accuracy", "client_steps", "rounds"):
        out[k] = sum(r[k] for r in rows) / len(rows)
    out["test_by_seed"] = [r["test_accuracy"] for r in rows]
    return out


def search(args: argparse.Namespace, name: str, *, cap: int, extra: list[str]) -> dict[str, Any]:
    """One floss-tune study through the real CLI; its pick and the compute it spent."""
    import optuna
    import yaml

    from trainer.config import RunConfig

    folder = args.out / name
    folder.mkdir(parents=True, exist_ok=True)
    RunConfig(**recipe(args), seed=args.seed).save(folder / "base.yaml")
    storage = f"sqlite:///{folder / 'study.db'}"
    cmd = [
        sys.executable, "-m", "tuner.cli", "run", "--config", str(folder / "base.yaml"),
        "--budget", budget_text(args), "--up-slowdown", f"{args.up_slowdown:g}",
        "--ranks", args.ranks, "--d-down", args.d_down, "--d-up", args.d_up,
        "--n-trials", "1000", "--max-client-steps", str(cap), "--storage", storage,
        "--study-name", name, "--export", str(folder / "export"), *extra,
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    run = yaml.safe_load((folder / "export" / "run.yaml").read_text(encoding="utf-8"))
    study = optuna.load_study(study_name=name, storage=storage)
    steps = sum(int(t.user_attrs.get("client_steps", 0)) for t in study.trials)
    return {
        "pick": key_of(run["method"], run["rank"], run["d_down"], run["d_up"]),
        "steps": steps,
        "trials": len(study.trials),
    }


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    store = ResultStore(args.out / "runs.jsonl")
    print(f"bench: {vars(args)}; budget {budget_text(args)}", flush=True)
    t0 = time.perf_counter()
    truth = ground_truth(args, store)
    if args.grid_only:
        print(f"grid done: {len(truth)} configs in {store.path}", flush=True)
        return
    grid_steps = sum(r["client_steps"] for r in truth.values())
    best_test = max(r["test_accuracy"] for r in truth.values())
    cap = max(1, int(args.cap * grid_steps))

    def regret(key: str) -> float:
        return 100 * (best_test - truth[key]["test_accuracy"]) if key in truth else math.nan

    results: dict[str, list[dict[str, Any]]] = {"floss-tune": [], "random search": []}
    for seed in [int(x) for x in args.study_seeds.split(",")]:
        results["floss-tune"].append(search(
            args, f"floss-tune-{seed}", cap=cap,
            extra=["--sampler", "tpe", "--pruner", "sha", "--levels", str(args.levels),
                   "--seed", str(seed)],
        ))  # fmt: skip
        results["random search"].append(search(
            args, f"random-{seed}", cap=cap,
            extra=["--sampler", "random", "--pruner", "none", "--no-seeds", "--seed", str(seed)],
        ))  # fmt: skip
    best_key = max(truth, key=lambda k: truth[k]["test_accuracy"])
    val_key = max(truth, key=lambda k: truth[k]["val_accuracy"])
    print(f"\nbudget {budget_text(args)} at S={args.up_slowdown:g}; {len(truth)} grid configs; "
          f"grid compute {grid_steps} client steps; cap {cap} ({args.cap:g} of the grid)")  # fmt: skip
    print(f"{'method':28} {'picks (per study seed)':54} {'regret pts (test)':>18} {'x grid':>8}")
    print(f"{'grid, best by test':28} {best_key:54} {0.0:>18.2f} {1.0:>8.3f}")
    print(f"{'grid, best by validation':28} {val_key:54} {regret(val_key):>18.2f} {1.0:>8.3f}")
    for name, rows in results.items():
        regs = [regret(r["pick"]) for r in rows]
        m, sd = mean_sd(regs)
        frac = mean_sd([r["steps"] / grid_steps for r in rows])[0]
        picks = ", ".join(r["pick"] for r in rows)
        print(f"{name:28} {picks[:54]:54} {f'{m:.2f} ± {sd:.2f}':>18} {frac:>8.3f}")
    for dd in densities(args.heuristic_down):
        rank = 16 if "16" in args.ranks.split(",") else int(args.ranks.split(",")[-1])
        key = key_of("floss", rank, dd, dd / args.up_slowdown)
        print(f"{'heuristic d_down=' + str(Fraction(dd).limit_denominator()):28} {key:54} "
              f"{regret(key):>18.2f} {0.0:>8.3f}")  # fmt: skip
    keys = sorted(truth)
    final = [truth[k]["test_accuracy"] for k in keys]
    for f in SHORT:
        short = [_val_at(truth[k], f) for k in keys]
        print(f"Spearman(val acc at {f:g} of budget, test acc at full budget) = "
              f"{spearman(short, final):.3f} over {len(keys)} configs")  # fmt: skip
    print("\ngrid (test accuracy %, val accuracy %, rounds):")
    for k in sorted(keys, key=lambda k: -truth[k]["test_accuracy"]):
        r = truth[k]
        print(f"  {k:28} test {100 * r['test_accuracy']:5.1f}  val {100 * r['val_accuracy']:5.1f}"
              f"  rounds {r['rounds']}")  # fmt: skip
    print(f"total wall {time.perf_counter() - t0:.0f} s")


def _val_at(row: dict[str, Any], fraction: float) -> float:
    """Validation accuracy at the first evaluation that spent >= fraction of the run's seconds."""
    total = row["cum_sim_seconds"]
    for _round, secs, _bytes, acc, _server in row["curve"]:
        if secs >= fraction * total - 1e-9:
            return float(acc)
    return float(row["curve"][-1][3])


if __name__ == "__main__":
    main()
