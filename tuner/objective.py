"""One trial: pick a feasible candidate, train it on the trial budget, report at budget fractions.

The trainer is injected (``train_fn`` has the signature of ``trainer.run.train``), so the same
objective runs a real FLoSS training or, in tests, a fake one that returns in milliseconds.

Selection reads validation metrics only (``metric``). A completed trial's test-split metrics
(``TEST_METRICS``) are stored as user attributes for the reports and the export; nothing that
ranks, prunes or recommends trials reads them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tuner.fidelity import FidelityReporter, checkpoint_fractions, checkpoint_rounds
from tuner.settings import METRIC_DIRECTION, METRICS, TuneSettings
from tuner.space import Candidate, SearchSpace, suggest

if TYPE_CHECKING:
    import optuna

TrainFn = Callable[..., Any]
LR_SPAN = 10.0  # learning rates are searched log-uniformly within x/÷ this of the base config's
# user attribute keys (JSON values; exports read them back without re-running anything)
ATTR_KEY = "key"
ATTR_CANDIDATE = "candidate"
ATTR_CONFIG = "config"
ATTR_FULL_CONFIG = "full_config"
ATTR_RECORDS = "records"
ATTR_STEPS = "client_steps"
ATTR_END = "end"  # complete | pruned | diverged | capped | duplicate
ATTR_CHECKPOINTS = "checkpoint_rounds"  # the round of each fidelity step (1/8, 1/4, ... of spend)
# reported on complete trials, never selected on (attribute names = RunResult fields)
TEST_METRICS = ("test_accuracy", "test_accuracy_server", "test_loss", "test_loss_server")


def trained_as(candidate: Candidate) -> tuple[str, str]:
    """(method, top-k mode) as far as training can tell them apart: FLoSS sending every entry
    both ways is dense LoRA, and the top-k mode only matters when something is cut."""
    dense = candidate.d_down == 1.0 and candidate.d_up == 1.0
    if candidate.method == "floss" and dense:
        return "dense", "global"
    return candidate.method, candidate.topk if candidate.method == "floss" else "global"


def candidate_key(candidate: Candidate, lrs: dict[str, float]) -> str:
    """A string that is equal for two trials that would train the same thing."""
    method, topk = trained_as(candidate)
    parts = [method, topk, f"r{candidate.rank}"]
    parts += [f"{candidate.d_down:.12g}", f"{candidate.d_up:.12g}"]
    if candidate.keep_rate is not None:
        parts.append(f"keep={candidate.keep_rate:.12g}")
    parts += [f"{k}={v:.6g}" for k, v in sorted(lrs.items())]
    return "|".join(parts)


def method_fields(candidate: Candidate) -> dict[str, Any]:
    """The RunConfig fields a candidate sets (a saved config holds what its method uses)."""
    out: dict[str, Any] = {
        "method": candidate.method,
        "topk": candidate.topk,
        "rank": candidate.rank,
        "d_down": candidate.d_down,
        "d_up": candidate.d_up,
    }
    if candidate.keep_rate is not None:
        out["keep_rate"] = candidate.keep_rate
    return out


def trial_config(
    base: Any,
    candidate: Candidate,
    *,
    lrs: dict[str, float],
    clients_per_round: int | None,
) -> Any:
    """The RunConfig a trial trains: the base config with the candidate and the trial rounds.
    It evaluates only the fidelity checkpoints (passed as ``eval_rounds``) and the last round."""
    changes: dict[str, Any] = {
        **method_fields(candidate),
        "rounds": candidate.rounds,
        "eval_every": 0,
        "checkpoint_every": 0,  # trials keep no files; their records go to the study
        **lrs,
    }
    if clients_per_round is not None:
        changes["clients_per_round"] = min(clients_per_round, base.clients_per_round)
    return replace(base, **changes)


def full_config(base: Any, candidate: Candidate, *, lrs: dict[str, float]) -> Any:
    """The RunConfig of the full training run (full budget rounds, the base eval schedule)."""
    return replace(base, **method_fields(candidate), rounds=candidate.full_rounds, **lrs)


def test_split_metrics(result: Any, records: list[dict[str, Any]]) -> dict[str, float]:
    """Test-split metrics of a finished run (RunResult, else its last record); finite ones."""
    last = records[-1] if records else {}
    out = {}
    for name in TEST_METRICS:
        value = getattr(result, name, None)
        if value is None:
            value = last.get(name)
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[name] = float(value)
    return out


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
            raise ValueError(
                f"metric must be one of {', '.join(METRICS)}, but got {self.metric!r}."
            )

    @property
    def direction(self) -> str:
        return METRIC_DIRECTION[self.metric]

    def checkpoints(self, candidate: Candidate) -> tuple[int, ...]:
        """The round of each fidelity checkpoint, from the candidate's exact seeded prices (the
        base run's clients per round: trials on fewer clients keep the emulated run's rounds)."""
        fractions = checkpoint_fractions(self.settings.levels)
        return checkpoint_rounds(self.space.spend_curve(candidate), fractions)

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
            checkpoints=self.checkpoints(candidate),
            metric=self.metric,
            steps_before=steps_before,
            max_client_steps=cap,
        )
        trial.set_user_attr(ATTR_CHECKPOINTS, list(reporter.checkpoints))
        self.log(f"trial {trial.number}: {candidate.label}, {candidate.rounds} rounds")
        try:
            result = self.train_fn(
                config,
                on_round=reporter,
                progress=False,
                workload=self.workload,
                eval_rounds=reporter.eval_rounds,
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
        for name, test_value in test_split_metrics(result, reporter.records).items():
            trial.set_user_attr(name, test_value)  # reported, never selected on
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
