"""The federated round loop: ``train(config)`` runs FLoSS or a baseline and returns its records.

One round (DESIGN.md): the server sends P masked to its top-k_down |P| entries; each of the m
sampled clients loads that vector into the shared model in place, trains all of P densely for E
local epochs, and uploads Delta_i = start - end masked to its own top-k_up |Delta_i|; the server
averages the decoded sparse Delta_i into a pseudo-gradient and takes one server-optimizer step on
its dense P. Every message is encoded by planner.codec; bytes are the payloads' lengths.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from planner.fleet import FleetSetup, check_deadline_reachable, fleet_round, served_shares
from planner.network import NetworkProfile, client_round_seconds
from planner.sampling import round_draws
from planner.sampling import round_seed as round_seed  # re-exported (tests, callers)
from planner.schedule import MethodSpec, synchronous_seconds
from trainer import interrupt
from trainer.budget import method_spec, resolve_budget_rounds, spend_guard
from trainer.checkpoint import (
    canonical_adapter_config,
    load_checkpoint,
    resume_note,
    save_checkpoint,
)
from trainer.client import evaluate_models
from trainer.config import RunConfig
from trainer.errors import DivergedError, TrainerError
from trainer.methods import TopK, make_method
from trainer.modeling import TINY_BERT, TINY_GPT2
from trainer.partition import describe_partition, partition_stats
from trainer.paths import CLIENTS_FILE, clear_run
from trainer.preflight import preflight
from trainer.records import RecordWriter, RoundRecord, json_safe
from trainer.round import (
    ClientUpdate,
    Trainee,
    client_update,
    served_models,
    server_aggregate,
    server_download,
)
from trainer.server import ServerState
from trainer.workload import Workload, prepare

__all__ = ["RunResult", "Workload", "prepare", "train"]

ADAPTER_DIR = "adapter"
BASE_DIR = "base_model"  # written for random-init models, whose base cannot be reloaded by name


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


def simulated_seconds(
    network: NetworkProfile,
    *,
    bytes_down: list[int],
    bytes_up: list[int],
    factors: list[float],
    compute_seconds: float,
) -> float:
    """The slowest sampled client sets the pace of a synchronous round (planner's function)."""
    return synchronous_seconds(
        network,
        bytes_down=bytes_down,
        bytes_up=bytes_up,
        factors=factors,
        compute_seconds=compute_seconds,
    )


def _eval_due(config: RunConfig, round_: int, extra: frozenset[int] = frozenset()) -> bool:
    return (
        round_ == config.rounds
        or (config.eval_every > 0 and round_ % config.eval_every == 0)
        or round_ in extra
    )


def _eval_rounds(rounds: Collection[int] | None) -> frozenset[int]:
    out = frozenset(rounds or ())
    bad = sorted(
        (r for r in out if isinstance(r, bool) or not isinstance(r, int) or r < 1), key=str
    )
    if bad:
        raise TrainerError(f"eval_rounds must be round numbers >= 1, but got {bad!r}.")
    return out


def _final_metrics(records: list[RoundRecord], config: RunConfig) -> dict[str, float | None]:
    """The last evaluated round's validation metrics and the last round's test metrics."""
    val = next((rec for rec in reversed(records) if rec.val_loss is not None), None)
    last = records[-1] if records and records[-1].round == config.rounds else None
    return {
        "final_val_accuracy": val.val_accuracy if val else None,
        "final_val_loss": val.val_loss if val else None,
        "final_val_accuracy_server": val.val_accuracy_server if val else None,
        "final_val_loss_server": val.val_loss_server if val else None,
        "test_accuracy": last.test_accuracy if last else None,
        "test_loss": last.test_loss if last else None,
        "test_accuracy_server": last.test_accuracy_server if last else None,
        "test_loss_server": last.test_loss_server if last else None,
    }


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
    trainee = Trainee.load(config, wl)  # the model wrapped once; clients swap P in place
    model, adapter, data, device, amp = (
        trainee.model,
        trainee.adapter,
        trainee.data,
        trainee.device,
        trainee.amp,
    )
    rows = wl.client_rows(config)
    client_stats = partition_stats(
        rows, np.asarray(wl.dataset.labels, dtype=np.int64), batch_size=config.batch_size
    )
    clients = [torch.as_tensor(r, device=device) for r in rows]
    val_rows = torch.as_tensor(wl.val_rows(config), device=device)
    test_rows = torch.as_tensor(wl.test_rows(config), device=device)
    server = ServerState(adapter.flat, config)
    method = make_method(config, n=adapter.n, slices=adapter.slices)
    spec = method_spec(
        config, n=adapter.n, tensor_sizes=tuple(sl.stop - sl.start for sl in adapter.slices)
    )
    if fleet is not None:
        try:
            check_deadline_reachable(
                spec,
                fleet,
                seed=config.seed,
                num_clients=len(clients),
                compute_seconds=config.compute_seconds,
            )
        except ValueError as exc:
            raise TrainerError(str(exc)) from None
    shares = fleet_served_shares(config, spec, fleet, num_clients=len(clients))
    if config.budget is not None:  # the rounds the budget buys, before the first one
        config = resolve_budget_rounds(
            config, wl, adapter, num_clients=len(clients), network=network, log=log
        )
        method.config = config
    # fedsrd: data-dependent uploads, so its budget stops on the bytes actually sent
    guard = spend_guard(config, wl, adapter, num_clients=len(clients), network=network)
    if log is not None:  # after the budget's line: what the run trains on
        log(wl.dataset.source)
        log(describe_partition(client_stats, partition=config.partition))
    records: list[RoundRecord] = []
    if resume:
        assert ckpt_dir is not None
        ckpt = load_checkpoint(ckpt_dir, config=config.to_dict(), n=adapter.n)
        if ckpt.round > config.rounds:
            raise TrainerError(
                f"--resume: the checkpoint in {str(ckpt_dir / 'checkpoint')!r} is at round "
                f"{ckpt.round}, past this run's {config.rounds} rounds; give at least "
                f"{ckpt.round} rounds (or a budget that buys them)."
            )
        server.load_state_dict(
            {k: ckpt.tensors[k].to(device) for k in ("p", "m", "v")}, step_count=ckpt.step_count
        )
        method.load_state({k: v.to(device) for k, v in ckpt.tensors.items()}, ckpt.meta["method"])
        records = [RoundRecord.from_dict(r) for r in ckpt.meta["records"]]
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
    cum_bytes = records[-1].cum_bytes if records else 0
    cum_sim = records[-1].cum_sim_seconds if records else 0.0
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
            if fleet is not None:
                played = _fleet_round(
                    trainee, clients, method, server, spec, fleet, config, round_=r
                )
            else:
                played = _network_round(trainee, clients, method, server, network, config, round_=r)
            bytes_down, bytes_up, updates = played.bytes_down, played.bytes_up, played.updates
            d_down, d_up = played.d_down, played.d_up
            losses = [u.local.loss for u in updates]
            steps = sum(u.local.steps for u in updates)
            # nobody aggregated (a deadline round nobody made): no loss, no step, not divergence
            train_loss = sum(losses) / len(losses) if losses else math.nan
            diverged = (bool(losses) and not math.isfinite(train_loss)) or not bool(
                torch.isfinite(server.p).all()
            )
            # fedsrd under a budget: its last round is the one after which the next would not fit
            spent = guard is not None and not guard.next_fits(
                cum_bytes + sum(bytes_down) + sum(bytes_up), cum_sim + played.seconds, r
            )
            splits: dict[str, torch.Tensor] = {}
            if _eval_due(config, r, extra_evals) or spent:
                splits["val"] = val_rows
            if (r == config.rounds or spent) and config.eval_test and len(test_rows):
                splits["test"] = test_rows
            metrics: dict[str, float | None] = {"val_loss": None, "val_accuracy": None}
            if splits and not diverged:
                metrics = evaluate_models(
                    model,
                    adapter,
                    data,
                    splits,
                    served=served_models(method, server.p, shares),
                    server=server.p,
                    lm=config.task == "lm",
                    amp=amp,
                )
            sim = played.seconds
            round_bytes = sum(bytes_down) + sum(bytes_up)
            cum_bytes += round_bytes
            cum_sim += sim
            record = RoundRecord(
                round=r,
                rank=config.rank,
                d_down=d_down,
                d_up=d_up,
                bytes_down=round(sum(bytes_down) / len(bytes_down)),
                bytes_up=round(sum(bytes_up) / len(updates)) if updates else 0,  # over the kept
                bytes_total=round_bytes,
                cum_bytes=cum_bytes,
                sim_seconds=sim,
                cum_sim_seconds=cum_sim,
                wall_seconds=time.perf_counter() - tick,
                train_loss=train_loss,
                client_steps=steps,
                clients=list(played.clients),
                kept=[u.client for u in updates],
                client_bytes_down=list(bytes_down),
                client_bytes_up=list(bytes_up),
                client_seconds=list(played.client_seconds),
                client_d_down=list(played.client_d_down),
                client_d_up=list(played.client_d_up),
                **metrics,
            )
            records.append(record)
            if writer is not None:
                writer.write(record)
            bar.update(record)
            if diverged:
                raise DivergedError(
                    f"training diverged in round {r} (train loss {train_loss}); "
                    "lower client_lr or server_lr.",
                    record=record,
                )
            if on_round is not None and on_round(record) is False:
                stopped = r < config.rounds
            halted = interrupt.requested() and r < config.rounds
            due = bool(config.checkpoint_every) and r % config.checkpoint_every == 0
            # an out_dir keeps the run's end too (its last round, or where it stopped early)
            end = out is not None and (stopped or r == config.rounds)
            if ckpt_dir is not None and (due or end or halted):
                _checkpoint(ckpt_dir, config, server, method, records)  # always on an interrupt
                saved = r
            if stopped or halted:
                break
            if spent:
                played_to = r
                break  # fedsrd: the budget is spent on actual bytes; the run is complete
    finally:
        bar.close()
    if played_to is not None:  # fedsrd's budget ended the run: these are its rounds
        config = replace(config, rounds=played_to)
    if out is not None and records and saved != records[-1].round:  # fedsrd spent, nothing left
        _checkpoint(out, config, server, method, records)
    if halted:
        raise _interrupted(config, ckpt_dir, records, checkpoint=ckpt_dir is not None)
    if guard is not None and log is not None and records:
        log(guard.describe(len(records), records[-1].cum_bytes))
    adapter.flat.copy_(server.p)
    if out is not None:
        _save_outputs(out, model, wl, config, records)
    return RunResult(
        records=records,
        adapter_size=adapter.n,
        stopped_early=stopped,
        out_dir=out,
        final_p=server.p.detach().cpu().clone(),
        **_final_metrics(records, config),
    )


@dataclass(frozen=True)
class _Played:
    """One round as played: per sampled client (``clients`` order) the bytes each received and
    sent (0: not aggregated), its seconds and densities; the kept clients' updates."""

    clients: list[int]
    bytes_down: list[int]
    bytes_up: list[int]
    client_seconds: list[float]
    client_d_down: list[float]
    client_d_up: list[float]
    updates: list[ClientUpdate]
    d_down: float
    d_up: float
    seconds: float


def _network_round(
    trainee: Trainee,
    clients: list[torch.Tensor],
    method: Any,
    server: ServerState,
    network: NetworkProfile,
    config: RunConfig,
    *,
    round_: int,
) -> _Played:
    """A round on one network profile: m sampled clients, everybody aggregated, the slowest
    sets the pace."""
    sampled, factors = round_draws(
        seed=config.seed,
        round_=round_,
        num_clients=len(clients),
        clients_per_round=config.clients_per_round,
        network=network,
    )
    down = server_download(method, server, sampled, round_=round_)
    updates = [
        client_update(trainee, clients[c], down.start, method=method, round_=round_, client=c)
        for c in sampled
    ]
    server_aggregate(server, method, [u.sent.vector for u in updates])
    bytes_up = [u.sent.nbytes for u in updates]
    seconds = [
        client_round_seconds(
            bytes_down=bd,
            bytes_up=bu,
            network=network,
            bandwidth_factor=f,
            compute_seconds=config.compute_seconds,
        )
        for bd, bu, f in zip(down.bytes_down, bytes_up, factors, strict=True)
    ]
    n = server.p.numel()
    return _Played(
        clients=list(sampled),
        bytes_down=list(down.bytes_down),
        bytes_up=bytes_up,
        client_seconds=seconds,
        client_d_down=[down.d_down] * len(sampled),
        client_d_up=[u.sent.k / n for u in updates],
        updates=updates,
        d_down=down.d_down,
        d_up=updates[-1].sent.k / n,
        seconds=simulated_seconds(
            network,
            bytes_down=down.bytes_down,
            bytes_up=bytes_up,
            factors=factors,
            compute_seconds=config.compute_seconds,
        ),
    )


def _fleet_round(
    trainee: Trainee,
    clients: list[torch.Tensor],
    method: Any,
    server: ServerState,
    spec: MethodSpec,
    fleet: FleetSetup,
    config: RunConfig,
    *,
    round_: int,
) -> _Played:
    """A fleet round (docs/fleets.md), exactly as ``planner.fleet.fleet_round`` prices it: every
    sampled client receives its download (at its own d_down), only the kept ones train and
    upload (at their own d_up); the server averages the kept uploads (zeros where a client sent
    nothing: sum / |kept|) and takes no step when nobody is kept."""
    price = fleet_round(
        spec,
        fleet,
        seed=config.seed,
        round_=round_,
        num_clients=len(clients),
        clients_per_round=config.clients_per_round,
        compute_seconds=config.compute_seconds,
    )
    sampled = price.clients
    per_client = isinstance(method, TopK) and config.method == "floss"
    if per_client:
        starts, bytes_down = method.download_each(
            server.p, sampled, price.client_d_down, round_=round_
        )
    else:  # dense / ffa: one message for everybody (uniform densities only)
        down = server_download(method, server, sampled, round_=round_)
        starts, bytes_down = [down.start] * len(sampled), list(down.bytes_down)
    kept = set(sampled if price.kept is None else price.kept)
    updates: list[ClientUpdate] = []
    bytes_up: list[int] = []
    for i, c in enumerate(sampled):
        if c not in kept:  # a straggler: its upload would be dropped, so it is not trained
            bytes_up.append(0)
            continue
        update = client_update(
            trainee,
            clients[c],
            starts[i],
            method=method,
            round_=round_,
            client=c,
            density=price.client_d_up[i] if per_client else None,
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
    return _Played(
        clients=list(sampled),
        bytes_down=bytes_down,
        bytes_up=bytes_up,
        client_seconds=list(price.client_seconds),
        client_d_down=list(price.client_d_down),
        client_d_up=list(price.client_d_up),
        updates=updates,
        d_down=price.d_down,
        d_up=price.d_up,
        seconds=price.seconds,
    )


def fleet_served_shares(
    config: RunConfig, spec: MethodSpec, fleet: FleetSetup | None, *, num_clients: int
) -> tuple[tuple[float, float], ...]:
    """The download densities the run's clients hold and their shares (fleets where floss gives
    clients their own d_down: tiered, or bandwidth with adapt_down); () otherwise: the served
    model is the one at the run's d_down."""
    if fleet is None or config.method != "floss":
        return ()
    return served_shares(
        spec, fleet, seed=config.seed, num_clients=num_clients,
        compute_seconds=config.compute_seconds,
    )  # fmt: skip


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


def _checkpoint(
    out: Path, config: RunConfig, server: ServerState, method: Any, records: list[RoundRecord]
) -> None:
    method_tensors, method_meta = method.state()
    save_checkpoint(
        out,
        round=records[-1].round,
        step_count=server.step_count,
        tensors={**server.state_dict(), **method_tensors},
        meta={
            "config": config.to_dict(),
            "method": method_meta,
            "records": [rec.to_dict() for rec in records],
        },
    )


def _save_outputs(
    out: Path, model: Any, wl: Workload, config: RunConfig, records: list[RoundRecord]
) -> None:
    """The adapter in PEFT format (plus the base model when it is random), and a summary."""
    model.save_pretrained(str(out / ADAPTER_DIR))
    canonical_adapter_config(out / ADAPTER_DIR)  # identical runs, identical bytes
    wl.tokenizer.save_pretrained(str(out / ADAPTER_DIR))
    if config.model in (TINY_BERT, TINY_GPT2):
        wl.base_model.save_pretrained(str(out / BASE_DIR))
    summary = {
        "rounds": len(records),
        "labels": wl.dataset.label_names,
        "cum_bytes": records[-1].cum_bytes if records else 0,
        "cum_sim_seconds": records[-1].cum_sim_seconds if records else 0.0,
        **_final_metrics(records, config),
    }
    (out / "summary.json").write_text(  # JSON has no NaN/inf: null instead
        json.dumps(json_safe(summary), indent=2, sort_keys=True, allow_nan=False) + "\n",
        encoding="utf-8",
    )
