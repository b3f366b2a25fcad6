"""Shared pieces of the quality benches: the real-model recipe, a resumable result store, stats.

The recipe is the trainer's integration-test one (MiniLM + fortunes' 4 largest categories, short
texts, client Adam 1e-3, FedAdam 0.01), sized so one round (2 clients x 1 step of 16 texts) takes
about a second on one CPU core.
Results go to a JSONL file, one line per finished run, keyed by the run's name: a killed bench
rerun with the same --out skips what already finished.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# The recipe every quality bench trains with (RunConfig keyword arguments).
RECIPE: dict[str, Any] = {
    "model": "all-minilm-l6-v2",
    "min_examples_per_class": 1000,  # fortunes' 4 largest categories
    "max_length": 32,
    "num_clients": 30,
    "clients_per_round": 2,
    "max_examples_per_client": 16,
    "local_epochs": 1,
    "batch_size": 16,
    "client_optimizer": "adam",
    "client_lr": 1e-3,
    "server_lr": 0.01,
    "max_eval_examples": 200,
    "eval_every": 0,
    "device": "cpu",
}
# The real tasks a bench can run (--task): RunConfig changes on top of RECIPE.
# debian-packages: Debian's package descriptions labelled by Section (the 12 topic sections
# with >= 200 packages after one package per source), one client per Maintainer (--partitions
# natural): maintainers with >= 4 training examples take part (269 of 1,357 on bookworm's
# lists); 15 % validation and 15 % test, evaluated whole (~1,280 texts each, > 1,000 so a
# point is resolvable).
TASKS: dict[str, dict[str, Any]] = {
    "fortunes": {},
    "debian-packages": {
        "data": "debian-packages",
        "min_examples_per_class": 200,
        "val_fraction": 0.15,
        "test_fraction": 0.15,
        "max_eval_examples": None,
    },
}
# per task and partition: debian's natural partition leaves out the smallest maintainers
PARTITION_CHANGES: dict[tuple[str, str], dict[str, Any]] = {
    ("debian-packages", "natural"): {"min_client_examples": 4},
}
FRACTIONS = (0.125, 0.25, 0.5, 0.75, 1.0)  # evaluation points of the time-to-accuracy curves


class ResultStore:
    """Finished runs as JSON lines; ``done(name)`` lets a rerun skip them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.rows[row["name"]] = row

    def done(self, name: str) -> bool:
        return name in self.rows

    def add(self, row: dict[str, Any]) -> None:
        self.rows[row["name"]] = row
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, sort_keys=True) + "\n")
            fh.flush()


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); nan for none."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); nan for fewer than 3 pairs."""
    if len(xs) != len(ys) or len(xs) < 3:
        return math.nan

    def ranks(v: Sequence[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        out = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    vy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return cov / (vx * vy) if vx and vy else math.nan


def fmt_pm(values: Iterable[float], scale: float = 100.0) -> str:
    m, s = mean_sd(list(values))
    if math.isnan(m):
        return "n/a"
    return f"{scale * m:.1f} ± {scale * s:.1f}"
