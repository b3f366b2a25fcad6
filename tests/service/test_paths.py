"""Every path field of every endpoint, tried with every way out of --data-root (absolute, ``..``,
a symlink, ``~``) and with files that do not parse: refused with 422 naming the field, nothing
created, and nothing of the file's content in the answer. One check (``service.paths``) does it
for every request model; the audit below finds any field that could name a file and is not
marked."""

from __future__ import annotations

import dataclasses
import os
import typing
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
SECRET = "TOPSECRET-CELL"
SMALL = {"ranks": "4,16", "d_down": "1,1/4", "d_up": "1,1/16"}
CLIENTS = [{"id": 1, "down_mbps": 50, "up_mbps": 5}]
FLEET_CSV = "client,tier,down_mbps,up_mbps,rtt_ms\nc0,lte,14.0,3.7,44\nc1,wifi,80,20,10\n"
NETWORK_TOML = 'name = "mine"\ndown_mbps = 50\nup_mbps = 5\n'
# a valid file of each kind, as a field expects it (suffix, content)
GOOD = {
    "network": (".toml", NETWORK_TOML),
    "model": (".toml", (ROOT / "profiles/model/all-minilm-l6-v2.toml").read_text()),
    "fleet": (".csv", FLEET_CSV),
    "data": (".csv", "text,label\na b,x\nc d,y\n"),
}


def base_study(**base: Any) -> dict[str, Any]:
    return {
        "name": "s",
        "base": {"model": "tiny-random-bert", "data": "csv", "data_path": "texts.csv", **base},
        "n_trials": 2,
        "budget_scale": 0.1,
    }


# (endpoint, field as the 422 names it, kind of file, how a value is sent)
FIELDS: list[tuple[str, str, str]] = [
    ("POST /api/plan", "profile", "network"),
    ("POST /api/plan", "model", "model"),
    ("GET /", "profile", "network"),
    ("GET /", "model", "model"),
    ("POST /api/round-plan", "run.model", "model"),
    ("POST /api/studies", "base.model", "model"),
    ("POST /api/studies", "base.data_path", "data"),
    ("POST /api/studies", "base.network", "network"),
    ("POST /api/studies", "base.fleet", "fleet"),
]


def send(client: Any, endpoint: str, field: str, value: str, *, data: bool = True) -> Any:
    if endpoint == "POST /api/plan":
        return client.post("/api/plan", json={**SMALL, field: value})
    if endpoint == "GET /":
        return client.get("/?" + urllib.parse.urlencode({**SMALL, field: value}))
    if endpoint == "POST /api/round-plan":
        return client.post("/api/round-plan", json={"run": {"model": value}, "clients": CLIENTS})
    body = base_study(**{field.split(".")[1]: value})
    if not data and field != "base.data_path":  # the fortunes default: no data file named
        del body["base"]["data"], body["base"]["data_path"]
    return client.post("/api/studies", json=body)


