"""The Flower tests' synthetic task and tiny-random-bert run, and the in-process Flower harness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.task import FLOWER_RUN, write_flower_task

pytest.importorskip("flwr")


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
    task = write_flower_task(tmp_path_factory.mktemp("fed-data") / "task.csv")
    return {**FLOWER_RUN, "data_path": str(task)}


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

    def run_as_train(self, config: Any, reference: Any, **settings: Any) -> Any:
        """``run`` and check it is floss-train's ``reference`` run: the final P bit for bit,
        every record but the wall clock, no client dropped."""
        import torch

        strategy = self.run(config, **settings)
        assert reference.final_p is not None
        assert torch.equal(strategy.final_p, reference.final_p)  # bit for bit
        assert _without_wall(strategy.records) == _without_wall(reference.records)
        assert strategy.dropped == []
        return strategy


def _without_wall(records: list[Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.to_dict().items() if k != "wall_seconds"} for r in records]


@pytest.fixture
def harness() -> Harness:
    return Harness()
