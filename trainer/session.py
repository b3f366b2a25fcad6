"""One run's server side, written once: ``RunSession`` for floss-train and the Flower ServerApp.

A session holds what the server of one run owns: the wrapped model (``Trainee``), the dense P
and its optimizer (``ServerState``), the method's hooks, the method spec the planner prices,
the fleet's served shares and the records. Its steps are the same on both engines:

- set-up (``RunSession(...)``): the model, the validation and test rows, the server, the method,
  a fleet's deadline check, the rounds a budget buys;
- ``resume``: the server, the method and the records from a checkpoint;
- ``plan_round``: who is sampled in round r (``planner.sampling.round_draws``, or
  ``planner.fleet.fleet_round`` on a fleet), at which densities, and who makes the round;
- ``close_round``: the round as played, evaluated and turned into its ``RoundRecord``
  (docs/fleets.md: a fleet round's seconds and densities are the planner's, as priced);
- ``checkpoint`` and ``finish`` (the adapter, the tokenizer and summary.json).

``trainer.run.train`` plays each round in process between ``plan_round`` and ``close_round``;
``federation.server.FlossStrategy`` plays it over a Flower ``Grid``. Both engines therefore
sample, evaluate, record and save with the same code, and their records agree bit for bit but for ``wall_seconds``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from planner.fleet import FleetSetup, check_deadline_reachable, fleet_round, served_shares
from planner.method_spec import MethodSpec
from planner.network import NetworkProfile, client_round_seconds
from planner.sampling import round_draws
from planner.schedule import RoundPrice, synchronous_seconds
from trainer.budget import SpendGuard, method_spec, resolve_budget_rounds, spend_guard
from trainer.checkpoint import (
    Checkpoint,
    canonical_adapter_config,
    load_checkpoint,
    save_checkpoint,
)
from trainer.client import evaluate_models
from trainer.config import RunConfig
from trainer.errors import DivergedError, TrainerError
from trainer.methods import make_method
from trainer.modeling import TINY_BERT, TINY_GPT2
from trainer.records import RoundRecord, json_safe
from trainer.round import Trainee, served_models
from trainer.server import ServerState
from trainer.workload import Workload

__all__ = [
    "ADAPTER_DIR",
    "BASE_DIR",
    "Aggregated",
    "Played",
    "RoundPlan",
    "RunSession",
    "fleet_served_shares",
]

ADAPTER_DIR = "adapter"
BASE_DIR = "base_model"  # written for random-init models, whose base cannot be reloaded by name


@dataclass(frozen=True)
class RoundPlan:
    """One round before it is played: the sampled clients (sorted ids), their bandwidth factors
    (network rounds), each one's download and upload density (None: the method's own), the
    clients that make the round (fleets: the modeled deadline) and the fleet's price (None on
    one network profile)."""

    clients: list[int]
    factors: list[float]
    d_down: list[float] | None
    d_up: list[float] | None
    kept: list[int]
    price: RoundPrice | None


@dataclass(frozen=True)
class Aggregated:
    """One upload the server aggregated, as the round's record counts it."""

    client: int
    k: int
    loss: float
    steps: int


@dataclass(frozen=True)
class Played:
    """A round as played: per sampled client (the plan's order) the bytes it received and sent
    (0: nothing aggregated from it), the download density sent (network rounds) and the
    aggregated uploads in aggregation order."""

    bytes_down: list[int]
    bytes_up: list[int]
    d_down: float
    aggregated: list[Aggregated]


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


