"""Replay floss-tune's searches on the ground-truth grid's recorded runs, exactly.

Every grid run (bench/tuner_quality.py) evaluates validation at the first round where 1/8, 1/4,
1/2, 3/4 and all of its planned spend is reached, on the same seed, data and clients a study's
trial would use. Training is deterministic on the CPU, so a trial that trains a configuration to
a fraction f of its budget reaches the very state, and validation value, the grid run recorded
at that round; a trial of the whole budget is the grid run itself. So both searches can be
replayed from the grid without training:

* ``--search halving``: ``tuner.rungs``' own functions (first rung, next rung, costs in client
  steps from the base run's seeded clients), on the recorded values; the pick is the best of the
  deepest rung. A real floss-tune study on one seed checks the replay (same pick, same steps).
* ``--search optuna --sampler random --pruner none --no-seeds``: floss-tune's random sampler
  draws d_down and d_up log-uniformly and snaps them to the grid (so 1/4 is drawn twice as often
  as 1 or 1/16 on a {1, 1/4, 1/16} grid, as ``tuner.suggest.suggest`` does); each new
  configuration trains its whole budget; a repeat costs nothing; the trial that crosses the cap
  is stopped and cannot be picked. Replayed for many sampler seeds: its expected regret and
  spread, not three lucky draws.
* the heuristic seeds at equal compute: the seeds (d_up = d_down / S at each heuristic d_down)
  trained to the deepest common fraction the cap affords, the best by validation.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuner.rungs import (
    FRACTIONS,
    Entry,
    StepCosts,
    cost,
    first_rung,
    next_rung,
    rounds_at,
)
from tuner.search_space import snap


@dataclass(frozen=True)
class Cell:
    """One configuration's recorded run on one training seed."""

    key: str
    d_down: float
    d_up: float
    curve: tuple[float, ...]  # cumulative planned seconds after each round
    val_at: dict[int, float]  # round -> validation accuracy (served), the evaluated rounds
    steps: int  # client steps of the whole run
    bytes: int


def val_at_fraction(cell: Cell, fraction: float) -> float:
    r = rounds_at(cell.curve, fraction)
    if r not in cell.val_at:
        raise ValueError(f"{cell.key}: round {r} ({fraction:g} of the budget) was not evaluated")
    return cell.val_at[r]


def replay_halving(
    cells: Sequence[Cell],
    *,
    steps: StepCosts,
    cap: int,
    n_seeds: int,
    seed: int,
    levels: int = 4,
    eta: int = 2,
) -> tuple[str, int, list[tuple[float, int]]]:
    """(pick, client steps spent, [(fraction, configurations)] per rung), as ``run_halving``
    decides on these values (cells in the study's order: its ``n_seeds`` seeds first; a rung 0
    too small for all of them takes the seeds and a sample shuffled with the study's ``seed``)."""
    entries = [Entry(params={"key": c.key}, curve=c.curve, label=c.key, key=c.key) for c in cells]
    by_key = {c.key: c for c in cells}
    fraction, n0 = first_rung(entries, steps=steps, cap=cap, levels=levels, n_trials=1000)
    current = list(entries)
    if n0 < len(entries):
        rest = current[n_seeds:]
        random.Random(seed or 0).shuffle(rest)
        current = (current[:n_seeds] + rest)[:n0]
    spent, rungs = 0, []
    while True:
        spent += cost(current, fraction, steps)
        rungs.append((fraction, len(current)))
        scored = [(e, val_at_fraction(by_key[e.key], fraction)) for e in current]
        step = None
        if len(scored) >= 2 and fraction < 1.0:
            step = next_rung(scored, current=fraction, remaining=cap - spent, steps=steps,
                             eta=eta, maximize=True)  # fmt: skip
        if step is None:
            best = max(scored, key=lambda s: (s[1], -by_key[s[0].key].bytes))
            return best[0].key, spent, rungs
        current, fraction = step


def replay_random(
    cells: Sequence[Cell], *, cap: int, seed: int
) -> tuple[str | None, int]:
    """(pick or None, client steps spent) of one random search with this sampler seed."""
    rng = random.Random(seed)
    downs = sorted({c.d_down for c in cells})
    ups = sorted({c.d_up for c in cells})
    by = {(c.d_down, c.d_up): c for c in cells}
    spent, done, tried = 0, [], set()
    for _ in range(10_000):
        dd = snap(math.exp(rng.uniform(math.log(downs[0]), math.log(downs[-1]))), downs)
        du = snap(math.exp(rng.uniform(math.log(ups[0]), math.log(ups[-1]))), ups)
        cell = by[(dd, du)]
        if cell.key in tried:
            continue  # a repeat copies its twin: no compute
        tried.add(cell.key)
        if spent + cell.steps > cap:  # stopped by the cap mid-run: never picked
            spent = cap
            break
        spent += cell.steps
        done.append(cell)
        if len(tried) == len(cells):
            break
    if not done:
        return None, spent
    best = max(done, key=lambda c: (c.val_at[max(c.val_at)], -c.bytes))
    return best.key, spent


def replay_seeds(
    cells: Sequence[Cell], seeds: Sequence[str], *, steps: StepCosts, cap: int
) -> tuple[str, int, float]:
    """(pick, steps, fraction): the heuristic seeds at the deepest common fraction that fits."""
    chosen = [c for c in cells if c.key in seeds]
    entries = [Entry(params={"key": c.key}, curve=c.curve, label=c.key, key=c.key) for c in chosen]
    fits = [f for f in FRACTIONS if cost(entries, f, steps) <= cap]
    fraction = fits[-1] if fits else FRACTIONS[0]
    best = max(chosen, key=lambda c: (val_at_fraction(c, fraction), -c.bytes))
    return best.key, cost(entries, fraction, steps), fraction


def cells_from_rows(rows: dict[str, dict[str, Any]], curves: dict[str, tuple[float, ...]],
                    order: Sequence[str]) -> list[Cell]:  # fmt: skip
    """Cells in ``order`` from the grid rows of one seed and each key's per-round spend."""
    out = []
    for key in order:
        row = rows[key]
        out.append(
            Cell(
                key=key,
                d_down=float(row["d_down"]),
                d_up=float(row["d_up"]),
                curve=curves[key],
                val_at={int(r): float(acc) for r, _s, _b, acc, _srv in row["curve"]},
                steps=int(row["client_steps"]),
                bytes=int(row["cum_bytes"]),
            )
        )
    return out
