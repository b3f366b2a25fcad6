"""Does floss-tune pick well, and cheaply? Grid vs floss-tune vs random search, side by side.

On one workload (the real MiniLM + fortunes by default) and one budget (50 dense rounds at
S = 16 by default, times --scale so it fits this CPU):

(a) grid: every configuration of a small grid trained on the whole (scaled) budget;
(b) floss-tune: TPE + successive halving over the same grid, seeded with dense LoRA and the
    d_up = d_down/S family, stopped at a compute cap (--cap, a share of the grid's compute);
(c) random search: random configurations of the same grid, no pruning, under the same cap
    (--random-repeats independent runs, averaged).

Regret = grid-best accuracy minus the full-budget accuracy (from the grid) of the method's pick.
Compute = client optimizer steps (RoundRecord.client_steps) spent, as a ratio to the grid's.
Studies live in a journal file under --out, so a killed bench resumes where it stopped.

Quick check (minutes):  python bench/tuner_quality.py --model tiny-random-bert --quick
Full (about an hour):   python bench/tuner_quality.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner.cli import parse_densities, parse_ints  # noqa: E402
from tuner.objective import Objective, candidate_key  # noqa: E402
from tuner.report import recommend, trial_rows  # noqa: E402
from tuner.runner import (  # noqa: E402
    PlanArgs,
    metric_for,
    model_profile_for,
    plan_settings_for,
    space_meta,
    trainer_adapter_size,
)
from tuner.settings import TuneSettings  # noqa: E402
from tuner.space import SearchSpace, build_space, scaled_budget, seed_params  # noqa: E402
from tuner.study import run_study  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--budget", default="50-dense-rounds")
    p.add_argument("--up-slowdown", type=float, default=16.0)
    p.add_argument("--scale", type=float, default=0.2, help="share of the budget that fits the CPU")
    p.add_argument("--max-rounds", type=int, default=40, help="round cap of a run")
    p.add_argument("--ranks", default="4,16")
    p.add_argument("--d-down", default="1,1/4,1/16")
    p.add_argument("--d-up", default="1,1/16,1/64,1/256")
    p.add_argument("--cap", type=float, default=0.25, help="compute cap, share of the grid's")
    p.add_argument("--tune-scale", type=float, default=1.0, help="floss-tune --budget-scale")
    p.add_argument("--levels", type=int, default=4, help="floss-tune --levels")
    p.add_argument("--pruner", default="sha", help="floss-tune --pruner")
    p.add_argument("--random-repeats", type=int, default=3)
    p.add_argument("--model", default="all-minilm-l6-v2")
    p.add_argument("--num-clients", type=int, default=50)
    p.add_argument("--clients-per-round", type=int, default=5)
    p.add_argument("--max-examples-per-client", type=int, default=32)
    p.add_argument("--max-eval-examples", type=int, default=300)
    # the trainer's integration-test recipe, which learns fortunes within a few rounds
    p.add_argument("--client-optimizer", default="adam")
    p.add_argument("--client-lr", type=float, default=1e-3)
    p.add_argument("--server-lr", type=float, default=0.01)
    p.add_argument("--local-epochs", type=int, default=2)
    p.add_argument("--max-length", type=int, default=32)
    p.add_argument("--min-examples-per-class", type=int, default=1000, help="1000: 4 classes")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("bench-out/tuner_quality"))
    p.add_argument(
        "--quick",
        action="store_true",
        help="~30 min: 5 dense rounds, cap 10 rounds, 10 configs, 4 small clients a round",
    )
    args = p.parse_args()
    if args.quick:
        args.scale, args.max_rounds, args.random_repeats = 0.1, 10, 2
        args.d_down, args.d_up = "1,1/16", "1/16,1/256"
        args.num_clients, args.clients_per_round = 20, 4
        args.max_examples_per_client, args.max_eval_examples = 32, 200
    return args


def run(
    name: str,
    *,
    space: SearchSpace,
    base: Any,
    wl: Any,
    train: Any,
    diverged: tuple[type[BaseException], ...],
    meta: dict[str, Any],
    out: Path,
    enqueue: bool = False,
    **settings: Any,
) -> tuple[Any, float]:
    """One study in its own journal file; returns (study, wall seconds)."""
    tune = TuneSettings(storage=str(out / f"{name}.journal"), study_name=name, **settings)
    objective = Objective(
        space=space, base_config=base, settings=tune, train_fn=train, metric=metric_for(base),
        workload=wl, diverged=diverged, log=lambda m: print(f"  [{name}] {m}", flush=True),
    )  # fmt: skip
    if enqueue:  # the grid: every candidate once, in order
        import optuna

        from tuner.storage import open_storage

        study = optuna.create_study(
            storage=open_storage(tune.storage), study_name=name, direction=objective.direction,
            load_if_exists=True,
        )  # fmt: skip
        if not study.trials:
            for c in space.candidates:
                study.enqueue_trial(seed_params(c))
    start = time.perf_counter()
    study = run_study(tune, space, objective, space_meta=meta)
    return study, time.perf_counter() - start


def steps(study: Any) -> int:
    return sum(int(t.user_attrs.get("client_steps", 0)) for t in study.trials)


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from trainer.config import RunConfig
    from trainer.errors import DivergedError
    from trainer.run import prepare, train

    base = RunConfig(
        model=args.model, up_slowdown=args.up_slowdown, num_clients=args.num_clients,
        clients_per_round=args.clients_per_round,
        max_examples_per_client=args.max_examples_per_client,
        max_eval_examples=args.max_eval_examples, client_optimizer=args.client_optimizer,
        client_lr=args.client_lr, server_lr=args.server_lr, local_epochs=args.local_epochs,
        max_length=args.max_length, min_examples_per_class=args.min_examples_per_class,
        seed=args.seed, device="cpu",
    )  # fmt: skip
    plan_args = PlanArgs(
        budget=args.budget, ranks=parse_ints(args.ranks, name="--ranks"),
        d_down=parse_densities(args.d_down, name="--d-down"),
        d_up=parse_densities(args.d_up, name="--d-up"), max_rounds=args.max_rounds,
    )  # fmt: skip
    print(f"bench: {vars(args)}", flush=True)
    t0 = time.perf_counter()
    wl = prepare(base)
    profile, labels, head = model_profile_for(base, trainer_adapter_size(base, wl))
    settings = plan_settings_for(
        base, plan_args, model=profile, num_labels=labels, head_params=head
    )
    # the bench's "full budget" is the scaled one (and --max-rounds caps it); every method
    # searches the same space
    settings = replace(settings, budget=scaled_budget(settings.budget, args.scale))
    space = build_space(settings, budget_scale=1.0)
    print(f"prepared in {time.perf_counter() - t0:.1f} s; {len(space.candidates)} grid configs, "
          f"rounds {sorted(c.rounds for c in space.candidates)}", flush=True)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    common = {"base": base, "wl": wl, "train": train, "diverged": (DivergedError,), "out": args.out}

    def meta(tune: TuneSettings) -> dict[str, Any]:
        return space_meta(space, config=base, args=plan_args, settings=tune,
                          metric=metric_for(base))  # fmt: skip

    n = len(space.candidates)
    grid, grid_s = run(
        "grid", space=space, enqueue=True, meta=meta(TuneSettings(pruner="none")),
        n_trials=n, pruner="none", sampler="random", seed_heuristics=False, **common,
    )  # fmt: skip
    acc = {t.user_attrs["key"]: t.value for t in grid.trials if t.value is not None}
    best_key = max(acc, key=lambda k: acc[k])
    grid_steps = steps(grid)
    cap = max(1, int(args.cap * grid_steps))
    tune_opts = {"budget_scale": args.tune_scale, "levels": args.levels, "pruner": args.pruner}
    tuned, tuned_s = run(
        f"floss-tune-{args.pruner}-L{args.levels}-x{args.tune_scale:g}", space=space,
        meta=meta(TuneSettings(**tune_opts)), n_trials=10 * n, max_client_steps=cap,
        seed=args.seed, n_startup_trials=4, **tune_opts, **common,
    )  # fmt: skip
    randoms = []
    for r in range(args.random_repeats):
        study, secs = run(
            f"random-{r}", space=space, meta=meta(TuneSettings(pruner="none")),
            n_trials=10 * n, max_client_steps=cap, pruner="none", sampler="random",
            seed=args.seed + 100 + r, seed_heuristics=False, **common,
        )  # fmt: skip
        randoms.append((study, secs))

    def pick(study: Any) -> tuple[str, float, str]:
        rows = trial_rows(study)
        best = recommend(rows, maximize=True)
        if best is None:
            return "-", float("nan"), "no trial finished"
        cand = space.lookup(best.rank or 0, best.d_down or 1.0, best.d_up or 1.0)
        assert cand is not None
        key = candidate_key(cand, {})
        return key, acc[key], best.label

    print(
        "\nmethod           pick                     acc(full)  regret(pts)  steps  x grid  wall s"
    )
    print(f"grid             {_label(best_key):24} "
          f"{acc[best_key]:9.4f}  {0.0:11.2f}  {grid_steps:5d}  {1.0:6.3f}  {grid_s:6.0f}")  # fmt: skip
    for name, study, secs in [("floss-tune", tuned, tuned_s)] + [
        (f"random-{i}", s, w) for i, (s, w) in enumerate(randoms)
    ]:
        _, a, label = pick(study)
        regret = 100 * (acc[best_key] - a)
        print(f"{name:16} {label:24} {a:9.4f}  {regret:11.2f}  {steps(study):5d}  "
              f"{steps(study) / grid_steps:6.3f}  {secs:6.0f}")  # fmt: skip
    rand_regret = [100 * (acc[best_key] - pick(s)[1]) for s, _ in randoms]
    if rand_regret:
        print(f"random search mean regret {statistics.fmean(rand_regret):.2f} pts over "
              f"{len(rand_regret)} repeats")  # fmt: skip
    print(f"total wall {time.perf_counter() - t0:.0f} s; grid accuracies:")
    for k in sorted(acc, key=lambda k: -acc[k]):
        print(f"  {_label(k):24} {acc[k]:.4f}")


def _parse(key: str) -> tuple[int, float, float]:
    r, dd, du = key.split("|")[:3]
    return int(r[1:]), float(dd), float(du)


def _label(key: str) -> str:
    from tuner.space import density_label

    r, dd, du = _parse(key)
    return f"r{r} ↓{density_label(dd)} ↑{density_label(du)}"


if __name__ == "__main__":
    main()
