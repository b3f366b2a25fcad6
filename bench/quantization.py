"""Quantized sparse messages on the real MiniLM + fortunes: accuracy against bytes.

Every configuration trains the bench recipe (bench/common.py: 30 clients, 2 a round, so each
client is sampled about once in 15 rounds: the low participation where error feedback goes
stale) for the same --rounds with FedAdam, rank 16, and differs only in what it sends:

* the reference, fp32 FLoSS at d_down = 1/4, d_up = 1/16;
* the same densities at bf16, q8 (deterministic 8-bit), rh4 / rh2 / rh1 (EDEN-style rotation
  codes, planner/rotation.py) and sr4 (unbiased stochastic rounding on a uniform grid), both
  directions;
* mixed: q8 down / rh4 up, rh4 down / rh2 up;
* STC-style uploads (stc1, sign x mean magnitude, q8 down) with and without error feedback;
* equal-byte trades: d = 1/16 both ways at fp32 against d = 1/4 both ways at q8 and at rh4.

One change to the recipe, on purpose: clients take their one local step with SGD (lr 0.5), not
Adam. A single Adam step from a fresh optimizer moves every coordinate by lr * g / (|g| + eps),
i.e. by +-lr wherever the gradient is not tiny: the update is a sign vector, any 1-bit code is
lossless on it, and top-k chooses among ties. That measured nothing about quantization (the first
partial run logged a quantization error of 2e-7 at 4 bits). With SGD the update is lr * g, with
the heavy tail real updates have (top 1/16 of the entries hold ~94 % of its energy). FedAdam on
the server is unchanged, and it makes the client lr nearly irrelevant (0.05 and 0.5 gave 72.6 and
73.7 % at 30 rounds, seed 0).

Reported per configuration (mean ± sd over --seeds): test accuracy of the served model at the
last round, validation accuracy at each quarter of the rounds against cumulative bytes, bytes per
round relative to the reference, and the upload's relative squared error split into its top-k
part ||x - topk(x)||^2 / ||x||^2 and its quantization part ||topk(x) - Q(topk(x))||^2 / ||x||^2
(x = the client's update, plus its residual under error feedback), averaged over all uploads.
Runs are stored in --out/runs.jsonl as they finish (a rerun skips them); the table goes to
--out/results.md and the curves to --out/accuracy_vs_bytes.png.

Quick (< 15 min; a smoke test with --model tiny-random-bert):
    python bench/quantization.py --quick --model tiny-random-bert
Full (hours on one CPU core):
    python bench/quantization.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import RECIPE, ResultStore, fmt_pm, mean_sd  # noqa: E402

REFERENCE = "fp32 FLoSS"
BASE: dict[str, Any] = {"method": "floss", "rank": 16, "d_down": 0.25, "d_up": 0.0625}
# name -> RunConfig changes on top of BASE
CONFIGS: dict[str, dict[str, Any]] = {
    REFERENCE: {},
    "bf16": {"precision": "bf16"},
    "q8": {"precision": "q8"},
    "rh4": {"precision": "rh4"},
    "rh2": {"precision": "rh2"},
    "rh1": {"precision": "rh1"},
    "sr4": {"precision": "sr4"},
    "q8 down / rh4 up": {"precision_down": "q8", "precision_up": "rh4"},
    "rh4 down / rh2 up": {"precision_down": "rh4", "precision_up": "rh2"},
    "q8 down / stc1 up": {"precision_down": "q8", "precision_up": "stc1"},
    "q8 down / stc1 up + EF": {
        "precision_down": "q8",
        "precision_up": "stc1",
        "error_feedback": True,
    },
    "d 1/16 fp32": {"d_down": 0.0625, "d_up": 0.0625},
    "d 1/4 q8": {"d_down": 0.25, "d_up": 0.25, "precision": "q8"},
    "d 1/4 rh4": {"d_down": 0.25, "d_up": 0.25, "precision": "rh4"},
}
QUICK = [REFERENCE, "q8", "rh4", "sr4", "q8 down / stc1 up + EF"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma list of names above")
    p.add_argument("--max-eval", type=int, default=500, help="validation and test examples")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--client-optimizer", default="sgd", help="see the docstring (recipe: adam)")
    p.add_argument("--client-lr", type=float, default=0.5, help="see the docstring")
    p.add_argument("--model", default=RECIPE["model"], help="tiny-random-bert: a smoke test")
    p.add_argument("--out", type=Path, default=Path("bench-out/quantization"))
    p.add_argument("--quick", action="store_true", help="5 configs, 1 seed, 12 rounds")
    p.add_argument(
        "--report-only", action="store_true", help="table and plot of what --out holds; no training"
    )
    args = p.parse_args()
    if args.quick:
        args.rounds, args.seeds, args.configs, args.max_eval = 12, "0", ",".join(QUICK), 200
    return args


def run_config(args: argparse.Namespace, name: str, seed: int) -> Any:
    from trainer.config import RunConfig

    recipe = {**RECIPE, "model": args.model, "max_eval_examples": args.max_eval}
    if args.client_optimizer is not None:
        recipe["client_optimizer"] = args.client_optimizer
    if args.client_lr is not None:
        recipe["client_lr"] = args.client_lr
    return RunConfig(**{**recipe, **BASE, **CONFIGS[name], "rounds": args.rounds, "seed": seed})


def eval_rounds(rounds: int) -> list[int]:
    return sorted({max(1, round(rounds * f)) for f in (0.25, 0.5, 0.75, 1.0)})


def train_one(config: Any, workload: Any) -> dict[str, Any]:
    """Train with every upload's error split logged (a wrapper around the method's upload)."""
    import torch

    import trainer.run as run_module
    from trainer.sparse import select_positions

    split: list[tuple[float, float]] = []
    make = run_module.make_method

    def logged(cfg: Any, *, n: int, slices: Any) -> Any:
        method = make(cfg, n=n, slices=slices)
        inner = method._upload

        def upload(x: torch.Tensor, **kw: Any) -> Any:
            sent = inner(x, **kw)
            density = method.d_up if hasattr(method, "d_up") else 1.0
            pos = select_positions(x, density, mode=cfg.topk, slices=method.slices)
            kept = torch.zeros_like(x)
            kept[pos] = x[pos]
            norm = float(x.pow(2).sum()) or 1.0
            split.append(
                (
                    float((x - kept).pow(2).sum()) / norm,
                    float((kept - sent.vector).pow(2).sum()) / norm,
                )
            )
            return sent

        method._upload = upload
        return method

    run_module.make_method = logged
    tick = time.perf_counter()
    try:
        result = run_module.train(
            config, workload=workload, progress=False, eval_rounds=eval_rounds(config.rounds)
        )
    finally:
        run_module.make_method = make
    curve = [
        (r.round, r.cum_bytes, r.val_accuracy) for r in result.records if r.val_accuracy is not None
    ]
    last = result.records[-1]
    return {
        "test_accuracy": result.test_accuracy,
        "val_accuracy": result.final_val_accuracy,
        "bytes_per_round": last.cum_bytes / len(result.records),
        "bytes_down": last.bytes_down,
        "bytes_up": last.bytes_up,
        "cum_bytes": last.cum_bytes,
        "curve": curve,
        "topk_error": sum(a for a, _ in split) / max(len(split), 1),
        "quant_error": sum(b for _, b in split) / max(len(split), 1),
        "wall_seconds": time.perf_counter() - tick,
    }


def table(store: ResultStore, names: list[str], seeds: list[int]) -> str:
    """One row per configuration. Δ is paired: each seed's accuracy minus the reference's on the
    same seed (same clients sampled, same data, same evaluation), then mean ± sd over seeds."""
    ref = {s: store.rows.get(f"{REFERENCE}|{s}") for s in seeds}
    ref_bytes = mean_sd([r["bytes_per_round"] for r in ref.values() if r])[0]
    lines = [
        "| config | down B/client | up B/client | bytes/round vs fp32 | test acc % | "
        "Δ acc pts (paired) | val acc % | upload err: top-k | upload err: quant | seeds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        rows = {s: store.rows[f"{name}|{s}"] for s in seeds if f"{name}|{s}" in store.rows}
        if not rows:
            continue
        first = next(iter(rows.values()))
        ratio = mean_sd([r["bytes_per_round"] for r in rows.values()])[0] / ref_bytes
        deltas = [
            r["test_accuracy"] - ref_row["test_accuracy"]
            for s, r in rows.items()
            if (ref_row := ref.get(s)) is not None
        ]
        lines.append(
            f"| {name} | {first['bytes_down']:,} | {first['bytes_up']:,} | {ratio:.3f}x | "
            f"{fmt_pm(r['test_accuracy'] for r in rows.values())} | {fmt_pm(deltas)} | "
            f"{fmt_pm(r['val_accuracy'] for r in rows.values())} | "
            f"{mean_sd([r['topk_error'] for r in rows.values()])[0]:.3f} | "
            f"{mean_sd([r['quant_error'] for r in rows.values()])[0]:.2e} | {len(rows)} |"
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
        xs = [sum(p[1] for p in pts) / len(pts) / 1e6 for pts in points]
        ys = [100 * sum(p[2] for p in pts) / len(pts) for pts in points]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("cumulative bytes, all clients, both directions (MB = 10^6 bytes)")
    ax.set_ylabel("validation accuracy of the served model (%)")
    ax.set_title("quantized sparse messages: accuracy vs communication")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from trainer.workload import prepare

    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        sys.exit(f"error: unknown config(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    store = ResultStore(args.out / "runs.jsonl")
    for seed in [] if args.report_only else seeds:
        workload = None
        for name in names:
            key = f"{name}|{seed}"
            if store.done(key):
                continue
            config = run_config(args, name, seed)
            if workload is None:
                workload = prepare(config)
            row = train_one(config, workload)
            store.add({"name": key, "config": name, "seed": seed, "rounds": args.rounds, **row})
            print(
                f"{key}: test acc {row['test_accuracy']:.4f}, {row['bytes_per_round']:,.0f} B/round, "
                f"upload err top-k {row['topk_error']:.3f} quant {row['quant_error']:.4f} "
                f"({row['wall_seconds']:.0f} s)",
                flush=True,
            )
    text = table(store, names, seeds)
    header = (
        f"rounds {args.rounds}, seeds {args.seeds}, model {args.model}, "
        f"{RECIPE['clients_per_round']} of {RECIPE['num_clients']} clients a round, "
        f"test/val at most {args.max_eval} examples\n\n"
    )
    (args.out / "results.md").write_text(header + text, encoding="utf-8")
    plot(store, names, seeds, args.out / "accuracy_vs_bytes.png")
    print(header + text)


if __name__ == "__main__":
    main()
