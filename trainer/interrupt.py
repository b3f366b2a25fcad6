"""Ctrl-C and SIGTERM as a request, not an exception.

While a CLI command runs (``graceful``), the first SIGINT or SIGTERM only sets a flag and prints
one note; the work reads the flag at safe points and stops there: ``trainer.run.train`` after a
round's record (and, with an out dir, a checkpoint) is written, the tuner's objective at each
round boundary and before each trial. It then raises ``Interrupted``, which the CLI turns into
one line saying how to resume and exit status 130. A second signal ends the process at once
(``os._exit(130)``), which leaves every file as it was: checkpoints are swapped in whole
(``trainer.checkpoint``) and Optuna's storages survive a killed writer.

Why not the default ``KeyboardInterrupt``: it is thrown into whatever code the main thread runs
at that instant. Inside a garbage-collection or weakref callback (SQLAlchemy's
``_collection_gced`` runs after each Optuna trial) Python prints "Exception ignored" and goes
on, so the interrupt was lost and the study ran on; elsewhere it leaves a library half way
through an update. A flag read at a round boundary has neither problem.

Stdlib only: the CLIs import this before torch.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "EXIT_CODE",
    "SIGNALS",
    "Interrupted",
    "graceful",
    "handling",
    "request",
    "requested",
    "reset",
]

EXIT_CODE = 130  # 128 + SIGINT: what shells report for a Ctrl-C
SIGNALS = (signal.SIGINT, signal.SIGTERM)
FIRST_NOTE = (
    "interrupt: stopping at the end of the current round (press Ctrl-C again to quit at once)"
)
SECOND_NOTE = "interrupted again: exiting now; what was already saved is intact"

_requested: list[int] = []  # the signal numbers received while handling; empty: none

F = TypeVar("F", bound=Callable[..., Any])


class Interrupted(Exception):
    """Raised at a safe point after an interrupt was requested.

    ``round`` is the last round finished (0: none), ``rounds`` the run's planned rounds,
    ``checkpoint`` whether a resumable checkpoint for ``round`` is in ``out_dir``."""

    def __init__(
        self,
        message: str,
        *,
        round: int = 0,
        rounds: int = 0,
        out_dir: Path | None = None,
        checkpoint: bool = False,
    ) -> None:
        super().__init__(message)
        self.round = round
        self.rounds = rounds
        self.out_dir = out_dir
        self.checkpoint = checkpoint


def requested() -> bool:
    """Whether an interrupt arrived (while ``handling`` was active) and is not yet cleared."""
    return bool(_requested)


def request(signum: int = signal.SIGINT) -> None:
    """Ask the running work to stop at its next safe point (what the first signal does)."""
    _requested.append(signum)


def reset() -> None:
    _requested.clear()


def _write(line: str) -> None:
    # os.write, not print: a signal handler that writes through sys.stderr can re-enter its
    # buffer when the main thread was interrupted inside a write to it.
    with suppress(OSError):
        os.write(2, (line + "\n").encode("utf-8", "replace"))


def _handler(first_note: str, second_note: str) -> Callable[[int, Any], None]:
    def handle(signum: int, _frame: Any) -> None:
        if _requested:
            _write(second_note)
            os._exit(EXIT_CODE)
        request(signum)
        _write(first_note)

    return handle


@contextmanager
def handling(*, first_note: str = FIRST_NOTE, second_note: str = SECOND_NOTE) -> Iterator[None]:
    """Install the flag-setting handler for SIGINT and SIGTERM while the block runs, then put
    the previous handlers back and clear the flag. Off the main thread (where Python cannot
    install signal handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reset()
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    handle = _handler(first_note, second_note)
    for sig in SIGNALS:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, old in previous.items():
            # None: a handler installed from outside Python, which cannot be put back as is
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        reset()


def graceful(func: F) -> F:
    """Decorate a CLI command so that it runs inside ``handling()``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with handling():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
