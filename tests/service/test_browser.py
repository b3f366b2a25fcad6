"""The page at / in a real headless browser (Debian's chromium): load it, fill the plan form,
click "plan", and read the rendered table; a screenshot goes to the test's tmp folder.

The browser is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: NUL-
terminated JSON on fds 3 and 4), so no websocket client or driver package is needed. The page
itself has no JavaScript; the test's commands play the user.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from support.processes import wait_for
from support.serve import TINY_STUDY, call, get_json, serve
from support.task import write_study_task

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """The few DevTools calls the test needs, over chromium's debugging pipe."""

    def __init__(self, proc: subprocess.Popen[bytes], write_fd: int, read_fd: int) -> None:
        self.proc, self.write_fd, self.read_fd = proc, write_fd, read_fd
        self.next_id = 0
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.seen: list[dict[str, Any]] = []  # every event, never trimmed (network requests)
        self.session: str | None = None

    def _messages(self, timeout: float) -> list[dict[str, Any]]:
        ready, _, _ = select.select([self.read_fd], [], [], timeout)
        if not ready:
            return []
        chunk = os.read(self.read_fd, 1 << 20)
        if not chunk:
            raise AssertionError("chromium closed its debugging pipe")
        self.buffer += chunk
        *done, self.buffer = self.buffer.split(b"\0")
        messages = [json.loads(m) for m in done if m]
        self.seen += [m for m in messages if "method" in m]
        return messages

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> Any:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self.write_fd, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self._messages(0.5):
                if m.get("id") == self.next_id:
                    if "error" in m:
                        raise AssertionError(f"{method}: {m['error']}")
                    return m.get("result", {})
                self.events.append(m)
        raise AssertionError(f"{method}: no answer within {timeout} s")

    def wait_event(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, m in enumerate(self.events):
                if m.get("method") == method:
                    del self.events[: i + 1]
                    return
            self.events += self._messages(0.5)
        raise AssertionError(f"no {method} within {timeout} s")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result["result"].get("value")


def start_chromium(profile: Path) -> DevTools:
    assert CHROMIUM is not None
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()

    def map_fds() -> None:  # the protocol's fixed fds: 3 commands in, 4 answers out
        os.dup2(to_browser_r, 3)
        os.dup2(from_browser_w, 4)

    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--no-first-run", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", "--remote-debugging-pipe", "--window-size=1280,1600",
         "about:blank"],
        # not close_fds: it would run after map_fds and close 3 and 4 again; Python opens its
        # own files non-inheritable (PEP 446), so only what dup2 made passes
        close_fds=False,
        preexec_fn=map_fds,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(to_browser_r)
    os.close(from_browser_w)
    return DevTools(proc, to_browser_w, from_browser_r)


def _close(browser: DevTools | None) -> None:
    """End the browser this test started, by its own handle."""
    if browser is None:
        return
    if browser.proc.poll() is None:
        browser.proc.send_signal(signal.SIGTERM)
        try:
            browser.proc.wait(20)
        except subprocess.TimeoutExpired:
            browser.proc.kill()
            browser.proc.wait(10)
    os.close(browser.write_fd)
    os.close(browser.read_fd)


def _open(browser: DevTools) -> None:
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    attached = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})
    browser.session = attached["sessionId"]
    browser.send("Page.enable")


def _shot(browser: DevTools, path: Path) -> None:
    shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))


