"""Heterogeneous fleets in the trainer: every round follows planner.fleet.fleet_round (sampled
clients, per-client densities, kept set, seconds, bytes), the averaging rule with unequal k,
deadline stragglers (download counted, upload neither sent nor aggregated), budgets, resume, and
bad inputs as one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

import trainer.run as run_module
from planner.fleet import default_deadline, fleet_round, load_fleet
from trainer.budget import method_spec
from trainer.config import RunConfig
from trainer.errors import TrainerError
from trainer.methods import make_method
from trainer.round import server_aggregate
from trainer.run import train
from trainer.server import ServerState

ROUNDS = 4
TIERS = "slow=1/2:1/16,fast=1:1/2"
runner = CliRunner()



def _config(tiny_kwargs: dict[str, Any], fleet: str, **changes: Any) -> RunConfig:
    base = {**tiny_kwargs, "rounds": ROUNDS, "eval_every": 0, "eval_test": False}
    return RunConfig(**{**base, "fleet": fleet, **changes})


def _deadline(config: RunConfig, n: int) -> float:
    """The planner's default deadline for the uniform configuration of this run."""
    return default_deadline(
        method_spec(config, n=n),
        load_fleet(str(config.fleet)),
        seed=config.seed,
        num_clients=config.num_clients,
        over_selection=config.over_selection,
    )


@pytest.mark.parametrize("density_policy", ["uniform", "tiered", "bandwidth"])
@pytest.mark.parametrize("round_policy", ["sync", "deadline"])
def test_records_follow_the_fleet_prices(
    tiny_kwargs: dict[str, Any],
    tiny_workload: Any,
    fleet_file: str,
    round_policy: str,
    density_policy: str,
) -> None:
    probe = _config(tiny_kwargs, fleet_file, d_down=0.5, d_up=0.25)
    n = train(probe, workload=tiny_workload, progress=False).adapter_size
    config = _config(
        tiny_kwargs,
        fleet_file,
        d_down=0.5,
        d_up=0.25,
        round_policy=round_policy,
        density_policy=density_policy,
        deadline_seconds=_deadline(probe, n),
        tier_densities=TIERS,
        num_clients=6,
        clients_per_round=2,
    )
    result = train(config, workload=tiny_workload, progress=False)
    setup = config.fleet_setup()
    assert setup is not None
    spec = method_spec(config, n=n)
    dropped = 0
    for record in result.records:
        price = fleet_round(
            spec,
            setup,
            seed=config.seed,
            round_=record.round,
            num_clients=config.num_clients,
            clients_per_round=config.clients_per_round,
            compute_seconds=config.compute_seconds,
        )
        assert record.clients == price.clients and record.kept == price.kept
        assert record.client_bytes_down == price.bytes_down
        assert record.client_bytes_up == price.bytes_up
        assert record.client_d_down == price.client_d_down
        assert record.client_d_up == price.client_d_up
        assert record.client_seconds == price.client_seconds
        assert record.sim_seconds == price.seconds and record.bytes_total == price.bytes_total
        dropped += len(record.clients) - len(record.kept)
    if round_policy == "deadline":
        assert len(result.records[0].clients) == 3  # ceil(2 * 1.3) over-selected
    if density_policy != "uniform":  # clients really differ in what they send
        assert len({d for r in result.records for d in r.client_d_up}) > 1


def test_averaging_rule_with_unequal_k(tiny_kwargs: dict[str, Any], fleet_file: str) -> None:
    """g = (decoded_1 + decoded_2) / 2 with zeros where a client sent nothing: a FedAvg step of
    lr 1 moves P by exactly -g."""
    config = _config(tiny_kwargs, fleet_file, server_optimizer="fedavg", server_lr=1.0, d_up=0.25)
    n = 400
    method = make_method(config, n=n, slices=())
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
    sa = method.upload(a, round_=1, client=0, density=1 / 16)
    sb = method.upload(b, round_=1, client=1, density=1 / 2)
    assert sa.k == 25 and sb.k == 200
    by_hand = torch.zeros(n)
    for x, k in ((a, 25), (b, 200)):
        top = torch.topk(x.abs(), k).indices
        by_hand[top] += x[top]  # fp32 values: decoded exactly
    by_hand /= 2
    p0 = torch.zeros(n)
    server = ServerState(p0, config)
    server_aggregate(server, method, [sa.vector, sb.vector])
    torch.testing.assert_close(server.p, -by_hand, rtol=0, atol=0)


