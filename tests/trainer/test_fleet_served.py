"""What a fleet run evaluates: the models its clients hold. When clients receive their own
download densities (tiered, or bandwidth with adapt_down) the served metrics are the mixture of
the served model at each density, weighted by the share of the run's clients at it
(``planner.fleet.served_shares``); with one density it is the served model at the run's d_down,
unchanged."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch

from planner.fleet import assign_links
from trainer.budget import method_spec
from trainer.client import evaluate, evaluate_models
from trainer.config import RunConfig
from trainer.methods import make_method
from trainer.round import Trainee, served_models
from trainer.run import train
from trainer.session import fleet_served_shares

TIERS = "slow=1/8:1/16,fast=1:1/2"


def _config(tiny_kwargs: dict[str, Any], fleet: str, **changes: Any) -> RunConfig:
    base = {**tiny_kwargs, "rounds": 2, "eval_every": 0, "eval_test": False, "fleet": fleet}
    return RunConfig(**{**base, "d_down": 0.25, "d_up": 0.25, **changes})


def test_tiered_shares_are_the_tiers_of_the_run_clients(
    tiny_kwargs: dict[str, Any], fleet_file: str
) -> None:
    config = _config(tiny_kwargs, fleet_file, density_policy="tiered", tier_densities=TIERS)
    setup = config.fleet_setup()
    assert setup is not None
    spec = method_spec(config, n=1000)
    shares = fleet_served_shares(config, spec, setup, num_clients=config.num_clients)
    tiers = Counter(
        link.tier for link in assign_links(setup.fleet, config.num_clients, config.seed)
    )
    expected = {1.0: tiers["fast"] / config.num_clients, 0.125: tiers["slow"] / config.num_clients}
    assert dict(shares) == {d: s for d, s in expected.items() if s > 0}
    assert [d for d, _ in shares] == sorted((d for d, _ in shares), reverse=True)
    assert sum(s for _, s in shares) == pytest.approx(1.0)
    # one density for everybody: nothing to mix, the served model at the run's d_down
    uniform = _config(tiny_kwargs, fleet_file)
    assert fleet_served_shares(
        uniform, spec, uniform.fleet_setup(), num_clients=uniform.num_clients
    ) == ((0.25, 1.0),)
    assert fleet_served_shares(uniform, spec, None, num_clients=uniform.num_clients) == ()
    dense = _config(tiny_kwargs, fleet_file, method="dense")
    assert fleet_served_shares(dense, spec, dense.fleet_setup(), num_clients=4) == ()


def test_mixture_metrics_are_the_share_weighted_means(
    tiny_kwargs: dict[str, Any], tiny_workload: Any
) -> None:
    config = RunConfig(**{**tiny_kwargs, "d_down": 0.25})
    trainee = Trainee.load(config, tiny_workload)
    adapter = trainee.adapter
    torch.manual_seed(0)
    p = torch.randn(adapter.n) * 0.5
    method = make_method(config, n=adapter.n, slices=adapter.slices)
    rows = {"val": torch.as_tensor(tiny_workload.val_rows(config))}
    shares = ((1.0, 0.3), (0.125, 0.7))
    mixture = served_models(method, p, shares)
    got = evaluate_models(trainee.model, adapter, trainee.data, rows, served=mixture, server=p,
                          lm=False, amp=None)  # fmt: skip
    parts = []
    for density, share in shares:
        adapter.flat.copy_(method.served(p, density=density))
        parts.append(
            (share, evaluate(trainee.model, trainee.data, rows["val"], lm=False, amp=None))
        )
    assert got["val_loss"] == pytest.approx(sum(s * loss for s, (loss, _) in parts), abs=1e-12)
    assert got["val_accuracy"] == pytest.approx(sum(s * acc for s, (_, acc) in parts), abs=1e-12)
    # the two served models differ, so the mixture is neither of them
    assert not torch.equal(mixture[0][0], mixture[1][0])
    # one share of 1: the plain served model, bit for bit
    single = evaluate_models(trainee.model, adapter, trainee.data, rows,
                             served=served_models(method, p), server=p, lm=False, amp=None)  # fmt: skip
    plain = evaluate_models(trainee.model, adapter, trainee.data, rows,
                            served=method.served(p), server=p, lm=False, amp=None)  # fmt: skip
    assert single == plain


def test_tiered_run_records_the_mixture(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, fleet_file: str
) -> None:
    """A tiered run's served metrics change with the tiers' d_down, not with the run's d_down."""
    kw = {"density_policy": "tiered", "tier_densities": TIERS, "eval_every": 1}
    a = train(_config(tiny_kwargs, fleet_file, **kw), workload=tiny_workload, progress=False)
    b = train(_config(tiny_kwargs, fleet_file, d_down=1.0, **kw), workload=tiny_workload,
              progress=False)  # fmt: skip
    assert a.final_p is not None and b.final_p is not None
    assert torch.equal(a.final_p, b.final_p)
    assert [r.val_loss for r in a.records] == [r.val_loss for r in b.records]
