"""Whole-process wall time of `floss-plan` beside `python -c pass`, as a ratio (median of runs).

python bench/planner_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
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
