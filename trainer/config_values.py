"""How a run config's values are checked where they enter: one function per kind of value, each
raising one ``TrainerError`` line that names the key and the value.

A bool is not a number (``planner.limits.is_int``/``is_number``); a density is ``1``, ``0.25`` or
the text ``'1/4'`` (``planner.parse.fraction_value``).
"""

from __future__ import annotations

from typing import Any

from planner.limits import is_int, is_number, not_finite
from planner.parse import fraction_value
from trainer.errors import TrainerError


def finite(value: Any) -> bool:
    """A real number that fits a float: not a bool, NaN, inf, or a YAML integer of 400 digits
    (math.isfinite raises OverflowError on those)."""
    return is_number(value) and not not_finite(value)


def key_text(key: Any) -> str:
    """A config key as a message shows it: plain when it is a printable name, else repr (a key
    holding a newline must not split the one error line)."""
    if isinstance(key, str) and key and key.isprintable() and key.strip() == key:
        return key
    return repr(key)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise TrainerError(f"{name} must be one of {', '.join(choices)}, but got {value!r}.")
    return str(value)


def check_int(value: Any, name: str, *, low: int, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if not is_int(value) or value < low:
        raise TrainerError(f"{name} must be an integer >= {low}, but got {value!r}.")
    return value


def check_float(
    value: Any, name: str, *, low: float, strict: bool, optional: bool = False
) -> float | None:
    if value is None and optional:
        return None
    if not finite(value):
        raise TrainerError(f"{name} must be a finite number, but got {value!r}.")
    if value < low or (strict and value == low):
        op = ">" if strict else ">="
        raise TrainerError(f"{name} must be {op} {low:g}, but got {value!r}.")
    return float(value)


def parse_density(value: Any, name: str) -> float:
    """1, 0.25 or the string '1/4' -> a float in (0, 1]."""
    if isinstance(value, str):
        number = fraction_value(value)  # None for 1/0, "9" * 400, "x"
        if number is None:
            raise TrainerError(
                f"{name} must be a density like 1, 1/4 or 0.0625, but got {value!r}."
            )
        value = number
    if not finite(value):
        raise TrainerError(f"{name} must be a number in (0, 1], but got {value!r}.")
    if not 0 < value <= 1:
        raise TrainerError(f"{name} must be in (0, 1], but got {value!r}.")
    return float(value)
