"""Whole-process wall time of `floss-plan` beside `python -c pass`, as a ratio (median of runs),
and of `floss-plan --fleet` with the default grid on a 10,000-client measured fleet (a CSV written
to a temp folder) and on the built-in mixed-mobile fleet drawn for 10,000 clients.

python bench/planner_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAN = [
    sys.executable,
    "-c",
    "import sys; sys.argv[0] = 'floss-plan'; from planner.cli import plan_main; plan_main()",
    "--budget",
    "50-dense-rounds",
    "--up-slowdown",
    "16",
    "--format",
    "json",
]
BASELINE = [sys.executable, "-c", "pass"]


def wall_seconds(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def fleet_csv(folder: Path, clients: int = 10_000) -> Path:
    """A measured fleet of ``clients`` rows around mixed-mobile's tiers (seeded)."""
    rng = random.Random(0)
    tiers = [("lte", 30.0, 8.0, 50.0, 0.8), ("wifi", 100.0, 25.0, 20.0, 0.7), ("5g", 200.0, 20.0, 30.0, 0.6)]
    rows = ["client,tier,down_mbps,up_mbps,rtt_ms"]
    for c in range(clients):
        name, down, up, rtt, sigma = tiers[rng.choices(range(3), weights=(6, 3, 1))[0]]
        f = rng.lognormvariate(0.0, sigma)
        rows.append(f"c{c},{name},{down * f:.3f},{up * f:.3f},{rtt:g}")
    path = folder / "fleet-10k.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain = [a for a in PLAN if a not in ("--up-slowdown", "16")]  # the fleet has its links
        fleet = [*plain, "--fleet", str(fleet_csv(Path(tmp))), "--num-clients", "10000"]
        builtin = [*plain, "--fleet", "mixed-mobile", "--num-clients", "10000"]
        for what, cmd in (("10,000-client CSV", fleet), ("mixed-mobile, 10,000 clients", builtin)):
            wall_seconds(cmd)
            times = [wall_seconds(cmd) for _ in range(max(3, args.runs // 3))]
            print(f"floss-plan --fleet ({what}, json)  median "
                  f"{statistics.median(times) * 1000:8.1f} ms, max {max(times) * 1000:8.1f} ms "
                  f"over {len(times)} runs")  # fmt: skip
    wall_seconds(PLAN)  # warm the file cache
    plan_times, base_times = [], []
    for _ in range(args.runs):  # interleaved, so drift hits both alike
        base_times.append(wall_seconds(BASELINE))
        plan_times.append(wall_seconds(PLAN))
    plan_med, base_med = statistics.median(plan_times), statistics.median(base_times)
    print(f"python -c pass      median {base_med * 1000:8.1f} ms over {args.runs} runs")
    print(f"floss-plan (json)   median {plan_med * 1000:8.1f} ms over {args.runs} runs")
    print(f"ratio floss-plan / python -c pass = {plan_med / base_med:.2f}")
    print(f"planner's own cost  = {(plan_med - base_med) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