def test_deadline_straggler_is_counted_down_but_never_aggregated(
    tiny_kwargs: dict[str, Any],
    tiny_workload: Any,
    fleet_file: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trained: list[tuple[int, int]] = []
    aggregated: list[int] = []
    real_update, real_aggregate = run_module.client_update, run_module.server_aggregate

    def spy_update(*args: Any, **kw: Any) -> Any:
        trained.append((kw["round_"], kw["client"]))
        return real_update(*args, **kw)

    def spy_aggregate(server: Any, method: Any, uploads: list[torch.Tensor]) -> None:
        aggregated.append(len(uploads))
        real_aggregate(server, method, uploads)

    monkeypatch.setattr(run_module, "client_update", spy_update)
    monkeypatch.setattr(run_module, "server_aggregate", spy_aggregate)
    probe = _config(tiny_kwargs, fleet_file, d_down=0.5, d_up=0.25)
    n = train(probe, workload=tiny_workload, progress=False).adapter_size
    trained.clear()
    aggregated.clear()
    config = _config(
        tiny_kwargs,
        fleet_file,
        d_down=0.5,
        d_up=0.25,
        round_policy="deadline",
        deadline_seconds=_deadline(probe, n),
        num_clients=6,
        clients_per_round=3,
        over_selection=2.0,
        rounds=6,
    )
    records = train(config, workload=tiny_workload, progress=False).records
    stragglers = [(r.round, c) for r in records for c in r.clients if c not in r.kept]
    assert stragglers, "the deadline dropped nobody: the test fleet is too fast"
    assert not set(stragglers) & set(trained)  # never trained, never uploaded
    assert trained == [(r.round, c) for r in records for c in r.kept]
    assert aggregated == [len(r.kept) for r in records if r.kept]
    for r in records:
        for c, down, up in zip(r.clients, r.client_bytes_down, r.client_bytes_up, strict=True):
            assert down > 0  # every sampled client received its download
            assert (up > 0) == (c in r.kept)
        assert r.bytes_total == sum(r.client_bytes_down) + sum(r.client_bytes_up)


@pytest.mark.parametrize("density_policy", ["uniform", "tiered", "bandwidth"])
def test_budget_on_a_fleet_stops_within_one_round(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, fleet_file: str, density_policy: str
) -> None:
    """N-dense-rounds on a fleet counts in the fleet's dense round (dense LoRA at ref_rank,
    sync, uniform, the seeded mean), whatever the run's own density policy (the reference
    adapter is sized without it); the run's cumulative seconds stay within the budget and the
    next round would cross it."""
    from planner.budget import parse_budget
    from planner.fleet import dense_reference_seconds, price_fleet_rounds
    from trainer.budget import reference_adapter_size

    kw: dict[str, Any] = {"d_down": 0.5, "d_up": 0.25, "round_policy": "deadline",
                          "deadline_seconds": 2.0, "density_policy": density_policy}  # fmt: skip
    if density_policy == "tiered":
        kw["tier_densities"] = TIERS
    config = _config(tiny_kwargs, fleet_file, budget="3-dense-rounds", **kw)
    records = train(config, workload=tiny_workload, progress=False).records
    setup = config.fleet_setup()
    assert setup is not None
    m, num = config.clients_per_round, config.num_clients
    ref_n = reference_adapter_size(config, tiny_workload.base_model)
    budget = parse_budget("3-dense-rounds").amount * dense_reference_seconds(
        setup, n=ref_n, seed=0, num_clients=num, clients_per_round=m
    )
    n = train(_config(tiny_kwargs, fleet_file, rounds=1, **kw), workload=tiny_workload,
              progress=False).adapter_size  # fmt: skip
    prices = price_fleet_rounds(
        method_spec(config, n=n), setup, seed=0, num_clients=num, clients_per_round=m
    )
    nxt = [next(prices) for _ in range(len(records) + 1)][-1]
    spent = records[-1].cum_sim_seconds
    assert len(records) > 1
    assert spent <= budget * (1 + 1e-9) < spent + nxt.seconds


def test_fleet_run_resumes_bit_identical(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, fleet_file: str, tmp_path: Path
) -> None:
    kw = {"d_down": 0.5, "d_up": 0.25, "density_policy": "tiered", "tier_densities": TIERS}
    kw["eval_every"] = 1  # the interrupted half evaluates its last round too
    whole = train(_config(tiny_kwargs, fleet_file, **kw), workload=tiny_workload, progress=False)
    out = tmp_path / "run"
    first = _config(tiny_kwargs, fleet_file, rounds=2, checkpoint_every=1, **kw)
    train(first, out_dir=out, workload=tiny_workload, progress=False)
    rest = train(
        _config(tiny_kwargs, fleet_file, rounds=ROUNDS, checkpoint_every=1, **kw),
        out_dir=out,
        resume=True,
        workload=tiny_workload,
        progress=False,
    )
    assert rest.final_p is not None and whole.final_p is not None
    assert torch.equal(rest.final_p, whole.final_p)

    def strip(records: list[Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.to_dict().items() if k != "wall_seconds"} for r in records]

    assert strip(rest.records) == strip(whole.records)


def test_config_refuses_bad_fleet_settings(fleet_file: str) -> None:
    for changes, match in (
        ({"fleet": fleet_file, "method": "sparseadapter"}, "fleets support floss, dense and ffa"),
        ({"fleet": fleet_file, "over_selection": 0.5}, "over_selection must be >= 1"),
        ({"fleet": fleet_file, "deadline_seconds": 0}, "deadline_seconds must be > 0"),
        ({"fleet": fleet_file, "round_policy": "async"}, "round_policy must be one of"),
        ({"round_policy": "deadline", "deadline_seconds": 5}, "need a fleet"),
        ({"fleet": fleet_file, "tier_densities": "slow=2:1"}, "slow"),
    ):
        with pytest.raises(TrainerError, match=match):
            RunConfig(**changes)
    for changes, match in (
        ({"density_policy": "tiered", "tier_densities": "slow=1:1"}, "no density for tier 'fast'"),
        ({"density_policy": "bandwidth"}, "need a deadline"),
        ({"round_policy": "deadline"}, "need a deadline"),
    ):
        with pytest.raises(TrainerError, match=match):
            RunConfig(fleet=fleet_file, **changes).fleet_setup()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--fleet", "no-such-fleet"], "no-such-fleet"),
        (["--density-policy", "tiered", "--tier-densities", "slow=1:1"], "tier 'fast'"),
        (["--density-policy", "bandwidth"], "need a deadline"),
        (["--method", "sparseadapter"], "fleets support floss, dense and ffa"),
        (["--over-selection", "0.9"], "over_selection must be >= 1"),
        (["--deadline", "0"], "deadline_seconds must be > 0"),
        (["--round-policy", "deadline", "--deadline", "0.002"], "no client"),
        (["--fleet", "MISSING_CSV"], "up_mbps"),
        (["--fleet", "ZERO_CSV"], "0"),
    ],
)
def test_floss_train_bad_fleet_input_is_one_line(
    tiny_kwargs: dict[str, Any], fleet_file: str, tmp_path: Path, flags: list[str], message: str
) -> None:
    from trainer.cli import app

    missing = tmp_path / "missing.csv"
    missing.write_text("down_mbps,rtt_ms\n10,20\n")
    zero = tmp_path / "zero.csv"
    zero.write_text("down_mbps,up_mbps,rtt_ms\n10,0,20\n")
    flags = [
        str(missing) if f == "MISSING_CSV" else str(zero) if f == "ZERO_CSV" else f for f in flags
    ]
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({**tiny_kwargs, "rounds": 1, "eval_every": 0}))
    args = ["--config", str(cfg), "--out-dir", str(tmp_path / "out"), "--no-progress"]
    if "--fleet" not in flags:
        args += ["--fleet", fleet_file]
    result = runner.invoke(app, [*args, *flags])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert "Traceback" not in result.output
