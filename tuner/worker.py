"""One worker's trial loop on a shared study: claim a trial, train it under a heartbeat, tell.

Invariant, on storages with a heartbeat and a study lock (SQLite, PostgreSQL): a worker starts a
trial only while finished + running < target, counted and asked as one step under the lock, so
any number of workers end with exactly ``target`` finished trials. A worker that finds the
target covered by running trials waits instead of leaving: if one of those trials' worker dies,
its heartbeat goes stale, the stale check (run by every waiting or claiming worker) marks it
failed and enqueues it once more, and a surviving worker trains the retry.

Journal files have no heartbeat (a dead worker's trial looks running forever): there a worker
counts finished trials only, and each extra worker may finish one trial past the target.
"""

from __future__ import annotations

import gc
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

from tuner.settings import TuneError
from tuner.storage import GRACE_BEATS, study_lock

if TYPE_CHECKING:
    import optuna

WAIT_POLL_SECONDS = 1.0  # how often a waiting worker looks at the running trials again
FINISHED_STATES = ("COMPLETE", "PRUNED")


def heartbeat_seconds(study: optuna.Study) -> float | None:
    """The storage's heartbeat interval; None where it has none (journal files)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = study._storage
    if not is_heartbeat_enabled(storage):
        return None
    interval = storage.get_heartbeat_interval()  # type: ignore[attr-defined]
    return None if interval is None else float(interval)


def fail_stale(study: optuna.Study) -> None:
    """Mark failed (and enqueue once more) the running trials whose worker stopped beating."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def fail_stale_when_settled(study: optuna.Study, beat: float | None) -> None:
    """``fail_stale`` on a storage with a heartbeat, unless the connection is too fresh to judge:
    right after a database outage every heartbeat is old, so wait a grace period first."""
    if beat is None:
        return
    backend = getattr(study._storage, "_backend", study._storage)
    connected_for = getattr(backend, "connected_for", None)
    if connected_for is None or connected_for() >= GRACE_BEATS * beat:
        fail_stale(study)
        fail_ownerless(study, grace_seconds=GRACE_BEATS * beat)


def fail_ownerless(study: optuna.Study, *, grace_seconds: float) -> None:
    """Fail (and retry, as a stale heartbeat is) each RUNNING trial that started more than
    ``grace_seconds`` ago and never recorded its owner: the objective records it as its first
    act, so its worker died between the claim and that act, possibly before the claim's first
    heartbeat (a trial without a heartbeat is never judged stale by Optuna)."""
    from datetime import datetime

    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from tuner.orphans import ATTR_OWNER
    from tuner.trial_attrs import ATTR_END

    storage = study._storage
    now = datetime.now()  # Optuna stamps datetime_start with the local clock too
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if ATTR_OWNER in t.user_attrs or t.datetime_start is None:
            continue
        if (now - t.datetime_start).total_seconds() < grace_seconds:
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, ATTR_END, "interrupted")
            storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:  # it ended meanwhile
            continue
        # the callback a stale heartbeat gets (Optuna >= 4.9 names it so; older: "failed trial")
        get = getattr(storage, "get_heartbeat_stale_trial_callback", None)
        retry = get() if get is not None else storage.get_failed_trial_callback()  # type: ignore[attr-defined]
        if retry is not None:
            retry(study, storage.get_trial(t._trial_id))


def counts(study: optuna.Study) -> tuple[int, int]:
    """(finished, running) trials of the study, one storage read."""
    from optuna.trial import TrialState

    from tuner.ledger import counts_towards_target

    finished = running = 0
    for t in study.get_trials(deepcopy=False, states=(*_finished(), TrialState.RUNNING)):
        if t.state == TrialState.RUNNING:
            running += 1
        elif counts_towards_target(t):  # a duplicate of a finished trial counts for nothing
            finished += 1
    return finished, running


def _finished() -> tuple[optuna.trial.TrialState, ...]:
    from optuna.trial import TrialState

    return tuple(TrialState[name] for name in FINISHED_STATES)


