"""Open (or resume) a study, seed it with the known-good configurations, and run trials.

Resume and several workers both come from Optuna's storage: ``create_study(load_if_exists=True)``
joins a study that is already there, every finished trial is in the storage the moment it ends,
and the trial target counts finished trials study-wide (``tuner.worker``: a worker claims a trial
only while finished + running trials fall short of it), so rerunning the same command after
Ctrl-C or a kill, or starting it on many machines, works towards one shared target.

Interrupts (``trainer.interrupt``): the running trial stops at its next round boundary and is
marked failed with ``end = interrupted`` (its checkpoint kept, ``tuner.objective``); the study
stops and ``run_study`` raises ``Interrupted``. A rerun enqueues each interrupted trial's
parameters again (and each seed whose trials all failed), under the study lock, and says from
which round each retry goes on, so nothing interrupted is lost.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from trainer import interrupt
from tuner.candidate import Candidate
from tuner.ledger import (
    TrialSkipped,
    client_steps_spent,
    counts_towards_target,
    planned_key,
    study_target,
)
from tuner.objective import Objective
from tuner.orphans import fail_orphans
from tuner.rungs import ATTR_FRACTION, ATTR_RUNG
from tuner.search_space import SearchSpace
from tuner.seeds import seed_params
from tuner.settings import TuneError, TuneSettings
from tuner.storage import open_storage, study_lock
from tuner.trial_attrs import ATTR_CANDIDATE, ATTR_END, ATTR_RETRY_OF
from tuner.trial_checkpoint import checkpoint_key, checkpointed_round
from tuner.trial_config import trained_key
from tuner.worker import run_trials

if TYPE_CHECKING:
    import optuna

ATTR_TARGET = "floss_target"  # finished, non-duplicate trials the study runs to
ATTR_SPACE = "floss_space"  # study user attribute: what the study searches over


def make_sampler(settings: TuneSettings) -> optuna.samplers.BaseSampler:
    import optuna

    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=settings.seed)
    with warnings.catch_warnings():  # multivariate/group/constant_liar are "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=settings.seed,
            n_startup_trials=settings.n_startup_trials,
            multivariate=True,  # rank and densities interact (bytes ~ rank x density)
            # methods draw different parameters (dense none, SparseAdapter d_up only): group
            # decomposition models each set of co-occurring parameters jointly, so d_up is
            # learnt from FLoSS and SparseAdapter trials alike
            group=True,
            constant_liar=True,  # parallel workers do not all pick the same point
        )


def make_pruner(settings: TuneSettings) -> optuna.pruners.BasePruner:
    import optuna

    eta = settings.reduction_factor
    if settings.pruner == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=eta)
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=2 ** (settings.levels - 1), reduction_factor=eta
        )
    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return [t for t in done if counts_towards_target(t)]  # duplicates count for nothing


def open_study(
    settings: TuneSettings,
    *,
    direction: str,
    space_meta: dict[str, Any],
    log: Callable[[str], None] = lambda _msg: None,
) -> optuna.Study:
    """Create the study or join the one of that name; refuse one made for another search."""
    import optuna

    storage = open_storage(settings.storage, heartbeat_seconds=settings.heartbeat_seconds, log=log)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=settings.study_name,
            direction="maximize" if direction == "maximize" else "minimize",
            sampler=make_sampler(settings),
            pruner=make_pruner(settings),
            load_if_exists=True,
        )
    except ValueError as exc:
        raise TuneError(f"study {settings.study_name!r}: {exc}") from None
    if study.direction.name.lower() != direction:
        raise TuneError(
            f"study {settings.study_name!r} in {settings.storage!r} is set to "
            f"{study.direction.name.lower()}, not {direction}; use another --study-name."
        )
    stored = study.user_attrs.get(ATTR_SPACE)
    if stored is None:
        study.set_user_attr(ATTR_SPACE, space_meta)
    elif changed := meta_differences(stored, space_meta):
        raise TuneError(
            f"study {settings.study_name!r} in {settings.storage!r} was made for another search "
            f"({', '.join(changed)} differ); use another --study-name."
        )
    return study


def meta_differences(stored: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys whose values differ. Keys only one side has are ignored (a field added to RunConfig
    by a newer floss, with its default, does not make another search)."""
    out = []
    for key in sorted(set(stored) & set(new)):
        a, b = stored[key], new[key]
        if isinstance(a, dict) and isinstance(b, dict):
            out += meta_differences(a, b, prefix=f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def _live_keys(study: optuna.Study, space: SearchSpace) -> set[str | None]:
    """Keys of the trials that are waiting, running or finished (not failed)."""
    from optuna.trial import TrialState

    live = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
    trials = study.get_trials(deepcopy=False, states=live)
    return {planned_key(t, space) for t in trials}


def enqueue_seeds(
    study: optuna.Study, space: SearchSpace, *, lrs: dict[str, float]
) -> list[Candidate]:
    """Enqueue the space's seeds (dense LoRA, the heuristic family, one per other method, all
    on the grid) unless the study already holds them (resume: waiting, running, finished). A
    seed whose trials all failed (interrupted) is enqueued again. Call it under
    ``study_lock`` so that workers starting together enqueue each seed once."""
    present = _live_keys(study, space)
    added = []
    for cand in space.seeds:
        # a seed that settles as a present trial (the same key) trains nothing new
        key = trained_key(space, cand, lrs)
        if key in present:
            continue
        # not skip_if_exists: Optuna would match the failed (interrupted) twin and skip it
        study.enqueue_trial({**seed_params(cand, space), **lrs})
        present.add(key)
        added.append(cand)
    return added


def enqueue_retries(study: optuna.Study, space: SearchSpace) -> list[int]:
    """Enqueue again the parameters of each interrupted trial (failed, ``end = interrupted``)
    whose configuration no live trial holds; returns the numbers of the trials retried."""
    from optuna.trial import TrialState

    present = _live_keys(study, space)
    retried = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        key = planned_key(t, space)
        if t.user_attrs.get(ATTR_END) != "interrupted" or key is None or key in present:
            continue
        params = t.system_attrs.get("fixed_params") or t.params
        if not params:
            continue
        rung = {k: t.user_attrs[k] for k in (ATTR_RUNG, ATTR_FRACTION) if k in t.user_attrs}
        study.enqueue_trial(dict(params), user_attrs={ATTR_RETRY_OF: t.number, **rung})
        present.add(key)
        retried.append(t.number)
    return retried


def retry_note(study: optuna.Study, number: int, objective: Objective) -> str:
    """What a rerun says of an interrupted trial it enqueued again: from which round it goes on."""
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    cand = trial.user_attrs.get(ATTR_CANDIDATE)
    key = None
    if isinstance(cand, dict):
        lrs = {k: float(v) for k, v in trial.params.items() if k in ("client_lr", "server_lr")}
        key = checkpoint_key(Candidate(**cand), lrs, trial.user_attrs.get(ATTR_FRACTION))
    held = checkpointed_round(objective.checkpoint_root, key)
    if held is None:
        return f"trial {number} kept no checkpoint: its retry trains from round 1"
    return (
        f"trial {number}'s checkpoint holds rounds 1..{held}: its retry resumes from round "
        f"{held + 1}"
    )


def run_study(
    settings: TuneSettings,
    space: SearchSpace,
    objective: Objective,
    *,
    space_meta: dict[str, Any],
    log: Callable[[str], None] = lambda _msg: None,
) -> optuna.Study:
    """Run trials until the study holds ``n_trials`` finished ones (or timeout / compute cap)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(settings, direction=objective.direction, space_meta=space_meta, log=log)
    objective.twin_lock = lambda: study_lock(settings.storage, settings.study_name, study._storage)
    # check and enqueue as one step (a file lock, or PostgreSQL's advisory lock)
    with study_lock(settings.storage, settings.study_name, study._storage):
        for number in fail_orphans(study):
            log(f"trial {number} was left running by a process that is gone: marked failed")
        for number in enqueue_retries(study, space):
            log(f"enqueued trial {number} again (it was interrupted)")
            log(retry_note(study, number, objective))
        if settings.seed_heuristics and settings.search != "halving":  # halving: rung 0's
            lrs = (
                {k: float(getattr(objective.base_config, k)) for k in ("client_lr", "server_lr")}
                if settings.tune_lr
                else {}
            )
            for cand in enqueue_seeds(study, space, lrs=lrs):
                log(f"enqueued {cand.label} ({cand.why or 'seed'})")
    if settings.search == "halving":
        stopped = ""
        try:
            _run_halving(study, settings, space, objective, log=log)
        except interrupt.Interrupted as exc:
            stopped = f"{exc} and is enqueued again on a rerun; "
        if stopped or interrupt.requested():
            _interrupted(study, settings, stopped)
        return study
    done = len(finished_trials(study))
    target = study_target(settings.n_trials, space, tune_lr=settings.tune_lr)
    if target < settings.n_trials:
        log(f"the search space holds {target} configurations: each runs once, then the study ends")
    study.set_user_attr(ATTR_TARGET, target)
    if done >= target:
        log(f"study {settings.study_name!r} already has {done} finished trials; nothing to run.")
        return study
    cap = settings.max_client_steps

    def should_stop(st: optuna.Study) -> bool:
        if interrupt.requested():  # the last trial ended anyway (complete or pruned)
            return True
        if cap is not None and client_steps_spent(st) >= cap:
            log(f"compute cap of {cap:,} client steps reached; stopping.")
            return True
        return False

    if interrupt.requested():  # during the set-up: start no trial
        _interrupted(study, settings, "")
    stopped = ""
    try:
        run_trials(
            study,
            objective,
            url=settings.storage,
            target=target,
            timeout_seconds=settings.timeout_seconds,
            catch=(TrialSkipped,),
            should_stop=should_stop,
            log=log,
        )
    except interrupt.Interrupted as exc:
        stopped = f"{exc} and is enqueued again on a rerun; "
    if stopped or interrupt.requested():
        _interrupted(study, settings, stopped)
    return study


def _run_halving(
    study: optuna.Study,
    settings: TuneSettings,
    space: SearchSpace,
    objective: Objective,
    *,
    log: Callable[[str], None],
) -> None:
    """floss's successive halving (``tuner.halving``) on this worker's trial loop: each rung's
    trials are enqueued, then trained by ``run_trials`` until none waits."""
    import time

    from optuna.trial import TrialState

    from tuner.halving import run_halving

    started = time.monotonic()
    timeout = settings.timeout_seconds

    def queue_empty(st: optuna.Study) -> bool:
        return interrupt.requested() or not st.get_trials(
            deepcopy=False, states=(TrialState.WAITING,)
        )

    def run(target: int) -> bool:
        left = None if timeout is None else timeout - (time.monotonic() - started)
        if left is not None and left <= 0:
            log(f"--timeout of {timeout:g} s reached; this worker starts no more trials.")
            return True
        run_trials(study, objective, url=settings.storage, target=target, timeout_seconds=left,
                   catch=(TrialSkipped,), should_stop=queue_empty, log=log)  # fmt: skip
        timed_out = timeout is not None and time.monotonic() - started >= timeout
        return interrupt.requested() or timed_out

    run_halving(study, space, objective, settings, run=run, log=log)


def _interrupted(study: optuna.Study, settings: TuneSettings, stopped: str) -> NoReturn:
    done = len(finished_trials(study))
    raise interrupt.Interrupted(f"{stopped}{done} finished trials kept in {settings.storage}")
