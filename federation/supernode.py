"""``flower-supernode`` with shorter waits: ``python -m federation.supernode [--idle-pull-seconds
S] [--reply-poll-seconds S] FLOWER-SUPERNODE-ARGS...``.

Flower 1.41.0's SuperNode (``flwr.supernode.start_client_internal``) sleeps a fixed 3 s after a
pull that found no message, and polls its own state every 0.5 s for the ClientApp's reply. On
a synchronous run every round's message arrives while the node sleeps (its last pull came
right after it sent the previous reply, before the server had aggregated), so every round
waits up to 3 s (measured on a loopback deployment: docs/federation.md), whatever the model.
And when it pulls a message whose objects (the payload) have not all reached the SuperLink
yet, it retries after 1 s, doubling. This launcher runs Flower's own ``flower-supernode``
entry point, unchanged but for those waits: 0.25 s and 0.05 s by default, and object pulls
retried after 10 ms, doubling up to 0.5 s. The price: an idle node asks the SuperLink for work
every 0.25 s instead of every 3 s (12x the idle requests: fine on one machine or a few nodes;
for a large fleet keep Flower's 3 s or raise ``--idle-pull-seconds``).

It checks the Flower version it was written against (1.41.0) and refuses any other, so a
Flower upgrade cannot silently change what it patches.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time as _time
from typing import Any

__all__ = ["FLOWER_VERSION", "Waits", "main"]

FLOWER_VERSION = "1.41.0"
IDLE_PULL_SECONDS = 0.25
REPLY_POLL_SECONDS = 0.05
PULL_INITIAL_BACKOFF_SECONDS = 0.01  # Flower's: 1 s, doubling to 10 s
PULL_BACKOFF_CAP_SECONDS = 0.5
_FLOWER_IDLE_SLEEP = 3  # start_client_internal: `time.sleep(3)` after an empty pull
_FLOWER_POLL_SLEEP = 0.5  # start_client_internal: `time.sleep(0.5)` waiting for a reply


class Waits:
    """The ``time`` module as ``start_client_internal`` sees it: its two fixed sleeps shortened,
    everything else the real module's."""

    def __init__(self, *, idle_pull_seconds: float, reply_poll_seconds: float) -> None:
        for name, value in (
            ("idle_pull_seconds", idle_pull_seconds),
            ("reply_poll_seconds", reply_poll_seconds),
        ):
            if not (math.isfinite(value) and 0 < value <= 60):
                raise ValueError(f"{name} must be in (0, 60] seconds, but got {value!r}.")
        self.idle = idle_pull_seconds
        self.poll = reply_poll_seconds

    def sleep(self, seconds: float) -> None:
        if seconds == _FLOWER_IDLE_SLEEP:
            seconds = self.idle
        elif seconds == _FLOWER_POLL_SLEEP:
            seconds = self.poll
        _time.sleep(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m federation.supernode",
        description="flower-supernode with shorter idle waits (docs/federation.md); every "
        "other argument goes to flower-supernode.",
    )
    ap.add_argument(
        "--idle-pull-seconds",
        type=float,
        default=IDLE_PULL_SECONDS,
        help=f"wait after a pull that found nothing (Flower: 3; default {IDLE_PULL_SECONDS})",
    )
    ap.add_argument(
        "--reply-poll-seconds",
        type=float,
        default=REPLY_POLL_SECONDS,
        help=f"poll for the ClientApp's reply (Flower: 0.5; default {REPLY_POLL_SECONDS})",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args, rest = _parser().parse_known_args(argv)
    try:
        waits = Waits(
            idle_pull_seconds=args.idle_pull_seconds, reply_poll_seconds=args.reply_poll_seconds
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from importlib.metadata import version

    if (found := version("flwr")) != FLOWER_VERSION:
        print(
            f"error: federation.supernode patches Flower {FLOWER_VERSION}'s SuperNode waits, "
            f"but flwr {found} is installed; run flower-supernode itself.",
            file=sys.stderr,
        )
        return 2
    import flwr.supernode.start_client_internal as internal
    from flwr.supernode.cli import flower_supernode

    internal.time = waits  # type: ignore[assignment]
    internal.pull_objects = functools.partial(
        internal.pull_objects,
        initial_backoff=PULL_INITIAL_BACKOFF_SECONDS,
        backoff_cap=PULL_BACKOFF_CAP_SECONDS,
    )
    sys.argv = ["flower-supernode", *rest]
    flower_supernode()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
