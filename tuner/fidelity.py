"""Multi-fidelity over the fraction of the budget spent.

A trial reports its validation metric when it has spent 1/2^(L-1), ..., 1/4, 1/2 and all of its
budget (L = ``levels``). Configurations with different round costs therefore meet the pruner at the
same share of the budget, not after the same number of rounds: a cheap sparse config that affords
400 rounds is compared at round 50 with a dense config at round 6, both having spent 1/8.

The step reported to Optuna is the fraction in units of the smallest one (1, 2, 4, ..., 2^(L-1)),
so the rungs of successive halving and Hyperband with ``min_resource=1`` and
``reduction_factor=2`` fall exactly on the checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

# Floating error in cum_sim_seconds / budget must not make a round miss its checkpoint.
_EPS = 1e-9


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


def eval_every_for(rounds: int, levels: int) -> int:
    """Evaluate often enough that every checkpoint has an evaluated round at or just after it."""
    return max(1, rounds // 2 ** (levels - 1))


def metric_value(record: RecordLike, metric: str) -> float | None:
    """Validation accuracy or loss of a round, None when that round was not evaluated."""
    if metric == "val_accuracy":
        return record.val_accuracy
    if metric == "val_loss":
        return record.val_loss
    raise ValueError(f"metric must be val_accuracy or val_loss, but got {metric!r}.")


class FidelityReporter:
    """The ``on_round`` callback of one trial: reports at checkpoints, asks the pruner, keeps the
    records and the compute spent. Returning False stops training after that round."""

    def __init__(
        self,
        *,
        trial: ReportingTrial,
        rounds: int,
        budget: float,
        budget_kind: str,
        levels: int,
        metric: str,
        steps_before: int = 0,
        max_client_steps: int | None = None,
        on_checkpoint: Callable[[int, float], None] | None = None,
    ) -> None:
        if rounds < 1:
            raise ValueError(f"rounds must be at least 1, but got {rounds=}.")
        if budget <= 0:
            raise ValueError(f"budget must be positive, but got {budget=}.")
        if budget_kind not in ("seconds", "bytes"):
            raise ValueError(f"budget_kind must be seconds or bytes, but got {budget_kind=}.")
        self.trial = trial
        self.rounds = rounds
        self.budget = budget
        self.budget_kind = budget_kind
        self.metric = metric
        self.fractions = checkpoint_fractions(levels)
        self.steps = checkpoint_steps(levels)
        self.steps_before = steps_before
        self.max_client_steps = max_client_steps
        self.on_checkpoint = on_checkpoint
        self.records: list[dict[str, Any]] = []
        self.reported: list[tuple[int, float]] = []
        self.client_steps = 0
        self.pruned = False
        self.capped = False
        self._next = 0

    def fraction_spent(self, record: RecordLike) -> float:
        """Share of the trial budget spent after ``record``; the last affordable round is 1."""
        if record.round >= self.rounds:
            return 1.0
        spent = record.cum_sim_seconds if self.budget_kind == "seconds" else record.cum_bytes
        return min(1.0, float(spent) / self.budget)

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
        """Report every checkpoint this round reached; False when the pruner says stop."""
        value = metric_value(record, self.metric)
        fraction = self.fraction_spent(record)
        while self._next < len(self.fractions) and fraction >= self.fractions[self._next] - _EPS:
            if value is None:
                return True  # not evaluated this round: report at the next evaluated one
            step = self.steps[self._next]
            self.trial.report(float(value), step=step)
            self.reported.append((step, float(value)))
            if self.on_checkpoint is not None:
                self.on_checkpoint(step, float(value))
            self._next += 1
            if self._next < len(self.fractions) and self.trial.should_prune():
                self.pruned = True
                return False
        return True

    @property
    def finished(self) -> bool:
        """True when the final checkpoint (the whole budget) was reported."""
        return self._next == len(self.fractions)

    @property
    def final_value(self) -> float | None:
        return self.reported[-1][1] if self.finished else None
