"""The ServerApp's exchange with the SuperLink: replies pulled every PULL_SECONDS (Flower's own
send_and_receive sleeps 3 s between pulls), returned in the order the messages were sent, and a
round-timeout that returns what arrived."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from federation.exchange import PULL_SECONDS, exchange


class SlowGrid:
    """Replies become available ``delays[i]`` seconds after message i is pushed."""

    def __init__(self, delays: list[float]) -> None:
        self.delays = delays
        self.pushed_at = 0.0
        self.pulls = 0
        self.taken: set[str] = set()

    def push_messages(self, messages: list[Any]) -> list[str]:
        self.pushed_at = time.monotonic()
        return [f"m{i}" for i in range(len(messages))]

    def pull_messages(self, ids: list[str]) -> list[Any]:
        self.pulls += 1
        now = time.monotonic() - self.pushed_at
        ready = [i for i in ids if now >= self.delays[int(i[1:])] and i not in self.taken]
        self.taken.update(ready)
        return [SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=i)) for i in ready]


def test_replies_are_pulled_soon_after_they_arrive_in_sent_order() -> None:
    grid = SlowGrid([0.6, 0.1, 0.3])
    start = time.monotonic()
    replies = exchange(grid, [1, 2, 3], timeout=None)  # type: ignore[arg-type]
    took = time.monotonic() - start
    assert [r.metadata.reply_to_message_id for r in replies] == ["m0", "m1", "m2"]
    assert 0.6 <= took < 0.6 + PULL_SECONDS + 0.5  # Flower's loop: 3 s here
    assert grid.pulls >= 3


def test_a_timeout_returns_what_arrived() -> None:
    grid = SlowGrid([0.1, 60.0])
    start = time.monotonic()
    replies = exchange(grid, [1, 2], timeout=0.5)  # type: ignore[arg-type]
    assert time.monotonic() - start < 0.5 + PULL_SECONDS + 0.5
    assert [r.metadata.reply_to_message_id for r in replies] == ["m0"]