def refused(resp: Any, endpoint: str, field: str) -> str:
    """The message of the 422 for ``field``; the page answers HTML with the same entry."""
    assert resp.status_code == 422, resp.text[:2000]
    assert SECRET not in resp.text and "Traceback" not in resp.text
    if endpoint == "GET /":
        assert f"<b>{field}</b>: " in resp.text, resp.text[-2000:]
        return resp.text.split(f"<b>{field}</b>: ", 1)[1].split("</li>", 1)[0]
    named = [e for e in resp.json()["detail"] if e["field"] == field]
    assert named, resp.text
    assert named[0]["accepted"]
    return str(named[0]["message"])


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the data root, every file in it holding the secret."""
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def secret_file(folder: Path, kind: str, name: str = "f") -> Path:
    suffix, content = GOOD[kind]
    path = folder / f"{name}{suffix}"
    path.write_text(f"# {SECRET}\n{content}" if suffix == ".toml" else content)
    return path


@pytest.mark.parametrize(("endpoint", "field", "kind"), FIELDS)
@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink", "home", "nested-dotdot"])
def test_every_path_field_refuses_every_way_out(
    make_client: Any,
    data_root: Path,
    outside: Path,
    endpoint: str,
    field: str,
    kind: str,
    how: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (data_root / "texts.csv").write_text(GOOD["data"][1])
    (data_root / "sub").mkdir()
    target = secret_file(outside, kind)
    monkeypatch.setenv("HOME", str(outside))
    value = {
        "absolute": str(target),
        "dotdot": f"../outside/{target.name}",
        "nested-dotdot": f"sub/../../outside/{target.name}",
        "home": f"~/{target.name}",
        "symlink": f"sub/link{target.suffix}",
    }[how]
    (data_root / "sub" / f"link{target.suffix}").symlink_to(target)
    client = make_client()
    client.app.state.studies.pool.command = lambda args: ["true"]  # never train here
    message = refused(send(client, endpoint, field, value), endpoint, field)
    assert "outside the data root" in message, message
    assert client.get("/api/studies").json() == []  # no study was created


@pytest.mark.parametrize(("endpoint", "field", "kind"), FIELDS)
def test_every_path_field_takes_a_file_under_the_root(
    make_client: Any, data_root: Path, endpoint: str, field: str, kind: str
) -> None:
    """The same fields accept a good file inside the root (so the refusals above are about the
    place, not the field), and the stored request holds its resolved path."""
    (data_root / "texts.csv").write_text(GOOD["data"][1])
    (data_root / "sub").mkdir()
    path = secret_file(data_root / "sub", kind, name="good")
    client = make_client()
    client.app.state.studies.pool.command = lambda args: ["true"]  # no training here
    resp = send(client, endpoint, field, f"sub/{path.name}")
    assert resp.status_code == (201 if endpoint == "POST /api/studies" else 200), resp.text[:2000]
    if endpoint == "POST /api/studies":
        stored = client.get("/api/studies/s").json()["request"]["base"]
        assert stored[field.split(".")[1]] == str(path.resolve())


# files the service itself reads (base.model and base.data_path are read by the worker's trainer)
PARSED = [f for f in FIELDS if f[1] not in ("base.model", "base.data_path")]


@pytest.mark.parametrize(("endpoint", "field", "kind"), PARSED)
def test_a_file_that_does_not_parse_is_named_never_quoted(
    make_client: Any, data_root: Path, endpoint: str, field: str, kind: str
) -> None:
    (data_root / "texts.csv").write_text(GOOD["data"][1])
    suffix = GOOD[kind][0]
    bad = data_root / f"bad{suffix}"
    bad.write_text(f"{SECRET},{SECRET}\n1,2\n" if suffix == ".csv" else f"{SECRET} = [[[\n")
    client = make_client()
    client.app.state.studies.pool.command = lambda args: ["true"]  # never train here
    message = refused(send(client, endpoint, field, bad.name), endpoint, field)
    assert "bad" in message and "not a readable" in message, message
    assert client.get("/api/studies").json() == []


def test_the_fleet_file_of_the_issue_never_reaches_a_worker(
    make_client: Any, data_root: Path, outside: Path
) -> None:
    """Issue 20: base.fleet outside the root was opened by the worker and its header quoted."""
    (data_root / "texts.csv").write_text(GOOD["data"][1])
    fleet = outside / "fleet.csv"
    fleet.write_text(f"{SECRET},b\n1,2\n")
    client = make_client()
    started: list[list[str]] = []

    def command(args: list[str]) -> list[str]:
        started.append(args)
        return ["true"]

    client.app.state.studies.pool.command = command
    resp = client.post("/api/studies", json=base_study(fleet=str(fleet)))
    refused(resp, "POST /api/studies", "base.fleet")
    assert started == [] and client.get("/api/studies").json() == []
    page = client.get("/")
    assert SECRET not in page.text


def test_a_non_string_path_is_refused(make_client: Any, data_root: Path) -> None:
    (data_root / "texts.csv").write_text(GOOD["data"][1])
    resp = make_client().post("/api/studies", json=base_study(data_path=123))
    assert refused(resp, "POST /api/studies", "base.data_path").startswith("expected a string")


def test_no_data_root_accepts_no_path(make_client: Any, data_root: Path) -> None:
    (data_root / "net.toml").write_text(NETWORK_TOML)
    client = make_client(data_root=None)
    for endpoint, field, _kind in FIELDS:
        resp = send(client, endpoint, field, "net.toml", data=False)
        message = refused(resp, endpoint, field)
        assert "without --data-root" in message, (endpoint, field, message)


def test_resume_checks_the_stored_paths_again(
    make_client: Any, data_root: Path, tmp_path: Path
) -> None:
    """A study stored by a service with another data root: its paths are checked again."""
    (data_root / "texts.csv").write_text(GOOD["data"][1])
    client = make_client()
    client.app.state.studies.pool.command = lambda args: ["true"]
    made = client.post("/api/studies", json=base_study())
    assert made.status_code == 201, made.text
    client.app.state.studies.pool.stop_all(5)
    other = tmp_path / "other-root"
    other.mkdir()
    again = make_client(data_root=other)
    again.app.state.studies.reap()
    resp = again.post("/api/studies/s/resume")
    message = refused(resp, "POST /api/studies/s/resume", "base.data_path")
    assert "outside the data root" in message


def _str_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted name, FieldInfo) of each field that can hold a string or a mapping."""
    out: list[tuple[str, Any]] = []
    for name, info in model.model_fields.items():
        args = typing.get_args(info.annotation) or (info.annotation,)
        for arg in args:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out += _str_fields(arg, f"{prefix}{name}.")
        if (
            info.annotation is str
            or str in args
            or any(typing.get_origin(a) is dict for a in args)
            or (typing.get_origin(info.annotation) is dict)
        ):
            out.append((f"{prefix}{name}", info))
    return out


