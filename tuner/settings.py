"""The tuning configuration: one frozen, validated record that everything downstream trusts."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from planner.limits import is_int, is_number
from planner.method_spec import METHODS

PrunerName = Literal["sha", "hyperband", "median", "none"]
SamplerName = Literal["tpe", "random"]
PRUNERS: tuple[str, ...] = ("sha", "hyperband", "median", "none")
# The objective: validation only (the test split is reported, never selected on). "val_*" is the
# served model (P masked to the download mask, what a client receives; FLASC evaluates this),
# "*_server" the server's dense P.
METRIC_DIRECTION: dict[str, str] = {
    "val_accuracy": "maximize",
    "val_accuracy_server": "maximize",
    "val_loss": "minimize",
    "val_loss_server": "minimize",
}
METRICS: tuple[str, ...] = tuple(METRIC_DIRECTION)
TOPK_MODES: tuple[str, ...] = ("global", "per-tensor")
SAMPLERS: tuple[str, ...] = ("tpe", "random")
# halving: floss's compute-aware successive halving over the planner's candidates
# (tuner/rungs.py, tuner/halving.py); optuna: Optuna's sampler proposes, its pruner stops trials early
SearchName = Literal["halving", "optuna"]
SEARCHES: tuple[str, ...] = ("halving", "optuna")
DEFAULT_STORAGE = "sqlite:///floss-tune.db"
DEFAULT_STUDY = "floss"
# Optuna keeps study names in a VARCHAR(512); we also keep them to characters that are safe in a
# file name, because the export folder and the plot title use them.
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class TuneError(ValueError):
    """A tuning request that cannot be met; the message names the value."""


def check_metric(metric: str) -> str:
    if metric not in METRIC_DIRECTION:
        raise TuneError(f"--metric must be one of {', '.join(METRICS)}, but got {metric!r}.")
    return metric


def check_choices(values: object, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, (tuple, list)) or not values:
        raise TuneError(f"{name} must be a non-empty list of {', '.join(allowed)}, got {values!r}.")
    for v in values:
        if v not in allowed:
            raise TuneError(f"{name}: {v!r} is not one of {', '.join(allowed)}.")
    if len(set(values)) != len(values):
        raise TuneError(f"{name} names a value twice: {', '.join(values)}.")
    return tuple(values)


def check_methods(methods: object) -> tuple[str, ...]:
    return check_choices(methods, METHODS, "--methods")


def check_topks(topks: object) -> tuple[str, ...]:
    return check_choices(topks, TOPK_MODES, "--topk")


def check_study_name(name: str) -> str:
    if not isinstance(name, str) or not _STUDY_NAME.match(name):
        raise TuneError(
            f"study name {name!r} must be 1-128 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return name


def check_budget_scale(scale: float) -> float:
    if not is_number(scale):
        raise TuneError(f"--budget-scale must be a number in (0, 1], but got {scale!r}.")
    if not math.isfinite(scale) or not 0 < scale <= 1:
        raise TuneError(f"--budget-scale must be in (0, 1], but got {scale!r}.")
    return float(scale)


@dataclass(frozen=True, kw_only=True)
class TuneSettings:
    """How a study searches; what it searches over comes from the planner, priced into a
    ``tuner.search_space.SearchSpace``."""

    storage: str = field(default=DEFAULT_STORAGE, metadata={"help": "Optuna storage URL or path"})
    study_name: str = field(default=DEFAULT_STUDY, metadata={"help": "study name in the storage"})
    n_trials: int = field(
        default=20, metadata={"help": "finished (complete or pruned) trials the study aims for"}
    )
    timeout_seconds: float | None = field(
        default=None, metadata={"help": "this worker stops starting trials after this long"}
    )
    max_client_steps: int | None = field(
        default=None,
        metadata={"help": "compute cap: client optimizer steps summed over the whole study"},
    )
    budget_scale: float = field(
        default=1.0, metadata={"help": "trials run on this fraction of the budget"}
    )
    levels: int = field(
        default=4, metadata={"help": "fidelity checkpoints: 1/2^(levels-1), ..., 1/2, 1"}
    )
    search: SearchName = field(
        default="optuna",
        metadata={
            "help": "halving (floss's rungs, floss-tune's default) | optuna (sampler + pruner)"
        },
    )
    pruner: PrunerName = "sha"
    reduction_factor: int = field(default=2, metadata={"help": "eta of the halving pruners"})
    sampler: SamplerName = "tpe"
    seed: int | None = None
    n_startup_trials: int = field(
        default=8, metadata={"help": "TPE: random trials (after the enqueued seeds) before TPE"}
    )
    tune_lr: bool = field(default=False, metadata={"help": "also search client and server lr"})
    seed_heuristics: bool = field(
        default=True, metadata={"help": "enqueue dense LoRA and d_up = d_down/S first"}
    )
    trial_clients_per_round: int | None = field(
        default=None, metadata={"help": "train trials on this many clients per round"}
    )
    metric: str | None = field(
        default=None,
        metadata={"help": "objective (validation only); None: val_accuracy, val_loss for lm"},
    )
    heartbeat_seconds: int = field(
        default=30,
        metadata={"help": "SQLite/PostgreSQL: a worker's beat; 3 missed = its trial is retried"},
    )

    def __post_init__(self) -> None:
        check_study_name(self.study_name)
        if not isinstance(self.storage, str) or not self.storage.strip():
            raise TuneError(f"--storage must be a URL or a file path, but got {self.storage!r}.")
        _at_least(self.n_trials, 1, "--n-trials")
        if self.timeout_seconds is not None and not (
            math.isfinite(self.timeout_seconds) and self.timeout_seconds > 0
        ):
            raise TuneError(f"--timeout must be positive, but got {self.timeout_seconds!r}.")
        if self.max_client_steps is not None:
            _at_least(self.max_client_steps, 1, "--max-client-steps")
        check_budget_scale(self.budget_scale)
        if not is_int(self.levels):
            raise TuneError(f"--levels must be an integer in [1, 8], but got {self.levels!r}.")
        if not 1 <= self.levels <= 8:
            raise TuneError(f"--levels must be in [1, 8], but got {self.levels}.")
        if self.search not in SEARCHES:
            raise TuneError(
                f"--search must be one of {', '.join(SEARCHES)}, but got {self.search!r}."
            )
        if self.pruner not in PRUNERS:
            raise TuneError(
                f"--pruner must be one of {', '.join(PRUNERS)}, but got {self.pruner!r}."
            )
        _at_least(self.reduction_factor, 2, "--reduction-factor")
        if self.sampler not in SAMPLERS:
            raise TuneError(
                f"--sampler must be one of {', '.join(SAMPLERS)}, but got {self.sampler!r}."
            )
        _at_least(self.n_startup_trials, 0, "--n-startup-trials")
        if self.trial_clients_per_round is not None:
            _at_least(self.trial_clients_per_round, 1, "--trial-clients-per-round")
        if self.metric is not None:
            check_metric(self.metric)
        _at_least(self.heartbeat_seconds, 1, "--heartbeat")


def _at_least(value: object, low: int, name: str) -> None:
    if not is_int(value) or value < low:
        raise TuneError(f"{name} must be an integer >= {low}, but got {value!r}.")
