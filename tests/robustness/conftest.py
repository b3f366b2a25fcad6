"""The robustness tests' tiny classification task and one prepared tiny-random-bert workload."""

from __future__ import annotations

from typing import Any

import pytest
from support.task import ROBUST_RUN, write_robust_task


@pytest.fixture(scope="session")
def robust_kwargs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """RunConfig fields of a run of a second or so: tiny random BERT, 3 clients of 4 rows."""
    task = write_robust_task(tmp_path_factory.mktemp("robust-data") / "task.csv")
    return {**ROBUST_RUN, "data_path": str(task)}


@pytest.fixture(scope="session")
def robust_workload(robust_kwargs: dict[str, Any]) -> Any:
    from trainer.config import RunConfig
    from trainer.workload import prepare

    return prepare(RunConfig(**robust_kwargs))
