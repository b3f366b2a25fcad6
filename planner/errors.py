"""The planner's errors, in one place: what a caller catches when a plan cannot be made.

Each is a ``ValueError`` whose message is one line naming the value and why, so every surface
(``floss-plan``, ``POST /api/plan``, the tuner) shows it as it is: ``floss-plan`` prints it after
``error:`` and exits 2, the service answers 422 naming the field.
"""

from __future__ import annotations


class PlanError(ValueError):
    """A planning request that cannot be met; the message says which value and why."""


class ProfileError(ValueError):
    """A profile that cannot be found or read; the message names it."""


__all__ = ["PlanError", "ProfileError"]