class Heartbeat:
    """Records the trial's heartbeat every ``interval`` seconds on a daemon thread. A storage
    error ends the beat quietly: the trial's own storage calls report the lost database."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int, interval: float):
        self.storage = storage
        self.trial_id = trial_id
        self.interval = interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="floss-heartbeat", daemon=True)

    def _beat(self) -> None:
        record = self.storage.record_heartbeat  # type: ignore[attr-defined]
        while not self.stopped.is_set():
            try:
                record(self.trial_id)
            except Exception:
                return
            self.stopped.wait(self.interval)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=self.interval + 5)


def claim(
    study: optuna.Study, *, url: str, target: int, beat: float | None
) -> optuna.Trial | int | None:
    """A new trial (RUNNING, this worker's); or None when ``target`` trials are finished; or
    the number of running trials to wait for when they cover the target."""
    storage = study._storage
    with study_lock(url, study.study_name, storage):
        fail_stale_when_settled(study, beat)
        finished, running = counts(study)
        if finished >= target:
            return None
        if beat is not None and finished + running >= target:
            return running
        with warnings.catch_warnings():  # "Heartbeat ... used with Study.optimize": this loop
            warnings.filterwarnings("ignore", message="Heartbeat of storage")  # beats it itself
            trial = study.ask()
        # the first beat comes with the claim: a trial without one is never judged stale, so a
        # worker killed before its heartbeat thread started would hold its trial forever
        if beat is not None:
            storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
        return trial


def run_one(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    trial: optuna.Trial,
    *,
    beat: float | None,
    catch: tuple[type[Exception], ...],
) -> None:
    """Train one claimed trial and tell the study how it ended (what ``study.optimize`` does
    for one trial, with this module's heartbeat). Errors not in ``catch`` are raised after the
    trial is marked failed."""
    import optuna
    from optuna.trial import TrialState

    value: float | None = None
    state = TrialState.COMPLETE
    error: BaseException | None = None
    beating = Heartbeat(study._storage, trial._trial_id, beat) if beat is not None else None
    if beating is not None:
        beating.__enter__()
    try:
        value = objective(trial)
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except BaseException as exc:
        state, error = TrialState.FAIL, exc
    finally:
        if beating is not None:
            beating.__exit__()
    try:
        if state == TrialState.COMPLETE:
            study.tell(trial, value)
        else:
            study.tell(trial, state=state)
    except optuna.exceptions.UpdateFinishedTrialError:
        raise TuneError(
            f"trial {trial.number} was marked failed by another worker while this one trained "
            "it (its heartbeat stopped for longer than the grace period); it is retried there."
        ) from None
    if error is not None and not isinstance(error, catch):
        raise error


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    url: str,
    target: int,
    timeout_seconds: float | None,
    catch: tuple[type[Exception], ...],
    should_stop: Callable[[optuna.Study], bool],
    log: Callable[[str], None],
) -> None:
    """Claim and train trials until the study has ``target`` finished ones, this worker's
    ``timeout_seconds`` pass, or ``should_stop`` (asked between trials) says so."""
    beat = heartbeat_seconds(study)
    started = time.monotonic()
    waiting_for: int | None = None
    ran = 0
    try:
        while True:
            if timeout_seconds is not None and time.monotonic() - started >= timeout_seconds:
                log(
                    f"--timeout of {timeout_seconds:g} s reached; this worker starts no more trials."
                )
                return
            if should_stop(study):
                return
            got = claim(study, url=url, target=target, beat=beat)
            if got is None:
                return
            if isinstance(got, int):
                if got != waiting_for:
                    log(
                        f"the study's {target} trials are finished or running ({got} running "
                        "elsewhere); waiting for them (a dead worker's trial is retried here)"
                    )
                    waiting_for = got
                time.sleep(min(WAIT_POLL_SECONDS, beat or WAIT_POLL_SECONDS))
                continue
            waiting_for = None
            ran += 1
            run_one(study, objective, got, beat=beat, catch=catch)
            gc.collect()  # free the trial's model and optimizer state before the next one
    finally:
        log_round_trips(study, ran, log)


def log_round_trips(study: optuna.Study, trials: int, log: Callable[[str], None]) -> None:
    """A server database's cost to this worker: statements and commits sent, per trial."""
    backend = getattr(study._storage, "_backend", study._storage)
    sent = getattr(backend, "round_trips", None)
    if sent is None or trials == 0:
        return
    log(
        f"database round trips: {sent:,} from this worker for the {trials} trials it claimed "
        f"({sent / trials:,.0f} per trial, set-up and waiting included)"
    )
