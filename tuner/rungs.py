"""Compute-aware successive halving, the plan: breadth at a low fidelity, depth where it pays.

Pure functions (no Optuna, no torch); ``tuner.halving`` runs the plan on a study.

What floss knows before anything trains, and a generic optimizer does not: the exact rounds
every candidate affords and its spend round by round (the planner's schedule), and the client
optimizer steps of every round (the base run's seeded clients and their data sizes, the same
for every candidate). So the compute of any rung is known before it runs, and the search can
be planned against the study's compute cap (``--max-client-steps``) instead of discovering it.

The search (``--search halving``, the default):

* **Fidelity is a share of each candidate's own budget.** A candidate at fraction f trains to
  the first round whose cumulative planned spend reaches f of its trial budget
  (``tuner.fidelity.checkpoint_rounds``) and is judged on validation there. Short runs at the
  same share of the budget rank configurations well (docs/results.md: Spearman 0.81 at 1/8 with
  the SGD recipe), so equal fractions compare like with like, whatever the rounds they buy.
* **Rung 0, breadth.** Every distinct candidate when the space is small enough (seeds first,
  then the grid order), else the heuristic seeds and a seeded random sample of the rest, at the
  deepest fraction between ``MIN_FRACTION`` and ``2^-(levels-1)`` that leaves room in the cap
  for a second rung. The seeds are hints where to look first, evaluated at rung 0 like
  everything else: no seed is trained to the end before it has competed.
* **Rung k+1, depth.** The best ``k`` of rung k by validation, ``k`` from
  ``max(2, ceil(n / eta))`` down to 2, retrained from scratch at the deepest fraction they can
  afford with what is left of the cap (half of it while more than two remain, all of it for
  the last two), strictly deeper than rung k. The search stops when no two can go deeper or a
  rung reached the whole budget.
* **The pick** is the best trial of the deepest rung (``tuner.report.recommend``); every rung is
  its own set of Optuna trials, with user attributes ``rung`` and ``fraction``, so Optuna stays
  the store (resume, workers, dashboard) and TPE learns from rung 0 when it proposes.

The plan is a pure function of the space, the cap and the finished trials, so a rerun after a
crash, or a second worker, recomputes the same rungs and enqueues only what is missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tuner.fidelity import checkpoint_rounds

ATTR_RUNG = "rung"
ATTR_FRACTION = "fraction"
# the fractions a rung may take: 1/64 ... 1/2, 1 (powers of two keep rungs comparable across
# studies and make "twice as deep" a step)
FRACTIONS = tuple(2.0**-j for j in range(6, -1, -1))
# Rung 0 goes no shallower than this: at 1/16 of each budget the first version of this search
# picked dense LoRA's first round over every sparse run on fortunes. How well 1/8 ranks varies
# (Spearman against the full-budget test accuracy: 0.81 and 0.47 on fortunes, 0.14 on the
# Debian task; docs/results.md): deeper rungs are where the pick is made.
MIN_FRACTION = 1 / 8
DEPTH_SHARE = 1 / 2  # of what is left, for a rung that is not the last


def fidelity_suffix(fraction: float | None) -> str:
    """What a trial's duplicate key gains at a fidelity: two rungs of one config are not twins."""
    return "" if fraction is None else f"|at={fraction:.6g}"


def rounds_at(curve: Sequence[float], fraction: float) -> int:
    """The round at which a candidate has spent ``fraction`` of its trial budget."""
    return checkpoint_rounds(curve, (fraction,))[0]


@dataclass(frozen=True)
class StepCosts:
    """Client optimizer steps of rounds 1, 2, ... of the base run: the same for every candidate
    (the same seeded clients, the same data). ``exact`` is False where they are an estimate
    (fleets: over-selection and deadlines change who trains)."""

    per_round: tuple[int, ...]
    mean: float
    exact: bool = True

    def upto(self, rounds: int) -> int:
        """Steps of rounds 1..rounds (past the table: the mean per round)."""
        known = self.per_round[: max(0, rounds)]
        extra = max(0, rounds - len(self.per_round))
        return int(sum(known) + math.ceil(extra * self.mean))


