"""The ServerApp's start-up handshake (``federation.server``): wait for the run's client nodes,
ask each its partition with a QUERY that carries the run-config digest (``federation.client``
answers it), check that every node runs the server's run config (adapter size and digest), and
map every client (its partition-id) to exactly one node."""

from __future__ import annotations

import time

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from federation.exchange import exchange, reply_reason
from federation.wire import META, FederationError, meta_int

__all__ = ["discover_nodes"]


def discover_nodes(
    grid: Grid, *, num_clients: int, n: int, digest: str, wait_seconds: float
) -> dict[int, int]:
    """client (partition-id) -> node id, once ``num_clients`` nodes are connected (waiting at
    most ``wait_seconds``) and each has answered with adapter size ``n`` and ``digest``."""
    deadline = time.monotonic() + wait_seconds
    while True:
        ids = sorted(grid.get_node_ids())
        if len(ids) >= num_clients:
            break
        if time.monotonic() > deadline:
            raise FederationError(
                f"only {len(ids)} of the run's {num_clients} client nodes connected "
                f"within node-wait-seconds={wait_seconds:g}."
            )
        time.sleep(0.5)
    queries = [
        Message(
            RecordDict({META: ConfigRecord({"digest": digest})}),
            dst_node_id=node,
            message_type=MessageType.QUERY,
        )
        for node in ids
    ]
    nodes: dict[int, int] = {}
    for reply in exchange(grid, queries, timeout=None):
        node = reply.metadata.src_node_id
        if reply.has_error():
            raise FederationError(f"node {node} failed at start: {reply_reason(reply)}")
        meta = dict(reply.content.config_records[META])
        what = f"node {node}"
        pid = meta_int(meta, "partition-id", what)
        if meta_int(meta, "n", what, low=1) != n or meta.get("digest") != digest:
            raise FederationError(
                f"{what}: its run config differs from the server's (adapter size "
                f"{meta.get('n')!r} vs {n}, digest {meta.get('digest')!r} vs {digest!r})."
            )
        if pid in nodes:
            raise FederationError(f"nodes {nodes[pid]} and {node} both have partition-id {pid}.")
        nodes[pid] = node
    missing = sorted(set(range(num_clients)) - set(nodes))
    if missing:
        raise FederationError(
            f"no node has partition-id {', '.join(map(str, missing[:10]))} "
            f"(of 0..{num_clients - 1}); give each node one partition."
        )
    return nodes
