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


def lazy_face(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A package's module ``__getattr__``: ``name`` imported from ``homes[name]`` on first use
    and kept on the package; any other name is an AttributeError (so ``from package import
    submodule`` still imports the submodule)."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


# name -> the module it lives in
_HOMES = {
    "Budget": "planner.budget",
    "BudgetError": "planner.budget",
    "Fleet": "planner.fleet",
    "FleetError": "planner.fleet",
    "FleetPlan": "planner.fleet_plan",
    "FleetSetup": "planner.fleet",
    "METHODS": "planner.method_spec",
    "MethodSpec": "planner.method_spec",
    "ModelProfile": "planner.model",
    "NetworkProfile": "planner.network",
    "OutputPathError": "planner.paths",
    "Plan": "planner.plan_types",
    "PlanError": "planner.errors",
    "PlanRow": "planner.plan_types",
    "PlanSettings": "planner.plan_types",
    "Population": "planner.pricing",
    "Pricing": "planner.pricing",
    "PricingError": "planner.pricing",
    "ProfileError": "planner.errors",
    "RoundPrice": "planner.schedule",
    "Spend": "planner.pricing",
    "build_settings": "planner.settings",
    "check_output_dir": "planner.paths",
    "check_output_file": "planner.paths",
    "dense_reference_round": "planner.afford",
    "kept_entries": "planner.encoding",
    "load_fleet": "planner.fleet",
    "load_model": "planner.profiles",
    "load_network": "planner.profiles",
    "message_bytes": "planner.encoding",
    "parse_budget": "planner.budget",
    "plan_fleet": "planner.fleet_plan",
    "price_rounds": "planner.schedule",
    "render_plan": "planner.render",
    "resolve_budget": "planner.budget",
    "resolve_encoding": "planner.encoding",
    "round_draws": "planner.sampling",
    "round_seconds": "planner.network",
    "round_seed": "planner.sampling",
    "rounds_within_budget": "planner.afford",
    "row_dicts": "planner.render",
}
__all__ = sorted([*_HOMES, "lazy_face"])
__getattr__ = lazy_face(__name__, _HOMES)
