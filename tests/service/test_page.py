"""The page's forms through FastAPI's TestClient: the study form takes the API's checks (a bad
field is named, nothing is created), submits, stops and resumes through the API's own functions;
another site's form is refused; the studies section is served alone for the live refresh; plan
downloads are floss-plan's files; a label placement that never overlaps."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner


def _wait(check: Any, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s")


def _form(data_root: Path, **extra: str) -> dict[str, str]:
    (data_root / "texts.csv").write_text("text,label\na b,x\nc d,y\n")
    return {"name": "paged", "base.model": "tiny-random-bert", "base.data": "csv",
            "base.data_path": "texts.csv", "n_trials": "2", "budget_scale": "0.1",
            "base_extra": '{"num_clients": 4, "clients_per_round": 2}', **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "bad name!"}, "name"),
        ({"n_trials": "many"}, "n_trials"),
        ({"base.data_path": "../x.csv"}, "base.data_path"),
        ({"base_extra": "{not json"}, "base"),
        ({"base_extra": "[1]"}, "base"),
        ({"base_extra": '{"nope": 1}'}, "base"),
        ({"base.fleet": "mixed-mobile", "round_policies": "deadline"}, "deadlines"),
        ({"deadlines": "1,2"}, "deadlines"),
        ({"methods": "floss,nope"}, "methods"),
    ],
)
def test_study_form_errors_are_the_apis(
    make_client: Any, data_root: Path, change: dict[str, str], field: str
) -> None:
    client = make_client()
    resp = client.post("/page/studies", data={**_form(data_root), **change})
    assert resp.status_code == 422, resp.text
    assert 'id="study-errors"' in resp.text and f"<b>{field}</b>" in resp.text
    assert "Traceback" not in resp.text
    # the form keeps what was typed
    assert 'value="paged"' in resp.text or change.get("name") == "bad name!"
    assert client.get("/api/studies").json() == []


def test_study_form_submits_stops_and_resumes(make_client: Any, data_root: Path) -> None:
    client = make_client(max_workers=1)
    pool = client.app.state.studies.pool
    pool.command = lambda args: [sys.executable, "-c", "import time; time.sleep(60)"]
    pids: list[int] = []
    try:
        made = client.post("/page/studies", data=_form(data_root), follow_redirects=False)
        assert made.status_code == 303 and made.headers["location"].startswith("/#studies")
        shown = client.get("/api/studies/paged").json()
        assert shown["state"] == "running" and shown["request"]["base"]["num_clients"] == 4
        pids.append(shown["worker"]["pid"])
        fragment = client.get("/page/studies")
        assert fragment.headers["cache-control"] == "no-store"
        assert 'data-study="paged"' in fragment.text and 'class="stop"' in fragment.text
        assert "plot.png" not in fragment.text and "export.zip" not in fragment.text  # nothing yet
        twice = client.post("/page/studies", data=_form(data_root, name="other"))
        assert twice.status_code == 429 and "busy" in twice.text  # the API's answer, on the page
        stop = client.post("/page/studies/paged/stop", follow_redirects=False)
        assert stop.status_code == 303
        _wait(lambda: client.get("/api/studies/paged").json()["state"] == "stopped")
        assert 'class="resume"' in client.get("/page/studies").text
        resume = client.post("/page/studies/paged/resume", follow_redirects=False)
        assert resume.status_code == 303
        again = client.get("/api/studies/paged").json()
        assert again["state"] == "running"
        pids.append(again["worker"]["pid"])
        missing = client.post("/page/studies/none/resume")
        assert missing.status_code == 404 and "no study &#x27;none&#x27;" in missing.text
        assert client.post("/page/studies/paged/delete").status_code == 404
    finally:
        for worker in list(pool.workers.values()):
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait(10)
        for pid in pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            os.kill(pid, 9)


def test_another_sites_form_is_refused(make_client: Any, data_root: Path) -> None:
    client = make_client()
    for headers in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"}):
        resp = client.post("/page/studies", data=_form(data_root), headers=headers)
        assert resp.status_code == 403, resp.text
        assert client.post("/page/studies/x/stop", headers=headers).status_code == 403
    assert client.get("/api/studies").json() == []


def test_finished_study_shows_links_and_marks_the_recommended_trial(
    make_client: Any, tmp_path: Path
) -> None:
    from support.studies import make_fake_study

    make_fake_study(f"sqlite:///{tmp_path / 'studies.db'}")
    page = make_client().get("/page/studies").text
    assert "plot.png" in page and "export.zip" in page
    assert page.count('class="trial-row best"') == 1
    best = page.split('class="trial-row best"')[1].split("</tr>")[0]
    assert "recommended" in best and "<td>1</td>" in best  # trial 1: 0.70, the best


def test_plan_downloads_are_floss_plans_files(make_client: Any) -> None:
    from planner.cli import app

    client = make_client()
    query = "budget=2GB&profile=lte&ranks=4,16&d_down=1,1/4&d_up=1,1/16&rows=recommended"
    flags = ["--budget", "2GB", "--profile", "lte", "--ranks", "4,16", "--d-down", "1,1/4",
             "--d-up", "1,1/16"]  # fmt: skip
    for fmt in ("csv", "json"):
        got = client.get(f"/plan.{fmt}?{query}")
        assert got.status_code == 200 and "attachment" in got.headers["content-disposition"]
        cli = CliRunner().invoke(app, ["plan", "--format", fmt, *flags])
        assert got.text == cli.output
    fleet = client.get("/plan.csv?fleet=mixed-mobile&num_clients=100&ranks=4&d_down=1&d_up=1/4")
    cli = CliRunner().invoke(app, ["plan", "--format", "csv", "--fleet", "mixed-mobile",
                                   "--num-clients", "100", "--ranks", "4", "--d-down", "1",
                                   "--d-up", "1/4"])  # fmt: skip
    assert fleet.status_code == 200 and fleet.text == cli.output
    bad = client.get("/plan.csv?budget=lots")
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "budget"
    page = client.get(f"/?{query}").text
    assert 'href="/plan.csv?budget=2GB' in page and "rows=" not in page.split("plan.csv?")[1][:80]


def test_page_plans_a_fleet(make_client: Any) -> None:
    page = make_client().get("/?fleet=mixed-mobile&profile=thesis&num_clients=100&ranks=4")
    assert page.status_code == 200, page.text
    assert "round/density policy" in page.text and "fleet    mixed-mobile" in page.text


def test_labels_never_overlap_each_other_or_a_point() -> None:
    from service.web.plot import _overlaps, place_labels

    points = [(100.0 + 3 * i, 100.0 + 2 * i) for i in range(12)]  # a tight diagonal crowd
    others = [(90.0 + i, 95.0 + i) for i in range(40)]
    size = (22.0, 15.0)
    spots = place_labels(points, size=size, bounds=(0, 0, 400, 300), others=others)
    boxes = [(x, y, x + size[0], y + size[1]) for x, y in spots]
    for i, a in enumerate(boxes):
        assert a[0] >= 0 and a[2] <= 400 and a[1] >= 0 and a[3] <= 300
        for b in boxes[i + 1 :]:
            assert not _overlaps(a, b)
        for x, y in [*points, *others]:
            assert not _overlaps(a, (x - 4, y - 4, x + 4, y + 4))
