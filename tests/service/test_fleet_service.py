"""Fleets through the service as through the CLIs: fleet profiles listed, round plans under every
round and density policy (equal to floss-train's own fleet rounds), and fleet studies checked at
submit exactly as floss-tune run checks them (a 422 naming the field, never a study that fails
later)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.schemas import StudyRequest


def _422(resp: Any, field: str) -> dict[str, str]:
    assert resp.status_code == 422, resp.text
    assert "Traceback" not in resp.text
    named = [e for e in resp.json()["detail"] if e["field"] == field]
    assert named, resp.json()
    assert named[0]["message"] and named[0]["accepted"], named[0]
    return named[0]


def test_fleet_profiles_are_listed_with_their_tiers(make_client: Any) -> None:
    from planner.fleet import load_fleet

    client = make_client()
    fleets = client.get("/api/profiles/fleet")
    assert fleets.status_code == 200, fleets.text
    by_name = {f["name"]: f for f in fleets.json()}
    assert {"mixed-mobile", "home-broadband", "sample-measured"} <= set(by_name)
    mobile = load_fleet("mixed-mobile")
    assert [t["name"] for t in by_name["mixed-mobile"]["tiers"]] == list(mobile.tier_names)
    assert by_name["mixed-mobile"]["tiers"][0]["down_mbps"] == mobile.tiers[0].down_mbps
    assert by_name["sample-measured"]["measured_clients"] == 20
    assert "fleet" in client.get("/api/profiles").json()
    assert _422(client.get("/api/profiles/nope"), "kind")["accepted"] == "network, model or fleet"


POLICIES = [
    {"round_policy": "sync", "density_policy": "uniform"},
    {"round_policy": "deadline", "density_policy": "uniform", "deadline": 0.5},
    {"round_policy": "sync", "density_policy": "tiered"},
    {"round_policy": "deadline", "density_policy": "tiered", "deadline": 0.3},
    {"round_policy": "sync", "density_policy": "bandwidth", "deadline": 0.4},
    {"round_policy": "deadline", "density_policy": "bandwidth", "deadline": 0.4, "adapt": True},
]
TIERS = "lte=1/4:1/16,wifi=1:1/4,5g=1:1"


@pytest.mark.parametrize("point", POLICIES, ids=lambda p: "-".join(map(str, p.values())))
def test_round_plan_equals_floss_trains_fleet_round(
    make_client: Any, point: dict[str, Any]
) -> None:
    """Round 3 of a mixed-mobile run as floss-train prices it (planner.fleet.fleet_round), sent
    client by client with the links that run drew: the same densities, bytes, seconds, kept
    uploads and round seconds."""
    from planner.fleet import FleetSetup, assign_links, fleet_round, load_fleet
    from planner.method_spec import MethodSpec
    from planner.profiles import load_model

    rank, m, num_clients, seed = 8, 10, 200, 3
    model = load_model("all-minilm-l6-v2")
    n = model.adapter_params(rank, num_labels=model.num_labels)
    fleet = load_fleet("mixed-mobile")
    setup = FleetSetup(
        fleet=fleet,
        round_policy=point["round_policy"],
        deadline_seconds=point.get("deadline"),
        density_policy=point["density_policy"],
        tier_densities=tuple((t, d, u) for t, d, u in _tiers(TIERS)),
        adapt_down=bool(point.get("adapt")),
    )
    spec = MethodSpec(method="floss", n=n, d_down=0.25, d_up=0.25)
    want = fleet_round(
        spec, setup, seed=seed, round_=3, num_clients=num_clients, clients_per_round=m,
        compute_seconds=0.05,
    )  # fmt: skip
    links = assign_links(fleet, num_clients, seed)
    clients = [
        {"id": c, "down_mbps": links[c].down_mbps, "up_mbps": links[c].up_mbps,
         "rtt_ms": links[c].rtt_ms, "tier": links[c].tier}
        for c in want.clients
    ]  # fmt: skip
    body: dict[str, Any] = {
        "run": {"method": "floss", "rank": rank, "d_down": "1/4", "d_up": "1/4"},
        "clients": clients,
        "policy": point["density_policy"],
        "round_policy": point["round_policy"],
        "deadline": point.get("deadline"),
        "compute_seconds": 0.05,
        "adapt_down": bool(point.get("adapt")),
    }
    if point["density_policy"] == "tiered":  # elsewhere it would change nothing: refused
        body["tier_densities"] = TIERS
    if point["round_policy"] == "deadline":
        body["clients_per_round"] = m
    resp = make_client().post("/api/round-plan", json=body)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert got["n"] == n and got["policy"] == point["density_policy"]
    assert [c["id"] for c in got["clients"]] == want.clients
    assert [c["d_down"] for c in got["clients"]] == want.client_d_down
    assert [c["d_up"] for c in got["clients"]] == want.client_d_up
    assert [c["bytes_down"] for c in got["clients"]] == want.bytes_down
    kept_up = [c["bytes_up"] if c["kept"] else 0 for c in got["clients"]]
    assert kept_up == want.bytes_up
    assert [c["seconds"] for c in got["clients"]] == want.client_seconds
    assert got["kept"] == want.kept and got["seconds"] == want.seconds
    assert got["bytes_total"] == want.bytes_total
    assert sorted(got["kept"] + got["dropped"]) == want.clients
    if point["round_policy"] == "deadline":
        assert got["dropped"], "over-selection drops someone in these rounds"
    if point["density_policy"] != "uniform":
        assert len({(c["d_down"], c["d_up"]) for c in got["clients"]}) > 1


def _tiers(text: str) -> tuple[tuple[str, float, float], ...]:
    from planner.fleet import parse_tier_densities

    return parse_tier_densities(text)


CLIENTS = [
    {"id": "a", "down_mbps": 100, "up_mbps": 10, "tier": "wifi"},
    {"id": "b", "down_mbps": 5, "up_mbps": 0.5, "rtt_ms": 80, "tier": "lte"},
]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"policy": "tiered"}, "tier_densities"),
        ({"policy": "tiered", "tier_densities": "lte=1/4:1/16"}, "clients.0.tier"),
        ({"policy": "tiered", "tier_densities": "lte=1/4"}, "tier_densities"),
        ({"policy": "bandwidth"}, "deadline"),
        ({"policy": "bandwidth", "deadline": 1, "density_grid": "1,2"}, "density_grid"),
        ({"round_policy": "deadline"}, "deadline"),
        ({"round_policy": "deadline", "deadline": -1}, "deadline"),
        ({"clients_per_round": 1}, "clients_per_round"),
        ({"policy": "nope"}, "policy"),
        ({"round_policy": "async"}, "round_policy"),
        ({"policy": "tiered", "run": {"method": "dense"}, "tier_densities": "lte=1:1"}, "policy"),
        ({"clients": [{"id": i, "down_mbps": 1, "up_mbps": 1, "tier": f"t{i}"}
                      for i in range(65)]}, "clients"),
    ],
)  # fmt: skip
def test_round_plan_policy_errors_name_the_field(
    make_client: Any, body: dict[str, Any], field: str
) -> None:
    base = {"run": {"rank": 4}, "clients": CLIENTS}
    _422(make_client().post("/api/round-plan", json={**base, **body}), field)


def test_round_plan_takes_a_fleet_studys_policy_point() -> None:
    """A study's recommended policy point is the default; a request field overrides it."""
    from service.round_plan_schemas import RoundPlanRequest
    from service.round_plans import round_policy_of

    study = {"round_policy": "deadline", "density_policy": "bandwidth", "deadline": 0.5,
             "clients_per_round": 10, "density_grid": "1,1/4", "adapt_down": True}  # fmt: skip
    req = RoundPlanRequest.model_validate({"study": "s", "clients": CLIENTS})
    got = round_policy_of(req, study)
    assert (got.round, got.density, got.deadline, got.clients_per_round) == (
        "deadline", "bandwidth", 0.5, 10,
    )  # fmt: skip
    assert got.density_grid == "1,1/4" and got.adapt_down
    over = RoundPlanRequest.model_validate(
        {"study": "s", "clients": CLIENTS, "round_policy": "sync", "policy": "uniform"}
    )
    assert (round_policy_of(over, study).round, round_policy_of(over, study).density) == (
        "sync", "uniform",
    )  # fmt: skip
    plain = round_policy_of(RoundPlanRequest.model_validate({"run": {}, "clients": CLIENTS}))
    assert (plain.round, plain.density, plain.deadline) == ("sync", "uniform", None)


