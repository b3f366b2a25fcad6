"""Shared fixtures: the trainer's synthetic CSV task and one prepared tiny-model workload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.task import TRAINER_RUN, write_trainer_task


@pytest.fixture(scope="session")
def task_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trainer_task(tmp_path_factory.mktemp("data") / "task.csv")


@pytest.fixture(scope="session")
def tiny_kwargs(task_csv: Path) -> dict[str, Any]:
    """RunConfig fields of a fast run on the tiny random BERT."""
    return {**TRAINER_RUN, "data_path": str(task_csv)}


@pytest.fixture(scope="session")
def tiny_workload(tiny_kwargs: dict[str, Any]) -> Any:
    from trainer.config import RunConfig
    from trainer.workload import prepare

    return prepare(RunConfig(**tiny_kwargs))
