"""`floss serve` under load: POST /api/plan against a real uvicorn on 127.0.0.1 at concurrency
1, 8 and 32 for a bounded time each; throughput and p50/p99 latency, beside the same plan called
in-process (``service.plans.plan_body``, no cache: plan, rows, JSON), as a ratio.

Two servers are measured: the default (rendered plans kept in an LRU: a plan is a pure function
of its settings) and ``--plan-cache 0`` (every request plans). The client is a small asyncio
HTTP/1.1 keep-alive client in this process, one connection per concurrent request; it shares
the machine's cores with the server.

python bench/serve_load.py [--seconds 4] [--levels 1,8,32] [--body '{}']
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, folder: Path, plan_cache: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FLOSS_SERVE_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "--port", str(port), "--log-level", "warning",
         "--storage", f"sqlite:///{folder / 'bench.db'}", "--plan-cache", str(plan_cache)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    proc.wait(10)
    raise SystemExit("error: the server did not come up within 60 s")


async def one_connection(port: int, request: bytes, stop_at: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            if status != 200:
                raise SystemExit(f"error: the server answered {status}")
            latencies.append(time.perf_counter() - start)
    finally:
        writer.close()


async def load(
    port: int, body: bytes, concurrency: int, seconds: float
) -> tuple[list[float], float]:
    request = (
        b"POST /api/plan HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    latencies: list[float] = []
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(
        *(one_connection(port, request, stop_at, latencies) for _ in range(concurrency))
    )
    return latencies, time.perf_counter() - start


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def in_process_seconds(body: bytes, runs: int) -> float:
    from service.plans import PlanCache, plan_body
    from service.schemas import PlanRequest

    req = PlanRequest.model_validate(json.loads(body))
    plan_body(req, None, PlanCache(0))  # imports, profile files
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        plan_body(req, None, PlanCache(0))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="load time per level")
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels")
    parser.add_argument("--body", default="{}", help="the plan request (default: a default plan)")
    parser.add_argument("--runs", type=int, default=15, help="in-process repetitions")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    body = args.body.encode()
    inproc = in_process_seconds(body, args.runs)
    print(f"in-process plan_body (plan + rows + JSON, no cache): median {inproc * 1e3:.1f} ms "
          f"over {args.runs} runs")  # fmt: skip
    print(f"cores: {os.cpu_count()}; client and server share them; load {os.getloadavg()[0]:.2f}")
    print()
    print(f"{'server':<16} {'conc':>4} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'p50/in-proc':>11}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="floss-serve-bench-") as tmp:
        for label, cache in (("cache (default)", 128), ("no cache", 0)):
            port = free_port()
            server = start_server(port, Path(tmp), cache)
            try:
                asyncio.run(load(port, body, 1, 0.5))  # warm: imports, first plan
                for conc in levels:
                    lat, wall = asyncio.run(load(port, body, conc, args.seconds))
                    p50, p99 = quantile(lat, 0.5), quantile(lat, 0.99)
                    print(f"{label:<16} {conc:>4} {len(lat):>8} {len(lat) / wall:>8.1f} "
                          f"{p50 * 1e3:>8.1f} {p99 * 1e3:>8.1f} {p50 / inproc:>11.2f}")  # fmt: skip
            finally:
                server.kill()
                server.wait(30)


if __name__ == "__main__":
    main()
