"""Compute-aware successive halving, the driver: each rung of ``tuner.rungs``'s plan enqueued as
Optuna trials (user attributes ``rung`` and ``fraction``) under the study lock and trained by the
worker loop; the next rung decided from the finished ones. The plan is a pure function of the
space, the cap and the finished trials, so a rerun or a second worker replays it.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from planner.sampling import round_draws
from tuner.ledger import client_steps_spent
from tuner.rungs import (
    ATTR_FRACTION,
    ATTR_RUNG,
    Entry,
    StepCosts,
    cost,
    first_rung,
    next_rung,
    step_costs,
)
from tuner.search_space import trial_clients
from tuner.storage import study_lock
from tuner.trial_config import trained_key
from tuner.worker import counts, fail_stale_when_settled, heartbeat_seconds

if TYPE_CHECKING:
    import optuna


def params_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def trial_params(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A trial's params, or its fixed params while it waits in the queue."""
    return dict(t.params or t.system_attrs.get("fixed_params") or {})


def rung_trials(
    study: optuna.Study, fraction: float
) -> tuple[dict[str, optuna.trial.FrozenTrial], set[str]]:
    """(params key -> finished trial that trained it, params keys waiting or running) at one
    fidelity. Duplicates and failed trials are left out."""
    from optuna.trial import TrialState

    done: dict[str, optuna.trial.FrozenTrial] = {}
    live: set[str] = set()
    for t in study.get_trials(deepcopy=False):
        at = t.user_attrs.get(ATTR_FRACTION)
        if at is None or not math.isclose(float(at), fraction):
            continue
        key = params_key(trial_params(t))
        if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs:
            if t.value is not None and math.isfinite(t.value):
                done.setdefault(key, t)
        elif t.state in (TrialState.WAITING, TrialState.RUNNING):
            live.add(key)
    return done, live


def spent_through(study: optuna.Study, rung: int) -> int:
    """Client steps of every trial of rungs 0..rung (failed and retried ones too), and of
    trials outside the rungs."""
    return sum(
        int(t.user_attrs.get("client_steps", 0))
        for t in study.get_trials(deepcopy=False)
        if int(t.user_attrs.get(ATTR_RUNG, -1)) <= rung
    )


def entries_of(space: Any) -> list[Entry]:
    """Every distinct trainable candidate of the space (one per training key, ``trained_key``),
    seeds first in their order, then the space's order."""
    out: list[Entry] = []
    seen: set[str] = set()
    for cand in (*space.seeds, *space.candidates):
        key = trained_key(space, cand, {})
        if key in seen:
            continue
        seen.add(key)
        out.append(
            Entry(
                params=space.params_of(cand),
                curve=tuple(space.spend_curve(cand)),
                label=cand.label,
                key=key,
            )
        )
    return out


def run_step_costs(
    config: Any, workload: Any, *, rounds: int, clients_per_round: int | None = None,
    exact: bool = True,
) -> StepCosts:  # fmt: skip
    """A run's client steps per round, from its workload (each client's training rows; none:
    one batch a client) and the trainer's seeded draws of ``clients_per_round`` clients
    (default: the run's)."""
    m = clients_per_round or config.clients_per_round
    sizes = (
        [len(r) for r in workload.client_rows(config)]
        if workload is not None
        else [config.batch_size] * config.num_clients
    )
    network = config.network_profile()

    def draw(r: int) -> list[int]:
        sampled, _ = round_draws(seed=config.seed, round_=r, num_clients=len(sizes),
                                 clients_per_round=m, network=network)  # fmt: skip
        return list(sampled)

    return step_costs(sizes, batch_size=config.batch_size, local_epochs=config.local_epochs,
                      draw=draw, rounds=rounds, exact=exact)  # fmt: skip


def base_step_costs(objective: Any, space: Any, *, rounds: int) -> StepCosts:
    """The base run's client steps per round, as its trials will take them (``step_costs``
    of the objective when a test gives one); an estimate on fleets and fewer trial clients."""
    if objective.step_costs is not None:
        return objective.step_costs(rounds)
    config = objective.base_config
    trial_m = space.trial_clients_per_round
    return run_step_costs(
        config,
        objective.workload,
        rounds=rounds,
        clients_per_round=trial_clients(trial_m, config.clients_per_round),
        exact=space.pricing.fleet is None and trial_m is None,
    )


