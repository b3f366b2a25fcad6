"""A plan whose client goes away is stopped: the job thread is interrupted at once (unit), and a
real `floss serve` stops burning CPU seconds after the client of a long plan disconnects."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from support.processes import wait_for
from support.serve import get_json, serve

from service.cancel import CancellableJob, Cancelled, run_while_connected


def spin(seconds: float) -> int:
    """Pure Python work for ``seconds`` (as the planner's walks are)."""
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
    return n


def test_a_job_is_interrupted_and_its_thread_ends() -> None:
    job = CancellableJob(spin, 60.0)
    job.start()
    time.sleep(0.2)
    start = time.monotonic()
    assert job.cancel()
    assert job.done.wait(5.0) and time.monotonic() - start < 1.0
    job.thread.join(5.0)
    assert not job.thread.is_alive() and job.result is None and job.error is None
    assert not job.cancel()  # once


def test_a_job_that_finishes_keeps_its_result_and_errors() -> None:
    job = CancellableJob(spin, 0.05)
    job.start()
    assert job.done.wait(5.0) and isinstance(job.result, int) and job.result > 0
    assert not job.cancel()  # finished: nothing to interrupt
    bad = CancellableJob(lambda: 1 / 0)
    bad.start()
    assert bad.done.wait(5.0) and isinstance(bad.error, ZeroDivisionError)


def test_run_while_connected_answers_at_once_and_stops_when_gone() -> None:
    async def scenario() -> tuple[float, float, list[float]]:
        calls = 0

        async def connected() -> bool:
            return False

        start = time.monotonic()
        assert await run_while_connected(connected, lambda: 7) == 7
        quick = time.monotonic() - start  # no polling delay on a short job

        async def leaves() -> bool:
            nonlocal calls
            calls += 1
            return calls >= 3  # the client goes after ~0.3 s

        seen: list[float] = []
        start = time.monotonic()
        with pytest.raises(Cancelled):
            await run_while_connected(leaves, spin, 60.0, on_cancel=seen.append)
        return quick, time.monotonic() - start, seen

    threads = threading.active_count()
    quick, stopped, seen = asyncio.run(scenario())
    assert quick < 0.05 and stopped < 2.0 and len(seen) == 1
    assert wait_for_threads(threads)


def wait_for_threads(count: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if threading.active_count() <= count:
            return True
        time.sleep(0.05)
    return False


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, clock ticks


@pytest.mark.parametrize("route", ["POST /api/plan", "GET /", "GET /plan.csv"])
def test_a_real_service_stops_a_plan_whose_client_went_away(tmp_path: Path, route: str) -> None:
    """Issue 20: a plan kept the service at full CPU for 13 minutes after its client left. The
    API's plan, the page's and the page's download all stop."""
    # a plan of ~1 minute here: mask-sharing walks over 100,000 clients (limit raised for it)
    service = serve(tmp_path, "--max-plan-work", "10000000000")
    port, log = service.port, service.log
    try:
        body = json.dumps({"method": "sparseadapter", "num_clients": 100_000}).encode()
        head = (
            f"POST /api/plan HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        if route.startswith("GET"):
            path = route.split()[1] + "?method=sparseadapter&num_clients=100000"
            head, body = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode(), b""
        before = cpu_seconds(service.proc.pid)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head + body)
            time.sleep(2.0)
            busy = cpu_seconds(service.proc.pid) - before
        assert busy > 0.3, busy  # the plan was running (2 shared cores: not all of them)
        wait_for(
            lambda: "plan stopped after" in log.read_text(),
            seconds=10,
            what="the service stops the plan",
        )
        settled = cpu_seconds(service.proc.pid)
        time.sleep(2.0)
        idle = cpu_seconds(service.proc.pid) - settled
        assert idle < 0.3, idle  # nothing left running
        assert get_json(port, "/api/health")["status"] == "ok"
        print(f"CPU {busy:.2f} s in the first 2 s of the plan, {idle:.2f} s in 2 s after")
    finally:
        service.stop()
