"""Every endpoint and every bad input of `floss serve`, through FastAPI's TestClient."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from planner.encoding import resolve_encoding
from planner.network import round_seconds

SMALL = {"ranks": "4,16", "d_down": "1,1/4", "d_up": "1,1/16,1/64"}


def assert_422(resp: Any, field: str) -> dict[str, str]:
    assert resp.status_code == 422, resp.text
    assert "Traceback" not in resp.text
    entries = resp.json()["detail"]
    named = [e for e in entries if e["field"] == field]
    assert named, f"no entry for {field!r} in {entries}"
    assert named[0]["message"] and named[0]["accepted"], named[0]
    return named[0]


def wait_for(check: Any, *, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not reached within {seconds} s")


def test_health_and_openapi(make_client: Any) -> None:
    client = make_client()
    assert client.get("/api/health").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/plan",
        "/api/round-plan",
        "/api/profiles",
        "/api/profiles/{kind}",
        "/api/studies",
        "/api/studies/{name}",
        "/api/studies/{name}/stop",
        "/api/studies/{name}/resume",
        "/api/studies/{name}/export.zip",
        "/api/studies/{name}/plot.png",
    ):
        assert path in paths, path
    assert client.get("/docs").status_code == 200  # offline: tests/service/test_docs.py


def test_profiles(make_client: Any) -> None:
    client = make_client()
    both = client.get("/api/profiles").json()
    assert {p["name"] for p in both["network"]} >= {"thesis", "lte"}
    thesis = next(p for p in both["network"] if p["name"] == "thesis")
    assert (thesis["down_mbps"], thesis["up_mbps"]) == (200, 20)
    models = client.get("/api/profiles/model").json()
    assert "all-minilm-l6-v2" in {p["name"] for p in models}
    assert_422(client.get("/api/profiles/fleets"), "kind")


def test_plan_rows_equal_floss_plan_json(make_client: Any) -> None:
    """The same settings give the same rows as `floss-plan --format json`."""
    from planner.cli import app

    client = make_client()
    body = {**SMALL, "method": "all", "budget": "2GB", "up_slowdown": 4, "rtt_ms": 20}
    resp = client.post("/api/plan", json=body)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    args = ["plan", "--format", "json", "--method", "all", "--budget", "2GB", "--up-slowdown",
            "4", "--rtt-ms", "20", "--ranks", "4,16", "--d-down", "1,1/4", "--d-up",
            "1,1/16,1/64"]  # fmt: skip
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 0, cli.output
    assert got["rows"] == json.loads(cli.output)
    assert got["feasible"] == len(got["rows"]) and got["recommended"] >= 1
    assert any(line.startswith("network  thesis") for line in got["header"])
    # lists spell the same grids as the CLI's comma text; the short list alone on request
    as_lists = {**body, "ranks": [4, 16], "d_down": [1, "1/4"], "d_up": [1, 0.0625, "1/64"]}
    assert client.post("/api/plan", json=as_lists).json()["rows"] == got["rows"]
    short = client.post("/api/plan", json={**body, "rows": "recommended"}).json()["rows"]
    assert short == [r for r in got["rows"] if r["recommended"]]


def test_plan_prices_each_direction_at_its_own_precisions(make_client: Any) -> None:
    """precision_down / precision_up (lists or comma text, bit widths or schemes) give the rows of
    `floss-plan --precision-down ... --precision-up ...`; a bad one is a 422 naming the field."""
    from planner.cli import app

    client = make_client()
    body = {**SMALL, "precision_down": "8", "precision_up": ["rh4", "fp32"]}
    resp = client.post("/api/plan", json=body)
    assert resp.status_code == 200, resp.text
    args = ["plan", "--format", "json", "--ranks", "4,16", "--d-down", "1,1/4", "--d-up",
            "1,1/16,1/64", "--precision-down", "8", "--precision-up", "rh4,fp32"]  # fmt: skip
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 0, cli.output
    rows = resp.json()["rows"]
    assert rows == json.loads(cli.output)
    assert {(r["precision_down"], r["precision_up"]) for r in rows} == {
        ("q8", "rh4"),
        ("q8", "fp32"),
    }
    assert_422(client.post("/api/plan", json={**SMALL, "precision_up": "3"}), "precision_up")
    assert_422(client.post("/api/plan", json={**SMALL, "precision_down": "fp8"}), "precision_down")


def test_plan_cache_answers_the_same(make_client: Any) -> None:
    client = make_client()
    first = client.post("/api/plan", json=SMALL).content
    second = client.post("/api/plan", json=SMALL).content
    assert first == second
    assert client.get("/api/health").json()["plan_cache"]["hits"] == 1
    uncached = make_client(plan_cache=0, storage="sqlite:///:memory:")
    assert uncached.post("/api/plan", json=SMALL).content == first


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"budget": "zz"}, "budget"),
        ({"budget": "1B"}, "budget"),  # affords no round at all
        ({"ranks": "1,x"}, "ranks"),
        ({"ranks": "0"}, "ranks"),
        ({"ranks": [1.5]}, "ranks"),
        ({"ranks": []}, "ranks"),
        ({"d_down": "2"}, "d_down"),
        ({"d_up": "abc"}, "d_up"),
        ({"d_up": [True]}, "d_up"),
        ({"heuristic_d_down": "0"}, "heuristic_d_down"),
        ({"precision": "fp8"}, "precision"),
        ({"encoding": "zip"}, "encoding"),
        ({"method": "foo"}, "method"),
        ({"clients_per_round": 0}, "clients_per_round"),
        ({"clients_per_round": "many"}, "clients_per_round"),
        ({"num_clients": 5, "clients_per_round": 10}, "num_clients"),
        ({"rtt_ms": -1}, "rtt_ms"),
        ({"down": 0}, "down"),
        ({"up_slowdown": "Infinity"}, "up_slowdown"),
        ({"profile": "nope"}, "profile"),
        ({"model": "nope"}, "model"),
        ({"lth_floor": "3"}, "lth_floor"),
        ({"keep_rate": 0}, "keep_rate"),
        ({"min_rounds": 5, "max_rounds": 2}, "max_rounds"),
        ({"compute_seconds": -1}, "compute_seconds"),
        ({"rows": "some"}, "rows"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_plan_bad_field_is_422_naming_it(
    make_client: Any, body: dict[str, Any], field: str
) -> None:
    assert_422(make_client().post("/api/plan", json={**SMALL, **body}), field)


@pytest.mark.parametrize("raw", [b"{bad", b"[1, 2]", b'"text"'])
def test_plan_body_not_an_object_is_422(make_client: Any, raw: bytes) -> None:
    resp = make_client().post(
        "/api/plan", content=raw, headers={"content-type": "application/json"}
    )
    assert_422(resp, "body")


def test_paths_must_lie_under_the_data_root(
    make_client: Any, data_root: Path, tmp_path: Path
) -> None:
    client = make_client()
    (data_root / "net.toml").write_text('name = "mine"\ndown_mbps = 50\nup_mbps = 5\n')
    ok = client.post("/api/plan", json={**SMALL, "profile": "net.toml"})
    assert ok.status_code == 200, ok.text
    assert any("mine: down 50 Mbps" in line for line in ok.json()["header"])
    outside = tmp_path / "outside.toml"
    outside.write_text("down_mbps = 50\nup_mbps = 5\n")
    (data_root / "link.toml").symlink_to(outside)
    for bad in ("../outside.toml", str(outside), "link.toml", "/etc/passwd.json", "~/x.toml"):
        entry = assert_422(client.post("/api/plan", json={**SMALL, "profile": bad}), "profile")
        assert "data root" in entry["message"] or "data-root" in entry["accepted"]
    assert_422(client.post("/api/plan", json={**SMALL, "model": "../m.json"}), "model")
    no_root = make_client(data_root=None, storage="sqlite:///:memory:")
    entry = assert_422(no_root.post("/api/plan", json={**SMALL, "profile": "net.toml"}), "profile")
    assert "without --data-root" in entry["message"]


def test_body_size_is_bounded(make_client: Any) -> None:
    client = make_client(max_body_bytes=4096)
    big = {"budget": "x" * 10_000}
    resp = client.post("/api/plan", json=big)
    assert resp.status_code == 413 and "4,096 bytes" in resp.json()["detail"]

    def chunks() -> Any:  # no Content-Length: counted while it streams
        for _ in range(10):
            yield b" " * 1000

    resp = client.post("/api/plan", content=chunks(), headers={"content-type": "application/json"})
    assert resp.status_code == 413


def test_token_required_off_loopback_and_checked_on_every_request(make_client: Any) -> None:
    from service.config import ServeConfig, ServeError

    with pytest.raises(ServeError, match="not a loopback address"):
        ServeConfig(host="0.0.0.0")
    with pytest.raises(ServeError, match="at least 16 characters"):
        ServeConfig(token="short")
    token = "s3cret-token-0123456789"
    client = make_client(token=token)
    for path in ("/api/health", "/openapi.json", "/", "/api/studies"):
        resp = client.get(path)
        assert resp.status_code == 401, path
        assert resp.json()["detail"].startswith("this service needs a token")
    assert client.get("/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
    good = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/health", headers=good).status_code == 200
    assert client.post("/api/plan", json=SMALL, headers=good).status_code == 200
    page = client.get(f"/?token={token}")  # a browser: once in the query, then a cookie
    assert page.status_code == 200 and "floss_token=" in page.headers["set-cookie"]
    assert client.get("/api/health").status_code == 200  # the client kept the cookie


def test_internal_error_has_no_traceback(make_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import service.plans

    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service.plans, "plan_payload", boom)
    resp = make_client(plan_cache=0).post("/api/plan", json=SMALL)
    assert resp.status_code == 500
    assert "Traceback" not in resp.text and "secret internals" not in resp.text
    assert resp.json()["detail"].startswith("internal error (RuntimeError)")
    assert make_client(storage="sqlite:///:memory:").get("/nope").status_code == 404


CLIENTS: list[dict[str, Any]] = [
    {"id": "phone-1", "down_mbps": 100, "up_mbps": 10, "rtt_ms": 40},
    {"id": 7, "down_mbps": 20, "up_mbps": 1.5},
    {"id": "slow", "down_mbps": 5, "up_mbps": 0.5, "rtt_ms": 300, "compute_seconds": 2},
]


def test_round_plan_prices_each_client_with_the_planner(make_client: Any) -> None:
    from planner.profiles import load_model

    client = make_client()
    run = {"method": "floss", "rank": 8, "d_down": "1/4", "d_up": 0.0625}
    resp = client.post(
        "/api/round-plan",
        json={"run": run, "clients": CLIENTS, "round": 12, "compute_seconds": 0.5},
    )
    assert resp.status_code == 200, resp.text
    out = resp.json()
    model = load_model("all-minilm-l6-v2")
    n = model.adapter_params(8, num_labels=model.num_labels)
    assert out["n"] == n and out["round"] == 12 and out["policy"] == "uniform"
    k_down, k_up = round(n / 4), round(n / 16)
    enc_down, b_down = resolve_encoding(n, k_down, encoding="auto", precision="fp32")
    _, b_up = resolve_encoding(n, k_up, encoding="auto", precision="fp32")
    for given, got in zip(CLIENTS, out["clients"], strict=True):
        assert got["id"] == given["id"]
        assert (got["d_down"], got["d_up"], got["k_down"]) == (0.25, 0.0625, k_down)
        assert (got["bytes_down"], got["bytes_up"], got["encoding_down"]) == (
            b_down,
            b_up,
            enc_down,
        )
        compute = float(given.get("compute_seconds", 0.5))
        assert got["seconds"] == pytest.approx(
            round_seconds(
                bytes_down=b_down,
                bytes_up=b_up,
                down_mbps=float(given["down_mbps"]),
                up_mbps=float(given["up_mbps"]),
                rtt_ms=float(given.get("rtt_ms", 0)),
                compute_seconds=compute,
            )
        )
    assert out["slowest"] == "slow" and out["seconds"] == out["clients"][2]["seconds"]
    assert out["bytes_total"] == 3 * (b_down + b_up)
    dense = client.post("/api/round-plan", json={"run": {"method": "dense"}, "clients": CLIENTS})
    assert {c["d_down"] for c in dense.json()["clients"]} == {1.0}


def test_round_plan_each_direction_has_its_precision(make_client: Any) -> None:
    client = make_client()
    run = {"rank": 4, "d_down": "1/4", "d_up": "1/16", "precision_down": 8, "precision_up": "rh2"}
    out = client.post("/api/round-plan", json={"run": run, "clients": CLIENTS}).json()
    assert (out["precision_down"], out["precision_up"]) == ("q8", "rh2")
    n = out["n"]
    _, b_down = resolve_encoding(n, round(n / 4), encoding="auto", precision="q8")
    _, b_up = resolve_encoding(n, round(n / 16), encoding="auto", precision="rh2")
    assert {(c["bytes_down"], c["bytes_up"]) for c in out["clients"]} == {(b_down, b_up)}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"policy": "stratified"}, "policy"),
        ({"clients": []}, "clients"),
        ({"clients": [{"id": 1, "down_mbps": 0, "up_mbps": 1}]}, "clients.0.down_mbps"),
        ({"clients": [{"id": 1, "up_mbps": 1}]}, "clients.0.down_mbps"),
        ({"run": {"method": "sparseadapter"}}, "run.method"),
        ({"run": {"d_up": "2"}}, "run.d_up"),
        ({"run": {"model": "../x.json"}}, "run.model"),
        ({"run": {"precision_up": "5"}}, "run.precision_up"),
        ({"run": None}, "study"),
        ({"study": "fake"}, "run"),  # both given
    ],
)
def test_round_plan_bad_field_is_422(make_client: Any, body: dict[str, Any], field: str) -> None:
    base = {"run": {"rank": 4}, "clients": CLIENTS}
    assert_422(make_client().post("/api/round-plan", json={**base, **body}), field)


def test_studies_read_from_the_storage(make_client: Any, tmp_path: Path) -> None:
    """A study floss-tune made (fake trainer): listed, shown, plotted, planned from."""
    from support.studies import make_fake_study

    make_fake_study(f"sqlite:///{tmp_path / 'studies.db'}")
    client = make_client()
    (listed,) = client.get("/api/studies").json()
    assert listed["name"] == "fake" and listed["state"] == "external"
    assert listed["progress"]["finished"] == 4 and not listed["resumable"]
    rec = listed["recommendation"]
    assert rec["line"].startswith("recommended: ") and rec["recommended"]
    shown = client.get("/api/studies/fake").json()
    assert len(shown["trials"]) == 4 and shown["recommended_config"]["rank"] == rec["rank"]
    png = client.get("/api/studies/fake/plot.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    planned = client.post("/api/round-plan", json={"study": "fake", "clients": CLIENTS})
    assert planned.status_code == 200, planned.text
    assert planned.json()["rank"] == rec["rank"] and planned.json()["source"] == "study fake"
    assert client.post("/api/studies/fake/resume").status_code == 409
    assert client.post("/api/studies/fake/stop").status_code == 409
    page = client.get("/")
    assert page.status_code == 200 and "fake" in page.text and "recommended: " in page.text
    for method, path in (
        ("get", "/api/studies/none"),
        ("get", "/api/studies/none/plot.png"),
        ("get", "/api/studies/none/export.zip"),
        ("post", "/api/studies/none/stop"),
        ("post", "/api/studies/none/resume"),
    ):
        resp = getattr(client, method)(path)
        assert resp.status_code == 404 and "no study 'none'" in resp.json()["detail"], path
    missing = client.post("/api/round-plan", json={"study": "none", "clients": CLIENTS})
    assert missing.status_code == 404


def _study(data_root: Path, name: str, **extra: Any) -> dict[str, Any]:
    (data_root / "texts.csv").write_text("text,label\na b,x\nc d,y\n")
    base = {"model": "tiny-random-bert", "data": "csv", "data_path": "texts.csv"}
    return {"name": name, "base": base, "n_trials": 2, "budget_scale": 0.1, **extra}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "bad name!"}, "name"),
        ({"base": {"nope": 1}}, "base"),
        ({"base": {"data": "csv", "data_path": "../escape.csv"}}, "base.data_path"),
        ({"base": {"data": "csv", "data_path": "missing.csv"}}, "base.data_path"),
        ({"base": {"network": "nowhere"}}, "base.network"),
        ({"base": {"model": "/etc"}}, "base.model"),
        ({"metric": "f1"}, "metric"),
        ({"n_trials": 0}, "n_trials"),
        ({"budget_scale": 2}, "budget_scale"),
        ({"methods": "floss,nope"}, "methods"),
        ({"topk": "local"}, "topk"),
        ({"search": "grid"}, "search"),
        ({"pruner": "magic"}, "pruner"),
        ({"sampler": "grid"}, "sampler"),
        ({"levels": 9}, "levels"),
        ({"min_rounds": 5, "max_rounds": 2}, "max_rounds"),
        ({"budget": "lots"}, "budget"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_study_bad_field_is_422(
    make_client: Any, data_root: Path, change: dict[str, Any], field: str
) -> None:
    client = make_client()
    assert_422(client.post("/api/studies", json={**_study(data_root, "s"), **change}), field)
    assert client.get("/api/studies").json() == []  # nothing was created


def test_workers_are_bounded_stopped_resumed_and_failures_kept(
    make_client: Any, data_root: Path
) -> None:
    """Stand-in workers (no training): 429 beyond --max-workers, stop, resume, a failure."""
    client = make_client(max_workers=1)
    pool = client.app.state.studies.pool
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    pool.command = lambda args: sleeper
    made = client.post("/api/studies", json=_study(data_root, "first"))
    assert made.status_code == 201, made.text
    pid = made.json()["pid"]
    try:
        assert client.get("/api/studies/first").json()["state"] == "running"
        busy = client.post("/api/studies", json=_study(data_root, "second"))
        assert busy.status_code == 429 and busy.headers["retry-after"] == "30"
        assert "1 tuning worker(s) are busy (studies: first)" in busy.json()["detail"]
        assert client.get("/api/studies/second").status_code == 404  # not created
        again = client.post("/api/studies", json=_study(data_root, "first"))
        assert again.status_code == 409  # a running worker (and a stored study) of that name
        stopped = client.post("/api/studies/first/stop")
        assert stopped.status_code == 200 and stopped.json()["signal"] == "SIGTERM"
        wait_for(lambda: client.get("/api/studies/first").json()["state"] == "stopped")
        shown = client.get("/api/studies/first").json()
        assert shown["resumable"] and shown["request"]["base"]["data_path"] == str(
            (data_root / "texts.csv").resolve()
        )
        pool.command = lambda args: [
            sys.executable, "-c", "print('error: no usable data'); raise SystemExit(2)"
        ]  # fmt: skip
        assert client.post("/api/studies/first/resume").status_code == 200
        failed = wait_for(
            lambda: (s := client.get("/api/studies/first").json())["state"] == "failed" and s
        )
        assert failed["error"] == "no usable data"
        page = client.get("/").text
        assert "no usable data" in page and "first" in page
    finally:
        for worker in list(pool.workers.values()):
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait(10)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pass
        else:
            os.kill(pid, 9)


def test_worker_command_runs_floss_tune_with_the_request(make_client: Any, data_root: Path) -> None:
    """The stored request becomes floss-tune run's flags, field for flag."""
    client = make_client()
    studies = client.app.state.studies
    from service.paths import data_root_scope
    from service.schemas import StudyRequest

    with data_root_scope(data_root):
        req = StudyRequest.model_validate(
            _study(data_root, "x", ranks=[2, 4], d_up="1,1/16", metric="val_loss", seed=3)
        )
    checked, _config, direction = studies.checked_request(req)
    args = studies.cli_args(checked, Path("/w/base.json"))
    assert direction == "minimize"
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert args[0] == "run" and flags["--config"] == "/w/base.json"
    assert flags["--ranks"] == "2,4" and flags["--d-up"] == "1,1/16"
    assert flags["--metric"] == "val_loss" and flags["--seed"] == "3"
    assert flags["--storage"] == studies.storage_url and flags["--study-name"] == "x"
    assert "--seeds" in args and "--no-tune-lr" in args
    assert flags["--search"] == "halving"  # floss-tune's default search, said explicitly
