"""The server's message exchange with a Flower ``Grid``: push a round's messages, pull their
replies at a short interval, and read a reply's id and error reason (``federation.server``)."""

from __future__ import annotations

import time

from flwr.app import Message
from flwr.serverapp import Grid

__all__ = ["PULL_SECONDS", "exchange", "message_id", "reply_reason"]

# How often the ServerApp asks the SuperLink for replies. Flower's Grid.send_and_receive sleeps
# 3 s between pulls, so every exchange (the start-up query, each round) waited up to 3 s after
# its last reply had arrived; a pull is one small request to the SuperLink.
PULL_SECONDS = 0.2


def exchange(grid: Grid, messages: list[Message], *, timeout: float | None) -> list[Message]:
    """``grid.send_and_receive`` with a short pull interval: push ``messages``, then pull their
    replies every PULL_SECONDS until each has one or ``timeout`` seconds have passed; replies in
    the order their messages were sent."""
    order = {mid: i for i, mid in enumerate(grid.push_messages(messages))}
    waiting = set(order)
    end = time.monotonic() + (timeout or 0.0)
    replies: list[Message] = []
    while waiting:
        got = list(grid.pull_messages([m for m in order if m in waiting]))
        replies += got
        waiting -= {m.metadata.reply_to_message_id for m in got}
        if not waiting or (timeout is not None and time.monotonic() >= end):
            break
        time.sleep(PULL_SECONDS)
    # in the order the messages were sent, whatever order the replies arrived in
    return sorted(replies, key=lambda m: order.get(m.metadata.reply_to_message_id, len(order)))


def message_id(message: Message) -> str:
    """The id a reply to ``message`` carries (set when the grid pushed it)."""
    return str(message.metadata.message_id or message.object_id)


def reply_reason(reply: Message) -> str:
    """The one line an error reply gives as its reason."""
    reason = reply.error.reason or f"error code {reply.error.code}"
    # Flower wraps exceptions as "<class 'X'>:<'message'>"; keep the message
    if ":<'" in reason:
        reason = reason.split(":<'", 1)[1].rstrip(">'")
    return reason.strip().splitlines()[-1] if reason.strip() else reason
