"""Fixtures of the service tests: an app on a fresh storage, and a finished study made by the
tuner's fake (millisecond) trainer, so studies can be read without training a model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="floss serve needs the 'serve' extra")


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def make_client(tmp_path: Path, data_root: Path) -> Iterator[Any]:
    """make_client(**ServeConfig overrides) -> a TestClient; every client is closed after."""
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.config import ServeConfig

    clients: list[Any] = []

    def make(**overrides: Any) -> Any:
        settings = {
            "storage": f"sqlite:///{tmp_path / 'studies.db'}",
            "data_root": data_root,
            "work_dir": tmp_path / "work",
            **overrides,
        }
        client = TestClient(create_app(ServeConfig(**settings)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            client.__exit__(None, None, None)
