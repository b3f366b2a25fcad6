"""Does floss-tune pick well, and cheaply? Grid vs floss-tune vs random search vs the heuristic.

One task (--task fortunes | debian-packages, bench.common.TASKS, validation and test sets of
1,000+ texts evaluated whole), one budget (50 dense rounds at S = 16, times --scale so it fits
this CPU), one grid of FLoSS configurations (--ranks x --d-down x --d-up). No round cap: every
configuration trains until its whole budget is spent.

(a) ground truth: every grid configuration trained on the whole budget (floss-train) on each
    --train-seeds seed, with validation accuracy at 1/8, 1/4, 1/2, 3/4 and all of the budget
    and test accuracy at the end; a cell's accuracy is the mean over the seeds;
(b) floss-tune (`--search halving`, its default), stopped at a compute cap of --cap times the
    grid's client optimizer steps (planned before anything trains), one study per
    --study-seeds seed, its runs on that training seed;
(c) random search over the same grid, no pruning, the same cap, the same seeds;
(d) the thesis heuristic with no search: d_up = d_down / S at each d_down of --heuristic-down
    (compute 0).
Each pick is a recommendation made on VALIDATION accuracy; its regret is the grid's best mean
TEST accuracy minus the pick's mean TEST accuracy from (a), in points. Compute = client steps
spent / the grid's. Also: Spearman rank correlation, over the grid, between validation accuracy
at a short budget fraction and test accuracy at the full budget (can short runs rank configs?),
and (bench/tuner_replay.py) (b), (c) and the heuristic seeds at equal compute replayed exactly on
the grid's recorded runs for every training seed, random search over 500 sampler seeds.

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
    p.add_argument("--studies-only", action="store_true",
                   help="run (b) and (c) only (their caps come from the planner, not the grid)")
    p.add_argument("--report-only", action="store_true",
                   help="train no study: print the report from --out (the grid trains where missing)")
    p.add_argument("--methods", default="floss-tune,random search")
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


def grid_configs(args: argparse.Namespace) -> list[tuple[int, float, float]]:
    return list(itertools.product(
        [int(r) for r in args.ranks.split(",")], densities(args.d_down), densities(args.d_up)
    ))  # fmt: skip


def planned_grid_steps(args: argparse.Namespace, seed: int) -> int:
    """Client steps of the whole grid at training seed ``seed``, known before anything trains:
    each configuration's rounds (the planner's seeded prices) times the base run's client steps
    per round (its sampled clients' data sizes), as floss-tune's halving prices its rungs."""
    curves, steps = seed_context(args, seed)
    return sum(steps.upto(len(c)) for c in curves.values())


def seed_context(args: argparse.Namespace, seed: int) -> tuple[dict[str, tuple[float, ...]], Any]:
    """Per grid key, the cumulative planned seconds after each round; and the base run's
    client steps per round (``tuner.rungs.StepCosts``), at training seed ``seed``."""
    from trainer.budget import planned_prices
    from trainer.config import RunConfig
    from trainer.run import prepare
    from tuner.halving import run_step_costs

    configs = [RunConfig(**recipe(args), seed=seed, up_slowdown=args.up_slowdown,
                         budget=budget_text(args), method="floss", rank=r, d_down=dd, d_up=du)
               for r, dd, du in grid_configs(args)]  # fmt: skip
    wl = prepare(configs[0])
    curves = {}
    for (r, dd, du), cfg in zip(grid_configs(args), configs, strict=True):
        cum, out = 0.0, []
        for price in planned_prices(cfg, wl):
            cum += price.seconds
            out.append(cum)
        curves[key_of("floss", r, dd, du)] = tuple(out)
    steps = run_step_costs(configs[0], wl, rounds=max(len(c) for c in curves.values()))
    return curves, steps


def search(args: argparse.Namespace, name: str, *, seed: int, cap: int,
           extra: list[str]) -> dict[str, Any]:  # fmt: skip
    """One floss-tune study through the real CLI, its runs on training seed ``seed``; its pick
    and the compute it spent."""
    import optuna
    import yaml

    from trainer.config import RunConfig

    folder = args.out / name
    folder.mkdir(parents=True, exist_ok=True)
    RunConfig(**recipe(args), seed=seed).save(folder / "base.yaml")
    storage = f"sqlite:///{folder / 'study.db'}"
    cmd = [
        sys.executable, "-m", "tuner.cli", "run", "--config", str(folder / "base.yaml"),
        "--budget", budget_text(args), "--up-slowdown", f"{args.up_slowdown:g}",
        "--ranks", args.ranks, "--d-down", args.d_down, "--d-up", args.d_up,
        "--n-trials", "1000", "--max-client-steps", str(cap), "--storage", storage,
        "--study-name", name, "--export", str(folder / "export"), *extra,
    ]  # fmt: skip
    tick = time.perf_counter()
    with (folder / "tune.log").open("w") as log:
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    run = yaml.safe_load((folder / "export" / "run.yaml").read_text(encoding="utf-8"))
    study = optuna.load_study(study_name=name, storage=storage)
    steps = sum(int(t.user_attrs.get("client_steps", 0)) for t in study.trials)
    return {
        "pick": key_of(run["method"], run["rank"], run["d_down"], run["d_up"]),
        "steps": steps,
        "trials": len(study.trials),
        "wall_seconds": time.perf_counter() - tick,
    }


METHODS = {
    "floss-tune": ["--search", "halving"],
    "random search": ["--search", "optuna", "--sampler", "random", "--pruner", "none",
                      "--no-seeds"],
}  # fmt: skip


def run_searches(args: argparse.Namespace, store: ResultStore) -> None:
    """Every method's study per study seed (its runs train on that seed), stored as rows."""
    seeds = [int(x) for x in args.study_seeds.split(",")]
    for seed in seeds:
        name = f"cap|seed{seed}"
        if not store.done(name):
            grid = planned_grid_steps(args, seed)
            store.add({"name": name, "grid_steps": grid, "cap": max(1, int(args.cap * grid))})
        cap = int(store.rows[name]["cap"])
        for method, extra in METHODS.items():
            if method not in args.methods.split(","):
                continue
            key = f"study|{method}|seed{seed}"
            if store.done(key):
                continue
            slug = method.replace(" ", "-")
            row = search(args, f"{slug}-{seed}", seed=seed, cap=cap,
                         extra=[*extra, "--seed", str(seed)])  # fmt: skip
            row.update(name=key, method=method, seed=seed, cap=cap)
            store.add(row)
            print(f"{key:34} pick {row['pick']:24} steps {row['steps']} of cap {cap}  "
                  f"wall {row['wall_seconds']:.0f} s", flush=True)  # fmt: skip


def heuristic_keys(args: argparse.Namespace) -> list[tuple[str, str]]:
    rank = 16 if "16" in args.ranks.split(",") else int(args.ranks.split(",")[-1])
    out = []
    for dd in densities(args.heuristic_down):
        du = snap_density(dd / args.up_slowdown, densities(args.d_up))
        label = f"heuristic d_down={Fraction(dd).limit_denominator()}"
        out.append((label, key_of("floss", rank, dd, du)))
    return out


def snap_density(d: float, grid: list[float]) -> float:
    return min(grid, key=lambda g: abs(math.log2(g / d)))


def report(args: argparse.Namespace, store: ResultStore, truth: dict[str, dict[str, Any]]) -> None:
    """Regret (points of mean test accuracy over the ground truth's seeds) per method and
    study seed, paired; compute as a share of the grid's client steps."""
    best_key = max(truth, key=lambda k: truth[k]["test_accuracy"])
    best_test = truth[best_key]["test_accuracy"]
    grid_steps = sum(r["client_steps"] for r in truth.values())

    def regret(key: str) -> float:
        return 100 * (best_test - truth[key]["test_accuracy"]) if key in truth else math.nan

    seeds = [int(x) for x in args.study_seeds.split(",")]
    print(f"\ntask {args.task} ({args.partition}), budget {budget_text(args)} at "
          f"S={args.up_slowdown:g}; {len(truth)} grid configs, ground truth = mean test accuracy "
          f"over training seeds {args.train_seeds}; grid compute {grid_steps:.0f} client steps "
          f"(mean over seeds); cap {args.cap:g} of the grid")  # fmt: skip
    print(f"{'method':30} {'regret pts per study seed':>30} {'mean ± sd':>14} {'x grid':>8}  picks")
    print(f"{'grid, best by test (oracle)':30} {'':>30} {0.0:>14.2f} {1.0:>8.3f}  {best_key}")
    val_key = max(truth, key=lambda k: truth[k]["val_accuracy"])
    print(f"{'grid, best by validation':30} {'':>30} {regret(val_key):>14.2f} {1.0:>8.3f}  "
          f"{val_key}")  # fmt: skip
    per_method: dict[str, list[float]] = {}
    for method in METHODS:
        rows = [store.rows.get(f"study|{method}|seed{s}") for s in seeds]
        rows = [r for r in rows if r is not None]
        if not rows:
            continue
        regs = [regret(r["pick"]) for r in rows]
        per_method[method] = regs
        m, sd = mean_sd(regs)
        frac = mean_sd([r["steps"] / grid_steps for r in rows])[0]
        cells = " ".join(f"{x:5.1f}" for x in regs)
        print(f"{method:30} {cells:>30} {f'{m:.2f} ± {sd:.2f}':>14} {frac:>8.3f}  "
              f"{', '.join(r['pick'] for r in rows)}")  # fmt: skip
    heur = [(label, key, regret(key)) for label, key in heuristic_keys(args)]
    for label, key, reg in heur:
        print(f"{label:30} {'':>30} {reg:>14.2f} {0.0:>8.3f}  {key}")
    best_h = min(heur, key=lambda h: h[2])
    print(f"{'best single heuristic (hindsight)':30} {'':>30} {best_h[2]:>14.2f} {0.0:>8.3f}  "
          f"{best_h[1]}")  # fmt: skip
    if "floss-tune" in per_method and "random search" in per_method:
        diffs = [a - b for a, b in zip(per_method["floss-tune"], per_method["random search"],
                                       strict=False)]  # fmt: skip
        m, sd = mean_sd(diffs)
        print(f"paired by study seed, floss-tune minus random search: {m:+.2f} ± {sd:.2f} pts "
              f"({', '.join(f'{d:+.1f}' for d in diffs)})")  # fmt: skip
    keys = sorted(truth)
    final = [truth[k]["test_accuracy"] for k in keys]
    for f in SHORT:
        short = [_val_at(truth[k], f) for k in keys]
        print(f"Spearman(val acc at {f:g} of budget, seed 0; mean test acc at full budget) = "
              f"{spearman(short, final):.3f} over {len(keys)} configs")  # fmt: skip
    print("\ngrid (mean test accuracy %, by seed, mean val %, rounds, client steps):")
    for k in sorted(keys, key=lambda k: -truth[k]["test_accuracy"]):
        r = truth[k]
        by_seed = "/".join(f"{100 * x:.1f}" for x in r["test_by_seed"])
        print(f"  {k:28} test {100 * r['test_accuracy']:5.1f} ({by_seed})  "
              f"val {100 * r['val_accuracy']:5.1f}  rounds {r['rounds']:.0f}  "
              f"steps {r['client_steps']:.0f}")  # fmt: skip


def study_order(args: argparse.Namespace) -> list[str]:
    """Grid keys in a study's order: dense LoRA and the heuristic seeds first, then the grid."""
    keys = [key_of("floss", r, dd, du) for r, dd, du in grid_configs(args)]
    rank = 16 if "16" in args.ranks.split(",") else int(args.ranks.split(",")[-1])
    first = [key_of("floss", rank, 1.0, 1.0)] + [k for _, k in heuristic_keys(args)]
    seeds = [k for i, k in enumerate(first) if k in keys and k not in first[:i]]
    return seeds + [k for k in keys if k not in seeds]


def replay_report(args: argparse.Namespace, store: ResultStore,
                  truth: dict[str, dict[str, Any]], *, samples: int = 500) -> None:  # fmt: skip
    """floss-tune (halving), random search and the heuristic seeds replayed on the grid's
    recorded runs of each training seed (bench/tuner_replay.py), at each cap."""
    from bench.tuner_replay import (
        cells_from_rows,
        replay_halving,
        replay_random,
        replay_seeds,
        val_at_fraction,
    )

    best_test = max(r["test_accuracy"] for r in truth.values())

    def regret(key: str | None) -> float:
        return math.nan if key is None else 100 * (best_test - truth[key]["test_accuracy"])

    order = study_order(args)
    heur = [k for _, k in heuristic_keys(args)]
    caps = sorted({args.cap, 0.10}, reverse=True)
    print(f"\nreplayed on the grid's runs ({args.task}): regret in points of mean test accuracy "
          f"over training seeds {args.train_seeds}; random search: mean ± sd over {samples} "
          "sampler seeds; compute as a share of that seed's grid")  # fmt: skip
    for seed in [int(x) for x in args.train_seeds.split(",")]:
        rows = {k: store.rows.get(f"{k}|seed{seed}") for k in order}
        if any(r is None for r in rows.values()):
            print(f"training seed {seed}: grid incomplete, skipped")
            continue
        curves, steps = seed_context(args, seed)
        cells = cells_from_rows(rows, curves, order)  # type: ignore[arg-type]
        grid = sum(c.steps for c in cells)
        planned = sum(steps.upto(len(c.curve)) for c in cells)
        assert planned == grid, f"planned grid steps {planned} != trained {grid}"
        # the noise floor of any search that judges on this seed's validation: every
        # configuration evaluated at fraction f (no cap), the best by validation picked
        floor = [(f, max(cells, key=lambda c, f=f: (val_at_fraction(c, f), -c.bytes)).key)
                 for f in (0.125, 0.25, 0.5, 0.75, 1.0)]  # fmt: skip
        print(f"  seed {seed}: every configuration at fraction f, best by validation (no cap): "
              + ", ".join(f"{f:g} -> {regret(k):.2f}" for f, k in floor))  # fmt: skip
        for share in caps:
            cap = max(1, int(share * grid))
            pick, spent, rungs = replay_halving(cells, steps=steps, cap=cap, seed=seed,
                                                n_seeds=len(set(heur)) + 1)  # fmt: skip
            regs = []
            for sampler in range(samples):
                rp, _ = replay_random(cells, cap=cap, seed=sampler)
                regs.append(regret(rp))
            m, sd = mean_sd(regs)
            sp, ss, sf = replay_seeds(cells, heur, steps=steps, cap=cap)
            path = " -> ".join(f"{n} at {f:g}" for f, n in rungs)
            print(f"  seed {seed} cap {share:g}: floss-tune {regret(pick):5.2f} ({pick}, "
                  f"{spent / grid:.3f} of grid; rungs {path}) | random search {m:5.2f} ± {sd:.2f}"
                  f" (P[random <= floss-tune] {sum(r <= regret(pick) for r in regs) / samples:.2f})"
                  f" | heuristic seeds at {sf:g} {regret(sp):5.2f} ({sp}, {ss / grid:.3f})")  # fmt: skip


def plot_study(storage: str, name: str, path: Path) -> None:
    """A halving study's trials over rounds: each configuration's validation accuracy at the
    round each rung trained it to, rungs of one configuration joined, the pick starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.trial import TrialState

    from tuner.candidate import candidate_label
    from tuner.report import recommend, trial_rows

    study = optuna.load_study(study_name=name, storage=storage)
    by_config: dict[str, list[tuple[int, float, int]]] = {}
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        if "fraction" not in t.user_attrs or t.value is None:
            continue
        label = candidate_label(t.user_attrs["candidate"])
        rounds = int(t.user_attrs["checkpoint_rounds"][-1])
        by_config.setdefault(label, []).append((rounds, float(t.value), t.number))
    pick = recommend(trial_rows(study), maximize=True)
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, points in sorted(by_config.items()):
        points.sort()
        xs, ys = [p[0] for p in points], [100 * p[1] for p in points]
        ax.plot(xs, ys, marker="o", label=label, alpha=0.8)
    if pick is not None:
        t = study.trials[pick.trial]
        ax.plot([t.user_attrs["checkpoint_rounds"][-1]], [100 * float(t.value or 0)], marker="*",
                markersize=18, color="red", label="pick", linestyle="none")  # fmt: skip
    plan = study.user_attrs.get("halving_plan") or []
    steps = ", ".join(f"rung {p['rung']}: {p['trials']} at {p['fraction']:g}" for p in plan)
    ax.set_xscale("log")
    ax.set_xlabel("rounds trained (log; each rung retrains from round 0)")
    ax.set_ylabel("validation accuracy, served model (%)")
    ax.set_title(f"{name}: {steps}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    store = ResultStore(args.out / "runs.jsonl")
    print(f"bench: {vars(args)}; budget {budget_text(args)}", flush=True)
    t0 = time.perf_counter()
    if args.report_only:  # the seeds whose grid is complete; nothing trains
        keys = [key_of("floss", r, dd, du) for r, dd, du in grid_configs(args)]
        done = [x for x in args.train_seeds.split(",")
                if all(store.done(f"{k}|seed{x}") for k in keys)]  # fmt: skip
        if not done:
            raise SystemExit(f"no training seed of {args.train_seeds} has a complete grid yet")
        args.train_seeds = ",".join(done)
    if not args.studies_only:
        truth = ground_truth(args, store)
        if args.grid_only:
            print(f"grid done: {len(truth)} configs in {store.path}", flush=True)
            return
    if not args.report_only:
        run_searches(args, store)
    for seed in [int(x) for x in args.study_seeds.split(",")]:
        db = args.out / f"floss-tune-{seed}" / "study.db"
        if db.exists():
            plot_study(f"sqlite:///{db}", f"floss-tune-{seed}", args.out / f"study-{seed}.png")
    if args.studies_only:
        print(f"studies done in {store.path}", flush=True)
        return
    report(args, store, truth)
    replay_report(args, store, truth)
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
