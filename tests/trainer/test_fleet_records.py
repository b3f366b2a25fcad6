"""What a fleet round does to the server and what every round records: P moves by the kept
clients' uploads only, a round nobody makes takes no server step, and every run (fleet or not)
records per-client lists in rounds.jsonl (not in the CSV) that old records may lack."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

import trainer.run as run_module
import trainer.session as session_module
from planner.fleet import default_deadline, load_fleet
from trainer.budget import method_spec
from trainer.config import RunConfig
from trainer.records import CSV_NAME, JSONL_NAME, LIST_FIELDS, RoundRecord
from trainer.run import train
from trainer.server import ServerState

runner = CliRunner()



def _config(tiny_kwargs: dict[str, Any], **changes: Any) -> RunConfig:
    base = {**tiny_kwargs, "rounds": 3, "eval_every": 0, "eval_test": False}
    return RunConfig(**{**base, **changes})


def _deadline_config(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, fleet: str, **changes: Any
) -> RunConfig:
    """Deadline rounds at the planner's default deadline (about m of the sampled arrive)."""
    kw = {"fleet": fleet, "d_down": 0.5, "d_up": 0.25, **changes}
    probe = _config(tiny_kwargs, **{**kw, "rounds": 1})
    n = train(probe, workload=tiny_workload, progress=False)
    deadline = default_deadline(
        method_spec(probe, n=n.adapter_size),
        load_fleet(fleet),
        seed=probe.seed,
        num_clients=probe.num_clients,
        over_selection=probe.over_selection,
    )
    return _config(tiny_kwargs, **kw, round_policy="deadline", deadline_seconds=deadline)


class _Spies:
    """The run's ServerState, P (and moments) before each round, each trained client's upload."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.servers: list[ServerState] = []
        self.before: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]] = {}
        self.sent: dict[tuple[int, int], torch.Tensor] = {}
        self.edit_price: Any = None
        spies = self
        real_round, real_update = session_module.fleet_round, run_module.client_update

        class SpyServer(ServerState):
            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, **kw)
                spies.servers.append(self)

        def spy_round(*args: Any, **kw: Any) -> Any:
            s = spies.servers[-1]
            spies.before[kw["round_"]] = (s.p.clone(), s.m.clone(), s.v.clone(), s.step_count)
            price = real_round(*args, **kw)
            return price if spies.edit_price is None else spies.edit_price(price, kw["round_"])

        def spy_update(*args: Any, **kw: Any) -> Any:
            update = real_update(*args, **kw)
            spies.sent[(kw["round_"], kw["client"])] = update.sent.vector.clone()
            return update

        monkeypatch.setattr(session_module, "ServerState", SpyServer)
        monkeypatch.setattr(session_module, "fleet_round", spy_round)
        monkeypatch.setattr(run_module, "client_update", spy_update)


def test_deadline_round_moves_p_by_the_kept_uploads_only(
    tiny_kwargs: dict[str, Any],
    tiny_workload: Any,
    fleet_file: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FedAvg at lr 1: P after round r = P before - (1/|K|) sum_{c in K} decoded_c, the sum over
    the kept clients alone (stragglers are sampled and downloaded to, nothing more)."""
    config = _deadline_config(
        tiny_kwargs,
        tiny_workload,
        fleet_file,
        server_optimizer="fedavg",
        server_lr=1.0,
        over_selection=2.0,
        rounds=4,
    )
    spies = _Spies(monkeypatch)
    result = train(config, workload=tiny_workload, progress=False)
    assert result.final_p is not None
    records = result.records
    assert any(set(r.clients) - set(r.kept) for r in records), "nobody missed the deadline"
    assert set(spies.sent) == {(r.round, c) for r in records for c in r.kept}
    for r in records:
        p_before = spies.before[r.round][0]
        p_after = spies.before[r.round + 1][0] if r.round < len(records) else result.final_p
        expected = p_before.clone()
        if r.kept:
            total = torch.zeros_like(expected)
            for c in r.kept:  # sampled order: ids ascending, as server_aggregate sums
                total += spies.sent[(r.round, c)]
            expected.add_(total / len(r.kept), alpha=-1.0)
        assert torch.equal(p_after, expected), f"round {r.round}"
        assert r.bytes_up == (round(sum(r.client_bytes_up) / len(r.kept)) if r.kept else 0)


