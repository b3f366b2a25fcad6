"""Trials left RUNNING by a process that is gone: found by their owner, failed, and retried.

Every trial records which process trains it (``owner``: host, boot, PID namespace, PID and the
PID's start time) as its first act. A RUNNING trial whose owner ran on this machine and is no
longer alive (killed, or the machine restarted since: another boot id) is an orphan: nothing
will ever tell the storage how it ended. ``fail_orphans`` marks it failed with
``end = interrupted``, so the rerun enqueues its parameters again (``tuner.study``'s retries)
and no configuration is lost or skipped as a "duplicate" of a trial nobody trains.

A trial owned by another machine (or another PID namespace) cannot be judged from here: on
storages with a heartbeat (SQLite, PostgreSQL) the heartbeat fails it after the grace period;
on a journal file it stays RUNNING until a worker on its own machine starts (docs/tuner.md).
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

from tuner.trial_attrs import ATTR_END

if TYPE_CHECKING:
    import optuna

ATTR_OWNER = "owner"  # trial user attribute: the process that trains it


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot, /proc/PID/stat field 22); None if gone
    or not Linux. A PID reused by a new process has another start time."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat.rsplit(") ", 1)[-1].split()
    if fields[0] == "Z":  # a zombie has ended
        return None
    return int(fields[19])


def owner_record() -> dict[str, Any]:
    """This process, as a trial's owner."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "boot": _read("/proc/sys/kernel/random/boot_id"),
        "pidns": _pid_namespace(),
        "pid": pid,
        "start": _start_ticks(pid),
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def owner_gone(record: Any) -> bool | None:
    """True when the owner is known to be gone; False when it lives; None when this machine
    cannot tell (another host or PID namespace, or no record)."""
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        return None
    here = owner_record()
    if record.get("host") != here["host"]:
        return None
    if record.get("boot") and here["boot"] and record["boot"] != here["boot"]:
        return True  # this machine restarted since: every process of that boot is gone
    if record.get("pidns") != here["pidns"]:
        return None
    pid = record["pid"]
    if not _alive(pid):
        return True
    started = _start_ticks(pid)
    if record.get("start") is not None and here["start"] is not None:
        return started != record["start"]  # None (a zombie) or another process on that PID
    return False


def fail_orphans(study: optuna.Study) -> list[int]:
    """Mark failed, as interrupted, the RUNNING trials whose owner is gone; their numbers.
    Call it under the study's lock, before the retries are enqueued."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if owner_gone(t.user_attrs.get(ATTR_OWNER)) is not True:
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, ATTR_END, "interrupted")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:  # it ended meanwhile (its heartbeat check, a tell)
            continue
        failed.append(t.number)
    return failed
