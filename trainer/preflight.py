"""What a run is checked for before anything slow (no model, no data loaded, no torch import):
its network profile and its fleet with the round and density policies (a fleet file that
does not parse, a deadline policy without a deadline). ``trainer.run.train`` runs it first, and
``floss flower-app`` runs the same before it writes an app, so a config floss-train refuses is
refused there too, in the same words, instead of failing later inside Flower.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from planner.fleet import FleetSetup
    from planner.network import NetworkProfile
    from trainer.config import RunConfig


def preflight(config: RunConfig) -> tuple[NetworkProfile, FleetSetup | None]:
    """(the network the run is accounted on, its fleet setup or None); TrainerError naming the
    field otherwise."""
    return config.network_profile(), config.fleet_setup()
