"""The Flower ClientApp: decode the server's payload, train with the trainer's client code, upload
the encoded top-k.

A node is one client of the run: its ``partition-id`` (node config, as ``flower-supernode
--node-config "partition-id=I num-partitions=N"`` and Flower's simulation set it) picks its rows
from the trainer's partitioner (iid, dirichlet or natural, seeded by the run's seed), so a node
trains exactly the rows floss-train gives client I. The model is loaded and LoRA-wrapped once
per client process (``_RUNTIMES``) and reused by every node and round in that process; a fixed
mask (sparseadapter, adapterlth) a node received, and its error-feedback residual, are kept in its
``context.state``.

Fleets: a download may carry the client's own upload density (``d-up``: floss encodes its top-k
at it) and ``late`` (the server's fleet model says this client misses the round's deadline): the
node decodes the download, trains nothing and replies with an empty upload.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from federation.config import config_digest, from_run_config
from federation.wire import (
    DOWNLOAD,
    META,
    UPLOAD,
    FederationError,
    decode_vector,
    mask_positions,
    message_content,
    meta_int,
    read_message,
)
from planner.method_spec import SRD_METHODS
from trainer.config import RunConfig
from trainer.methods import Method, make_method
from trainer.round import Trainee, client_update
from trainer.workload import prepare, workload_key

__all__ = ["make_client_app", "partition_of"]

logger = logging.getLogger(__name__)
MASK_RECORD = "floss-mask"  # context.state: the fixed mask this node holds
MASK_META = "floss-mask-version"
RESIDUAL_RECORD = "floss-residual"  # context.state: this client's error-feedback residual
SRD_RECORD = "floss-srd-p"  # context.state: the P a FedSRD client holds, and its version
SRD_META = "floss-srd-version"


@dataclass
class _Runtime:
    trainee: Trainee
    rows: list[torch.Tensor]
    digest: str
    p0: torch.Tensor  # the adapter's seeded initial P (FedSRD's version 0, which every node builds)


_RUNTIMES: dict[tuple[Any, ...], _Runtime] = {}
LOADS = {"count": 0}  # model loads in this process (a test checks: once per process and run)


def runtime(config: RunConfig) -> _Runtime:
    """This process's model for the run: loaded and wrapped on first use, then reused."""
    key = (*workload_key(config), config_digest(config), config.device)
    if key not in _RUNTIMES:
        _RUNTIMES.clear()  # one run at a time per process; free the previous model
        wl = prepare(config)
        trainee = Trainee.load(config, wl)
        rows = [torch.as_tensor(r, device=trainee.device) for r in wl.client_rows(config)]
        p0 = trainee.adapter.flat.detach().clone()
        _RUNTIMES[key] = _Runtime(trainee=trainee, rows=rows, digest=config_digest(config), p0=p0)
        LOADS["count"] += 1
    return _RUNTIMES[key]


def partition_of(context: Context, num_partitions: int) -> int:
    """The node's client id, from its node config; one error naming the node otherwise."""
    node = f"node {context.node_id}"
    hint = (
        f"start it with flower-supernode --node-config "
        f"'partition-id=I num-partitions={num_partitions}' (0 <= I < {num_partitions})"
    )
    cfg = context.node_config
    if "partition-id" not in cfg:
        raise FederationError(f"{node}: its node config has no partition-id; {hint}.")
    pid = cfg["partition-id"]
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 <= pid < num_partitions:
        raise FederationError(
            f"{node}: partition-id {pid!r} is out of range for the run's {num_partitions} "
            f"clients; {hint}."
        )
    total = cfg.get("num-partitions")
    if total is not None and total != num_partitions:
        raise FederationError(
            f"{node}: num-partitions {total!r} in its node config, but the run has "
            f"{num_partitions} clients; {hint}."
        )
    return pid


def _held_mask(context: Context) -> tuple[torch.Tensor | None, int]:
    if MASK_RECORD not in context.state.array_records:
        return None, -1
    positions = torch.from_numpy(context.state.array_records[MASK_RECORD]["positions"].numpy())
    version = context.state.config_records[MASK_META]["version"]
    return positions, version if isinstance(version, int) else -1


