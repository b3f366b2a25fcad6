"""Issue 20: the service bounds its work. A plan whose mask-sharing schedules would walk more
client draws than --max-plan-work is refused before any work with a 422 naming the limit and
the population that fits; the estimate follows the planner's real walk; the largest round plan
fits the default body limit."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

SMALL = {"ranks": "4,16", "d_down": "1,1/4", "d_up": "1,1/16"}


def test_the_issues_request_is_refused_up_front(make_client: Any) -> None:
    """num_clients 10,000,000 with every method kept a process busy for 13 minutes."""
    client = make_client()
    resp = client.post("/api/plan", json={"num_clients": 10_000_000, "method": "all"})
    assert resp.status_code == 422, resp.text[:500]
    (entry,) = resp.json()["detail"]
    assert entry["field"] == "num_clients"
    assert "limit of 20,000,000 (--max-plan-work)" in entry["message"]
    assert "at most " in entry["accepted"] and "clients for this grid" in entry["accepted"]
    page = client.get("/?num_clients=10000000&method=all")
    assert page.status_code == 422 and "--max-plan-work" in page.text


def test_the_population_named_in_the_refusal_is_planned(make_client: Any) -> None:
    client = make_client(max_plan_work=100_000)
    body = {**SMALL, "ranks": "4", "d_up": "1/4", "method": "sparseadapter"}
    refused = client.post("/api/plan", json={**body, "num_clients": 50_000})
    assert refused.status_code == 422
    accepted = refused.json()["detail"][0]["accepted"]
    fits = int(accepted.split("at most ", 1)[1].split(" clients", 1)[0].replace(",", ""))
    assert 1_000 < fits < 50_000
    assert client.post("/api/plan", json={**body, "num_clients": fits}).status_code == 200
    assert client.post("/api/plan", json={**body, "num_clients": fits + 1}).status_code == 422


@pytest.mark.parametrize(
    "extra",
    [
        {"method": "floss,dense,ffa"},  # uniform rounds: the population does not matter
        {"method": "sparseadapter", "ranks": "4", "d_up": "1/4", "max_rounds": 10},
    ],
)
def test_work_that_does_not_grow_with_the_population_is_not_refused(
    make_client: Any, extra: dict[str, Any]
) -> None:
    resp = make_client().post("/api/plan", json={**SMALL, "num_clients": 10_000_000, **extra})
    assert resp.status_code == 200, resp.text[:500]


def test_the_estimate_follows_the_planners_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count the client draws the planner really makes; the estimate is above it, within 3x."""
    import planner.schedule as schedule
    from planner.plan import plan
    from planner.settings import build_settings
    from service.limits import plan_work
    from service.schemas import PlanRequest

    drawn = 0
    real = schedule.cached_draws

    def counting(*args: Any) -> Any:
        nonlocal drawn
        sampled, factors = real(*args)
        drawn += len(sampled)
        return sampled, factors

    monkeypatch.setattr(schedule, "cached_draws", counting)
    schedule_cache = getattr(real, "cache_clear", None)
    if schedule_cache is not None:
        schedule_cache()
    settings = {"ranks": "4,16", "d_up": "1/4,1/16", "method": "sparseadapter,adapterlth"}
    req = PlanRequest.model_validate({**settings, "num_clients": 3_000})
    plan(
        build_settings(
            budget=req.budget, profile=req.profile, down=None, up=None, up_slowdown=None,
            rtt_ms=None, model=req.model, lora_params=None, num_labels=None, head_params=0,
            ref_rank=req.ref_rank, ranks=str(req.ranks), d_down=str(req.d_down),
            d_up=str(req.d_up), heuristic_d_down=str(req.heuristic_d_down),
            clients_per_round=req.clients_per_round, precision=req.precision,
            encoding=req.encoding, compute_seconds=0.0, min_rounds=1, max_rounds=None,
            method=str(req.method), num_clients=req.num_clients,
        )
    )  # fmt: skip
    estimate = plan_work(req)
    print(f"client draws: {drawn:,} walked, {estimate:,.0f} estimated")
    assert drawn > 0
    assert drawn <= estimate <= 3 * drawn


def test_the_largest_round_plan_fits_the_default_body_limit(make_client: Any) -> None:
    from service.config import DEFAULT_MAX_BODY_BYTES
    from service.round_plan_schemas import CLIENT_ID_CHARS, MAX_ROUND_CLIENTS

    worst = 1.2345678901234567e-300  # the longest repr a positive float has
    from service.round_plans import MAX_ROUND_TIERS

    clients = [
        {"id": f"{i:0{CLIENT_ID_CHARS}d}", "down_mbps": 50 + worst, "up_mbps": 1.2345678901234567e-3,
         "rtt_ms": worst, "compute_seconds": worst,
         "tier": f"{i % MAX_ROUND_TIERS:0{CLIENT_ID_CHARS}d}"}  # the longest tiers allowed
        for i in range(MAX_ROUND_CLIENTS)
    ]  # fmt: skip
    body = {"run": {"method": "floss", "rank": 16}, "round": 1, "clients": clients,
            "round_policy": "deadline", "deadline": 1 + worst,
            "clients_per_round": MAX_ROUND_CLIENTS}  # fmt: skip
    raw = json.dumps(body, indent=2).encode()
    print(f"the largest round plan: {len(raw):,} bytes indented")
    assert len(raw) <= DEFAULT_MAX_BODY_BYTES
    client = make_client(max_body_bytes=DEFAULT_MAX_BODY_BYTES)
    resp = client.post("/api/round-plan", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code == 200, resp.text[:500]
    assert len(resp.json()["clients"]) == MAX_ROUND_CLIENTS
    more = {**body, "clients": [*clients, {**clients[0], "id": "one-more"}]}
    over = client.post("/api/round-plan", json=more)
    assert over.status_code == 422 and over.json()["detail"][0]["field"] == "clients"
    long_id = {**body, "clients": [{**clients[0], "id": "x" * (CLIENT_ID_CHARS + 1)}]}
    named = client.post("/api/round-plan", json=long_id).json()["detail"][0]
    assert named["field"] == "clients.0.id" and "64 characters" in named["message"]


def test_max_plan_work_is_checked_at_start() -> None:
    from service.cli import app

    result = CliRunner().invoke(app, ["--max-plan-work", "0"])
    assert result.exit_code == 2
    assert "--max-plan-work must be an integer >= 1, but got 0." in result.output