def test_no_server_step_when_nobody_is_kept(
    tiny_kwargs: dict[str, Any],
    tiny_workload: Any,
    fleet_file: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deadline round nobody makes (forced in round 2): downloads counted, nobody trained,
    P, the FedAdam moments and the step count unchanged, the run goes on (not divergence)."""
    config = _deadline_config(tiny_kwargs, tiny_workload, fleet_file, over_selection=1.0)
    spies = _Spies(monkeypatch)

    def nobody_in_round_2(price: Any, round_: int) -> Any:
        if round_ != 2:
            return price
        zeros = [0] * len(price.clients)
        return replace(price, kept=[], bytes_up=zeros, bytes_total=sum(price.bytes_down), d_up=0.0)

    spies.edit_price = nobody_in_round_2
    result = train(config, workload=tiny_workload, progress=False)
    second = result.records[1]
    assert second.kept == [] and second.client_steps == 0 and math.isnan(second.train_loss)
    assert second.client_bytes_up == [0] * len(second.clients) and second.bytes_up == 0
    assert all(b > 0 for b in second.client_bytes_down)
    assert second.bytes_total == sum(second.client_bytes_down)
    assert not any(r == 2 for r, _ in spies.sent)
    p2, m2, v2, step2 = spies.before[2]
    p3, m3, v3, step3 = spies.before[3]
    assert torch.equal(p2, p3) and torch.equal(m2, m3) and torch.equal(v2, v3)
    assert step3 == step2
    kept_rounds = sum(1 for r in result.records if r.kept)
    assert spies.servers[-1].step_count == kept_rounds
    assert [r.round for r in result.records] == [1, 2, 3]


def test_every_run_records_per_client_lists(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, tmp_path: Path
) -> None:
    """A run on a network profile (no fleet): every sampled client kept, per-client bytes sum to
    bytes_total, the slowest client's seconds are the round's; lists in jsonl, not in the CSV;
    a record without them (written before they existed) loads with empty lists."""
    config = _config(tiny_kwargs, rounds=2, d_down=0.5, d_up=0.25)
    result = train(config, workload=tiny_workload, out_dir=tmp_path, progress=False)
    for r in result.records:
        assert r.clients == sorted(r.clients) and len(r.clients) == config.clients_per_round
        assert r.kept == r.clients
        assert sum(r.client_bytes_down) + sum(r.client_bytes_up) == r.bytes_total
        assert max(r.client_seconds) == r.sim_seconds
        assert set(r.client_d_down) == {r.d_down} and set(r.client_d_up) == {r.d_up}
    with (tmp_path / CSV_NAME).open(newline="") as fh:
        header = next(csv.reader(fh))
    assert not LIST_FIELDS & set(header) and "bytes_total" in header
    lines = [json.loads(x) for x in (tmp_path / JSONL_NAME).read_text().splitlines()]
    assert all(set(line) >= LIST_FIELDS for line in lines)
    assert [RoundRecord.from_dict(line) for line in lines] == result.records
    old = {k: v for k, v in lines[0].items() if k not in LIST_FIELDS}
    loaded = RoundRecord.from_dict(old)
    assert all(getattr(loaded, f) == [] for f in LIST_FIELDS)
    assert loaded.bytes_total == result.records[0].bytes_total


def test_floss_train_with_a_fleet_says_so_and_records_it(
    tiny_kwargs: dict[str, Any], fleet_file: str, tmp_path: Path
) -> None:
    from trainer.cli import app

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({**tiny_kwargs, "rounds": 1, "eval_every": 0}))
    out = tmp_path / "out"
    args = ["--config", str(cfg), "--out-dir", str(out), "--no-progress", "--no-eval-test"]
    flags = ["--fleet", fleet_file, "--round-policy", "deadline", "--deadline", "1000"]
    result = runner.invoke(app, [*args, *flags])
    assert result.exit_code == 0, result.output
    line = (
        f"fleet {fleet_file}: deadline rounds (over-selection 1.3), deadline 1000 s, uniform "
        "densities; round seconds from each client's own link (--network, --up-slowdown not used)"
    )
    assert line in result.output.splitlines()
    record = json.loads((out / JSONL_NAME).read_text().splitlines()[0])
    assert len(record["clients"]) == 4 and len(record["kept"]) == 3  # ceil(3 x 1.3), first 3