def _hold_mask(context: Context, positions: torch.Tensor, version: int) -> None:
    context.state[MASK_RECORD] = ArrayRecord({"positions": Array(positions.cpu().numpy())})
    context.state[MASK_META] = ConfigRecord({"version": version})


def _held_residual(context: Context, device: torch.device) -> torch.Tensor | None:
    if RESIDUAL_RECORD not in context.state.array_records:
        return None
    array = context.state.array_records[RESIDUAL_RECORD]["residual"]
    return torch.from_numpy(array.numpy().copy()).to(device)


def _hold_residual(context: Context, residual: torch.Tensor) -> None:
    context.state[RESIDUAL_RECORD] = ArrayRecord(
        {"residual": Array(residual.detach().cpu().numpy())}
    )


def _srd_start(
    payload: bytes,
    meta: dict[str, Any],
    context: Context,
    config: RunConfig,
    rt: _Runtime,
    what: str,
) -> torch.Tensor:
    """FedSRD's download: a dense P ("dense"), or the deltas this node missed ("chain") added
    in order to the P it holds (the seeded init at version 0), as the server added them; the
    result is held for the next round."""
    n, device = rt.trainee.adapter.n, rt.trainee.adapter.flat.device
    kind, version = str(meta.get("kind")), meta_int(meta, "version", what)
    if kind == "dense":
        p = decode_vector(payload, kind="full", n=n, k=n, encoding="dense", precision="fp32",
                          positions=None, device=device, what=what)  # fmt: skip
    elif kind == "chain":
        held = meta_int(meta, "held", what)
        sizes, ks = meta.get("sizes"), meta.get("ks")
        if not isinstance(sizes, list) or not isinstance(ks, list) or len(sizes) != len(ks):
            raise FederationError(f"{what}: a chain needs meta 'sizes' and 'ks' of one length.")
        if sum(sizes) != len(payload) or held + len(sizes) != version:
            raise FederationError(
                f"{what}: a chain of {len(sizes)} deltas from version {held} to {version} "
                f"in {len(payload)} bytes does not add up."
            )
        if SRD_RECORD in context.state.array_records:
            array = context.state.array_records[SRD_RECORD]["p"]
            p = torch.from_numpy(array.numpy().copy()).to(device)
            held_version = context.state.config_records[SRD_META]["version"]
            mine = held_version if isinstance(held_version, int) else -1
        else:
            p, mine = rt.p0.clone(), 0
        if mine != held:
            raise FederationError(
                f"{what}: deltas from version {held}, but this node holds version {mine}."
            )
        start = 0
        for size, k in zip(sizes, ks, strict=True):
            chunk = payload[start : start + int(size)]
            start += int(size)
            p.add_(decode_vector(chunk, kind="full", n=n, k=int(k), encoding=config.encoding,
                                 precision=config.wire_precisions[0], positions=None,
                                 device=device, what=what))  # fmt: skip
    else:
        raise FederationError(f"{what}: a FedSRD download is 'dense' or 'chain', not {kind!r}.")
    context.state[SRD_RECORD] = ArrayRecord({"p": Array(p.detach().cpu().numpy())})
    context.state[SRD_META] = ConfigRecord({"version": version})
    return p


def _upload_density(meta: dict[str, Any], config: RunConfig, what: str) -> float | None:
    """The client's own upload density (fleets, floss), or None: the method's."""
    if "d-up" not in meta:
        return None
    d = meta["d-up"]
    if config.fleet is None or config.method != "floss":
        raise FederationError(
            f"{what}: a per-client upload density, but this run ({config.method}"
            f"{'' if config.fleet is None else ', fleet ' + repr(config.fleet)}) has none."
        )
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d <= 1:
        raise FederationError(f"{what}: meta 'd-up' must be a density in (0, 1], got {d!r}.")
    return float(d)


