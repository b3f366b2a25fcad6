"""The two ways a training run ends badly: the user's input, or the numbers."""

from __future__ import annotations

from typing import Any


class TrainerError(ValueError):
    """A user mistake (a bad value, path, label, partition); the message names the value.

    CLIs print ``error: <message>`` and exit with status 2.
    """


class DivergedError(RuntimeError):
    """Training loss became NaN or inf; raised after that round's record is written.

    CLIs print ``error: <message>`` and exit with status 3.
    """

    def __init__(self, message: str, *, record: Any = None) -> None:
        super().__init__(message)
        self.record = record
