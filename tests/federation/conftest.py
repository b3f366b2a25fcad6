"""A small synthetic task, tiny-random-bert configs, and the in-process Flower harness."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flwr")

WORDS = {
    "space": "rocket orbit planet star moon galaxy launch comet",
    "food": "bread cheese apple soup pasta butter garlic onion",
    "music": "guitar piano song drum melody violin chord rhythm",
}


def write_task(path: Path, *, rows_per_label: int = 40, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for label, vocab in WORDS.items():
            for _ in range(rows_per_label):
                w.writerow([" ".join(rng.choices(vocab.split(), k=rng.randint(3, 10))), label])
    return path


@pytest.fixture(autouse=True)
def _flower_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real engine's run without an out-dir writes to $FLOSS_FLOWER_RESULTS/run-<id>: here,
    never the home folder."""
    folder = tmp_path / "flower-results"
    monkeypatch.setenv("FLOSS_FLOWER_RESULTS", str(folder))
    return folder


@pytest.fixture(scope="session")
def fed_kwargs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """RunConfig fields of a fast run: 4 clients, 2 a round, tiny random BERT on the CPU."""
    task = write_task(tmp_path_factory.mktemp("fed-data") / "task.csv")
    return {
        "model": "tiny-random-bert",
        "data": "csv",
        "data_path": str(task),
        "min_examples_per_class": 10,
        "num_clients": 4,
        "clients_per_round": 2,
        "max_length": 16,
        "rank": 4,
        "rounds": 3,
        "d_down": "1/4",
        "d_up": "1/8",
        "eval_every": 1,
        "seed": 0,
        "device": "cpu",
    }


class Harness:
    """Run the real ServerApp and ClientApp in process; keep the strategy and the wire log."""

    def __init__(self) -> None:
        self.strategy: Any = None
        self.grid: Any = None

    def run(
        self,
        config: Any,
        *,
        client: Any = None,
        node_configs: list[dict[str, Any]] | None = None,
        **settings: Any,
    ) -> Any:
        from federation.client import make_client_app
        from federation.config import AppSettings, to_run_config
        from federation.inprocess import InProcessGrid, partition_configs, run_inprocess
        from federation.server import make_server_app

        self.strategy = None
        server = make_server_app(on_finish=lambda s: setattr(self, "strategy", s))
        app = make_client_app()
        client_fn = client(app) if client is not None else app
        nodes = node_configs or partition_configs(config.num_clients)
        run_config = to_run_config(config, AppSettings(**settings))
        self.grid = InProcessGrid(client_fn, nodes, run_config=run_config)
        run_inprocess(server, self.grid)
        return self.strategy


@pytest.fixture
def harness() -> Harness:
    return Harness()