def _client_method(config: RunConfig, rt: _Runtime, positions: torch.Tensor | None) -> Method:
    adapter = rt.trainee.adapter
    method = make_method(config, n=adapter.n, slices=adapter.slices)
    if positions is not None:
        method.load_state(
            {"mask_positions": positions.to(adapter.flat.device)},
            {"version": 0, "density": positions.numel() / adapter.n, "seen": {}},
        )
    return method


def handle_train(message: Message, context: Context, base: RunConfig | None) -> Message:
    config, _ = from_run_config(context.run_config, base=base)
    rt = runtime(config)
    pid = partition_of(context, len(rt.rows))
    adapter = rt.trainee.adapter
    what = f"client {pid} (node {context.node_id}), download"
    payload, meta = read_message(message.content, DOWNLOAD, what)
    r = meta_int(meta, "round", what, low=1)
    what = f"round {r}, {what}"
    if meta.get("digest") != rt.digest:
        raise FederationError(
            f"{what}: the server trains another run config (digest {meta.get('digest')!r}, "
            f"this node {rt.digest!r}); give both the same run config."
        )
    if meta_int(meta, "client", what) != pid:
        raise FederationError(f"{what}: addressed to client {meta.get('client')}, not {pid}.")
    kind = str(meta.get("kind"))
    device = adapter.flat.device
    positions: torch.Tensor | None = None
    if config.method in SRD_METHODS:
        start = _srd_start(payload, meta, context, config, rt, what)
    else:
        k = meta_int(meta, "k", what, low=1)
        version = meta_int(meta, "version", what)
        held, held_version = _held_mask(context)
        if kind == "values" and held_version != version:
            raise FederationError(
                f"{what}: values for mask version {version}, but this node holds "
                f"{'no mask' if held is None else f'version {held_version}'}."
            )
        start = decode_vector(
            payload,
            kind=kind,
            n=adapter.n,
            k=k,
            encoding=config.encoding,
            precision=config.wire_precisions[0],  # the download's value precision
            positions=held.to(device) if held is not None else None,
            device=device,
            what=what,
        )
    if kind == "mask":
        positions = mask_positions(start, k, what)
        _hold_mask(context, positions, version)
    elif kind == "values":
        positions = held
    if meta.get("late") == 1:  # the fleet's deadline: downloaded, but nothing to upload in time
        late = {"round": r, "client": pid, "late": 1, "digest": rt.digest}
        return Message(message_content(UPLOAD, b"", late), reply_to=message)
    density = _upload_density(meta, config, what)
    method = _client_method(config, rt, positions)
    if config.error_feedback:  # what this client did not send before
        residual = _held_residual(context, device)
        if residual is not None:
            method.residuals[pid] = residual
    rows = rt.rows[pid]
    update = client_update(
        rt.trainee, rows, start, method=method, round_=r, client=pid, density=density
    )
    if config.error_feedback:
        _hold_residual(context, method.residuals[pid])
    reply_meta = {
        "round": r,
        "client": pid,
        "k": update.sent.k,
        "kind": "full" if positions is None else "values",
        "loss": float(update.local.loss),
        "steps": update.local.steps,
        "digest": rt.digest,
    }
    return Message(message_content(UPLOAD, update.sent.payload, reply_meta), reply_to=message)


def handle_query(message: Message, context: Context, base: RunConfig | None) -> Message:
    """The node's partition and adapter size (the ServerApp asks every node once, at start;
    this also loads the model, before the first round)."""
    config, _ = from_run_config(context.run_config, base=base)
    rt = runtime(config)
    pid = partition_of(context, len(rt.rows))
    meta = ConfigRecord({"partition-id": pid, "n": rt.trainee.adapter.n, "digest": rt.digest})
    return Message(RecordDict({META: meta}), reply_to=message)


def make_client_app(base: RunConfig | None = None) -> ClientApp:
    """A ClientApp for runs whose run config (``context.run_config``) is laid over ``base``."""
    app = ClientApp()

    @app.train()
    def train(message: Message, context: Context) -> Message:
        return handle_train(message, context, base)

    @app.query()
    def query(message: Message, context: Context) -> Message:
        return handle_query(message, context, base)

    return app
