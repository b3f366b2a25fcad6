"""A progress display on stderr for planner work that may run past a couple of seconds.

``working(what, enabled=...)`` shows a rich spinner, a pulsing bar and the elapsed time while the
block runs, on stderr only when it is a terminal and the user did not say ``--no-progress``; it
leaves nothing behind (transient). The planner's work (a seeded schedule over 100,000 clients,
a fleet of a million measured links) is one call that cannot report its own steps without
threading a callback through every pricing function; the elapsed time says it is alive.

Work that would take minutes is refused before it starts instead (``planner.cli``'s stated
limits), with one line saying what to do.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


def wanted(enabled: bool, stream: TextIO | None = None) -> bool:
    """A display only when asked for and stderr is a terminal (never in a pipe, a log, a test)."""
    out = sys.stderr if stream is None else stream
    try:
        return enabled and out.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


@contextmanager
def working(what: str, *, enabled: bool) -> Iterator[None]:
    """A transient progress display on stderr while the block runs (see the module doc)."""
    if not wanted(enabled):
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        bar.add_task(what, total=None)  # no total: a pulsing bar
        yield
