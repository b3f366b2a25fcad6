"""One trial: pick a feasible candidate, train it on the trial budget, report at budget fractions.

The trainer is injected (``train_fn`` has the signature of ``trainer.run.train``), so the same
objective runs a real FLoSS training or, in tests, a fake one that returns in milliseconds.

Selection reads validation metrics only (``metric``). A completed trial's test-split metrics
(``TEST_METRICS``) are stored as user attributes for the reports and the export; nothing that
ranks, prunes or recommends trials reads them.

Interrupts: with a ``checkpoint_root`` folder (``tuner.storage.trial_checkpoints``), a trial that an
interrupt stops at a round boundary leaves the trainer's checkpoint of that round in
``checkpoint_root/<digest of its key>/``; the rerun's trial of the same configuration replays the
checkpoint's records through the reporter (the same reports, the same pruning decisions) and
trains from the next round on, bit for bit the uninterrupted trial. It counts only the client
steps it trained itself (the interrupted trial keeps those before), and the folder is removed
once the trial ends any other way.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer import interrupt
from tuner.candidate import Candidate
from tuner.fidelity import FidelityReporter, checkpoint_fractions, checkpoint_rounds
from tuner.orphans import ATTR_OWNER, owner_record
from tuner.rungs import ATTR_FRACTION, ATTR_RUNG, fidelity_suffix, rounds_at
from tuner.search_space import SearchSpace
from tuner.settings import METRIC_DIRECTION, METRICS, TuneSettings
from tuner.suggest import suggest

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
ATTR_END = "end"  # complete | pruned | diverged | capped | duplicate | interrupted
ATTR_DUPLICATE_OF = "duplicate_of"
ATTR_SETTLES_AS = "settles_as"  # label of the earlier candidate whose trial trains the same
ATTR_RETRY_OF = "retry_of"  # an enqueued retry of an interrupted trial
ATTR_CHECKPOINTS = "checkpoint_rounds"  # the round of each fidelity step (1/8, 1/4, ... of spend)
ATTR_VAL_EXAMPLES = "val_examples"  # how many validation texts the value was measured on
ATTR_RESUMED = "resumed_from"  # {"round": R, "trial": N | None}: went on from a checkpoint
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
    if (candidate.precision_down, candidate.precision_up) != ("fp32", "fp32"):
        parts.append(f"values={candidate.precision_down}/{candidate.precision_up}")
    if candidate.round_policy:  # a fleet: the policies change what is trained
        deadline = "" if candidate.deadline is None else f"@{candidate.deadline:.12g}s"
        parts.append(f"fleet={candidate.round_policy}/{candidate.density_policy}{deadline}")
    parts += [f"{k}={v:.6g}" for k, v in sorted(lrs.items())]
    return "|".join(parts)


def trained_key(
    space: SearchSpace,
    candidate: Candidate,
    lrs: dict[str, float],
    *,
    clients_per_round: int | None = None,
) -> str:
    """``candidate_key`` of what ``candidate``'s trial trains: configurations that settle
    identically (``SearchSpace.settles_as``: a deadline that binds no client, say) share one key,
    so only the first trains and the other is its duplicate."""
    return candidate_key(space.settles_as(candidate, clients_per_round=clients_per_round), lrs)


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
    if candidate.round_policy:  # a fleet run: the candidate's policies (the fleet is the base's)
        out["round_policy"] = candidate.round_policy
        out["density_policy"] = candidate.density_policy
        out["deadline_seconds"] = candidate.deadline
    return out


def precision_fields(base: Any, candidate: Candidate) -> dict[str, Any]:
    """precision_down/precision_up when the candidate's differ from the base run's (a searched
    bit width); nothing otherwise, so an unsearched config stays as the base wrote it."""
    wire = (candidate.precision_down, candidate.precision_up)
    if wire == getattr(base, "wire_precisions", ("fp32", "fp32")):
        return {}
    return {"precision_down": wire[0], "precision_up": wire[1]}


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
        **precision_fields(base, candidate),
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
    return replace(
        base,
        **method_fields(candidate),
        **precision_fields(base, candidate),
        rounds=candidate.full_rounds,
        **lrs,
    )


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


def stop_study(study: optuna.Study) -> None:
    """Stop ``study.optimize`` after this trial. Outside it (``tuner.worker``'s loop, which
    checks the compute cap itself between trials) Optuna raises RuntimeError: nothing to stop."""
    with suppress(RuntimeError):
        study.stop()


def study_target(
    n_trials: int, space: SearchSpace, *, tune_lr: bool, clients_per_round: int | None = None
) -> int:
    """The finished trials a study runs to, duplicates not counted: ``n_trials``, or each
    configuration of a smaller space once (a target the space cannot fill would never be
    reached). Tuned learning rates make the space endless."""
    if tune_lr:
        return n_trials
    keys = {
        trained_key(space, c, {}, clients_per_round=clients_per_round) for c in space.candidates
    }
    return min(n_trials, len(keys))


def counts_towards_target(trial: optuna.trial.FrozenTrial) -> bool:
    """A finished trial that trained its configuration (not a duplicate of an earlier one)."""
    return trial.state.name in ("COMPLETE", "PRUNED") and ATTR_DUPLICATE_OF not in trial.user_attrs


def trial_checkpoint_dir(root: Path, key: str) -> Path:
    """The folder of one configuration's interrupted-trial checkpoint under ``root``."""
    return root / hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def checkpointed_round(root: Path | None, key: str | None) -> int | None:
    """The round the checkpoint of configuration ``key`` holds (None: none kept)."""
    if root is None or key is None:
        return None
    folder = trial_checkpoint_dir(root, key)
    if not folder.is_dir():
        return None
    from trainer.checkpoint import checkpoint_round

    return checkpoint_round(folder)