# string fields that name no file (names, grids, numbers as text); each one is a decision
NOT_PATHS = {
    "budget", "ranks", "d_down", "d_up", "heuristic_d_down", "method", "methods", "lth_floor",
    "precision", "precision_down", "precision_up", "encoding", "rows", "name", "topk", "metric",
    "search", "pruner", "sampler", "study", "policy", "run.d_down", "run.d_up", "run.precision",
    "run.precision_down", "run.precision_up", "run.encoding", "run.method", "clients.id",
    "fleet_policy", "round_policy", "density_policy", "tier_densities", "density_grid",
    "round_policies", "density_policies", "deadlines", "clients.tier",
}  # fmt: skip


def test_every_field_that_can_name_a_file_is_marked(make_client: Any) -> None:
    """Walk every request body of every route: a string (or mapping) field is either checked by
    service.paths (a PathRef marker) or listed above as naming no file."""
    from fastapi.routing import APIRoute

    from service.paths import PathRef

    app = make_client().app
    bodies: set[Any] = {
        r.body_field.field_info.annotation
        for r in app.routes
        if isinstance(r, APIRoute) and r.body_field is not None
    }
    from service.schemas import PlanRequest

    bodies.add(PlanRequest)  # the page reads it from the query
    unmarked = []
    for model in bodies:
        for name, info in _str_fields(model):
            marked = any(isinstance(m, PathRef) for m in info.metadata)
            if not marked and name not in NOT_PATHS:
                unmarked.append(f"{model.__name__}.{name}")
    assert not unmarked, f"fields that may name a file but pass no path check: {unmarked}"


def test_run_config_path_fields_are_all_checked() -> None:
    """A RunConfig field whose help says it takes a path or a file is in RUN_CONFIG_PATHS."""
    from service.paths import RUN_CONFIG_PATHS
    from trainer.config import RunConfig

    words = ("path", "file", "folder", "directory")
    takes_paths = {
        f.name
        for f in dataclasses.fields(RunConfig)
        if any(w in str(f.metadata.get("help", "")).lower() for w in words)
    }
    assert takes_paths and takes_paths <= set(RUN_CONFIG_PATHS), takes_paths


def test_paths_outside_any_service_are_refused() -> None:
    """Fail closed: a request model read with no data root in force accepts no path."""
    from pydantic import ValidationError

    from service.schemas import PlanRequest

    with pytest.raises(ValidationError, match="no data root is in force"):
        PlanRequest.model_validate({"profile": os.devnull})


def test_a_profile_that_does_not_parse_is_listed_by_name_only(
    make_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from planner.profiles import ENV_DIRS

    folder = tmp_path / "profiles"
    (folder / "network").mkdir(parents=True)
    (folder / "network" / "broken.toml").write_text(f'down_mbps = "{SECRET}"\nup_mbps = 1\n')
    monkeypatch.setenv(ENV_DIRS, str(folder))
    resp = make_client().get("/api/profiles/network")
    assert resp.status_code == 200 and SECRET not in resp.text
    (entry,) = [e for e in resp.json() if e["name"] == "broken"]
    assert entry["error"].startswith("broken.toml is not a readable network profile")
