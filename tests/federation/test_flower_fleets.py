"""Fleets on Flower: the app plays floss-train's fleet round (docs/fleets.md), per node.

For the same config and seed its final P equals floss-train's bit for bit on the CPU and its
records (per-client bytes, seconds and densities included) are equal; each node receives its own
download density and is told its own upload density; a modeled straggler of a deadline round
receives its download (counted) and replies with an empty upload, never aggregated; every
message's payload is the planner's per-client price (``planner.fleet.fleet_round``).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from planner.fleet import price_fleet_rounds
from trainer.budget import method_spec
from trainer.config import RunConfig
from trainer.run import train

TIERS = "slow=1/2:1/16,fast=1:1/2"


CASES = [
    {"density_policy": "tiered", "tier_densities": TIERS},
    # bandwidth densities: d_up is the cap, each client takes the largest that fits
    {
        "round_policy": "deadline",
        "deadline_seconds": 0.3,
        "density_policy": "bandwidth",
        "d_up": 1.0,
    },
    {"round_policy": "deadline", "deadline_seconds": 0.3, "over_selection": 2.0},
    # error feedback: each node keeps its own residual between rounds (context.state)
    {"density_policy": "bandwidth", "deadline_seconds": 0.3, "d_up": 1.0, "error_feedback": True},
    {"method": "dense", "round_policy": "deadline", "deadline_seconds": 0.5},
]


@pytest.mark.parametrize("changes", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_flower_fleet_run_equals_floss_train(
    fed_kwargs: dict[str, Any], harness: Any, fleet_file: str, changes: dict[str, Any]
) -> None:
    config = RunConfig(**{**fed_kwargs, "num_clients": 4, "clients_per_round": 2,
                          "rounds": 4, "fleet": fleet_file, **changes})  # fmt: skip
    reference = train(config, progress=False)
    strategy = harness.run_as_train(config, reference)

    adapter = strategy.trainee.adapter
    spec = method_spec(config, n=adapter.n)
    setup = config.fleet_setup()
    assert setup is not None
    prices = list(
        itertools.islice(
            price_fleet_rounds(spec, setup, seed=config.seed, num_clients=config.num_clients,
                               clients_per_round=config.clients_per_round),
            config.rounds,
        )
    )  # fmt: skip
    client_of = {node: c for c, node in strategy.nodes.items()}
    late_seen = 0
    for price in prices:
        msgs = [w for w in harness.grid.wire if w.group_id == str(price.round)]
        down = {client_of[w.node_id]: w.payload_bytes for w in msgs if w.direction == "down"}
        up = {client_of[w.node_id]: w.payload_bytes for w in msgs if w.direction == "up"}
        # every sampled client (over-selected too) gets its download and answers
        assert sorted(down) == sorted(price.clients) == sorted(up)
        assert [down[c] for c in price.clients] == list(price.bytes_down)
        # a straggler's reply is empty: its upload is neither sent nor aggregated
        assert [up[c] for c in price.clients] == list(price.bytes_up)
        kept = set(price.clients if price.kept is None else price.kept)
        late_seen += sum(c not in kept for c in price.clients)
        record = strategy.records[price.round - 1]
        assert record.kept == [c for c in price.clients if c in kept]
    if config.round_policy == "deadline":
        assert late_seen > 0, "the case must have a modeled straggler"
    if config.density_policy != "uniform":  # the nodes were told different upload densities
        assert len({d for r in strategy.records for d in r.client_d_up if d > 0}) > 1


def test_node_refuses_an_upload_density_its_run_has_not(
    fed_kwargs: dict[str, Any], harness: Any
) -> None:
    """A download telling a node a per-client density on a run without a fleet is refused by
    that node: the server drops it from the round, naming why."""
    from federation.client import _upload_density
    from federation.wire import FederationError

    config = RunConfig(**fed_kwargs)
    with pytest.raises(FederationError, match="per-client upload density"):
        _upload_density({"d-up": 0.5}, config, "round 1, client 0")
    fleet = RunConfig(**{**fed_kwargs, "fleet": "mixed-mobile"})
    with pytest.raises(FederationError, match=r"meta 'd-up' must be a density in \(0, 1\]"):
        _upload_density({"d-up": 1.5}, fleet, "round 1, client 0")
    assert _upload_density({}, fleet, "x") is None
    assert _upload_density({"d-up": 0.25}, fleet, "x") == 0.25


def test_flower_app_folder_of_a_fleet_run(fed_kwargs: dict[str, Any], tmp_path: Path) -> None:
    """floss flower-app writes a fleet run's app (it used to refuse it): its run config round
    trips to the same RunConfig, fleet and policies included."""
    import tomllib

    from federation.appdir import write_app
    from federation.config import from_run_config

    config = RunConfig(**{**fed_kwargs, "fleet": "mixed-mobile", "round_policy": "deadline",
                          "deadline_seconds": 2.0, "density_policy": "bandwidth"})  # fmt: skip
    write_app(tmp_path / "app", config)
    text = (tmp_path / "app" / "pyproject.toml").read_text(encoding="utf-8")
    values = tomllib.loads(text)["tool"]["flwr"]["app"]["config"]
    assert values["fleet"] == "mixed-mobile" and values["density-policy"] == "bandwidth"
    assert from_run_config(values)[0] == config