class RunSession:
    """The server of one run: set up from its config and workload, then round by round."""

    def __init__(
        self,
        config: RunConfig,
        workload: Workload,
        *,
        network: NetworkProfile,
        fleet: FleetSetup | None,
        log: Callable[[str], None] | None = None,
        eval_rounds: frozenset[int] = frozenset(),
        guard_spend: bool = False,
    ) -> None:
        """``eval_rounds``: rounds validated besides every ``eval_every`` and the last.
        ``guard_spend`` (floss-train): a fedsrd run under a budget ends after the round past
        which the next would not fit on the bytes actually sent (``spent``)."""
        self.network = network
        self.fleet = fleet
        self.workload = workload
        self.eval_rounds = eval_rounds
        self.trainee = Trainee.load(config, workload)  # the model wrapped once
        adapter = self.trainee.adapter
        self.n = adapter.n
        self.client_rows = workload.client_rows(config)
        self.num_clients = len(self.client_rows)
        device = self.trainee.device
        self.val_rows = torch.as_tensor(workload.val_rows(config), device=device)
        self.test_rows = torch.as_tensor(workload.test_rows(config), device=device)
        self.server = ServerState(adapter.flat, config)
        self.method = make_method(config, n=self.n, slices=adapter.slices)
        self.spec = method_spec(
            config, n=self.n, tensor_sizes=tuple(sl.stop - sl.start for sl in adapter.slices)
        )
        # fleets: floss encodes every client at its own densities
        self.per_client = fleet is not None and config.method == "floss"
        if fleet is not None:
            try:
                check_deadline_reachable(
                    self.spec,
                    fleet,
                    seed=config.seed,
                    num_clients=self.num_clients,
                    compute_seconds=config.compute_seconds,
                )
            except ValueError as exc:
                raise TrainerError(str(exc)) from None
        self.shares = fleet_served_shares(config, self.spec, fleet, num_clients=self.num_clients)
        if config.budget is not None:  # the rounds the budget buys, before the first one
            config = resolve_budget_rounds(
                config, workload, adapter, num_clients=self.num_clients, network=network, log=log
            )
            self.method.config = config
        self.config = config
        # fedsrd: data-dependent uploads, so its budget stops on the bytes actually sent
        self.guard: SpendGuard | None = None
        if guard_spend:
            self.guard = spend_guard(
                config, workload, adapter, num_clients=self.num_clients, network=network
            )
        self.records: list[RoundRecord] = []
        self.spent = False  # the round just closed is the last the budget buys (guard_spend)
        self._diverged = False

    # -- start-up --------------------------------------------------------------------------
    def resume(self, folder: Path) -> Checkpoint:
        """The server, the method and the records from the checkpoint in ``folder``."""
        ckpt = load_checkpoint(folder, config=self.config.to_dict(), n=self.n)
        device = self.trainee.device
        self.server.load_state_dict(
            {k: ckpt.tensors[k].to(device) for k in ("p", "m", "v")}, step_count=ckpt.step_count
        )
        self.method.load_state(
            {k: v.to(device) for k, v in ckpt.tensors.items()}, ckpt.meta["method"]
        )
        self.records = [RoundRecord.from_dict(r) for r in ckpt.meta["records"]]
        return ckpt

    # -- one round -------------------------------------------------------------------------
    def plan_round(self, r: int) -> RoundPlan:
        """Who is sampled in round ``r``, at which densities, and who makes it (fleets)."""
        config = self.config
        if self.fleet is None:
            sampled, factors = round_draws(
                seed=config.seed,
                round_=r,
                num_clients=self.num_clients,
                clients_per_round=config.clients_per_round,
                network=self.network,
            )
            return RoundPlan(list(sampled), list(factors), None, None, list(sampled), None)
        price = fleet_round(
            self.spec,
            self.fleet,
            seed=config.seed,
            round_=r,
            num_clients=self.num_clients,
            clients_per_round=config.clients_per_round,
            compute_seconds=config.compute_seconds,
        )
        sampled = list(price.clients)
        each = self.per_client
        return RoundPlan(
            clients=sampled,
            factors=[],
            d_down=list(price.client_d_down) if each else None,
            d_up=list(price.client_d_up) if each else None,
            kept=sampled if price.kept is None else list(price.kept),
            price=price,
        )

    def eval_due(self, r: int) -> bool:
        """Validation after round ``r``: every ``eval_every`` rounds, the last, ``eval_rounds``."""
        config = self.config
        return (
            r == config.rounds
            or (config.eval_every > 0 and r % config.eval_every == 0)
            or r in self.eval_rounds
        )

    def close_round(self, r: int, plan: RoundPlan, played: Played, *, tick: float) -> RoundRecord:
        """Round ``r`` as ``played``: divergence, the budget's end (``spent``), evaluation of
        the served model and the server's P, and the record (appended to ``records``; its
        ``wall_seconds`` from ``tick``). Call ``check_diverged`` once the record is kept."""
        config, server, t = self.config, self.server, self.trainee
        price, bytes_down, bytes_up = plan.price, played.bytes_down, played.bytes_up
        aggregated = played.aggregated
        losses = [a.loss for a in aggregated]
        # nobody aggregated (a deadline round nobody made): no loss, no step, not divergence
        train_loss = sum(losses) / len(losses) if losses else math.nan
        diverged = (bool(losses) and not math.isfinite(train_loss)) or not bool(
            torch.isfinite(server.p).all()
        )
        if price is not None:  # fleets: the modeled round, as the planner prices it
            sim, seconds = price.seconds, list(price.client_seconds)
            client_d_down, client_d_up = list(price.client_d_down), list(price.client_d_up)
            d_down, d_up = price.d_down, price.d_up
        else:
            sim = synchronous_seconds(  # the slowest sampled client sets the pace
                self.network,
                bytes_down=bytes_down,
                bytes_up=bytes_up,
                factors=plan.factors,
                compute_seconds=config.compute_seconds,
            )
            seconds = [
                client_round_seconds(
                    bytes_down=bd,
                    bytes_up=bu,
                    network=self.network,
                    bandwidth_factor=f,
                    compute_seconds=config.compute_seconds,
                )
                for bd, bu, f in zip(bytes_down, bytes_up, plan.factors, strict=True)
            ]
            k_of = {a.client: a.k for a in aggregated}
            d_down = played.d_down
            client_d_down = [d_down] * len(plan.clients)
            client_d_up = [k_of[c] / self.n if c in k_of else 0.0 for c in plan.clients]
            d_up = aggregated[-1].k / self.n
        round_bytes = sum(bytes_down) + sum(bytes_up)
        prev = self.records[-1] if self.records else None
        cum_bytes = (prev.cum_bytes if prev else 0) + round_bytes
        cum_sim = (prev.cum_sim_seconds if prev else 0.0) + sim
        # fedsrd under a budget: its last round is the one after which the next would not fit
        self.spent = self.guard is not None and not self.guard.next_fits(cum_bytes, cum_sim, r)
        splits: dict[str, torch.Tensor] = {}
        if self.eval_due(r) or self.spent:
            splits["val"] = self.val_rows
        if (r == config.rounds or self.spent) and config.eval_test and len(self.test_rows):
            splits["test"] = self.test_rows
        metrics: dict[str, float | None] = {"val_loss": None, "val_accuracy": None}
        if splits and not diverged:
            metrics = evaluate_models(
                t.model,
                t.adapter,
                t.data,
                splits,
                served=served_models(self.method, server.p, self.shares),
                server=server.p,
                lm=config.task == "lm",
                amp=t.amp,
            )
        record = RoundRecord(
            round=r,
            rank=config.rank,
            d_down=d_down,
            d_up=d_up,
            bytes_down=round(sum(bytes_down) / len(bytes_down)),
            bytes_up=round(sum(bytes_up) / len(aggregated)) if aggregated else 0,  # the kept
            bytes_total=round_bytes,
            cum_bytes=cum_bytes,
            sim_seconds=sim,
            cum_sim_seconds=cum_sim,
            wall_seconds=time.perf_counter() - tick,
            train_loss=train_loss,
            client_steps=sum(a.steps for a in aggregated),
            clients=list(plan.clients),  # a dropped client is sampled, it sent nothing
            kept=[a.client for a in aggregated],
            client_bytes_down=list(bytes_down),
            client_bytes_up=list(bytes_up),
            client_seconds=seconds,
            client_d_down=client_d_down,
            client_d_up=client_d_up,
            **metrics,
        )
        self.records.append(record)
        self._diverged = diverged
        return record

    def check_diverged(self) -> None:
        """DivergedError (carrying the record) when the round just closed diverged."""
        if self._diverged:
            record = self.records[-1]
            raise DivergedError(
                f"training diverged in round {record.round} (train loss {record.train_loss}); "
                "lower client_lr or server_lr.",
                record=record,
            )

    # -- the end ---------------------------------------------------------------------------
    def end_at(self, r: int) -> None:
        """The run ends after round ``r`` (a fedsrd budget spent): its config says so from now
        on, in the checkpoint and summary.json."""
        self.config = replace(self.config, rounds=r)

    def checkpoint(self, folder: Path) -> None:
        """The server, the method and the records so far, in ``folder`` (format 2)."""
        method_tensors, method_meta = self.method.state()
        save_checkpoint(
            folder,
            round=self.records[-1].round,
            step_count=self.server.step_count,
            tensors={**self.server.state_dict(), **method_tensors},
            meta={
                "config": self.config.to_dict(),
                "method": method_meta,
                "records": [rec.to_dict() for rec in self.records],
            },
        )

    def final_metrics(self) -> dict[str, float | None]:
        """The last evaluated round's validation metrics and the last round's test metrics."""
        records = self.records
        val = next((rec for rec in reversed(records) if rec.val_loss is not None), None)
        last = records[-1] if records and records[-1].round == self.config.rounds else None
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

    @property
    def final_p(self) -> torch.Tensor:
        return self.server.p.detach().cpu().clone()

    def finish(self, out: Path | None) -> None:
        """The server's P into the model; with ``out``, the adapter in PEFT format (plus the
        base model when it is random), its tokenizer and summary.json."""
        self.trainee.adapter.flat.copy_(self.server.p)
        if out is None:
            return
        wl, records = self.workload, self.records
        self.trainee.model.save_pretrained(str(out / ADAPTER_DIR))
        canonical_adapter_config(out / ADAPTER_DIR)  # identical runs, identical bytes
        wl.tokenizer.save_pretrained(str(out / ADAPTER_DIR))
        if self.config.model in (TINY_BERT, TINY_GPT2):
            wl.base_model.save_pretrained(str(out / BASE_DIR))
        summary = {
            "rounds": len(records),
            "labels": wl.dataset.label_names,
            "cum_bytes": records[-1].cum_bytes if records else 0,
            "cum_sim_seconds": records[-1].cum_sim_seconds if records else 0.0,
            **self.final_metrics(),
        }
        (out / "summary.json").write_text(  # JSON has no NaN/inf: null instead
            json.dumps(json_safe(summary), indent=2, sort_keys=True, allow_nan=False) + "\n",
            encoding="utf-8",
        )
