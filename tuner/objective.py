"""One trial: pick a feasible candidate, train it on the trial budget, report at budget fractions.

The trainer is injected (``train_fn`` has the signature of ``trainer.run.train``), so the same
objective runs a real FLoSS training or, in tests, a fake one that returns in milliseconds.

Selection reads validation metrics only (``metric``); the trial stores its configs, records and
test-split metrics as user attributes (``tuner.trial_attrs``). What it trains is
``tuner.trial_config``; the twins it defers to and the compute cap are read from the study
(``tuner.ledger``); an interrupted trial's checkpoint is kept, replayed and removed by
``tuner.trial_checkpoint`` (docs/tuner.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer import interrupt
from tuner.candidate import Candidate, candidate_label
from tuner.fidelity import FidelityReporter, checkpoint_fractions, checkpoint_rounds
from tuner.ledger import (
    TrialSkipped,
    client_steps_spent,
    earlier_live_twin,
    finished_twin,
    stop_study,
)
from tuner.orphans import ATTR_OWNER, owner_record
from tuner.rungs import ATTR_FRACTION, ATTR_RUNG, fidelity_suffix, rounds_at
from tuner.search_space import SearchSpace
from tuner.settings import METRIC_DIRECTION, METRICS, TuneSettings
from tuner.suggest import suggest
from tuner.trial_attrs import (
    ATTR_CANDIDATE,
    ATTR_CHECKPOINTS,
    ATTR_CONFIG,
    ATTR_DUPLICATE_OF,
    ATTR_END,
    ATTR_FULL_CONFIG,
    ATTR_KEY,
    ATTR_RECORDS,
    ATTR_RESUMED,
    ATTR_RETRY_OF,
    ATTR_SETTLES_AS,
    ATTR_STEPS,
    ATTR_VAL_EXAMPLES,
    test_split_metrics,
)
from tuner.trial_checkpoint import (
    checkpoint_key,
    forget_checkpoint,
    replay_records,
    saved_records,
    trial_checkpoint_dir,
)
from tuner.trial_config import full_config, trained_key, trial_config

if TYPE_CHECKING:
    import optuna

TrainFn = Callable[..., Any]
LR_SPAN = 10.0  # learning rates are searched log-uniformly within x/÷ this of the base config's


@dataclass
class Objective:
    """``study.optimize``'s objective: one trial of ``space``, trained by ``train_fn`` on the
    base config with the drawn candidate; returns its ``metric`` (pruned, skipped or interrupted
    trials raise, as Optuna expects)."""

    space: SearchSpace
    base_config: Any
    settings: TuneSettings
    train_fn: TrainFn
    metric: str = "val_accuracy"
    workload: Any = None
    diverged: tuple[type[BaseException], ...] = ()
    log: Callable[[str], None] = field(default=lambda _msg: None)
    # trials this objective failed on purpose (interrupted, skipped duplicates) and explained
    # in its own log line: run_study keeps Optuna from logging them again with a traceback
    quiet: set[int] = field(default_factory=set)
    # held while a trial decides whether it duplicates another (``tuner.study`` passes the
    # study lock): two workers that draw one configuration at the same moment train it once
    twin_lock: Callable[[], AbstractContextManager[object]] = field(default=nullcontext)
    # successive halving prices its rungs in client steps: rounds -> StepCosts of the base run
    # (None: from the workload and the trainer's seeded draws, ``tuner.halving.base_step_costs``)
    step_costs: Callable[[int], Any] | None = None
    # where interrupted trials keep their checkpoint (None: nowhere, a rerun trains from round 1;
    # a train_fn then needs no checkpoint_dir/resume arguments)
    checkpoint_root: Path | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRIC_DIRECTION:
            raise ValueError(
                f"metric must be one of {', '.join(METRICS)}, but got {self.metric!r}."
            )
        if self.space.trial_clients_per_round != self.settings.trial_clients_per_round:
            raise ValueError(  # the space keys the trials at its value: one value for both
                "the search space's trial_clients_per_round must be the settings' "
                f"({self.space.trial_clients_per_round} != "
                f"{self.settings.trial_clients_per_round})."
            )

    @property
    def direction(self) -> str:
        return METRIC_DIRECTION[self.metric]

    def checkpoints(self, candidate: Candidate, fraction: float | None = None) -> tuple[int, ...]:
        """The round of each fidelity checkpoint, from the candidate's exact seeded prices (the
        base run's clients per round: trials on fewer clients keep the emulated run's rounds).
        A successive-halving rung trial (``fraction``) has one: the round at that fraction."""
        curve = self.space.spend_curve(candidate)
        if fraction is not None:
            return (rounds_at(curve, fraction),)
        return checkpoint_rounds(curve, checkpoint_fractions(self.settings.levels))

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

        trial.set_user_attr(ATTR_OWNER, owner_record())  # first: a kill after this is found
        candidate = suggest(trial, self.space)
        lrs = self.suggest_lrs(trial)
        fraction = trial.user_attrs.get(ATTR_FRACTION)  # a halving rung: trains to that share
        if fraction is None and self.settings.search == "halving":
            trial.set_user_attr(ATTR_END, "skipped")  # failed: counts for nothing
            self.quiet.add(trial.number)
            raise TrialSkipped("successive halving trains the trials it enqueued only")
        key = trained_key(self.space, candidate, lrs) + fidelity_suffix(fraction)
        trial.set_user_attr(ATTR_KEY, key)
        trial.set_user_attr(ATTR_CANDIDATE, candidate.to_dict())
        config = trial_config(
            self.base_config,
            candidate,
            lrs=lrs,
            clients_per_round=self.space.trial_clients_per_round,
        )
        checkpoints = self.checkpoints(candidate, fraction)
        if fraction is not None:
            config = replace(config, rounds=checkpoints[-1])
        if self.workload is not None:
            trial.set_user_attr(ATTR_VAL_EXAMPLES, len(self.workload.val_rows(config)))
        trial.set_user_attr(ATTR_CONFIG, config.to_dict())
        trial.set_user_attr(
            ATTR_FULL_CONFIG, full_config(self.base_config, candidate, lrs=lrs).to_dict()
        )
        if interrupt.requested():  # came between two trials: this one has not started
            trial.set_user_attr(ATTR_END, "interrupted")
            self.quiet.add(trial.number)
            raise interrupt.Interrupted(f"trial {trial.number} ({candidate.label}) not started")
        with self.twin_lock():  # decide and mark as one step across workers
            done = finished_twin(trial, key)
            if done is not None:
                _mark_duplicate(trial, done, candidate)
                self.log(
                    f"trial {trial.number}: {candidate.label} already ran as trial {done.number}"
                )
                if done.state == optuna.trial.TrialState.COMPLETE and done.value is not None:
                    return float(done.value)
                raise optuna.TrialPruned(f"same as pruned trial {done.number}")
            twin = earlier_live_twin(trial, key, self.space)
            if twin is not None:
                _mark_duplicate(trial, twin, candidate)
                self.quiet.add(trial.number)
                self.log(
                    f"trial {trial.number}: {candidate.label} is {twin.state.name.lower()} as trial "
                    f"{twin.number}; skipped"
                )
                raise TrialSkipped(f"same as trial {twin.number} ({twin.state.name.lower()})")
        steps_before = client_steps_spent(trial.study, exclude=trial.number)
        cap = self.settings.max_client_steps
        if cap is not None and steps_before >= cap:
            trial.set_user_attr(ATTR_END, "capped")
            stop_study(trial.study)
            raise optuna.TrialPruned("compute cap reached before this trial")
        reporter = FidelityReporter(
            trial=trial,
            checkpoints=checkpoints,
            metric=self.metric,
            steps_before=steps_before,
            max_client_steps=cap,
        )
        trial.set_user_attr(ATTR_CHECKPOINTS, list(reporter.checkpoints))
        at = (
            ""
            if fraction is None
            else f" of {candidate.rounds} (rung {trial.user_attrs.get(ATTR_RUNG, 0)}: "
            f"{fraction:g} of its budget)"
        )
        root = self.checkpoint_root
        own = checkpoint_key(candidate, lrs, fraction)
        folder = None if root is None else trial_checkpoint_dir(root, own)
        saved = saved_records(root, folder, number=trial.number, log=self.log)
        if saved:
            source = trial.user_attrs.get(ATTR_RETRY_OF)
            of = "" if source is None else f" of interrupted trial {source}"
            at += f", resuming from round {len(saved) + 1} (the checkpoint{of})"
            trial.set_user_attr(ATTR_RESUMED, {"round": len(saved), "trial": source})
        self.log(f"trial {trial.number}: {candidate.label}, {config.rounds} rounds{at}")
        halted: list[int] = []  # the round after which an interrupt stopped training

        def on_round(record: Any) -> bool:
            go_on = reporter(record)
            if go_on and interrupt.requested() and record.round < config.rounds:
                halted.append(int(record.round))
                return False
            return go_on

        going_on = replay_records(reporter, saved, steps_before) if saved else True
        kept = folder is not None and folder.is_dir()  # a checkpoint is there to keep or drop
        try:
            if not going_on:  # the replayed records were enough to prune (or cap) it
                result = None
            else:
                more: dict[str, Any] = {}
                if folder is not None:
                    more = {"checkpoint_dir": folder, "resume": bool(saved)}
                result = self.train_fn(
                    config,
                    on_round=on_round,
                    progress=False,
                    workload=self.workload,
                    eval_rounds=reporter.eval_rounds,
                    **more,
                )
        except interrupt.Interrupted as exc:  # the trainer stopped at a round boundary
            result, halted = None, [len(reporter.records)]
            kept = bool(getattr(exc, "checkpoint", False))
        except self.diverged as exc:
            record = getattr(exc, "record", None)  # the trainer attaches the NaN round's record
            if record is not None and hasattr(record, "to_dict"):
                reporter.records.append(record.to_dict())
                reporter.client_steps += int(getattr(record, "client_steps", 0))
            self._finish(trial, reporter, "diverged")
            forget_checkpoint(root, folder)
            raise optuna.TrialPruned(f"diverged: {exc}") from None
        except BaseException:  # Ctrl-C or an error: keep what was trained; optuna marks it failed
            self._finish(trial, reporter, "interrupted")
            raise
        if reporter.pruned or reporter.capped:
            self._finish(trial, reporter, "pruned" if reporter.pruned else "capped")
            forget_checkpoint(root, folder)
            if reporter.capped:
                stop_study(trial.study)
            raise optuna.TrialPruned()
        if halted or result is None:  # failed, with end = interrupted: a rerun trains it again
            self._finish(trial, reporter, "interrupted")
            self.quiet.add(trial.number)
            where = f"after round {halted[-1]} of {config.rounds}" if halted else "at once"
            if kept and halted and halted[-1] > 0:
                where += f" (checkpoint kept: its rerun goes on from round {halted[-1] + 1})"
            raise interrupt.Interrupted(f"trial {trial.number} ({candidate.label}) stopped {where}")
        self._finish(trial, reporter, "complete")
        forget_checkpoint(root, folder)
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
        from trainer.records import json_safe

        # JSON has no NaN: a round nobody aggregated has a null loss, not the string "nan"
        reporter.records = json_safe(reporter.records)
        trial.set_user_attr(ATTR_RECORDS, reporter.records)
        trial.set_user_attr(ATTR_STEPS, reporter.client_steps)
        trial.set_user_attr(ATTR_END, end)


def _mark_duplicate(
    trial: optuna.Trial, twin: optuna.trial.FrozenTrial, candidate: Candidate
) -> None:
    """Mark ``trial`` the duplicate of ``twin`` (it trains nothing); when the twin is another
    configuration that trains the same trial (``SearchSpace.settles_as``), name it."""
    trial.set_user_attr(ATTR_DUPLICATE_OF, twin.number)
    trial.set_user_attr(ATTR_END, "duplicate")
    other = twin.user_attrs.get(ATTR_CANDIDATE)
    if isinstance(other, dict) and other.get("deadline") != candidate.deadline:
        trial.set_user_attr(ATTR_SETTLES_AS, candidate_label(other))
