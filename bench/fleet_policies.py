"""Heterogeneous fleets on the real MiniLM + fortunes: round and density policies, one time budget.

Every configuration trains FLoSS (rank 16, d_down = 1/4) with floss-train's own code path until
the same simulated time budget is spent (--dense-rounds rounds of dense rank-16 LoRA on the same
fleet, synchronous and uniform, the planner's `dense_reference_seconds`) on the built-in
`mixed-mobile` fleet (60 % LTE, 30 % Wi-Fi, 10 % 5G, lognormal spread within each tier; each
client keeps its link for the whole run), and differs only in its policies:

* round policy `sync` (every sampled client is waited for) or `deadline` (ceil(1.3 m) clients
  sampled, the first m that finish by the deadline D aggregated, the rest dropped with their
  download bytes counted);
* density policy `uniform` (d_up = 1/16 for everybody), `tiered` (--tiers: per link class) or
  `bandwidth` (each client's d_up is the largest of 1, 1/2, ..., 1/256, at most 1/4, whose round
  fits D on its own link).

D is the planner's default deadline for the uniform configuration (`planner.fleet.
default_deadline`: the 1/1.3 quantile of the population's client seconds, so over-selecting 1.3x
brings about m clients by D), the same for every configuration of a seed. Compute time is 0
(network only), so stragglers are the slow links.

Recipe: bench/common.py's, with --clients-per-round 4 and client SGD (lr 0.5) instead of one Adam
step (bench/quantization.py says why: one fresh Adam step is a sign vector, and top-k picks among
ties). Reported (mean ± sd over --seeds, Δ paired by seed against sync/uniform): test accuracy of
the served model at the end of the budget, rounds the budget bought, mean round seconds, mean
upload density actually sent, clients aggregated per round and the share of sampled clients
dropped; validation accuracy at each eighth of the budget against simulated seconds (a plot).
Runs are stored in --out/runs.jsonl as they finish; a rerun skips them.

Quick (about 10 min here):  python bench/fleet_policies.py --quick
Full:                       python bench/fleet_policies.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.budget_frontier import fraction_rounds  # noqa: E402
from bench.common import RECIPE, ResultStore, fmt_pm, mean_sd  # noqa: E402

REFERENCE = "sync / uniform"
# name -> (round policy, density policy, d_up: the density, or the cap of tiered/bandwidth)
CONFIGS: dict[str, tuple[str, str, float]] = {
    REFERENCE: ("sync", "uniform", 1 / 16),
    "sync / tiered": ("sync", "tiered", 1 / 4),
    "sync / bandwidth": ("sync", "bandwidth", 1 / 4),
    "deadline / uniform": ("deadline", "uniform", 1 / 16),
    "deadline / tiered": ("deadline", "tiered", 1 / 4),
    "deadline / bandwidth": ("deadline", "bandwidth", 1 / 4),
}
QUICK = [REFERENCE, "sync / bandwidth", "deadline / uniform", "deadline / bandwidth"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--fleet", default="mixed-mobile")
    p.add_argument("--dense-rounds", type=float, default=10.0, help="the time budget")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--tiers", default="lte=1/4:1/16,wifi=1/4:1/4,5g=1/4:1/4",
                   help="tiered densities: tier=d_down:d_up, ...")  # fmt: skip
    p.add_argument("--clients-per-round", type=int, default=4)
    p.add_argument("--over-selection", type=float, default=1.3)
    p.add_argument("--client-optimizer", default="sgd")
    p.add_argument("--client-lr", type=float, default=0.5)
    p.add_argument("--max-eval", type=int, default=500, help="validation and test examples")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", default=RECIPE["model"], help="tiny-random-bert: a smoke test")
    p.add_argument("--out", type=Path, default=Path("bench-out/fleet_policies"))
    p.add_argument("--report-only", action="store_true", help="table and plot of --out only")
    p.add_argument("--quick", action="store_true", help="4 configs, 1 seed, 3 dense rounds")
    args = p.parse_args()
    if args.quick:
        args.dense_rounds, args.seeds, args.configs = 3.0, "0", ",".join(QUICK)
    return args


def deadline_for(args: argparse.Namespace, seed: int, n: int) -> float:
    """The planner's default deadline of the uniform configuration on this seed's fleet."""
    from planner.fleet import default_deadline, load_fleet
    from planner.method_spec import MethodSpec

    spec = MethodSpec(method="floss", n=n, d_down=0.25, d_up=CONFIGS[REFERENCE][2])
    return default_deadline(
        spec,
        load_fleet(args.fleet),
        seed=seed,
        num_clients=RECIPE["num_clients"],
        over_selection=args.over_selection,
    )


def run_config(args: argparse.Namespace, name: str, seed: int, deadline: float) -> Any:
    from trainer.config import RunConfig

    round_policy, density_policy, d_up = CONFIGS[name]
    recipe = {
        **RECIPE,
        "model": args.model,
        "max_eval_examples": args.max_eval,
        "clients_per_round": args.clients_per_round,
        "client_optimizer": args.client_optimizer,
        "client_lr": args.client_lr,
    }
    return RunConfig(
        **recipe,
        method="floss",
        rank=16,
        d_down=0.25,
        d_up=d_up,
        seed=seed,
        budget=f"{args.dense_rounds:g}-dense-rounds",
        fleet=args.fleet,
        round_policy=round_policy,
        deadline_seconds=deadline,
        over_selection=args.over_selection,
        density_policy=density_policy,
        tier_densities=args.tiers if density_policy == "tiered" else None,
    )


def train_one(config: Any, workload: Any) -> dict[str, Any]:
    from trainer.run import train

    tick = time.perf_counter()
    result = train(config, workload=workload, progress=False,
                   eval_rounds=fraction_rounds(config, workload))  # fmt: skip
    records = result.records
    last = records[-1]
    sampled = sum(len(r.clients) for r in records)
    kept = sum(len(r.kept) for r in records)
    sent_up = [d for r in records for c, d in zip(r.clients, r.client_d_up, strict=True)
               if c in r.kept]  # fmt: skip
    return {
        "rounds": len(records),
        "cum_bytes": last.cum_bytes,
        "cum_sim_seconds": last.cum_sim_seconds,
        "mean_round_seconds": last.cum_sim_seconds / len(records),
        "mean_d_up": sum(sent_up) / max(len(sent_up), 1),
        "kept_per_round": kept / len(records),
        "dropped_share": 1 - kept / max(sampled, 1),
        "empty_rounds": sum(1 for r in records if not r.kept),
        "test_accuracy": result.test_accuracy,
        "val_accuracy": result.final_val_accuracy,
        "curve": [
            (r.round, r.cum_sim_seconds, r.val_accuracy)
            for r in records
            if r.val_accuracy is not None
        ],
        "wall_seconds": time.perf_counter() - tick,
    }


def table(store: ResultStore, names: list[str], seeds: list[int]) -> str:
    ref = {s: store.rows.get(f"{REFERENCE}|{s}") for s in seeds}
    lines = [
        "| config | rounds | round s | d_up sent | kept/round | dropped | test acc % | "
        "Δ acc pts (paired) | seeds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        rows = {s: store.rows[f"{name}|{s}"] for s in seeds if f"{name}|{s}" in store.rows}
        if not rows:
            continue
        vals = list(rows.values())
        deltas = [
            r["test_accuracy"] - ref_row["test_accuracy"]
            for s, r in rows.items()
            if (ref_row := ref.get(s)) is not None
        ]
        lines.append(
            f"| {name} | {fmt_pm((r['rounds'] for r in vals), 1.0)} | "
            f"{mean_sd([r['mean_round_seconds'] for r in vals])[0]:.3f} | "
            f"{mean_sd([r['mean_d_up'] for r in vals])[0]:.4f} | "
            f"{mean_sd([r['kept_per_round'] for r in vals])[0]:.2f} | "
            f"{100 * mean_sd([r['dropped_share'] for r in vals])[0]:.1f} % | "
            f"{fmt_pm(r['test_accuracy'] for r in vals)} | {fmt_pm(deltas)} | {len(vals)} |"
        )
    return "\n".join(lines) + "\n"


def plot(store: ResultStore, names: list[str], seeds: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for name in names:
        rows = [store.rows[k] for k in (f"{name}|{s}" for s in seeds) if k in store.rows]
        if not rows:
            continue
        points = list(zip(*(r["curve"] for r in rows), strict=False))
        xs = [sum(p[1] for p in pts) / len(pts) for pts in points]
        ys = [100 * sum(p[2] for p in pts) / len(pts) for pts in points]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel("simulated seconds (network only), mixed-mobile fleet")
    ax.set_ylabel("validation accuracy of the served model (%)")
    ax.set_title("round and density policies under one time budget")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        sys.exit(f"error: unknown config(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    store = ResultStore(args.out / "runs.jsonl")
    if not args.report_only:
        import torch

        torch.set_num_threads(args.threads)
        from planner.profiles import load_model
        from trainer.workload import prepare

        model = load_model("all-minilm-l6-v2")
        for seed in seeds:
            workload = None
            for name in names:
                key = f"{name}|{seed}"
                if store.done(key):
                    continue
                if workload is None:
                    probe = run_config(args, REFERENCE, seed, 1.0)
                    workload = prepare(probe)
                n = model.adapter_params(16, num_labels=len(workload.dataset.label_names))
                deadline = deadline_for(args, seed, n)
                config = run_config(args, name, seed, deadline)
                row = train_one(config, workload)
                store.add({"name": key, "config": name, "seed": seed, "deadline": deadline, **row})
                print(
                    f"{key}: test acc {row['test_accuracy']:.4f}, {row['rounds']} rounds, "
                    f"d_up sent {row['mean_d_up']:.4f}, dropped {row['dropped_share']:.2f} "
                    f"(D = {deadline:.3f} s, {row['wall_seconds']:.0f} s)",
                    flush=True,
                )
    text = table(store, names, seeds)
    header = (
        f"fleet {args.fleet}, budget {args.dense_rounds:g} dense rounds, seeds {args.seeds}, "
        f"{args.clients_per_round} of {RECIPE['num_clients']} clients a round "
        f"(deadline: ceil({args.over_selection:g} m) sampled), tiers {args.tiers}, "
        f"model {args.model}\n\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(header + text, encoding="utf-8")
    plot(store, names, seeds, args.out / "accuracy_vs_seconds.png")
    print(header + text)


if __name__ == "__main__":
    main()