def _study(data_root: Path, **extra: Any) -> dict[str, Any]:
    (data_root / "texts.csv").write_text("text,label\na b,x\nc d,y\n")
    base = {"model": "tiny-random-bert", "data": "csv", "data_path": "texts.csv",
            "fleet": "mixed-mobile", **extra.pop("base", {})}  # fmt: skip
    return {"name": "fleety", "base": base, "n_trials": 2, "budget_scale": 0.1, **extra}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"base": {"round_policy": "deadline"}}, "base.deadline_seconds"),
        ({"base": {"density_policy": "bandwidth"}}, "base.deadline_seconds"),
        ({"round_policies": "deadline", "density_policies": "uniform"}, "deadlines"),
        ({"round_policies": "sync", "density_policies": "bandwidth"}, "deadlines"),
        ({"round_policies": "sync", "density_policies": "tiered"}, "base.tier_densities"),
        ({"base": {"tier_densities": "lte=1:1,mars=1:1"}}, "base.tier_densities"),
        ({"round_policies": "sync,nope"}, "round_policies"),
        ({"density_policies": ["uniform", "uniform"]}, "density_policies"),
        ({"deadlines": [1, -1]}, "deadlines"),
        ({"deadlines": "1,1"}, "deadlines"),
        ({"deadlines": "soon"}, "deadlines"),
        ({"base": {"fleet": "nowhere"}}, "base.fleet"),
        ({"base": {"fleet": "../fleet.csv"}}, "base.fleet"),
        ({"methods": "floss,sparseadapter"}, "methods"),
        ({"base": {"fleet": None}, "deadlines": "1,2"}, "deadlines"),
    ],
)
def test_fleet_study_bad_search_is_422_at_submit(
    make_client: Any, data_root: Path, change: dict[str, Any], field: str
) -> None:
    client = make_client()
    _422(client.post("/api/studies", json=_study(data_root, **change)), field)
    assert client.get("/api/studies").json() == []  # nothing was created


