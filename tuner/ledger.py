"""What a trial reads from the study's other trials: its twins, the target, the steps spent.

A trial whose configuration already finished is its duplicate (it takes the finished value, or is
pruned as its twin was); one whose configuration an earlier or running trial holds is skipped
(``TrialSkipped``). Duplicates count towards nothing: the study runs to ``study_target``
finished trials that trained their configuration, within the compute cap of client steps
(docs/tuner.md).
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING

from tuner.rungs import ATTR_FRACTION, fidelity_suffix
from tuner.search_space import SearchSpace
from tuner.trial_attrs import ATTR_DUPLICATE_OF, ATTR_END, ATTR_KEY, ATTR_STEPS
from tuner.trial_config import trained_key

if TYPE_CHECKING:
    import optuna


class TrialSkipped(Exception):
    """A trial that trains nothing because the same configuration is running or waiting as an
    earlier trial (two workers enqueued one seed). ``run_study`` lets Optuna mark it failed and
    go on (``catch``): a failed trial counts towards nothing and the sampler ignores it."""


def stop_study(study: optuna.Study) -> None:
    """Stop ``study.optimize`` after this trial. Outside it (``tuner.worker``'s loop, which
    checks the compute cap itself between trials) Optuna raises RuntimeError: nothing to stop."""
    with suppress(RuntimeError):
        study.stop()


def study_target(n_trials: int, space: SearchSpace, *, tune_lr: bool) -> int:
    """The finished trials a study runs to, duplicates not counted: ``n_trials``, or each
    configuration of a smaller space once (a target the space cannot fill would never be
    reached). Tuned learning rates make the space endless."""
    if tune_lr:
        return n_trials
    return min(n_trials, len({trained_key(space, c, {}) for c in space.candidates}))


def counts_towards_target(trial: optuna.trial.FrozenTrial) -> bool:
    """A finished trial that trained its configuration (not a duplicate of an earlier one)."""
    return trial.state.name in ("COMPLETE", "PRUNED") and ATTR_DUPLICATE_OF not in trial.user_attrs


def planned_key(trial: optuna.trial.FrozenTrial, space: SearchSpace) -> str | None:
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
    key = trained_key(space, cand, lrs)
    return key + fidelity_suffix(trial.user_attrs.get(ATTR_FRACTION))


def client_steps_spent(study: optuna.Study, *, exclude: int | None = None) -> int:
    """Client optimizer steps over every trial of the study (running ones included)."""
    return sum(
        int(t.user_attrs.get(ATTR_STEPS, 0))
        for t in study.get_trials(deepcopy=False)
        if t.number != exclude
    )


def finished_twin(trial: optuna.Trial, key: str) -> optuna.trial.FrozenTrial | None:
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


def earlier_live_twin(
    trial: optuna.Trial, key: str, space: SearchSpace
) -> optuna.trial.FrozenTrial | None:
    """A running or waiting trial with a lower number and the same key (two workers that
    enqueued the same seed, or TPE proposing what another worker is training: the earlier
    one trains, this one does not), or a running one of any number that has already taken
    this configuration (it passed this check first, under the objective's ``twin_lock``)."""
    from optuna.trial import TrialState

    for t in trial.study.get_trials(
        deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)
    ):
        if t.number == trial.number or ATTR_DUPLICATE_OF in t.user_attrs:
            continue
        if t.number < trial.number and planned_key(t, space) == key:
            return t
        if t.state == TrialState.RUNNING and t.user_attrs.get(ATTR_KEY) == key:
            return t
    return None
