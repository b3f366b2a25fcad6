"""Cell text shared by the page's tables and its plot: a density, or ``-`` when there is none."""

from __future__ import annotations

from typing import Any

from planner.parse import fmt_density


def density_cell(value: Any) -> str:
    return "-" if value is None else fmt_density(float(value))
