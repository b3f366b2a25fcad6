"""The planner's errors, in one place: what a caller catches when a plan cannot be made.

Each is a ``ValueError`` whose message is one line naming the value and why, so every surface
(``floss-plan``, ``POST /api/plan``, the tuner) shows it as it is: ``floss-plan`` prints it after
``error:`` and exits 2, the service answers 422 naming the field.
"""

from __future__ import annotations

from typing import Protocol


class PlanError(ValueError):
    """A planning request that cannot be met; the message says which value and why."""


class ProfileError(ValueError):
    """A profile that cannot be found or read; the message names it."""


class PricingError(ValueError):
    """A configuration that cannot be priced round by round in reasonable time."""


class BudgetError(ValueError):
    """A budget string that does not parse; the message names it and the accepted forms."""


class FleetError(ValueError):
    """A fleet file or fleet setting that cannot be used; one line naming the file and value."""


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names the path and the problem."""


class OptionRule(Protocol):
    """What an ``UnusedOption`` says about its row of ``planner.options.RULES``."""

    @property
    def needs(self) -> str: ...


class UnusedOption(ValueError):
    """An option given where it has no effect: its ``name`` and the ``rule`` it breaks
    (``planner.options``' table)."""

    def __init__(self, text: str, *, name: str, rule: OptionRule) -> None:
        super().__init__(text)
        self.name = name
        self.rule = rule


__all__ = [
    "BudgetError",
    "FleetError",
    "OptionRule",
    "OutputPathError",
    "PlanError",
    "PricingError",
    "ProfileError",
    "UnusedOption",
]
