"""What a study is, read from the storage alone: its trials counted by state, the target it runs
to, and its summary (state, progress, running trials, recommendation) as the API answers it.

The state is derived, never kept in memory: ``running`` / ``stopping`` (a worker of this service
is on it), ``finished`` (the target of finished trials is reached), ``stopped`` (stopped through
the API), ``failed`` (the worker ended with an error, kept in the answer), ``unfinished`` (no
worker: killed, timed out, the service stopped or restarted; resumable), ``external`` (made by
floss-tune outside the service: listed and shown, not resumed here).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.workers import Worker, tail

if TYPE_CHECKING:
    import optuna

ATTR_SERVE = "floss_serve"  # {"request": ..., "submitted": epoch seconds}
ATTR_EXIT = "floss_serve_exit"  # {"code", "at", "stopped", "error"} of the last worker


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials by state; ``finished`` counts towards the target: complete or pruned, not a
    duplicate of an earlier trial (``duplicates`` are those, listed apart)."""
    from collections import Counter

    from tuner.ledger import counts_towards_target

    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    finished = sum(counts_towards_target(t) for t in trials)
    interrupted = sum(t.state.name == "FAIL" and t.user_attrs.get("end") == "interrupted"
                      for t in trials)  # fmt: skip
    return {
        "complete": states["COMPLETE"],
        "pruned": states["PRUNED"],
        "running": states["RUNNING"],
        "failed": states["FAIL"],
        "interrupted": interrupted,
        "waiting": states["WAITING"],
        "finished": finished,
        "duplicates": states["COMPLETE"] + states["PRUNED"] - finished,
    }


def target(study: optuna.Study) -> int | None:
    """The finished trials the study runs to: the request's n_trials, or fewer when the
    worker found the search space smaller (``floss_target``)."""
    from tuner.study import ATTR_TARGET

    request = (study.user_attrs.get(ATTR_SERVE) or {}).get("request") or {}
    wanted = request.get("n_trials")
    found = study.user_attrs.get(ATTR_TARGET)
    if wanted is None or found is None:
        return wanted if wanted is not None else None
    return min(int(wanted), int(found))


def log_tail(path: Path) -> list[str]:
    """The last lines of a worker's log (none when it has no log)."""
    return tail(path) if path.exists() else []


def summary(
    study: optuna.Study, *, worker: Worker | None, log_path: Path, trials: bool = False
) -> dict[str, Any]:
    """The API's answer for one study (``worker``: this service's live worker on it, whose log
    is ``log_path``; ``trials``: with its trial rows, for the page)."""
    from tuner.report import recommendation_line, trial_rows

    name = study.study_name
    attrs = study.user_attrs
    serve = attrs.get(ATTR_SERVE) or {}
    goal = target(study)
    done = counts(study)
    last_exit = attrs.get(ATTR_EXIT)
    if worker is not None:
        state = "stopping" if worker.stop_requested else "running"
    elif goal is not None and done["finished"] >= goal:
        state = "finished"
    elif not serve:
        state = "external"
    elif last_exit and last_exit.get("stopped"):
        state = "stopped"
    elif last_exit and last_exit.get("error"):
        state = "failed"
    else:
        state = "unfinished"
    rows = trial_rows(study)
    best = next((r for r in rows if r.recommended), None)
    current = [
        {
            "trial": r.trial,
            "method": r.method,
            "rank": r.rank,
            "d_down": r.d_down,
            "d_up": r.d_up,
            "last_step": r.last_step,  # its last fidelity checkpoint (None: none yet)
            "rounds": r.rounds,
        }
        for r in rows
        if r.state == "RUNNING"
    ]
    last_lines = log_tail(log_path) if worker is not None else []  # floss-tune's progress
    return {
        "name": name,
        "state": state,
        "direction": study.direction.name.lower(),
        "metric": (attrs.get("floss_space") or {}).get("metric"),
        "progress": {
            **done,
            "target": goal,
            "fraction": None if not goal else min(1.0, done["finished"] / goal),
        },
        "recommendation": None
        if best is None
        else {"trial": best.trial, "line": recommendation_line(study), **best.to_dict()},
        "current": current,  # the trials running now
        "log_last": last_lines[-1][:300] if last_lines else None,
        "plottable": any(r.state in ("COMPLETE", "PRUNED") for r in rows),
        "error": (last_exit or {}).get("error"),
        "worker": None if worker is None else {"pid": worker.proc.pid, "started": worker.started},
        "submitted": serve.get("submitted"),
        "resumable": state in ("unfinished", "stopped", "failed"),
        **({"trials": [r.to_dict() for r in rows]} if trials else {}),
    }
