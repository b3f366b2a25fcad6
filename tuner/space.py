"""The search space: the planner's feasible set, and how an Optuna trial picks one member of it.

Every candidate is a (rank, d_down, d_up) the planner found feasible twice: under the full budget
(which sets the rounds of the exported full run; ``--min-rounds``/``--max-rounds`` apply here) and
under the trial budget (the budget times ``--budget-scale``, with the round cap scaled alike),
which sets the rounds a trial trains.

How a trial picks (``suggest``): ``rank`` is categorical over the feasible ranks; ``d_down`` and
``d_up`` are log-uniform floats over the feasible density range, snapped to the nearest density of
the planner's grid (in log space), so TPE can learn that neighbouring densities behave alike.
A (rank, d_down, d_up) the budget cannot afford is projected to the nearest feasible candidate of
that rank (log distance in both densities; ties go to the cheaper). Fixed per-study choice lists
keep the Optuna distributions static, which RDB storages require ("dynamic value space" is refused).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Protocol

from planner.budget import Budget
from planner.plan import Plan, PlanRow, PlanSettings, heuristic_pairs, plan
from tuner.settings import TuneError, check_budget_scale

Key = tuple[int, Fraction, Fraction]


class SuggestingTrial(Protocol):
    """The part of ``optuna.Trial`` that ``suggest`` uses (a fake can stand in for it in tests)."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...


def density_key(d: float) -> Fraction:
    return Fraction(d).limit_denominator(1 << 40)


def density_label(d: float) -> str:
    """1 -> '1', 0.0625 -> '1/16', 0.3 -> '0.3'."""
    f = Fraction(d).limit_denominator(1 << 20)
    if abs(float(f) - d) < 1e-12 * max(d, 1e-300):
        return str(f)
    return f"{d:.4g}"


@dataclass(frozen=True, kw_only=True)
class Candidate:
    rank: int
    d_down: float
    d_up: float
    rounds: int  # affordable under the trial budget
    full_rounds: int  # affordable under the full budget
    bytes_per_round: int  # all sampled clients, both directions (planner)
    seconds_per_round: float
    why: str = ""

    @property
    def key(self) -> Key:
        return (self.rank, density_key(self.d_down), density_key(self.d_up))

    @property
    def label(self) -> str:
        return f"r{self.rank} d_down={density_label(self.d_down)} d_up={density_label(self.d_up)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "d_down": self.d_down,
            "d_up": self.d_up,
            "rounds": self.rounds,
            "full_rounds": self.full_rounds,
            "bytes_per_round": self.bytes_per_round,
            "seconds_per_round": self.seconds_per_round,
            "why": self.why,
        }


@dataclass(frozen=True, kw_only=True)
class SearchSpace:
    candidates: tuple[Candidate, ...]
    seeds: tuple[Candidate, ...]  # dense LoRA, then the d_up = d_down / S family
    budget_kind: str  # "seconds" or "bytes"
    trial_budget: float  # seconds or bytes of one trial
    full_budget: float

    def __post_init__(self) -> None:
        if not self.candidates:
            raise TuneError("the search space is empty: no configuration is feasible.")

    @property
    def ranks(self) -> list[int]:
        return sorted({c.rank for c in self.candidates})

    def density_range(self, which: str) -> tuple[float, float]:
        values = [getattr(c, which) for c in self.candidates]
        return min(values), max(values)

    def grid(self, which: str) -> list[float]:
        return sorted({getattr(c, which) for c in self.candidates})

    def lookup(self, rank: int, d_down: float, d_up: float) -> Candidate | None:
        key = (rank, density_key(d_down), density_key(d_up))
        return next((c for c in self.candidates if c.key == key), None)

    def nearest(self, rank: int, d_down: float, d_up: float) -> Candidate:
        """The feasible candidate of ``rank`` closest in log densities (ties: the cheaper)."""
        same = [c for c in self.candidates if c.rank == rank] or list(self.candidates)

        def distance(c: Candidate) -> tuple[float, float, int]:
            dist = abs(math.log2(c.d_down / d_down)) + abs(math.log2(c.d_up / d_up))
            return (round(dist, 9), abs(c.rank - rank), c.bytes_per_round)

        return min(same, key=distance)

    def summary(self) -> dict[str, Any]:
        """What identifies the space; stored on the study so a resume can check it matches."""
        return {
            "budget_kind": self.budget_kind,
            "trial_budget": self.trial_budget,
            "full_budget": self.full_budget,
            "candidates": len(self.candidates),
            "ranks": self.ranks,
        }


