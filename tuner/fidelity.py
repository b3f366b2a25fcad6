"""Multi-fidelity at exact fractions of the budget, the same for every configuration.

A trial reports its validation metric when it has spent 1/2^(L-1), ..., 1/4, 1/2 and all of its
planned spend (L = ``levels``). The rounds where that happens are known before training: the
trial's rounds are priced one by one (``planner.pricing``, the trainer's own seeded prices), and
for each fraction f the checkpoint is

    the first round r whose cumulative spend reaches f * S:  cum(r) >= f * S,

where S = cum(R) is what the trial's R rounds cost (the trial budget less the unspent remainder,
which is under one round's cost; less when ``--max-rounds`` caps the rounds). Spend is simulated
seconds for time and dense-round budgets, bytes for byte budgets. So cum(r-1) < f*S <= cum(r):
every checkpoint lies within one round's cost past its target, for cheap and dense configs alike,
and f = 1 is the last round. The trainer evaluates exactly those rounds (``eval_rounds``), so a
checkpoint is never pushed to a later evaluated round.

The step reported to Optuna is the fraction in units of the smallest one (1, 2, 4, ..., 2^(L-1)),
so the rungs of successive halving and Hyperband with ``min_resource=1`` and
``reduction_factor=2`` fall exactly on the checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tuner.settings import METRICS

# Floating error in a cumulative sum must not move a checkpoint one round later.
_REL_EPS = 1e-9


class ReportingTrial(Protocol):
    """The part of ``optuna.Trial`` the reporter uses."""

    def report(self, value: float, step: int) -> None: ...

    def should_prune(self) -> bool: ...

    def set_user_attr(self, key: str, value: Any) -> None: ...


class RecordLike(Protocol):
    """The fields of ``trainer.records.RoundRecord`` the tuner reads."""

    round: int
    cum_bytes: int
    cum_sim_seconds: float
    val_loss: float | None
    val_accuracy: float | None
    client_steps: int

    def to_dict(self) -> dict[str, Any]: ...


def checkpoint_fractions(levels: int) -> tuple[float, ...]:
    """levels=4 -> (1/8, 1/4, 1/2, 1)."""
    if levels < 1:
        raise ValueError(f"levels must be at least 1, but got {levels=}.")
    return tuple(2.0 ** -(levels - 1 - j) for j in range(levels))


def checkpoint_steps(levels: int) -> tuple[int, ...]:
    """levels=4 -> (1, 2, 4, 8): the Optuna step of each checkpoint."""
    return tuple(2**j for j in range(levels))


def checkpoint_rounds(cum_spend: Sequence[float], fractions: Sequence[float]) -> tuple[int, ...]:
    """For each fraction f, the first round (1-based) with cum_spend[r-1] >= f * cum_spend[-1].

    ``cum_spend`` is the cumulative planned spend after each round (non-decreasing, positive).
    """
    if not cum_spend:
        raise ValueError("cum_spend is empty: a trial needs at least one round.")
    total = float(cum_spend[-1])
    if not total > 0:
        raise ValueError(f"the trial's planned spend must be positive, but got {total!r}.")
    out = []
    r = 0
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"fractions must be in (0, 1], but got {f!r}.")
        target = f * total * (1 - _REL_EPS)
        while cum_spend[r] < target:
            r += 1
        out.append(r + 1)
    return tuple(out)


def metric_value(record: Any, metric: str) -> float | None:
    """A validation metric of a round (served or server model), None when not evaluated."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, but got {metric!r}.")
    value = getattr(record, metric, None)
    return None if value is None else float(value)


class FidelityReporter:
    """The ``on_round`` callback of one trial: reports at the checkpoint rounds, asks the pruner,
    keeps the records and the compute spent. Returning False stops training after that round."""

    def __init__(
        self,
        *,
        trial: ReportingTrial,
        checkpoints: Sequence[int],
        metric: str,
        steps_before: int = 0,
        max_client_steps: int | None = None,
        on_checkpoint: Callable[[int, float], None] | None = None,
    ) -> None:
        if not checkpoints or any(r < 1 for r in checkpoints):
            raise ValueError(f"checkpoints must be rounds >= 1, but got {list(checkpoints)!r}.")
        if list(checkpoints) != sorted(checkpoints):
            raise ValueError(f"checkpoints must not decrease, but got {list(checkpoints)!r}.")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, but got {metric!r}.")
        self.trial = trial
        self.checkpoints = tuple(int(r) for r in checkpoints)
        self.rounds = self.checkpoints[-1]
        self.metric = metric
        self.steps = checkpoint_steps(len(self.checkpoints))
        self.steps_before = steps_before
        self.max_client_steps = max_client_steps
        self.on_checkpoint = on_checkpoint
        self.records: list[dict[str, Any]] = []
        self.reported: list[tuple[int, float]] = []
        self.client_steps = 0
        self.pruned = False
        self.capped = False
        self._next = 0

    @property
    def eval_rounds(self) -> tuple[int, ...]:
        """The rounds the trainer must evaluate (``train(..., eval_rounds=...)``)."""
        return tuple(sorted(set(self.checkpoints)))

    def __call__(self, record: RecordLike) -> bool:
        self.records.append(record.to_dict())
        self.client_steps += int(record.client_steps)
        self.trial.set_user_attr("client_steps", self.client_steps)
        if not self._report_due(record):
            return False
        if (
            self.max_client_steps is not None
            and self.steps_before + self.client_steps >= self.max_client_steps
            and record.round < self.rounds
        ):
            self.capped = True
            return False
        return True

    def _report_due(self, record: RecordLike) -> bool:
        """Report every checkpoint that falls on this round; False when the pruner says stop."""
        while self._next < len(self.checkpoints) and self.checkpoints[self._next] <= record.round:
            value = metric_value(record, self.metric)
            if value is None:
                raise RuntimeError(
                    f"round {record.round} is a fidelity checkpoint but has no {self.metric}: "
                    "the trainer must evaluate every round in eval_rounds."
                )
            step = self.steps[self._next]
            self.trial.report(value, step=step)
            self.reported.append((step, value))
            if self.on_checkpoint is not None:
                self.on_checkpoint(step, value)
            self._next += 1
            if self._next < len(self.checkpoints) and self.trial.should_prune():
                self.pruned = True
                return False
        return True

    @property
    def finished(self) -> bool:
        """True when the final checkpoint (the whole budget) was reported."""
        return self._next == len(self.checkpoints)

    @property
    def final_value(self) -> float | None:
        return self.reported[-1][1] if self.finished else None
