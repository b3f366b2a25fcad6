"""Drive the real ServerApp and ClientApp in one process, no Ray, no network: ``run_inprocess``.

``InProcessGrid`` is a Flower ``Grid`` whose nodes live in this process: ``send_and_receive``
serialises each message with Flower's own protobuf serde (``message_to_proto``), hands the
parsed copy to the ClientApp with the node's ``Context`` (node config ``partition-id`` /
``num-partitions`` as Flower's simulation sets them, a ``state`` kept across rounds), and sends
the reply back the same way. A ClientApp that raises becomes an error reply, as in Flower's
engines. Every message is logged (``Wire``: direction, round, node, payload and serialised
bytes), which the equivalence tests and the bench read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flwr.app import Context, Error, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from federation.wire import DOWNLOAD, PAYLOAD, UPLOAD

__all__ = ["InProcessGrid", "Wire", "run_inprocess"]

ClientCallable = Callable[[Message, Context], Message]
ERROR_CLIENT_RAISED = 2  # flwr.common.constant.ErrorCode.CLIENT_APP_RAISED_EXCEPTION


@dataclass(frozen=True)
class Wire:
    """One message as it crossed the in-process wire."""

    direction: str  # "down" (server -> node) or "up"
    message_type: str
    group_id: str  # the round, for train messages
    node_id: int
    payload_bytes: int  # the codec payload (0: none, e.g. queries and error replies)
    message_bytes: int  # the serialised protobuf Message
    error: str | None = None


def _payload_bytes(message: Message) -> int:
    if not message.has_content():
        return 0
    for record in (DOWNLOAD, UPLOAD):
        if record in message.content.array_records:
            return len(message.content.array_records[record][PAYLOAD].data)
    return 0


def _over_the_wire(message: Message) -> tuple[Message, int]:
    proto = message_to_proto(message)
    data = proto.SerializeToString()
    parsed = type(proto)()
    parsed.ParseFromString(data)
    return message_from_proto(parsed), len(data)


class InProcessGrid(Grid):
    """Nodes 1..N in this process, each running ``client_app`` with its own Context."""

    in_process = True  # a test or bench harness: no out-dir means nothing is written

    def __init__(
        self,
        client_app: ClientCallable,
        node_configs: list[dict[str, Any]],
        *,
        run_config: Mapping[str, Any],
        run_id: int = 1,
    ) -> None:
        self.client_app = client_app
        self.run_config = dict(run_config)
        self._run = Run.create_empty(run_id)
        self.contexts = {
            i + 1: Context(
                run_id=run_id,
                node_id=i + 1,
                node_config=dict(cfg),
                state=RecordDict(),
                run_config=dict(run_config),
            )
            for i, cfg in enumerate(node_configs)
        }
        self.wire: list[Wire] = []
        self._replies: dict[str, Message] = {}

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def _deliver(self, message: Message) -> Message:
        node = message.metadata.dst_node_id
        received, size = _over_the_wire(message)
        md = message.metadata
        self.wire.append(
            Wire("down", md.message_type, md.group_id, node, _payload_bytes(message), size)
        )
        try:
            reply = self.client_app(received, self.contexts[node])
        except Exception as exc:  # a ClientApp that raises: an error reply, as Flower's engines
            reason = f"{type(exc)}:<'{exc}'>"
            reply = Message(Error(code=ERROR_CLIENT_RAISED, reason=reason), reply_to=received)
        reply.metadata.__dict__["_message_id"] = str(uuid.uuid4())
        back, size = _over_the_wire(reply)
        self.wire.append(
            Wire(
                "up",
                md.message_type,
                md.group_id,
                node,
                _payload_bytes(reply),
                size,
                reply.error.reason if reply.has_error() else None,
            )
        )
        return back

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = str(uuid.uuid4())
            self._replies[message.metadata.message_id] = self._deliver(message)
            ids.append(message.metadata.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))


def partition_configs(num_partitions: int) -> list[dict[str, Any]]:
    """Node configs as Flower's simulation sets them: one partition per node."""
    return [{"partition-id": i, "num-partitions": num_partitions} for i in range(num_partitions)]


def run_inprocess(server_app: ServerApp, grid: InProcessGrid) -> InProcessGrid:
    """Run ``server_app`` on ``grid``'s in-process nodes (with the grid's run config); returns
    the grid (its ``wire`` log and the nodes' contexts)."""
    context = Context(
        run_id=grid.run.run_id,
        node_id=0,
        node_config={},
        state=RecordDict(),
        run_config=dict(grid.run_config),
    )
    # the identity Flower's engines set for the ServerApp process (Message() reads it)
    TaskIdentity.task_id = 1
    TaskIdentity.run_id = grid.run.run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    server_app(grid, context)
    return grid