def run_halving(
    study: optuna.Study,
    space: Any,
    objective: Any,
    settings: Any,
    *,
    run: Callable[[int], bool],
    log: Callable[[str], None],
) -> None:
    """Run the rungs (module docstring). ``run(target)`` trains waiting trials until the study
    holds ``target`` finished ones; it returns True when it stopped early (timeout, cap,
    interrupt), and then the search stops where it is: a rerun continues it."""
    maximize = objective.direction == "maximize"
    entries = entries_of(space)
    cap = settings.max_client_steps
    longest = max(len(e.curve) for e in entries)
    steps = base_step_costs(objective, space, rounds=longest)
    fraction, n0 = first_rung(
        entries, steps=steps, cap=cap, levels=settings.levels, n_trials=settings.n_trials
    )
    current = list(entries)
    if n0 < len(entries):  # the seeds, then a seeded random sample of the rest
        seeds = len(space.seeds)
        rest = current[seeds:]
        random.Random(settings.seed or 0).shuffle(rest)
        current = (current[:seeds] + rest)[:n0]
    eta = settings.reduction_factor
    plan: list[dict[str, Any]] = []
    rung = 0
    while True:
        planned = cost(current, fraction, steps)
        plan.append({"rung": rung, "fraction": fraction, "trials": len(current),
                     "planned_client_steps": planned, "exact": steps.exact})  # fmt: skip
        study.set_user_attr("halving_plan", plan)
        log(
            f"rung {rung}: {len(current)} configurations at {fraction:g} of their budget, "
            f"{planned:,} client steps{'' if steps.exact else ' (estimated)'}"
            + ("" if cap is None else f" of {cap:,} (spent {client_steps_spent(study):,})")
        )
        scored = _train_rung(study, current, rung=rung, fraction=fraction, run=run,
                             lock=lambda: study_lock(settings.storage, settings.study_name,
                                                     study._storage))  # fmt: skip
        if scored is None:  # stopped early: a rerun continues this rung
            return
        if len(scored) < 2 or fraction >= 1.0:
            return
        # what rungs 0..k spent (not what later rungs did): a rerun replays the same decisions
        remaining = None if cap is None else cap - spent_through(study, rung)
        step = next_rung(scored, current=fraction, remaining=remaining, steps=steps, eta=eta,
                         maximize=maximize)  # fmt: skip
        if step is None:
            log(
                f"no two configurations can go deeper with the {remaining:,} client steps left; "
                f"the pick is the best of rung {rung}"
            )
            return
        current, fraction = step
        rung += 1


RUNG_RETRIES = 5  # times a rung re-enqueues its failed trials before leaving them out
WAIT_SECONDS = 1.0  # how often a worker looks at the rung trials other workers train


def _train_rung(
    study: optuna.Study,
    entries: Sequence[Entry],
    *,
    rung: int,
    fraction: float,
    run: Callable[[int], bool],
    lock: Callable[[], Any],
) -> list[tuple[Entry, float]] | None:
    """Enqueue what the rung misses (under the study lock: workers enqueue each once), train
    until every entry has a finished trial at ``fraction`` (waiting for those other workers
    train); its (entry, value) pairs, or None when training stopped early. An entry whose
    trials failed RUNG_RETRIES times is left out."""
    retries = 0
    while True:
        with lock():
            done, live = rung_trials(study, fraction)
            missing = [e for e in entries if params_key(e.params) not in done]
            lost = [e for e in missing if params_key(e.params) not in live]
            if lost and retries < RUNG_RETRIES:
                for e in lost:
                    study.enqueue_trial(
                        e.params, user_attrs={ATTR_RUNG: rung, ATTR_FRACTION: fraction}
                    )
            finished, _running = counts(study)
        if not missing or (len(lost) == len(missing) and retries >= RUNG_RETRIES):
            break
        retries += 1 if lost else 0
        if run(finished + len(missing)):
            return None
        _, live = rung_trials(study, fraction)
        if live:
            # a trial left RUNNING by a worker that died before it could say so (no owner
            # recorded yet) is found by its stale heartbeat, failed and enqueued again here:
            # ``run`` claims nothing (and so checks nothing) while the queue is empty
            with lock():
                fail_stale_when_settled(study, heartbeat_seconds(study))
            time.sleep(WAIT_SECONDS)  # another worker trains the rest of the rung
    done, _ = rung_trials(study, fraction)
    return [
        (e, float(done[params_key(e.params)].value))  # type: ignore[arg-type]
        for e in entries
        if params_key(e.params) in done
    ]