def _fetch_text(browser: DevTools, expression: str) -> str:
    """The text of a fetch the page makes (its cookies, its origin)."""
    result = browser.send(
        "Runtime.evaluate",
        {"expression": f"fetch({expression}).then(r => r.text())", "awaitPromise": True,
         "returnByValue": True},
    )  # fmt: skip
    return str(result["result"]["value"])


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_page_plans_in_a_real_browser(tmp_path: Path) -> None:
    """Fill the plan form, click "plan": the table equals /api/plan's short list, numbered as the
    plot's points; the plot has a legend, labelled axes and labels that do not overlap; the CSV
    and JSON downloads are floss-plan's own --format csv / json."""
    from typer.testing import CliRunner

    from planner.cli import app
    from planner.parse import fmt_density

    service = serve(tmp_path)
    port = service.port
    browser: DevTools | None = None
    try:
        browser = start_chromium(tmp_path / "chromium-profile")
        _open(browser)
        browser.send("Page.navigate", {"url": f"http://127.0.0.1:{port}/"})
        browser.wait_event("Page.loadEventFired")
        assert browser.evaluate("document.title") == "floss serve"
        assert browser.evaluate("document.querySelectorAll('#plan-table').length") == 0
        # the user fills the form and clicks "plan"
        browser.evaluate(
            "document.getElementById('f-budget').value = '2GB';"
            "document.getElementById('f-up_slowdown').value = '16';"
            "document.getElementById('f-profile').value = 'lte';"
            "document.getElementById('plan-submit').click(); true"
        )
        browser.wait_event("Page.loadEventFired")
        url = browser.evaluate("location.href")
        assert "budget=2GB" in url and "up_slowdown=16" in url and "profile=lte" in url
        cells = browser.evaluate(
            "[...document.querySelectorAll('#plan-table tr.plan-row')]"
            ".map(r => [...r.cells].map(c => c.textContent))"
        )
        _shot(browser, tmp_path / "page-plan.png")
        status, body = call(
            port, "POST", "/api/plan",
            {"budget": "2GB", "up_slowdown": 16, "profile": "lte", "rows": "recommended"},
        )  # fmt: skip
        assert status == 200
        expected = [
            [f"\u2605 {i}", r["method"], str(r["rank"]), fmt_density(r["d_down"]),
             fmt_density(r["d_up"]), f"{r['rounds']:,}", r["why"]]
            for i, r in enumerate(json.loads(body)["rows"], start=1)
        ]  # fmt: skip
        assert expected and [[c[0], c[1], c[2], c[3], c[4], c[7], c[9]] for c in cells] == expected
        heads = browser.evaluate(
            "[...document.querySelectorAll('#plan-table th')].map(h => h.textContent)"
        )
        assert heads[3:5] == ["d_down", "d_up"]
        # the plot: a point per short-list row, numbered 1..N, labels apart, a legend, axes
        plot = browser.evaluate(
            "(() => { const s = document.getElementById('plan-plot');"
            " const boxes = [...s.querySelectorAll('rect.label')].map(r => r.getBBox())"
            "   .map(b => [b.x, b.y, b.x + b.width, b.y + b.height]);"
            " return {recs: s.querySelectorAll('circle.rec').length, boxes,"
            "  numbers: [...s.querySelectorAll('rect.label + text')].map(t => t.textContent),"
            "  legend: s.querySelector('#plan-legend').textContent,"
            "  text: s.textContent}; })()"
        )
        n = len(expected)
        assert plot["recs"] == n and plot["numbers"] == [str(i) for i in range(1, n + 1)]
        boxes = plot["boxes"]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
        assert "short list" in plot["legend"] and "another feasible" in plot["legend"]
        assert "d_down: download density" in plot["legend"] and "d_up: upload" in plot["legend"]
        assert "rounds affordable" in plot["text"] and "bytes per round" in plot["text"]
        assert "/1/" not in plot["text"]  # no 1/16/1/64 label a reader cannot parse
        # every feasible row, the short list marked
        browser.evaluate(
            "document.getElementById('f-rows').value = 'all';"
            "document.getElementById('plan-submit').click(); true"
        )
        browser.wait_event("Page.loadEventFired")
        marked = browser.evaluate(
            "[...document.querySelectorAll('#plan-table tr.plan-row')]"
            ".map(r => r.classList.contains('rec'))"
        )
        assert len(marked) > n and sum(marked) == n
        # the downloads are floss-plan's --format csv / json
        flags = ["--budget", "2GB", "--up-slowdown", "16", "--profile", "lte"]
        for fmt in ("csv", "json"):
            got = _fetch_text(browser, f"document.getElementById('plan-{fmt}').href")
            cli = CliRunner().invoke(app, ["plan", "--format", fmt, *flags])
            assert cli.exit_code == 0, cli.output
            assert got == cli.output, fmt
        assert "network  lte" in browser.evaluate(
            "document.getElementById('plan-header').textContent"
        )
        assert (tmp_path / "page-plan.png").stat().st_size > 10_000
        print(f"screenshots in {tmp_path}")
    finally:
        _close(browser)
        service.stop()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_docs_render_offline_in_a_real_browser(tmp_path: Path) -> None:
    """Issue 20: /docs loaded Swagger UI from a CDN and rendered blank without internet. Every
    request the page makes goes to the service, and the operations render."""
    service = serve(tmp_path)
    port = service.port
    browser: DevTools | None = None
    try:
        browser = start_chromium(tmp_path / "chromium-profile")
        _open(browser)
        browser.send("Network.enable")
        here = f"http://127.0.0.1:{port}/"
        for page, rendered in (("docs", "document.querySelectorAll('.opblock').length"),):
            browser.send("Page.navigate", {"url": here + page})
            browser.wait_event("Page.loadEventFired")
            count = wait_for(lambda e=rendered: browser.evaluate(e), seconds=60, what=page)
            shot = browser.send(
                "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False}
            )
            (tmp_path / f"{page}.png").write_bytes(base64.b64decode(shot["data"]))
            assert count >= 8, (page, count)  # the API's operations are listed
        urls = [
            m["params"]["request"]["url"]
            for m in browser.seen
            if m.get("method") == "Network.requestWillBeSent"
        ]
        outside = [u for u in urls if not u.startswith((here, "data:", "blob:"))]
        assert urls and not outside, outside
        print(f"docs offline: {len(urls)} requests, all to the service; screenshots in {tmp_path}")
    finally:
        _close(browser)
        service.stop()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_page_runs_a_study_in_a_real_browser(tmp_path: Path) -> None:
    """Submit a real tiny study with the page's form, watch it progress without reloading the
    page, stop it, resume it, and find its recommended trial marked; screenshots of each step
    go to the test's tmp folder."""
    (tmp_path / "data").mkdir()
    write_study_task(tmp_path / "data")
    service = serve(tmp_path)
    port = service.port
    browser: DevTools | None = None
    base = dict(TINY_STUDY["base"])
    fields = {
        "s-name": "tiny",
        "s-base-model": base.pop("model"),
        "s-base-data": base.pop("data"),
        "s-base-data_path": base.pop("data_path"),
        "s-budget": TINY_STUDY["budget"],
        "s-budget_scale": str(TINY_STUDY["budget_scale"]),
        "s-ranks": TINY_STUDY["ranks"],
        "s-d_down": TINY_STUDY["d_down"],
        "s-d_up": TINY_STUDY["d_up"],
        "s-n_trials": str(TINY_STUDY["n_trials"]),
        "s-levels": str(TINY_STUDY["levels"]),
        "s-pruner": TINY_STUDY["pruner"],
        "s-seed": str(TINY_STUDY["seed"]),
        "s-base_extra": json.dumps(base),
    }

    def state() -> str:
        assert browser is not None
        return str(
            browser.evaluate(
                "(document.querySelector('tr.study-row[data-study=\"tiny\"] td.state') || {})"
                ".textContent || ''"
            )
        )

    def click(selector: str) -> None:
        assert browser is not None
        browser.evaluate(f"document.querySelector('{selector}').click(); true")
        browser.wait_event("Page.loadEventFired")

    try:
        browser = start_chromium(tmp_path / "chromium-profile")
        _open(browser)
        browser.send("Page.navigate", {"url": f"http://127.0.0.1:{port}/"})
        browser.wait_event("Page.loadEventFired")
        # first a mistake: the API's error, naming the field, and nothing made
        browser.evaluate(
            "document.getElementById('study-form-box').open = true;"
            "document.getElementById('s-name').value = 'bad name!'; true"
        )
        click("#study-submit")
        assert "name" in browser.evaluate(
            "[...document.querySelectorAll('#study-errors b')].map(b => b.textContent)"
        )
        assert get_json(port, "/api/studies") == []
        _shot(browser, tmp_path / "page-study-error.png")
        fill = "".join(
            f"document.getElementById({k!r}).value = {json.dumps(v)};" for k, v in fields.items()
        )
        browser.evaluate(fill + "true")
        click("#study-submit")
        assert browser.evaluate("location.hash") == "#studies-title"
        # live: the section refreshes itself, the page is not reloaded
        browser.evaluate("window.__notReloaded = true; true")
        first = browser.evaluate("document.getElementById('studies-updated').textContent")
        wait_for(
            lambda: (
                browser.evaluate("document.getElementById('studies-updated').textContent") != first
            ),
            seconds=30,
            what="the studies refresh themselves",
        )
        assert browser.evaluate("window.__notReloaded === true")
        assert state().startswith("running")
        wait_for(
            lambda: "trial" in str(browser.evaluate(
                "(document.querySelector('tr.study-row[data-study=\"tiny\"] .current') || {})"
                ".textContent || ''")),
            seconds=120,
            what="the running trial shown",
        )  # fmt: skip
        assert browser.evaluate("window.__notReloaded === true")
        _shot(browser, tmp_path / "page-study-running.png")
        click('tr.study-row[data-study="tiny"] button.stop')
        wait_for(lambda: state().startswith("stopped"), seconds=120, what="stopped")
        _shot(browser, tmp_path / "page-study-stopped.png")
        click('tr.study-row[data-study="tiny"] button.resume')
        assert state().startswith(("running", "finished"))
        wait_for(lambda: state().startswith("finished"), seconds=400, what="finished")
        shown = get_json(port, "/api/studies/tiny")
        best = shown["recommendation"]["trial"]
        browser.evaluate("document.getElementById('trials-tiny').open = true; true")
        marked = browser.evaluate(
            "[...document.querySelectorAll('#trials-tiny tr.trial-row.best')]"
            ".map(r => r.cells[1].textContent)"
        )
        assert marked == [str(best)]
        links = browser.evaluate(
            "[...document.querySelectorAll('tr.study-row[data-study=\"tiny\"] a')]"
            ".map(a => a.textContent)"
        )
        assert links[:2] == ["plot", "export"]
        _shot(browser, tmp_path / "page-study-finished.png")
        print(f"screenshots in {tmp_path}")
    finally:
        _close(browser)
        service.stop()