def test_fleet_study_becomes_floss_tunes_fleet_flags(make_client: Any, data_root: Path) -> None:
    """A good fleet search is accepted at submit and runs as floss-tune run --round-policies
    ... --density-policies ... --deadlines ..., checked by floss-tune's own parser."""
    from typer.main import get_command

    from service.paths import data_root_scope
    from tuner.cli import app

    client = make_client()
    studies = client.app.state.studies
    body = _study(
        data_root,
        round_policies=["sync", "deadline"],
        density_policies="uniform,tiered,bandwidth",
        deadlines=[0.5, "2"],
        base={"tier_densities": TIERS},
    )
    with data_root_scope(data_root):
        req = StudyRequest.model_validate(body)
    checked, config, _direction = studies.checked_request(req)
    assert config.fleet == "mixed-mobile"
    config_file = data_root / "base.json"
    config_file.write_text("{}")
    args = studies.cli_args(checked, config_file)
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert flags["--round-policies"] == "sync,deadline"
    assert flags["--density-policies"] == "uniform,tiered,bandwidth"
    assert flags["--deadlines"] == "0.5,2.0"
    run = get_command(app).commands["run"]  # type: ignore[attr-defined]
    params = run.make_context("run", list(args[1:])).params
    assert params["round_policies"] == "sync,deadline" and params["deadlines"] == "0.5,2.0"
    assert params["density_policies"] == "uniform,tiered,bandwidth"


@pytest.mark.slow
def test_a_fleet_study_submitted_over_http_runs_to_the_end(tmp_path: Path) -> None:
    """A study searching deadline and sync rounds, uniform and bandwidth densities and two
    deadlines on mixed-mobile, accepted at submit, runs to finished in a real `floss serve`;
    its trials carry the policy points and a round plan from it takes the recommended point."""
    import json

    from support.processes import wait_for
    from support.serve import TINY_STUDY, call, get_json, serve
    from support.task import write_study_task

    (tmp_path / "data").mkdir()
    write_study_task(tmp_path / "data")
    body = {**TINY_STUDY, "name": "fleety",
            "base": {**TINY_STUDY["base"], "fleet": "mixed-mobile"},
            "round_policies": "sync,deadline", "density_policies": "uniform,bandwidth",
            "deadlines": [0.5, 2], "n_trials": 3}  # fmt: skip
    service = serve(tmp_path)
    port = service.port
    try:
        status, answer = call(port, "POST", "/api/studies", body)
        assert status == 201, answer
        done = wait_for(
            lambda: (
                (s := get_json(port, "/api/studies/fleety"))["state"] in ("finished", "failed")
                and s
            ),
            seconds=400,
            what="the fleet study ends",
        )
        assert done["state"] == "finished", (done["error"], done["log_tail"])
        points = {(t["round_policy"], t["density_policy"]) for t in done["trials"]}
        assert points and all(rp in ("sync", "deadline") for rp, _ in points)
        rec = done["recommendation"]
        clients = [{"id": i, "down_mbps": 10 + i, "up_mbps": 2 + i, "tier": "lte"}
                   for i in range(5)]  # fmt: skip
        status, raw = call(port, "POST", "/api/round-plan", {"study": "fleety", "clients": clients})
        assert status == 200, raw
        planned = json.loads(raw)
        assert planned["round_policy"] == rec["round_policy"]
        assert planned["policy"] == rec["density_policy"]
        print(f"fleet study: {len(done['trials'])} trials, recommended {rec['line']}")
    finally:
        service.stop()