def step_costs(
    client_sizes: Sequence[int],
    *,
    batch_size: int,
    local_epochs: int,
    draw: Callable[[int], Iterable[int]],
    rounds: int,
    exact: bool = True,
) -> StepCosts:
    """Per-round client steps: each sampled client takes ceil(size / batch) steps per epoch
    (``trainer.tokens.client_batches``); ``draw(r)`` gives round r's sampled client ids."""
    per_client = [math.ceil(n / batch_size) * local_epochs for n in client_sizes]
    mean = sum(per_client) / max(1, len(per_client))
    table = tuple(sum(per_client[c] for c in draw(r)) for r in range(1, rounds + 1))
    per_round_mean = (sum(table) / len(table)) if table else mean
    return StepCosts(per_round=table, mean=per_round_mean, exact=exact)


@dataclass(frozen=True)
class Entry:
    """A candidate as the plan sees it: its Optuna params, its spend curve, its label."""

    params: dict[str, Any]
    curve: tuple[float, ...]
    label: str
    key: str


def cost(entries: Iterable[Entry], fraction: float, steps: StepCosts) -> int:
    """Client steps of training every entry from scratch to ``fraction`` of its budget."""
    return sum(steps.upto(rounds_at(e.curve, fraction)) for e in entries)


def first_rung(
    entries: Sequence[Entry], *, steps: StepCosts, cap: int | None, levels: int, n_trials: int
) -> tuple[float, int]:
    """(fraction, how many candidates) of rung 0. With a cap: the deepest fraction between
    MIN_FRACTION and 2^-(levels-1) at which every entry fits the cap while leaving room for two
    average entries at twice that depth (a second rung to compare at); when none does, as many
    entries as fit so at the shallowest of them. Without a cap: ``n_trials`` at 2^-(levels-1)."""
    top = 2.0 ** -(max(1, levels) - 1)
    allowed = [f for f in FRACTIONS if min(MIN_FRACTION, top) <= f <= top]
    n = len(entries)
    if cap is None:
        return allowed[-1], min(n, n_trials)

    def mean(f: float) -> float:
        return cost(entries, f, steps) / max(1, n)

    def reserve(f: float) -> float:
        return 2 * mean(min(1.0, 2 * f))

    for f in reversed(allowed):
        if cost(entries, f, steps) + reserve(f) <= cap:
            return f, n
    f = allowed[0]
    return f, max(1, min(n, int((cap - reserve(f)) // max(mean(f), 1.0))))


def promote(scored: Sequence[tuple[Entry, float]], *, eta: int, maximize: bool) -> list[Entry]:
    """The best max(2, ceil(n / eta)) of a rung (ties: the earlier)."""
    if len(scored) <= 1:
        return [e for e, _ in scored]
    keep = max(2, math.ceil(len(scored) / eta))
    sign = -1.0 if maximize else 1.0
    order = sorted(range(len(scored)), key=lambda i: (sign * scored[i][1], i))
    return [scored[i][0] for i in order[:keep]]


def next_fraction(
    entries: Sequence[Entry],
    *,
    current: float,
    remaining: int | None,
    steps: StepCosts,
    eta: int,
) -> float | None:
    """The deepest fraction beyond ``current`` the entries can afford: half of what is left
    while more than two of them remain (another rung may follow), all of it for two; None when
    not even twice the current depth fits (or the current rung was the whole budget)."""
    deeper = [f for f in FRACTIONS if f > current]
    if not deeper:
        return None
    if remaining is None:
        return min(1.0, current * eta)
    share = remaining * (DEPTH_SHARE if len(entries) > 2 else 1.0)
    fits = [f for f in deeper if cost(entries, f, steps) <= share]
    return fits[-1] if fits else None


def next_rung(
    scored: Sequence[tuple[Entry, float]],
    *,
    current: float,
    remaining: int | None,
    steps: StepCosts,
    eta: int,
    maximize: bool,
) -> tuple[list[Entry], float] | None:
    """The next rung: the best ``k`` of this one at the deepest fraction they can afford, for
    ``k`` from max(2, ceil(n / eta)) down to 2 (the deeper rung wins; at equal depth the wider
    one); None when no two entries can go deeper."""
    ranked = promote(scored, eta=1, maximize=maximize)  # every entry, best first
    widest = len(promote(scored, eta=eta, maximize=maximize))
    best: tuple[list[Entry], float] | None = None
    for k in range(widest, 1, -1):
        chosen = ranked[:k]
        f = next_fraction(chosen, current=current, remaining=remaining, steps=steps, eta=eta)
        if f is not None and (best is None or f > best[1]):
            best = (chosen, f)
    return best
