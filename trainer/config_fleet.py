"""A run's heterogeneous fleet (docs/fleets.md): the fleet fields of a ``RunConfig`` checked
where they enter, and the ``FleetSetup`` (fleet, round and density policies) they describe.

Without a fleet the policies must stay sync and uniform; the fleet file itself is read only by
``fleet_setup``, before anything slow. ``planner.fleet`` loads only when these run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from trainer.config_values import check_choice, check_float
from trainer.errors import TrainerError

if TYPE_CHECKING:
    from planner.fleet import FleetSetup


class FleetFields(Protocol):
    """What these read of a run config (``trainer.config.RunConfig``): its method and fleet
    fields, read-only."""

    @property
    def method(self) -> str: ...
    @property
    def fleet(self) -> str | None: ...
    @property
    def round_policy(self) -> str: ...
    @property
    def deadline_seconds(self) -> float | None: ...
    @property
    def over_selection(self) -> float: ...
    @property
    def density_policy(self) -> str: ...
    @property
    def tier_densities(self) -> str | None: ...
    @property
    def density_grid(self) -> str | None: ...
    @property
    def adapt_down(self) -> bool: ...


def check_fleet(cfg: FleetFields) -> None:
    """The fleet fields' types and the combinations that exist (``RunConfig.__post_init__``)."""
    from planner.fleet import (
        DENSITY_POLICIES,
        ROUND_POLICIES,
        check_fleet_method,
        parse_grid,
        parse_tier_densities,
    )

    if cfg.fleet is not None and (not isinstance(cfg.fleet, str) or not cfg.fleet):
        raise TrainerError(f"fleet must be a fleet name or path, but got {cfg.fleet!r}.")
    check_choice(cfg.round_policy, "round_policy", ROUND_POLICIES)
    check_choice(cfg.density_policy, "density_policy", DENSITY_POLICIES)
    check_float(cfg.deadline_seconds, "deadline_seconds", low=0, strict=True, optional=True)
    check_float(cfg.over_selection, "over_selection", low=1, strict=False)
    if not isinstance(cfg.adapt_down, bool):
        raise TrainerError(f"adapt_down must be true or false, but got {cfg.adapt_down!r}.")
    for name in ("tier_densities", "density_grid"):
        value = getattr(cfg, name)
        if value is not None and not isinstance(value, str):
            raise TrainerError(f"{name} must be a string, but got {value!r}.")
    try:
        if cfg.tier_densities is not None:
            parse_tier_densities(cfg.tier_densities)
        if cfg.density_grid is not None:
            parse_grid(cfg.density_grid)
        if cfg.fleet is not None:
            check_fleet_method(cfg.method, cfg.density_policy)
    except ValueError as exc:
        raise TrainerError(str(exc)) from None
    if cfg.fleet is None and (cfg.round_policy != "sync" or cfg.density_policy != "uniform"):
        raise TrainerError(
            f"round_policy {cfg.round_policy!r} / density_policy {cfg.density_policy!r} "
            "need a fleet (--fleet NAME|PATH)."
        )


def fleet_setup(cfg: FleetFields) -> FleetSetup | None:
    """The run's fleet and policies (None without a fleet; ``RunConfig.fleet_setup``); a bad
    fleet file or a missing deadline is one TrainerError."""
    if cfg.fleet is None:
        return None
    from planner.fleet import DEFAULT_GRID, FleetSetup, load_fleet, parse_grid
    from planner.fleet import parse_tier_densities as tiers

    try:
        return FleetSetup(
            fleet=load_fleet(cfg.fleet),
            round_policy=cfg.round_policy,
            deadline_seconds=cfg.deadline_seconds,
            over_selection=cfg.over_selection,
            density_policy=cfg.density_policy,
            tier_densities=tiers(cfg.tier_densities) if cfg.tier_densities else (),
            grid=parse_grid(cfg.density_grid) if cfg.density_grid else DEFAULT_GRID,
            adapt_down=cfg.adapt_down,
        )
    except ValueError as exc:
        raise TrainerError(str(exc)) from None
