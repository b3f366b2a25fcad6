"""RunConfig: round trips, and every bad value is named in a one-line TrainerError."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from trainer.config import RunConfig
from trainer.errors import TrainerError

CONFIGS = [
    RunConfig(),
    RunConfig(method="dense", rank=8, d_down=1, d_up=1, server_optimizer="fedavg"),
    RunConfig(
        method="adapterlth",
        keep_rate=0.5,
        lth_floor="1/16",
        topk="per-tensor",
        precision="bf16",
    ),
    RunConfig(budget="50-dense-rounds", ref_rank=8, max_rounds=30),
    RunConfig(
        method="ffa",
        target_modules=("query", "key"),
        data="csv",
        data_path="x.csv",
        partition="natural",
        max_eval_examples=100,
        up_slowdown=16,
    ),
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_round_trip(config: RunConfig, suffix: str, tmp_path: Path) -> None:
    assert RunConfig.from_dict(config.to_dict()) == config
    path = config.save(tmp_path / f"run{suffix}")
    assert RunConfig.load(path) == config


def test_density_strings_parse() -> None:
    assert RunConfig(d_down="1/4", d_up="0.0625").effective_densities == (0.25, 0.0625)
    assert RunConfig(method="dense").effective_densities == (1.0, 1.0)


def test_json_is_sorted_and_indented(tmp_path: Path) -> None:
    text = RunConfig().save(tmp_path / "run.json").read_text()
    assert text.startswith('{\n  "adapt_down": false,\n  "amp": "auto",\n  "batch_size": 16,')


BAD: list[tuple[dict[str, Any], str]] = [
    ({"method": "fedprox"}, r"method must be one of .* but got 'fedprox'"),
    ({"rank": 0}, r"rank must be an integer >= 1, but got 0"),
    ({"rank": 2.5}, r"rank must be an integer >= 1, but got 2.5"),
    ({"d_down": 0}, r"d_down must be in \(0, 1\], but got 0"),
    ({"d_up": 1.5}, r"d_up must be in \(0, 1\], but got 1.5"),
    ({"d_up": "1/0"}, r"d_up must be a density like 1, 1/4 or 0.0625, but got '1/0'"),
    ({"topk": "local"}, r"topk must be one of global, per-tensor"),
    ({"encoding": "zip"}, r"encoding must be one of auto, dense, coo, bitmap, rice"),
    ({"precision": "fp8"}, r"precision must be one of fp32, fp16, bf16"),
    (
        {"clients_per_round": 20, "num_clients": 10},
        r"clients_per_round must be at most num_clients=10, but got 20",
    ),
    ({"client_lr": -1.0}, r"client_lr must be > 0, but got -1.0"),
    ({"server_lr": float("nan")}, r"server_lr must be a finite number, but got nan"),
    ({"partition": "random"}, r"partition must be one of iid, dirichlet, natural"),
    ({"dirichlet_alpha": 0}, r"dirichlet_alpha must be > 0, but got 0"),
    ({"data": "csv"}, r"data='csv' needs data_path"),
    ({"val_fraction": 0.6, "test_fraction": 0.5}, r"val_fraction \+ test_fraction must be < 1"),
    ({"keep_rate": 1.5}, r"keep_rate must be in \(0, 1\], but got 1.5"),
    ({"keep_rate": 0}, r"keep_rate must be in \(0, 1\], but got 0"),
    ({"lth_floor": 0}, r"lth_floor must be in \(0, 1\], but got 0"),
    ({"lth_floor": 2}, r"lth_floor must be in \(0, 1\], but got 2"),
    ({"budget": "5 parsecs"}, r"unknown budget unit 'parsecs'"),
    ({"ref_rank": 0}, r"ref_rank must be an integer >= 1, but got 0"),
    ({"max_rounds": 5}, r"max_rounds caps the rounds a budget buys; it needs budget"),
    ({"device": "tpu"}, r"device must be one of auto, cpu, cuda, mps, but got 'tpu'"),
    ({"max_length": 1}, r"max_length must be an integer >= 2, but got 1"),
    ({"task": "lm", "data": "20newsgroups"}, r"task='lm' reads plain texts"),
]


@pytest.mark.parametrize(("changes", "message"), BAD)
def test_bad_values_raise(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(TrainerError, match=message):
        RunConfig(**changes)


def test_replace_revalidates() -> None:
    with pytest.raises(TrainerError, match="rank must be"):
        replace(RunConfig(), rank=-1)


def test_unknown_keys_are_named() -> None:
    with pytest.raises(TrainerError, match="unknown run config keys: bogus, lr"):
        RunConfig.from_dict({"lr": 1, "bogus": 2})


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("run.toml", "", r"must end in .yaml, .yml or .json"),
        ("run.yaml", "rank: [1\n", r"cannot parse config file"),
        ("run.json", "[1, 2]", r"must hold a mapping"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TrainerError, match=message):
        RunConfig.load(path)


def test_missing_file() -> None:
    with pytest.raises(TrainerError, match=r"cannot read config file '/nonexistent/run\.yaml'"):
        RunConfig.load("/nonexistent/run.yaml")
