"""The Flower run-config export parses back as TOML with the recommended values."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from trainer.config import RunConfig
from tuner.flower import flower_run_config, write_flower_config


def test_flower_config_round_trips(tmp_path: Path) -> None:
    run = RunConfig(rank=8, d_down=0.25, d_up=1 / 64, rounds=120, num_clients=50, clients_per_round=5,
                    target_modules=("query", "value"), model='odd "name"\\x').to_dict()  # fmt: skip
    flat, snippet = write_flower_config(run, tmp_path)
    values = tomllib.loads(flat.read_text())
    assert values == flower_run_config(run)
    assert values["num-server-rounds"] == 120
    assert values["lora-rank"] == 8
    assert values["d-down"] == 0.25 and values["d-up"] == 1 / 64
    assert values["fraction-train"] == pytest.approx(0.1)
    assert values["lora-target-modules"] == "query,value"
    assert values["model-name"] == 'odd "name"\\x'
    assert tomllib.loads(snippet.read_text())["tool"]["flwr"]["app"]["config"] == values
