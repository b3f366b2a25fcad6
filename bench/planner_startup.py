"""Whole-process wall time of `floss-plan` and `floss-plan --fleet`, side by side.

Each command runs as its own process, interleaved run by run (so drift hits them alike):
``python -c pass``; plain ``floss-plan`` (the default grid: 7 ranks x 9 x 9 densities); and
``floss-plan --fleet`` on the same default grid under each policy pair (sync/deadline x
uniform/bandwidth: 2,268 rows) for a 10,000-client measured fleet (a CSV written to a temp
folder) and the built-in mixed-mobile fleet drawn for 10,000 clients. Reported: the median (and
min, max) wall time, the median CPU time (user + system: what the machine's other load does not
inflate), each child's peak memory (ru_maxrss), and the ratios of the medians to ``python -c
pass`` and to plain floss-plan. Then the peak memory of 100,000-client fleets, and POST
/api/plan with a fleet in-process (fastapi's TestClient): uncached (its ``plan_seconds``) and
answered from the plan cache (p50, p99).

python bench/planner_startup.py [--runs 9] [--no-service] [--no-100k]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# floss-plan as its console script runs it, printing its own peak memory as it exits
PLAN_CODE = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: sys.stderr.write("
    "f'maxrss_kib {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n'))\n"
    "sys.argv[0] = 'floss-plan'\n"
    "from planner.cli import plan_main\n"
    "plan_main()\n"
)
PLAN = [sys.executable, "-c", PLAN_CODE, "--budget", "50-dense-rounds", "--format", "json"]
BASELINE = [sys.executable, "-c", "pass"]


def run(cmd: list[str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the child, its peak memory in KiB; 0 if it did not say)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak = 0
    for line in proc.stderr.decode().splitlines():
        if line.startswith("maxrss_kib "):
            peak = int(line.split()[1])
    return wall, cpu, peak


def fleet_csv(folder: Path, clients: int = 10_000) -> Path:
    """A measured fleet of ``clients`` rows around mixed-mobile's tiers (seeded)."""
    rng = random.Random(0)
    tiers = [
        ("lte", 30.0, 8.0, 50.0, 0.8),
        ("wifi", 100.0, 25.0, 20.0, 0.7),
        ("5g", 200.0, 20.0, 30.0, 0.6),
    ]
    rows = ["client,tier,down_mbps,up_mbps,rtt_ms"]
    for c in range(clients):
        name, down, up, rtt, sigma = tiers[rng.choices(range(3), weights=(6, 3, 1))[0]]
        f = rng.lognormvariate(0.0, sigma)
        rows.append(f"c{c},{name},{down * f:.3f},{up * f:.3f},{rtt:g}")
    path = folder / f"fleet-{clients // 1000}k.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def processes(runs: int, folder: Path) -> None:
    cmds = {
        "python -c pass": BASELINE,
        "floss-plan (json)": PLAN,
        "floss-plan --fleet 10,000-client CSV": [
            *PLAN, "--fleet", str(fleet_csv(folder)), "--num-clients", "10000"
        ],
        "floss-plan --fleet mixed-mobile, 10,000 clients": [
            *PLAN, "--fleet", "mixed-mobile", "--num-clients", "10000"
        ],
    }  # fmt: skip
    for cmd in cmds.values():  # warm the file cache
        run(cmd)
    got: dict[str, list[tuple[float, float, int]]] = {name: [] for name in cmds}
    for _ in range(runs):
        for name, cmd in cmds.items():
            got[name].append(run(cmd))
    med = {name: statistics.median(w for w, _, _ in rows) for name, rows in got.items()}
    base, plain = med["python -c pass"], med["floss-plan (json)"]
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (2 cores here; > 2: other work)")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):  # an installed floss has its .pyc files
        print("PYTHONDONTWRITEBYTECODE is set: each process compiles the sources it imports "
              "that have no .pyc yet (an installed floss reads its .pyc files)")  # fmt: skip
    print(f"{'command':48s} {'median':>9s} {'min':>8s} {'max':>8s} {'cpu':>8s} {'peak':>8s}"
          f" {'/pass':>6s} {'/plain':>6s}")  # fmt: skip
    for name, rows in got.items():
        walls = [w for w, _, _ in rows]
        cpu = statistics.median(c for _, c, _ in rows)
        peak = max(p for _, _, p in rows)
        print(f"{name:48s} {med[name] * 1000:7.0f}ms {min(walls) * 1000:6.0f}ms "
              f"{max(walls) * 1000:6.0f}ms {cpu * 1000:6.0f}ms "
              f"{peak / 1024 if peak else 0:6.0f}MiB {med[name] / base:6.2f} "
              f"{med[name] / plain:6.2f}")  # fmt: skip
    print(f"(medians of {runs} interleaved runs; cpu = the child's user + system seconds)")


def large(folder: Path) -> None:
    for name, extra in (
        ("mixed-mobile, 100,000 clients", ["--fleet", "mixed-mobile"]),
        ("100,000-client CSV", ["--fleet", str(fleet_csv(folder, 100_000))]),
    ):
        wall, cpu, peak = run([*PLAN, *extra, "--num-clients", "100000"])
        print(f"floss-plan --fleet {name:32s} wall {wall * 1000:6.0f}ms, cpu {cpu * 1000:6.0f}ms, "
              f"peak memory {peak / 1024:5.0f} MiB")  # fmt: skip


def service(folder: Path, cached_requests: int = 200) -> None:
    try:
        from fastapi.testclient import TestClient
    except ImportError:
        print("POST /api/plan: skipped (the 'serve' extra is not installed)")
        return
    from service.app import create_app
    from service.config import ServeConfig

    config = ServeConfig(storage=f"sqlite:///{folder / 'studies.db'}", work_dir=folder / "work")
    with TestClient(create_app(config)) as client:
        for clients in (1000, 10_000):
            body = {"fleet": "mixed-mobile", "num_clients": clients}
            start = time.perf_counter()
            resp = client.post("/api/plan", json=body)
            first = time.perf_counter() - start
            resp.raise_for_status()
            answer = resp.json()
            times = []
            for _ in range(cached_requests):
                start = time.perf_counter()
                client.post("/api/plan", json=body).raise_for_status()
                times.append(time.perf_counter() - start)
            times.sort()
            p99 = times[min(len(times) - 1, round(0.99 * len(times)) - 1)]
            print(f"POST /api/plan fleet mixed-mobile, {clients:,} clients, default grid "
                  f"({len(answer['rows']):,} rows, {len(resp.content) / 1e6:.1f} MB): uncached "
                  f"{first * 1000:.0f} ms (plan_seconds {answer['plan_seconds'] * 1000:.0f} ms); "
                  f"cached p50 {statistics.median(times) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
                  f"over {cached_requests}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--no-service", action="store_true")
    parser.add_argument("--no-100k", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        processes(max(3, args.runs), folder)
        if not args.no_100k:
            large(folder)
        if not args.no_service:
            service(folder)


if __name__ == "__main__":
    main()
