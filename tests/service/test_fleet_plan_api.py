"""POST /api/plan with a fleet: floss-plan --fleet's rows, its short list, the cache, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

FLEET = {"fleet": "mixed-mobile", "num_clients": 1000, "ranks": "4,16", "d_down": "1,1/4",
         "d_up": "1/4,1/16", "round_policy": "sync,deadline"}  # fmt: skip
CLI = ["plan", "--format", "json", "--fleet", "mixed-mobile", "--num-clients", "1000",
       "--ranks", "4,16", "--d-down", "1,1/4", "--d-up", "1/4,1/16"]  # fmt: skip


def _422(resp: Any, field: str) -> None:
    assert resp.status_code == 422, resp.text
    assert "Traceback" not in resp.text
    assert any(e["field"] == field for e in resp.json()["detail"]), resp.json()


def test_fleet_plan_rows_equal_floss_plan_fleet_json(make_client: Any) -> None:
    from planner.cli import app

    client = make_client()
    resp = client.post("/api/plan", json=FLEET)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    cli = CliRunner().invoke(app, CLI)
    assert cli.exit_code == 0, cli.output
    assert got["rows"] == json.loads(cli.output)
    assert got["fleet"] == "mixed-mobile" and got["feasible"] == len(got["rows"])
    assert got["header"][1].startswith("fleet    mixed-mobile: tiers lte 60 %")
    assert got["plan_seconds"] > 0 and got["recommended"] >= 4
    short = client.post("/api/plan", json={**FLEET, "rows": "recommended"}).json()["rows"]
    assert len(short) == got["recommended"]
    assert sorted(map(json.dumps, short)) == sorted(
        json.dumps(r) for r in got["rows"] if r["recommended"]
    )
    assert short[0]["why"].startswith("dense LoRA baseline at the reference rank")
    # the same request again: the cache's bytes
    assert client.post("/api/plan", json=FLEET).content == resp.content


def test_fleet_plan_from_a_csv_under_the_data_root(make_client: Any, data_root: Path) -> None:
    (data_root / "ours.csv").write_text(
        "tier,down_mbps,up_mbps,rtt_ms\n" + "slow,10,2,80\n" * 3 + "fast,100,40,10\n" * 2
    )
    client = make_client()
    body = {"fleet": "ours.csv", "num_clients": 50, "ranks": "16", "d_down": "1",
            "d_up": "1,1/4", "round_policy": "deadline", "max_dropped": 0.5}  # fmt: skip
    resp = client.post("/api/plan", json=body)
    assert resp.status_code == 200, resp.text
    rows = resp.json()["rows"]
    assert {r["round_policy"] for r in rows} == {"deadline"} and resp.json()["fleet"] == "ours"


def test_fleet_plan_bad_inputs_name_the_field(make_client: Any, tmp_path: Path) -> None:
    client = make_client()
    _422(client.post("/api/plan", json={"deadline": 2.0}), "deadline")  # needs a fleet
    _422(client.post("/api/plan", json={**FLEET, "up_slowdown": 4}), "up_slowdown")
    _422(client.post("/api/plan", json={**FLEET, "fleet": "mars"}), "fleet")
    outside = tmp_path / "outside.csv"
    outside.write_text("down_mbps,up_mbps\n10,2\n")
    _422(client.post("/api/plan", json={**FLEET, "fleet": str(outside)}), "fleet")
    _422(client.post("/api/plan", json={**FLEET, "max_dropped": 2}), "max_dropped")
    _422(client.post("/api/plan", json={**FLEET, "num_clients": 2_000_000}), "num_clients")
    bad = client.post("/api/plan", json={**FLEET, "round_policy": "async"})
    assert bad.status_code == 422 and "round policy must be one of sync, deadline" in bad.text