def _drop_checkpoint(root: Path, folder: Path) -> None:
    """Remove a trial's checkpoint folder, then the study's and the root's when left empty."""
    shutil.rmtree(folder, ignore_errors=True)
    for parent in (root, root.parent):
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break


class TrialSkipped(Exception):
    """A trial that trains nothing because the same configuration is running or waiting as an
    earlier trial (two workers enqueued one seed). ``run_study`` lets Optuna mark it failed and
    go on (``catch``): a failed trial counts towards nothing and the sampler ignores it."""


def planned_key(
    trial: optuna.trial.FrozenTrial, space: SearchSpace, *, clients_per_round: int | None = None
) -> str | None:
    """The candidate key of a trial, finished, running or only enqueued (from its fixed
    params when it has not set its key yet; ``trained_key``)."""
    if ATTR_KEY in trial.user_attrs:
        return str(trial.user_attrs[ATTR_KEY])
    fixed = trial.system_attrs.get("fixed_params") or trial.params
    try:
        cand = space.candidate_for(fixed)
    except (KeyError, TypeError, ValueError):
        return None
    lrs = {k: float(fixed[k]) for k in ("client_lr", "server_lr") if k in fixed}
    key = trained_key(space, cand, lrs, clients_per_round=clients_per_round)
    return key + fidelity_suffix(trial.user_attrs.get(ATTR_FRACTION))


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
        settled = self.space.settles_as(
            candidate, clients_per_round=self.settings.trial_clients_per_round
        )
        key = candidate_key(settled, lrs) + fidelity_suffix(fraction)
        trial.set_user_attr(ATTR_KEY, key)
        if settled.key != candidate.key:  # trains exactly as an earlier candidate: one trial
            trial.set_user_attr(ATTR_SETTLES_AS, settled.label)
        trial.set_user_attr(ATTR_CANDIDATE, candidate.to_dict())
        config = trial_config(
            self.base_config,
            candidate,
            lrs=lrs,
            clients_per_round=self.settings.trial_clients_per_round,
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
            done = self._finished_twin(trial, key)
            if done is not None:
                trial.set_user_attr(ATTR_DUPLICATE_OF, done.number)
                trial.set_user_attr(ATTR_END, "duplicate")
                self.log(
                    f"trial {trial.number}: {candidate.label} already ran as trial {done.number}"
                )
                if done.state == optuna.trial.TrialState.COMPLETE and done.value is not None:
                    return float(done.value)
                raise optuna.TrialPruned(f"same as pruned trial {done.number}")
            twin = self._earlier_live_twin(trial, key)
            if twin is not None:
                trial.set_user_attr(ATTR_DUPLICATE_OF, twin.number)
                trial.set_user_attr(ATTR_END, "duplicate")
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
        folder = None if root is None else trial_checkpoint_dir(root, key)
        saved = self._saved_records(trial.number, folder)
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

        going_on = self._replay(reporter, saved, steps_before) if saved else True
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
            self._forget(folder)
            raise optuna.TrialPruned(f"diverged: {exc}") from None
        except BaseException:  # Ctrl-C or an error: keep what was trained; optuna marks it failed
            self._finish(trial, reporter, "interrupted")
            raise
        if reporter.pruned or reporter.capped:
            self._finish(trial, reporter, "pruned" if reporter.pruned else "capped")
            self._forget(folder)
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
        self._forget(folder)
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

    def _saved_records(self, number: int, folder: Path | None) -> list[dict[str, Any]]:
        """The records an interrupted trial of this configuration checkpointed ([]: none, or a
        damaged checkpoint, which is said and removed: the trial trains from round 1)."""
        if folder is None or not folder.is_dir():
            return []
        from trainer.checkpoint import checkpoint_records
        from trainer.errors import TrainerError

        try:
            return checkpoint_records(folder) or []
        except TrainerError as exc:
            self.log(f"trial {number}: {exc} Training from round 1.")
            self._forget(folder)
            return []

    @staticmethod
    def _replay(reporter: FidelityReporter, saved: list[dict[str, Any]], steps_before: int) -> bool:
        """Feed the checkpoint's records to the reporter as if trained now; False when it says
        stop (pruned or capped). Their client steps are the interrupted trial's (already in
        ``steps_before``): not counted again, for this trial nor for the compute cap."""
        from trainer.records import RoundRecord

        replayed = sum(int(rec.get("client_steps", 0)) for rec in saved)
        reporter.steps_before = max(0, steps_before - replayed)
        go_on = True
        for rec in saved:
            record: Any = RoundRecord.from_dict(rec)  # what train() hands on_round
            if not reporter(record):
                go_on = False
                break
        reporter.client_steps -= sum(int(rec.get("client_steps", 0)) for rec in reporter.records)
        reporter.steps_before = steps_before
        reporter.trial.set_user_attr(ATTR_STEPS, reporter.client_steps)
        return go_on

    def _forget(self, folder: Path | None) -> None:
        """A trial that ended (not interrupted) needs its checkpoint no more."""
        if folder is not None and self.checkpoint_root is not None and folder.exists():
            _drop_checkpoint(self.checkpoint_root, folder)

    def _finish(self, trial: optuna.Trial, reporter: FidelityReporter, end: str) -> None:
        from trainer.records import json_safe

        # JSON has no NaN: a round nobody aggregated has a null loss, not the string "nan"
        reporter.records = json_safe(reporter.records)
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
            if t.user_attrs.get(ATTR_KEY) == key and ATTR_DUPLICATE_OF not in t.user_attrs:
                # a pruned twin cut short by the compute cap says nothing about the config
                if t.user_attrs.get(ATTR_END) in ("capped",):
                    continue
                return t
        return None

    def _earlier_live_twin(self, trial: optuna.Trial, key: str) -> optuna.trial.FrozenTrial | None:
        """A running or waiting trial with a lower number and the same key (two workers that
        enqueued the same seed, or TPE proposing what another worker is training: the earlier
        one trains, this one does not), or a running one of any number that has already taken
        this configuration (it passed this check first, under ``twin_lock``)."""
        from optuna.trial import TrialState

        m = self.settings.trial_clients_per_round
        for t in trial.study.get_trials(
            deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)
        ):
            if t.number == trial.number or ATTR_DUPLICATE_OF in t.user_attrs:
                continue
            if t.number < trial.number and planned_key(t, self.space, clients_per_round=m) == key:
                return t
            if t.state == TrialState.RUNNING and t.user_attrs.get(ATTR_KEY) == key:
                return t
        return None
