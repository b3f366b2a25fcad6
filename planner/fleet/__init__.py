"""Heterogeneous fleets: per-client links, round policies, per-client densities (pure Python).

A fleet is a mixture of access-link tiers with weights (60 % LTE, 30 % Wi-Fi, 10 % 5G), each
with its own lognormal spread, or a CSV of measured per-client links. Each client of a run keeps
its link for the whole run: ``assign_links`` draws it once from (seed, num_clients, fleet).
A round (``fleet_round``, the trainer follows it; docs/fleets.md has the formulas) samples its
clients, prices each on its own link at the densities its policy gives it, and settles whose
upload is aggregated and how long the round lasts. The planner's estimate (``estimate_fleet``)
walks one configuration's rounds one by one and is the reference the fast path
(``planner.fleet_batch``) is tested equal to; the fleet plan stands above both
(``planner.fleet_plan``).

This face names the package's API; one idea a module below it:

* ``_data``: ``Fleet``, ``Tier``, ``ClientLink`` (their error, ``FleetError``, is ``planner.errors``');
* ``_files``: fleet files (a name, a ``.toml`` of tiers, a ``.csv`` of measured clients);
* ``_links``: each client's link, drawn once per run;
* ``_setup``: the round and density policies (``FleetSetup``) and their text forms;
* ``_clients``: one client of a round: its densities, bytes and seconds;
* ``_rounds``: one round priced client by client, and settled;
* ``_estimate``: the planner's seeded Monte Carlo over a configuration's rounds.
"""

from __future__ import annotations

from planner.fleet._clients import ClientPrice, client_densities, client_seconds
from planner.fleet._data import ClientLink, Fleet, FleetError, Tier, finite_number
from planner.fleet._estimate import (
    ESTIMATE_ROUNDS,
    FleetEstimate,
    TierEstimate,
    check_estimate,
    default_deadline,
    estimate_fleet,
)
from planner.fleet._files import (
    MEASURED_TIER,
    fleet_from_csv,
    fleet_from_mapping,
    load_fleet,
    measured_fleet,
)
from planner.fleet._links import assign_links, link_draws
from planner.fleet._rounds import (
    DENSE_REFERENCE_ROUNDS,
    Settled,
    check_compute_seconds,
    check_deadline_reachable,
    check_run,
    dense_reference_seconds,
    fleet_round,
    price_fleet_rounds,
    served_shares,
    settle_round,
)
from planner.fleet._setup import (
    DEFAULT_GRID,
    DEFAULT_OVER_SELECTION,
    DENSITY_POLICIES,
    FLEET_METHODS,
    ROUND_POLICIES,
    FleetSetup,
    check_fleet_method,
    format_tier_densities,
    grid_under,
    parse_grid,
    parse_tier_densities,
)

__all__ = [
    "DEFAULT_GRID",
    "DEFAULT_OVER_SELECTION",
    "DENSE_REFERENCE_ROUNDS",
    "DENSITY_POLICIES",
    "ESTIMATE_ROUNDS",
    "FLEET_METHODS",
    "MEASURED_TIER",
    "ROUND_POLICIES",
    "ClientLink",
    "ClientPrice",
    "Fleet",
    "FleetError",
    "FleetEstimate",
    "FleetSetup",
    "Settled",
    "Tier",
    "TierEstimate",
    "assign_links",
    "check_compute_seconds",
    "check_deadline_reachable",
    "check_estimate",
    "check_fleet_method",
    "check_run",
    "client_densities",
    "client_seconds",
    "default_deadline",
    "dense_reference_seconds",
    "estimate_fleet",
    "finite_number",
    "fleet_from_csv",
    "fleet_from_mapping",
    "fleet_round",
    "format_tier_densities",
    "grid_under",
    "link_draws",
    "load_fleet",
    "measured_fleet",
    "parse_grid",
    "parse_tier_densities",
    "price_fleet_rounds",
    "served_shares",
    "settle_round",
]
