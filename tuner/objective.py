"""One trial: pick a feasible candidate, train it on the trial budget, report at budget fractions.

The trainer is injected (``train_fn`` has the signature of ``trainer.run.train``), so the same
objective runs a real FLoSS training or, in tests, a fake one that returns in milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tuner.fidelity import FidelityReporter, eval_every_for
from tuner.settings import TuneSettings
from tuner.space import Candidate, SearchSpace, suggest

if TYPE_CHECKING:
    import optuna

TrainFn = Callable[..., Any]
LR_SPAN = 10.0  # learning rates are searched log-uniformly within x/÷ this of the base config's
METRIC_DIRECTION = {"val_accuracy": "maximize", "val_loss": "minimize"}
# user attribute keys (JSON values; exports read them back without re-running anything)
ATTR_KEY = "key"
ATTR_CANDIDATE = "candidate"
ATTR_CONFIG = "config"
ATTR_FULL_CONFIG = "full_config"
ATTR_RECORDS = "records"
ATTR_STEPS = "client_steps"
ATTR_END = "end"  # complete | pruned | diverged | capped | duplicate


def candidate_key(candidate: Candidate, lrs: dict[str, float]) -> str:
    """A string that is equal for two trials that would train the same thing."""
    parts = [f"r{candidate.rank}", f"{candidate.d_down:.12g}", f"{candidate.d_up:.12g}"]
    parts += [f"{k}={v:.6g}" for k, v in sorted(lrs.items())]
    return "|".join(parts)


def trial_config(
    base: Any,
    candidate: Candidate,
    *,
    lrs: dict[str, float],
    levels: int,
    clients_per_round: int | None,
) -> Any:
    """The RunConfig a trial trains: the base config with the candidate, trial rounds and an
    evaluation schedule that lands on every budget checkpoint."""
    changes: dict[str, Any] = {
        "method": "floss",
        "rank": candidate.rank,
        "d_down": candidate.d_down,
        "d_up": candidate.d_up,
        "rounds": candidate.rounds,
        "eval_every": eval_every_for(candidate.rounds, levels),
        "checkpoint_every": 0,  # trials keep no files; their records go to the study
        **lrs,
    }
    if clients_per_round is not None:
        changes["clients_per_round"] = min(clients_per_round, base.clients_per_round)
    return replace(base, **changes)


def full_config(base: Any, candidate: Candidate, *, lrs: dict[str, float]) -> Any:
    """The RunConfig of the full training run (full budget rounds, the base eval schedule)."""
    return replace(
        base,
        method="floss",
        rank=candidate.rank,
        d_down=candidate.d_down,
        d_up=candidate.d_up,
        rounds=candidate.full_rounds,
        **lrs,
    )


def client_steps_spent(study: optuna.Study, *, exclude: int | None = None) -> int:
    """Client optimizer steps over every trial of the study (running ones included)."""
    return sum(
        int(t.user_attrs.get(ATTR_STEPS, 0))
        for t in study.get_trials(deepcopy=False)
        if t.number != exclude
    )


@dataclass
class Objective:
    space: SearchSpace
    base_config: Any
    settings: TuneSettings
    train_fn: TrainFn
    metric: str = "val_accuracy"
    workload: Any = None
    diverged: tuple[type[BaseException], ...] = ()
    log: Callable[[str], None] = field(default=lambda _msg: None)

    def __post_init__(self) -> None:
        if self.metric not in METRIC_DIRECTION:
            raise ValueError(f"metric must be val_accuracy or val_loss, but got {self.metric!r}.")

    @property
    def direction(self) -> str:
        return METRIC_DIRECTION[self.metric]

    def planned_spend(self, candidate: Candidate, config: Any) -> float:
        """What the trial will spend by the planner's prices: its rounds times one round's cost
        (at most the trial budget; less when --max-rounds caps the rounds). Bytes scale with the
        clients per round when trials train a subset."""
        if self.space.budget_kind == "seconds":
            return candidate.rounds * candidate.seconds_per_round
        share = config.clients_per_round / self.base_config.clients_per_round
        return candidate.rounds * candidate.bytes_per_round * share

    def suggest_lrs(self, trial: optuna.Trial) -> dict[str, float]:
        if not self.settings.tune_lr:
            return {}
        out = {}
        for name in ("client_lr", "server_lr"):
            base = float(getattr(self.base_config, name))
            out[name] = trial.suggest_float(name, base / LR_SPAN, base * LR_SPAN, log=True)
        return out

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        candidate = suggest(trial, self.space)
        lrs = self.suggest_lrs(trial)
        key = candidate_key(candidate, lrs)
        trial.set_user_attr(ATTR_KEY, key)
        trial.set_user_attr(ATTR_CANDIDATE, candidate.to_dict())
        config = trial_config(
            self.base_config,
            candidate,
            lrs=lrs,
            levels=self.settings.levels,
            clients_per_round=self.settings.trial_clients_per_round,
        )
        trial.set_user_attr(ATTR_CONFIG, config.to_dict())
        trial.set_user_attr(
            ATTR_FULL_CONFIG, full_config(self.base_config, candidate, lrs=lrs).to_dict()
        )
        done = self._finished_twin(trial, key)
        if done is not None:
            trial.set_user_attr("duplicate_of", done.number)
            trial.set_user_attr(ATTR_END, "duplicate")
            self.log(f"trial {trial.number}: {candidate.label} already ran as trial {done.number}")
            if done.state == optuna.trial.TrialState.COMPLETE and done.value is not None:
                return float(done.value)
            raise optuna.TrialPruned(f"same as pruned trial {done.number}")
        steps_before = client_steps_spent(trial.study, exclude=trial.number)
        cap = self.settings.max_client_steps
        if cap is not None and steps_before >= cap:
            trial.set_user_attr(ATTR_END, "capped")
            trial.study.stop()
            raise optuna.TrialPruned("compute cap reached before this trial")
        reporter = FidelityReporter(
            trial=trial,
            rounds=candidate.rounds,
            budget=self.planned_spend(candidate, config),
            budget_kind=self.space.budget_kind,
            levels=self.settings.levels,
            metric=self.metric,
            steps_before=steps_before,
            max_client_steps=cap,
        )
        self.log(f"trial {trial.number}: {candidate.label}, {candidate.rounds} rounds")
        try:
            result = self.train_fn(
                config, on_round=reporter, progress=False, workload=self.workload
            )
        except self.diverged as exc:
            record = getattr(exc, "record", None)  # the trainer attaches the NaN round's record
            if record is not None and hasattr(record, "to_dict"):
                reporter.records.append(record.to_dict())
                reporter.client_steps += int(getattr(record, "client_steps", 0))
            self._finish(trial, reporter, "diverged")
            raise optuna.TrialPruned(f"diverged: {exc}") from None
        except BaseException:  # Ctrl-C or an error: keep what was trained; optuna marks it failed
            self._finish(trial, reporter, "interrupted")
            raise
        if reporter.pruned or reporter.capped:
            self._finish(trial, reporter, "pruned" if reporter.pruned else "capped")
            if reporter.capped:
                trial.study.stop()
            raise optuna.TrialPruned()
        self._finish(trial, reporter, "complete")
        value = reporter.final_value
        if value is None:
            value = getattr(result, f"final_{self.metric}", None)
        if value is None or not math.isfinite(value):
            raise ValueError(
                f"trial {trial.number}: training ended without a finite {self.metric}."
            )
        return float(value)

    def _finish(self, trial: optuna.Trial, reporter: FidelityReporter, end: str) -> None:
        trial.set_user_attr(ATTR_RECORDS, reporter.records)
        trial.set_user_attr(ATTR_STEPS, reporter.client_steps)
        trial.set_user_attr(ATTR_END, end)

    @staticmethod
    def _finished_twin(trial: optuna.Trial, key: str) -> optuna.trial.FrozenTrial | None:
        """A finished trial (complete or pruned, not a duplicate itself) with the same key."""
        from optuna.trial import TrialState

        for t in trial.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
        ):
            if t.user_attrs.get(ATTR_KEY) == key and "duplicate_of" not in t.user_attrs:
                # a pruned twin cut short by the compute cap says nothing about the config
                if t.user_attrs.get(ATTR_END) in ("capped",):
                    continue
                return t
        return None
