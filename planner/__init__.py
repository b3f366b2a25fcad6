"""The planner: what a communication budget buys a federated LoRA run, before any training
(pure Python and numpy; never torch).

This face names the package's public API (docs/contracts.md, "Package faces"); each name is
imported from its home module on first use, so ``import planner`` stays cheap and
``floss-plan --help`` loads nothing it does not need. ``lazy_face`` is that mechanism, shared by
every package's face.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_face(package: str, face: Mapping[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """A package's module ``__getattr__``: a name of ``face`` (home module -> its names)
    imported from its home on first use and kept on the package; any other name is an
    AttributeError (so ``from package import submodule`` still imports the submodule)."""
    homes = {name: home for home, names in face.items() for name in names}

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


# home module -> the names it gives the face
_FACE = {
    "planner.afford": ("dense_reference_round", "rounds_within_budget"),
    "planner.budget": ("Budget", "parse_budget", "resolve_budget"),
    "planner.encoding": ("kept_entries", "message_bytes", "resolve_encoding"),
    "planner.errors": (
        "BudgetError",
        "FleetError",
        "OutputPathError",
        "PlanError",
        "PricingError",
        "ProfileError",
    ),
    "planner.fleet": ("Fleet", "FleetSetup", "load_fleet"),
    "planner.fleet_plan": ("FleetPlan", "plan_fleet"),
    "planner.method_spec": ("METHODS", "MethodSpec"),
    "planner.model": ("ModelProfile",),
    "planner.network": ("NetworkProfile", "round_seconds"),
    "planner.paths": ("check_output_dir", "check_output_file"),
    "planner.plan_types": ("Plan", "PlanRow", "PlanSettings"),
    "planner.pricing": ("Population", "Pricing", "Spend"),
    "planner.profiles": ("load_model", "load_network"),
    "planner.render": ("render_plan", "row_dicts"),
    "planner.sampling": ("round_draws", "round_seed"),
    "planner.schedule": ("RoundPrice", "price_rounds"),
    "planner.settings": ("build_settings",),
}
__all__ = sorted([*(name for names in _FACE.values() for name in names), "lazy_face"])
__getattr__ = lazy_face(__name__, _FACE)
