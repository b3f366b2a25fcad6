"""floss-train's round loop: ``train(config)`` runs FLoSS or a baseline and returns its records.

One round (docs/trainer.md): the server sends P masked to its top-k_down |P| entries; each of the m
sampled clients loads that vector into the shared model in place, trains all of P densely for E
local epochs, and uploads Delta_i = start - end masked to its own top-k_up |Delta_i|; the server
averages the decoded sparse Delta_i into a pseudo-gradient and takes one server-optimizer step on
its dense P. Every message is encoded by planner.codec; bytes are the payloads' lengths.

The server side of the run (set-up, resume, the round's plan, its record, checkpoints and
outputs) is ``trainer.session.RunSession``, shared with the Flower ServerApp; this module plays
each round in one process between the session's plan and its record, and owns what only
floss-train does: the progress bar, interrupts, ``on_round`` and the clients file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from planner.sampling import round_seed as round_seed  # re-exported (tests, callers)
from trainer import interrupt
from trainer.checkpoint import resume_note
from trainer.config import RunConfig
from trainer.errors import TrainerError
from trainer.methods import TopK
from trainer.partition import describe_partition, partition_stats
from trainer.paths import CLIENTS_FILE, clear_run
from trainer.preflight import preflight
from trainer.records import RecordWriter, RoundRecord, json_safe
from trainer.round import ClientUpdate, client_update, server_aggregate, server_download
from trainer.session import Aggregated, Played, RoundPlan, RunSession
from trainer.workload import Workload, prepare

__all__ = ["RunResult", "Workload", "prepare", "train"]


@dataclass(frozen=True)
class RunResult:
    """A finished run. ``final_val_*`` come from the last evaluated round (served model;
    ``*_server``: the server's dense P); ``test_*`` from the last round's test evaluation
    (None when ``eval_test`` is off, the test split is empty or the run stopped early)."""

    records: list[RoundRecord]
    final_val_accuracy: float | None
    final_val_loss: float | None
    adapter_size: int  # n = len(P)
    stopped_early: bool
    out_dir: Path | None = None
    final_p: torch.Tensor | None = field(default=None, repr=False)
    final_val_accuracy_server: float | None = None
    final_val_loss_server: float | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None
    test_accuracy_server: float | None = None
    test_loss_server: float | None = None


def _eval_rounds(rounds: Collection[int] | None) -> frozenset[int]:
    out = frozenset(rounds or ())
    bad = sorted(
        (r for r in out if isinstance(r, bool) or not isinstance(r, int) or r < 1), key=str
    )
    if bad:
        raise TrainerError(f"eval_rounds must be round numbers >= 1, but got {bad!r}.")
    return out


class _Progress:
    """A rich progress bar, or nothing."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self.bar: Any = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            self.task = self.bar.add_task("training", total=total, completed=done)
            self.bar.start()

    def update(self, record: RoundRecord) -> None:
        if self.bar is not None:
            acc = ""
            if record.val_accuracy is not None:
                acc = f" acc {record.val_accuracy:.3f}"
                server_acc = record.val_accuracy_server
                if server_acc is not None and server_acc != record.val_accuracy:
                    acc += f" (server {server_acc:.3f})"
            if record.test_accuracy is not None:
                acc += f" test {record.test_accuracy:.3f}"
            self.bar.update(
                self.task,
                advance=1,
                description=f"loss {record.train_loss:.4f}{acc} {record.cum_bytes / 1e6:.1f} MB",
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def train(
    config: RunConfig,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    on_round: Callable[[RoundRecord], bool | None] | None = None,
    progress: bool = True,
    workload: Workload | None = None,
    eval_rounds: Collection[int] | None = None,
    log: Callable[[str], None] | None = None,
    overwrite: bool = False,
    checkpoint_dir: str | Path | None = None,
    resume_said: bool = False,
) -> RunResult:
    """Run ``config.rounds`` federated rounds; see the module docstring for one round.

    Validation runs every ``eval_every`` rounds, at the last round and at each of
    ``eval_rounds``; the test split only at the last round (``eval_test``). ``overwrite``
    removes a previous run's files from ``out_dir`` (``trainer.paths.clear_run``) once the
    workload is loaded and the budget resolved, just before this run writes its first file.

    A run with an out_dir always leaves a checkpoint of its last round (besides every
    ``checkpoint_every`` rounds), so a finished run can be extended: ``resume`` with more
    ``rounds`` (or a larger budget) trains the rounds after it. After an interrupt request
    (``trainer.interrupt``: the CLIs turn Ctrl-C and SIGTERM into one) the run stops at the end
    of the current round, before the last, writes a checkpoint when it has a folder for one
    and raises ``Interrupted``.

    ``checkpoint_dir`` (without an out_dir) keeps only checkpoints, and only on an interrupt
    (or every ``checkpoint_every`` rounds), in that folder, and ``resume`` reads them there: a
    tuning trial uses it so that its rerun goes on from the round it stopped at."""
    out = Path(out_dir) if out_dir is not None else None
    ckpt_dir = (
        out if out is not None else (None if checkpoint_dir is None else Path(checkpoint_dir))
    )
    if ckpt_dir is None and (resume or config.checkpoint_every):
        raise TrainerError("resume and checkpoint_every need an out_dir.")
    # before the slow part, so a typo, a bad fleet file or policy is one line now
    network, fleet = preflight(config)
    # the first thing a rerun says: where it goes on from (unless its caller said it first)
    if resume and log is not None and not resume_said:
        assert ckpt_dir is not None
        log(resume_note(ckpt_dir))
    extra_evals = _eval_rounds(eval_rounds)
    wl = workload if workload is not None else prepare(config)
    wl.check(config)
    session = RunSession(
        config,
        wl,
        network=network,
        fleet=fleet,
        log=log,
        eval_rounds=extra_evals,
        guard_spend=True,
    )
    config = session.config  # with the rounds a budget buys
    rows = session.client_rows
    client_stats = partition_stats(
        rows, np.asarray(wl.dataset.labels, dtype=np.int64), batch_size=config.batch_size
    )
    clients = [torch.as_tensor(r, device=session.trainee.device) for r in rows]
    if log is not None:  # after the budget's line: what the run trains on
        log(wl.dataset.source)
        log(describe_partition(client_stats, partition=config.partition))
    if resume:
        assert ckpt_dir is not None
        ckpt = session.resume(ckpt_dir)
        if ckpt.round > config.rounds:
            raise TrainerError(
                f"--resume: the checkpoint in {str(ckpt_dir / 'checkpoint')!r} is at round "
                f"{ckpt.round}, past this run's {config.rounds} rounds; give at least "
                f"{ckpt.round} rounds (or a budget that buys them)."
            )
    records = session.records  # the session appends each round's record
    if out is not None and overwrite and not resume:  # the last moment: everything checked
        clear_run(out)
    if out is not None:
        config.save(out / "config.yaml")
        (out / CLIENTS_FILE).write_text(
            json.dumps(
                json_safe({"data": wl.dataset.source, **client_stats}),
                indent=2,
                sort_keys=True,
                allow_nan=False,
            )
            + "\n",
            encoding="utf-8",
        )
    writer = RecordWriter(out, existing=records) if out is not None else None
    if interrupt.requested():  # during the set-up: nothing trained by this call, nothing new
        raise _interrupted(config, ckpt_dir, records, checkpoint=resume)
    if resume and log is not None and len(records) == config.rounds:
        log(
            f"the checkpoint already holds all {config.rounds} rounds: nothing to train "
            "(give more rounds, or a larger budget, to extend the run)"
        )
    bar = _Progress(progress, config.rounds, len(records))
    saved = len(records) if resume else 0  # the round the newest checkpoint holds
    stopped = False
    played_to: int | None = None  # the round after which fedsrd's budget was spent
    halted = False  # an interrupt (trainer.interrupt): stop at this round boundary, resumable
    try:
        for r in range(len(records) + 1, config.rounds + 1):
            tick = time.perf_counter()
            plan = session.plan_round(r)
            play = _fleet_round if plan.price is not None else _network_round
            record = session.close_round(r, plan, play(session, clients, plan, r), tick=tick)
            if writer is not None:
                writer.write(record)
            bar.update(record)
            session.check_diverged()
            if on_round is not None and on_round(record) is False:
                stopped = r < config.rounds
            halted = interrupt.requested() and r < config.rounds
            due = bool(config.checkpoint_every) and r % config.checkpoint_every == 0
            # an out_dir keeps the run's end too (its last round, or where it stopped early)
            end = out is not None and (stopped or r == config.rounds)
            if ckpt_dir is not None and (due or end or halted):
                session.checkpoint(ckpt_dir)  # always on an interrupt
                saved = r
            if stopped or halted:
                break
            if session.spent:
                played_to = r
                break  # fedsrd: the budget is spent on actual bytes; the run is complete
    finally:
        bar.close()
    if played_to is not None:  # fedsrd's budget ended the run: these are its rounds
        session.end_at(played_to)
        config = session.config
    if out is not None and records and saved != records[-1].round:  # fedsrd spent, nothing left
        session.checkpoint(out)
    if halted:
        raise _interrupted(config, ckpt_dir, records, checkpoint=ckpt_dir is not None)
    if session.guard is not None and log is not None and records:
        log(session.guard.describe(len(records), records[-1].cum_bytes))
    session.finish(out)
    return RunResult(
        records=records,
        adapter_size=session.n,
        stopped_early=stopped,
        out_dir=out,
        final_p=session.final_p,
        **session.final_metrics(),
    )


def _played(down: list[int], up: list[int], d_down: float, updates: list[ClientUpdate]) -> Played:
    return Played(
        bytes_down=down,
        bytes_up=up,
        d_down=d_down,
        aggregated=[
            Aggregated(client=u.client, k=u.sent.k, loss=u.local.loss, steps=u.local.steps)
            for u in updates
        ],
    )


def _network_round(
    session: RunSession, clients: list[torch.Tensor], plan: RoundPlan, round_: int
) -> Played:
    """A round on one network profile: every sampled client trains and is aggregated."""
    method, server, sampled = session.method, session.server, plan.clients
    down = server_download(method, server, sampled, round_=round_)
    updates = [
        client_update(
            session.trainee, clients[c], down.start, method=method, round_=round_, client=c
        )
        for c in sampled
    ]
    server_aggregate(server, method, [u.sent.vector for u in updates])
    return _played(list(down.bytes_down), [u.sent.nbytes for u in updates], down.d_down, updates)


def _fleet_round(
    session: RunSession, clients: list[torch.Tensor], plan: RoundPlan, round_: int
) -> Played:
    """A fleet round (docs/fleets.md), exactly as ``planner.fleet.fleet_round`` prices it: every
    sampled client receives its download (at its own d_down), only the kept ones train and
    upload (at their own d_up); the server averages the kept uploads (zeros where a client sent
    nothing: sum / |kept|) and takes no step when nobody is kept."""
    method, server, sampled, price = session.method, session.server, plan.clients, plan.price
    assert price is not None
    if plan.d_down is not None:  # floss: each client at its own densities
        assert isinstance(method, TopK)
        starts, bytes_down = method.download_each(server.p, sampled, plan.d_down, round_=round_)
    else:  # dense / ffa: one message for everybody (uniform densities only)
        down = server_download(method, server, sampled, round_=round_)
        starts, bytes_down = [down.start] * len(sampled), list(down.bytes_down)
    kept = set(plan.kept)
    updates: list[ClientUpdate] = []
    bytes_up: list[int] = []
    for i, c in enumerate(sampled):
        if c not in kept:  # a straggler: its upload would be dropped, so it is not trained
            bytes_up.append(0)
            continue
        update = client_update(
            session.trainee,
            clients[c],
            starts[i],
            method=method,
            round_=round_,
            client=c,
            density=None if plan.d_up is None else plan.d_up[i],
        )
        updates.append(update)
        bytes_up.append(update.sent.nbytes)
    if updates:
        server_aggregate(server, method, [u.sent.vector for u in updates])
    if bytes_down != price.bytes_down or bytes_up != price.bytes_up:  # the one cost model
        raise TrainerError(
            f"round {round_}: sent {bytes_down} / {bytes_up} bytes, the planner priced "
            f"{price.bytes_down} / {price.bytes_up}."
        )
    return _played(bytes_down, bytes_up, price.d_down, updates)


def _interrupted(
    config: RunConfig, out: Path | None, records: list[RoundRecord], *, checkpoint: bool
) -> interrupt.Interrupted:
    done = records[-1].round if records else 0
    where = f"after round {done}" if done else "before round 1"
    return interrupt.Interrupted(
        f"interrupted {where} of {config.rounds}",
        round=done,
        rounds=config.rounds,
        out_dir=out,
        checkpoint=checkpoint and done > 0,
    )