def snap(value: float, grid: Iterable[float]) -> float:
    """The grid value nearest to ``value`` in log space (ties: the smaller)."""
    return min(sorted(grid), key=lambda g: round(abs(math.log(g / value)), 12))


def scaled_budget(budget: Budget, scale: float) -> Budget:
    check_budget_scale(scale)
    if scale == 1.0:
        return budget
    amount = budget.amount * scale
    if budget.kind == "bytes":
        amount = float(math.floor(amount))
        if amount < 1:
            raise TuneError(f"--budget-scale {scale} leaves less than one byte of {budget.text!r}.")
    return replace(budget, amount=amount, text=f"{budget.text} x {scale:g}")


def _budget_amount(p: Plan) -> tuple[str, float]:
    if p.budget_seconds is not None:
        return "seconds", p.budget_seconds
    return "bytes", float(p.budget_bytes or 0)


def build_space(settings: PlanSettings, *, budget_scale: float = 1.0) -> SearchSpace:
    """Plan the full and the scaled budget; candidates are the configs feasible under both.

    Raises ``TuneError`` (a ``ValueError``) naming the budget when nothing is feasible.
    """
    from planner.plan import PlanError

    try:
        full = plan(settings)
        # Trials are the full run scaled down: the round cap scales too; any round is enough.
        cap = settings.max_rounds
        trial = plan(
            replace(
                settings,
                budget=scaled_budget(settings.budget, budget_scale),
                min_rounds=1,
                max_rounds=None if cap is None else max(1, math.ceil(cap * budget_scale)),
            )
        )
    except PlanError as exc:
        raise TuneError(f"no feasible configuration: {exc}") from None
    full_rows: dict[Key, PlanRow] = {
        (r.rank, density_key(r.d_down), density_key(r.d_up)): r for r in full.rows
    }
    candidates = []
    for row in trial.rows:
        key = (row.rank, density_key(row.d_down), density_key(row.d_up))
        if key not in full_rows:
            continue
        candidates.append(
            Candidate(
                rank=row.rank,
                d_down=row.d_down,
                d_up=row.d_up,
                rounds=row.rounds,
                full_rounds=full_rows[key].rounds,
                bytes_per_round=row.bytes_per_round,
                seconds_per_round=row.seconds_per_round,
                why=row.why,
            )
        )
    if not candidates:
        raise TuneError(
            f"no configuration is feasible under budget {settings.budget.text!r} scaled by "
            f"{budget_scale:g}."
        )
    seed_keys: list[Key] = [(settings.ref_rank, density_key(1.0), density_key(1.0))]
    seed_keys += [
        (settings.ref_rank, density_key(dd), density_key(du))
        for dd, du in heuristic_pairs(settings)
    ]
    by_key = {c.key: c for c in candidates}
    seeds: list[Candidate] = []
    for k in seed_keys:
        if k in by_key and by_key[k] not in seeds:
            seeds.append(by_key[k])
    kind, trial_amount = _budget_amount(trial)
    _, full_amount = _budget_amount(full)
    return SearchSpace(
        candidates=tuple(candidates),
        seeds=tuple(seeds),
        budget_kind=kind,
        trial_budget=trial_amount,
        full_budget=full_amount,
    )


def suggest(trial: SuggestingTrial, space: SearchSpace) -> Candidate:
    """Sample (rank, d_down, d_up) in the trial and return the feasible candidate it lands on."""
    rank = int(trial.suggest_categorical("rank", space.ranks))
    lo, hi = space.density_range("d_down")
    d_down = trial.suggest_float("d_down", lo, hi, log=True)
    lo, hi = space.density_range("d_up")
    d_up = trial.suggest_float("d_up", lo, hi, log=True)
    exact = space.lookup(rank, snap(d_down, space.grid("d_down")), snap(d_up, space.grid("d_up")))
    return exact or space.nearest(rank, d_down, d_up)


def seed_params(candidate: Candidate) -> dict[str, Any]:
    """The Optuna params that ``suggest`` maps back onto ``candidate`` (for enqueue_trial)."""
    return {"rank": candidate.rank, "d_down": candidate.d_down, "d_up": candidate.d_up}
