"""What the server accepts as a node's reply to a round's TRAIN message (``federation.server``):
an upload of the kind and k the round expects, for that round and client, decoded as
``trainer.sparse`` decodes it; or, from a modeled straggler, an empty upload. Every failed check
is a ``FederationError`` naming the round, the client and its node; the strategy drops that
client from the round."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from flwr.app import Message

from federation.exchange import reply_reason
from federation.wire import UPLOAD, FederationError, decode_vector, meta_int, read_message
from planner.encoding import kept_entries
from trainer.config import RunConfig
from trainer.fedsrd import FedSRD
from trainer.flat import Slice
from trainer.method_base import Method
from trainer.methods import FixedMask, TopK

__all__ = ["Upload", "expected_upload", "read_late", "read_upload"]


@dataclass(frozen=True)
class Upload:
    """One client's decoded upload and what its meta reported."""

    vector: torch.Tensor
    nbytes: int
    k: int
    loss: float
    steps: int


def expected_upload(
    method: Method,
    *,
    n: int,
    topk: str,
    slices: Sequence[Slice],
    density: float | None = None,
) -> tuple[str, int | None]:
    """(kind, k) of this round's uploads: a client's top-k with positions (at ``density``
    when the client has its own, fleets), or values at the fixed mask both ends hold;
    FedSRD's k is the client's own (its rule keeps what its scores say): None."""
    if isinstance(method, FedSRD):
        return "full", None
    if isinstance(method, FixedMask):
        return ("full", n) if method.positions is None else ("values", method.k)
    assert isinstance(method, TopK)
    d_up = method.d_up if density is None else density
    if topk == "global" or d_up >= 1:
        return "full", kept_entries(n, d_up)
    return "full", sum(kept_entries(s.stop - s.start, d_up) for s in slices)


def _open_reply(
    reply: Message, r: int, client: int, *, node: int | None, what: str
) -> tuple[bytes, dict[str, Any]]:
    """(payload, meta) of a reply that is an upload of round ``r`` by ``client`` (sent to
    ``node``)."""
    if reply.has_error():
        if reply.metadata.src_node_id != node:
            # the SuperLink answers for a node that did not take or answer the message
            raise FederationError(
                f"{what}: its node did not answer (the SuperLink replied: {reply_reason(reply)})"
            )
        raise FederationError(f"{what}: the ClientApp failed: {reply_reason(reply)}")
    payload, meta = read_message(reply.content, UPLOAD, what)
    if meta.get("round") != r or meta.get("client") != client:
        raise FederationError(
            f"{what}: the reply is for round {meta.get('round')}, client {meta.get('client')}."
        )
    return payload, meta


def read_upload(
    reply: Message,
    r: int,
    client: int,
    *,
    node: int | None,
    method: Method,
    config: RunConfig,
    n: int,
    slices: Sequence[Slice],
    device: torch.device,
    density: float | None = None,
) -> Upload:
    """Client ``client``'s upload of round ``r`` (sent to ``node``; ``density``: its own upload
    density, fleets), checked against what the round expects and decoded."""
    what = f"round {r}, client {client} (node {node}), upload"
    payload, meta = _open_reply(reply, r, client, node=node, what=what)
    kind, expected = expected_upload(method, n=n, topk=config.topk, slices=slices, density=density)
    k = meta_int(meta, "k", what, low=1) if expected is None else expected
    if meta.get("kind") != kind or meta.get("k") != k or k > n:
        shown = f"k={k}" if expected is not None else f"1 <= k <= {n}"
        raise FederationError(
            f"{what}: expected a {kind!r} upload of {shown}, got {meta.get('kind')!r} of "
            f"k={meta.get('k')}."
        )
    loss = meta.get("loss")
    if isinstance(loss, bool) or not isinstance(loss, (int, float)):
        raise FederationError(f"{what}: meta 'loss' must be a number, got {loss!r}.")
    vector = decode_vector(
        payload,
        kind=kind,
        n=n,
        k=k,
        encoding=config.encoding,
        precision=config.wire_precisions[1],  # the uploads' value precision
        positions=getattr(method, "positions", None),
        device=device,
        what=what,
    )
    steps = meta_int(meta, "steps", what)
    return Upload(vector=vector, nbytes=len(payload), k=k, loss=float(loss), steps=steps)


def read_late(reply: Message, r: int, client: int, *, node: int | None) -> None:
    """A modeled straggler's reply: an empty upload for this round and client."""
    what = f"round {r}, client {client} (node {node}), late reply"
    payload, meta = _open_reply(reply, r, client, node=node, what=what)
    if payload or meta.get("late") != 1:
        raise FederationError(
            f"{what}: a client told it misses the deadline must reply with an empty upload, "
            f"got {len(payload)} bytes."
        )
