"""The Flower ServerApp and ``FlossStrategy``: the trainer's server, round for round.

The strategy plays floss-train's rounds over a Flower ``Grid``; the rest of the run's server
side is ``trainer.session.RunSession``, the object floss-train's loop uses too (set-up, resume,
the round's plan, its record, checkpoints and outputs): the trainer's ``ServerState``
(FedAdam/FedAvg/FedAvgM exactly as floss-train steps them, not Flower's FedAdam, whose formula
differs), the method's hooks and the records. A round:

1. ``RunSession.plan_round``: the clients floss-train samples (seed, round);
2. ``trainer.round.server_download``; each sampled client's node gets its own message (a
   ``full``/``mask`` message with positions, or ``values`` at a mask it holds): the codec's
   payload as a uint8 ``Array`` (``federation.wire``);
3. the ClientApps train (``federation.client``) and reply with their encoded top-k (the grid's
   push and pull: ``federation.exchange``);
4. each reply is checked and decoded as ``trainer.sparse`` decodes it (``federation.replies``);
   a failed or bad reply is dropped from the round (logged, kept in ``dropped``), the rest are
   aggregated in client order by ``trainer.round.server_aggregate``;
5. ``RunSession.close_round``: evaluation and the ``RoundRecord``; a checkpoint every
   ``checkpoint_every`` rounds and at the last round in the trainer's format. A ServerApp
   started again with the same ``out-dir`` continues from it (with more rounds: a finished run
   is extended).

Heterogeneous fleets (``fleet`` in the run config, docs/fleets.md): the round is
``planner.fleet.fleet_round``'s, as floss-train plays it. The server samples (over-selecting for
deadline rounds), sends each node its own download density and, in the download's meta, its own
upload density (``d-up``); the fleet's links are a model, not the nodes' real links, so the
server settles the round from the modeled times and tells each modeled straggler so
(``late``): that node decodes its download (counted) and replies with an empty upload, which
is neither aggregated nor counted. Real lateness on a real engine is ``round-timeout``'s job.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from flwr.app import Context, Message, MessageType
from flwr.serverapp import Grid, ServerApp

from federation.config import AppSettings, config_digest, from_run_config
from federation.exchange import exchange, message_id, reply_reason
from federation.nodes import discover_nodes
from federation.replies import Upload, read_late, read_upload
from federation.wire import DOWNLOAD, FederationError, message_content
from trainer.checkpoint import find_checkpoint
from trainer.config import RunConfig
from trainer.fedsrd import FedSRD
from trainer.methods import FixedMask, TopK
from trainer.records import RecordWriter, RoundRecord
from trainer.round import Trainee, server_aggregate, server_download
from trainer.session import Aggregated, Played, RoundPlan, RunSession
from trainer.workload import prepare

__all__ = ["Dropped", "FlossStrategy", "make_server_app"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dropped:
    round: int
    client: int  # its partition-id
    reason: str
    node: int | None = None  # the SuperNode it was sent to
    bytes_down: int = 0  # the download the round's record counts for it


class FlossStrategy:
    """floss-train's server on a Flower ``Grid``: its ServerState, method and records."""

    def __init__(
        self,
        config: RunConfig,
        settings: AppSettings,
        *,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.log = log or (lambda line: logger.info("%s", line))
        network = config.network_profile()
        fleet = config.fleet_setup()  # a bad fleet file or policy: one line, now
        self.digest = config_digest(config)
        # the run's server side, as floss-train sets it up (the rounds a budget buys included)
        self.session = RunSession(config, prepare(config), network=network, fleet=fleet, log=log)
        self.out = Path(settings.out_dir) if settings.out_dir else None
        self.dropped: list[Dropped] = []
        self.nodes: dict[int, int] = {}  # client (partition-id) -> node id
        if self.out is not None and find_checkpoint(self.out) is not None:
            self._resume()

    @property
    def config(self) -> RunConfig:
        return self.session.config

    @property
    def records(self) -> list[RoundRecord]:
        return self.session.records

    @property
    def method(self) -> Any:
        return self.session.method

    @property
    def trainee(self) -> Trainee:
        return self.session.trainee

    @property
    def final_p(self) -> torch.Tensor:
        return self.session.final_p

    # -- start-up --------------------------------------------------------------------------
    def _resume(self) -> None:
        assert self.out is not None
        ckpt = self.session.resume(self.out)
        if isinstance(self.method, FixedMask):
            # the nodes of a new run hold no mask: every client gets positions again
            self.method.seen.clear()
        if isinstance(self.method, FedSRD):
            # ... nor a FedSRD P: every client catches up from the seeded init (version 0)
            self.method.held.clear()
        self.log(f"resuming from the checkpoint of round {ckpt.round} in {self.out}")

    def discover(self, grid: Grid) -> dict[int, int]:
        """Wait for the nodes, ask each its partition, and map every client to one node
        (``federation.nodes``)."""
        self.nodes = discover_nodes(
            grid,
            num_clients=self.session.num_clients,
            n=self.session.n,
            digest=self.digest,
            wait_seconds=self.settings.node_wait_seconds,
        )
        return self.nodes

    # -- one round -----------------------------------------------------------------------
    def configure_train(self, r: int, plan: RoundPlan) -> tuple[list[Message], list[int], float]:
        """Each sampled client's TRAIN message of round ``r``; (messages, download bytes of each,
        the download density recorded)."""
        sampled = plan.clients
        if plan.d_down is not None and isinstance(self.method, TopK):
            _, bytes_down = self.method.download_each(
                self.session.server.p, sampled, plan.d_down, round_=r
            )
        else:
            down = server_download(self.method, self.session.server, sampled, round_=r)
            bytes_down, d_down = down.bytes_down, down.d_down
        if plan.price is not None:  # fleets: the mean k/n sent, as floss-train records it
            d_down = plan.price.d_down
        version = self.method.version if isinstance(self.method, FixedMask) else 0
        kept = set(plan.kept)
        messages = []
        for i, (c, nbytes) in enumerate(zip(sampled, bytes_down, strict=True)):
            if c not in self.method.messages:  # FedSRD resumed from an older checkpoint
                raise FederationError(
                    f"round {r}: client {c} needs deltas sent before this run's checkpoint, "
                    "which that checkpoint does not hold (written by an older floss); "
                    "start the Flower run over."
                )
            kind, sent = self.method.messages[c]
            assert len(sent.payload) == nbytes, "the payload is what the round counts"
            meta: dict[str, Any] = {
                "round": r,
                "client": c,
                "k": sent.k,
                "kind": kind,
                "version": version,
                "digest": self.digest,
            }
            if plan.d_up is not None:  # this client's own upload density
                meta["d-up"] = float(plan.d_up[i])
            if isinstance(self.method, FedSRD):  # the P the client holds, and what brings it up
                meta["version"] = self.method.version
                if kind == "chain":
                    held, sizes, ks = self.method.chains[c]
                    meta |= {"held": held, "sizes": list(sizes), "ks": list(ks)}
            if c not in kept:  # a modeled straggler: decode, do not train, reply empty
                meta["late"] = 1
            messages.append(
                Message(
                    message_content(DOWNLOAD, sent.payload, meta),
                    dst_node_id=self.nodes[c],
                    message_type=MessageType.TRAIN,
                    group_id=str(r),
                )
            )
        return messages, list(bytes_down), d_down

    def drop(self, r: int, client: int, reason: str, *, bytes_down: int = 0) -> None:
        node = self.nodes.get(client)
        self.dropped.append(
            Dropped(round=r, client=client, reason=reason, node=node, bytes_down=bytes_down)
        )
        if isinstance(self.method, FixedMask):
            self.method.seen.pop(client, None)  # it may not hold the mask: send positions again
        logger.warning(
            "round %d: dropped client %d (partition-id %d, node %s): %s",
            r, client, client, node, reason,
        )  # fmt: skip

    def run_round(self, grid: Grid, r: int) -> RoundRecord:
        tick = time.perf_counter()
        plan = self.session.plan_round(r)
        sampled, kept_plan = plan.clients, set(plan.kept)
        messages, bytes_down, d_down = self.configure_train(r, plan)
        if plan.price is not None and bytes_down != list(plan.price.bytes_down):
            raise FederationError(  # the one cost model (trainer.run checks the same)
                f"round {r}: sent {bytes_down} download bytes, the planner priced "
                f"{list(plan.price.bytes_down)}."
            )
        timeout = self.settings.round_timeout or None
        replies = exchange(grid, messages, timeout=timeout)
        client_of = {node: c for c, node in self.nodes.items()}
        # a reply answers one message: its id names the client, also when the SuperLink itself
        # answers for a node that is gone (that reply's source is the SuperLink, not the node)
        answers = {message_id(m): client_of.get(m.metadata.dst_node_id) for m in messages}
        down_of = dict(zip(sampled, bytes_down, strict=True))
        d_up_of = dict(zip(sampled, plan.d_up, strict=True)) if plan.d_up is not None else {}
        uploads: dict[int, Upload] = {}
        answered: set[int] = set()
        for reply in replies:
            c = answers.get(reply.metadata.reply_to_message_id)
            if c is None:
                c = client_of.get(reply.metadata.src_node_id)
            if c is None or c not in sampled or c in answered:
                logger.warning(
                    "round %d: ignored a reply from node %s to a message of another round or "
                    "client (%s)",
                    r, reply.metadata.src_node_id,
                    reply_reason(reply) if reply.has_error() else "an upload",
                )  # fmt: skip
                continue
            answered.add(c)
            try:
                if c in kept_plan:
                    uploads[c] = read_upload(
                        reply,
                        r,
                        c,
                        node=self.nodes.get(c),
                        method=self.method,
                        config=self.config,
                        n=self.session.n,
                        slices=self.trainee.adapter.slices,
                        device=self.trainee.device,
                        density=d_up_of.get(c),
                    )
                else:
                    read_late(reply, r, c, node=self.nodes.get(c))
            except FederationError as exc:
                self.drop(r, c, str(exc), bytes_down=down_of[c])
        for c in sampled:
            if c not in answered:
                self.drop(
                    r, c, f"no reply within round-timeout {self.settings.round_timeout:g} s",
                    bytes_down=down_of[c],
                )  # fmt: skip
        ordered = [uploads[c] for c in sampled if c in uploads]
        if kept_plan and not ordered:
            raise FederationError(
                f"round {r}: no client update arrived ({len(kept_plan)} dropped); the server "
                f"state stays at round {r - 1}."
            )
        if ordered:  # a deadline round nobody made takes no step (as floss-train's)
            server_aggregate(self.session.server, self.method, [u.vector for u in ordered])
        # a dropped or late client's download still counts; its upload never arrived
        up_all = [uploads[c].nbytes if c in uploads else 0 for c in sampled]
        if plan.price is not None:
            priced = dict(zip(sampled, plan.price.bytes_up, strict=True))
            wrong = [c for c in uploads if uploads[c].nbytes != priced[c]]
            if wrong:
                c = wrong[0]
                raise FederationError(
                    f"round {r}: client {c} sent {uploads[c].nbytes} upload bytes, the planner "
                    f"priced {priced[c]}."
                )
        played = Played(
            bytes_down=list(bytes_down),
            bytes_up=up_all,
            d_down=d_down,
            aggregated=[  # in client order, as aggregated
                Aggregated(client=c, k=uploads[c].k, loss=uploads[c].loss, steps=uploads[c].steps)
                for c in sampled
                if c in uploads
            ],
        )
        record = self.session.close_round(r, plan, played, tick=tick)
        self.session.check_diverged()  # before the record is written: Flower writes none
        return record

    # -- the run ---------------------------------------------------------------------------
    def run(self, grid: Grid) -> list[RoundRecord]:
        config, out = self.config, self.out
        self.log(
            f"floss on Flower: {config.method}, rank {config.rank}, {config.rounds} rounds x "
            f"{config.clients_per_round} of {self.session.num_clients} clients"
            + (f"; records, checkpoints and the adapter go to {out}" if out is not None else "")
        )
        if out is None:
            logger.warning(
                "out-dir is not set: this run writes no records, checkpoint or adapter "
                "(flwr run ... --run-config \"out-dir='runs/x'\")"
            )
        self.discover(grid)
        if out is not None:
            config.save(out / "config.yaml")
        writer = RecordWriter(out, existing=self.records) if out is not None else None
        for r in range(len(self.records) + 1, config.rounds + 1):
            record = self.run_round(grid, r)
            if writer is not None:
                writer.write(record)
            self.log(
                f"round {r}/{config.rounds}: loss {record.train_loss:.4f}, "
                f"{record.bytes_total:,} payload bytes"
                + (
                    f", val acc {record.val_accuracy:.4f}"
                    if record.val_accuracy is not None
                    else ""
                )
            )
            # every checkpoint_every rounds and always the last (a finished run can be extended)
            due = (config.checkpoint_every and r % config.checkpoint_every == 0) or (
                r == config.rounds
            )
            if out is not None and due:
                self.session.checkpoint(out)
        self.session.finish(out)
        if out is not None:
            _add_dropped(out / "summary.json", self.dropped)
        self.log(self.summary_line())
        return self.records

    def summary_line(self) -> str:
        """The end of the run in one line: rounds, bytes, dropped clients, where results are."""
        last = self.records[-1] if self.records else None
        acc = (
            ""
            if last is None or last.val_accuracy is None
            else f", val acc {last.val_accuracy:.4f}"
        )
        where = f"; results in {self.out}" if self.out is not None else "; nothing written"
        return (
            f"finished {len(self.records)}/{self.config.rounds} rounds: "
            f"{last.cum_bytes if last else 0:,} payload bytes{acc}, "
            f"{len(self.dropped)} client(s) dropped{where}"
        )


def _add_dropped(summary: Path, dropped: list[Dropped]) -> None:
    """summary.json with the dropped clients: how many, and each one's round, client (its
    partition-id), node, reason and the download bytes its round's record counts (sent, but a
    node that never answered may not have received them)."""
    import json
    from dataclasses import asdict

    data = json.loads(summary.read_text(encoding="utf-8"))
    data["dropped_clients"] = len(dropped)
    data["dropped"] = [asdict(d) for d in dropped]
    summary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@contextmanager
def flower_log_stream() -> Iterator[None]:
    """This module's lines, INFO and up, through Flower's own log handlers while the block
    runs: ``flwr run --stream`` and ``flwr log`` carry what Flower's logger carries, so the
    rounds, a resume and the summary are shown there (not only warnings)."""
    from flwr.common.logger import FLOWER_LOGGER

    added = [h for h in FLOWER_LOGGER.handlers if h not in logger.handlers]
    level = logger.level
    for handler in added:
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for handler in added:
            logger.removeHandler(handler)
        logger.setLevel(level)


RESULTS_ENV = "FLOSS_FLOWER_RESULTS"  # where runs without an out-dir write (a folder per run)


def default_out_dir(run_id: int) -> Path:
    """The out-dir of a Flower run whose run config sets none: ``$FLOSS_FLOWER_RESULTS`` (default
    ``~/floss-flower-results``) ``/run-<Flower's run id>``, absolute, so that a newcomer's first
    ``flwr run`` writes its records, checkpoints and adapter somewhere the log names."""
    root = os.environ.get(RESULTS_ENV) or str(Path.home() / "floss-flower-results")
    return Path(root).expanduser().resolve() / f"run-{int(run_id)}"


def make_server_app(
    base: RunConfig | None = None,
    *,
    settings: AppSettings | None = None,
    on_finish: Callable[[FlossStrategy], Any] | None = None,
) -> ServerApp:
    """A ServerApp for runs whose run config (``context.run_config``) is laid over ``base`` and
    ``settings`` (a Python-API simulation has an empty run config); ``on_finish(strategy)``
    sees the finished strategy (tests, benches)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        config, app_settings = from_run_config(
            context.run_config, base=base, base_settings=settings
        )
        with flower_log_stream():
            if not app_settings.out_dir and not getattr(grid, "in_process", False):
                out = default_out_dir(context.run_id)
                app_settings = replace(app_settings, out_dir=str(out))
                logger.warning(
                    "out-dir is not set: results go to %s (a folder per run; set out-dir, "
                    "e.g. --run-config \"out-dir='runs/x'\", to choose one, and give the same "
                    "one to resume a run)",
                    out,
                )
            strategy = FlossStrategy(config, app_settings)
            strategy.run(grid)
        if on_finish is not None:
            on_finish(strategy)

    return app
