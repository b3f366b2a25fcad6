"""Inputs that used to end in a traceback (or a silently different run) now end in one line."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from planner.cli import plan_command
from planner.errors import ProfileError
from planner.limits import MAX_SEED
from planner.profiles import load_model, load_network
from trainer.cli import app as train_app
from trainer.config import RunConfig
from trainer.config_files import read_config_mapping
from trainer.errors import TrainerError
from trainer.model_check import check_model
from trainer.workload import prepare

runner = CliRunner()
plan_app = typer.Typer()
plan_app.command()(plan_command)
SENTINEL = "__VALUE__"


def _one_error_line(result: Any, start: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.output.startswith(start), result.output
    assert result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output


# --- the model's config.json ---------------------------------------------------------------


@pytest.fixture(scope="module")
def model_folder(robust_workload: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random BERT saved as a local model folder (weights, config.json, tokenizer)."""
    folder = tmp_path_factory.mktemp("tiny-bert-folder")
    robust_workload.base_model.save_pretrained(str(folder))
    robust_workload.tokenizer.save_pretrained(str(folder))
    return folder


def _copy_with(folder: Path, dest: Path, field: str, raw: str) -> Path:
    """A copy of the model folder whose config.json holds ``field: <raw JSON text>``."""
    dest.mkdir()
    for f in folder.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((folder / "config.json").read_text())
    cfg[field] = SENTINEL
    text = json.dumps(cfg, indent=2).replace(f'"{SENTINEL}"', raw)
    (dest / "config.json").write_text(text)
    return dest


def test_a_local_model_folder_loads(model_folder: Path, robust_kwargs: dict[str, Any]) -> None:
    wl = prepare(RunConfig(**{**robust_kwargs, "model": str(model_folder)}))
    assert wl.base_model.config.hidden_size == 32


@pytest.mark.parametrize(
    ("field", "raw", "need"),
    [
        ("hidden_size", '"abc"', "an integer >= 1, but got 'abc'"),
        ("num_hidden_layers", "3.5", "an integer >= 1, but got 3.5"),
        ("num_hidden_layers", "true", "an integer >= 1, but got True"),  # would be 1 layer
        ("hidden_size", "1e400", "an integer >= 1, but got inf"),
        ("intermediate_size", "384.7", "an integer >= 1, but got 384.7"),  # not truncated
        ("num_attention_heads", "0", "an integer >= 1, but got 0"),
        ("layer_norm_eps", "1e400", "a finite number >= 0, but got inf"),
        ("hidden_dropout_prob", '"0.1"', "a finite number >= 0, but got '0.1'"),
        ("pad_token_id", "1.5", "a token id (an integer), a list of them, or null, but got 1.5"),
        ("model_type", "7", "a string, but got 7"),
    ],
)
def test_model_config_with_a_wrong_typed_field_is_refused(
    field: str,
    raw: str,
    need: str,
    model_folder: Path,
    robust_kwargs: dict[str, Any],
    tmp_path: Path,
) -> None:
    bad = _copy_with(model_folder, tmp_path / "model", field, raw)
    message = f"model config '{bad / 'config.json'}': {field} must be {need}."
    with pytest.raises(TrainerError) as info:
        prepare(RunConfig(**{**robust_kwargs, "model": str(bad)}))
    assert str(info.value) == message


def test_model_config_that_is_not_json_is_refused(
    model_folder: Path, robust_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    bad = _copy_with(model_folder, tmp_path / "model", "hidden_size", "32")
    (bad / "config.json").write_bytes(b'{"hidden_size": \xff}')
    with pytest.raises(TrainerError, match=r"^model config '.*config\.json' is not valid JSON"):
        prepare(RunConfig(**{**robust_kwargs, "model": str(bad)}))


def test_the_packaged_model_config_passes_the_checks(robust_kwargs: dict[str, Any]) -> None:
    check_model(RunConfig(**{**robust_kwargs, "model": "all-minilm-l6-v2", "max_length": 512}))


# --- max_length against the model's positions ------------------------------------------------


def test_max_length_beyond_the_positions_is_refused_before_data_is_read(
    robust_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    """Refused first: the data file does not even exist."""
    config = RunConfig(
        **{**robust_kwargs, "max_length": 600, "data_path": str(tmp_path / "missing.csv")}
    )
    with pytest.raises(TrainerError) as info:
        prepare(config)
    assert str(info.value) == (
        "max_length 600 exceeds the 512 positions of model 'tiny-random-bert' "
        "(max_position_embeddings in its built-in config); lower --max-length to at most 512."
    )


@pytest.mark.parametrize(
    ("cfg", "max_length", "positions", "field"),
    [
        ({"model_type": "gpt2", "n_positions": 128}, 129, 128, "n_positions"),
        ({"model_type": "bert", "max_position_embeddings": 64}, 100, 64, "max_position_embeddings"),
        # RoBERTa's position ids start after the padding index: 514 entries, 512 usable
        ({"model_type": "roberta", "max_position_embeddings": 514}, 513, 512, "max_position"),
    ],
)
def test_max_length_names_both_numbers_and_the_file(
    cfg: dict[str, Any],
    max_length: int,
    positions: int,
    field: str,
    robust_kwargs: dict[str, Any],
    tmp_path: Path,
) -> None:
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    config = RunConfig(**{**robust_kwargs, "model": str(tmp_path), "max_length": max_length})
    with pytest.raises(TrainerError, match=rf"^max_length {max_length} exceeds the {positions} "):
        check_model(config)
    with pytest.raises(TrainerError, match=rf"\({field}\w* in '?{tmp_path}"):
        check_model(config)
    check_model(RunConfig(**{**robust_kwargs, "model": str(tmp_path), "max_length": positions}))


# --- seeds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [2**63, 2**64, 2**64 + 5, 10**30])
def test_seed_beyond_63_bits_is_refused(seed: int, robust_kwargs: dict[str, Any]) -> None:
    with pytest.raises(TrainerError, match=rf"^seed must be at most 2\*\*63 - 1 = {MAX_SEED}"):
        RunConfig(**{**robust_kwargs, "seed": seed})


def test_the_largest_seed_works_in_every_generator_the_trainer_uses() -> None:
    """torch's generators refuse 2**64 (the old traceback); MAX_SEED goes through them all."""
    RunConfig(seed=MAX_SEED)
    torch.manual_seed(MAX_SEED)
    torch.Generator().manual_seed(MAX_SEED)
    for salt in (0x5E1, 0x11D, 0xD1E, 0xE7A):  # split, partitions, eval subsample
        np.random.default_rng([MAX_SEED, salt])
    random.Random(f"floss/{MAX_SEED}/1/-1").getrandbits(63)
    with pytest.raises(ValueError, match="Overflow"):
        torch.manual_seed(2**64)


def test_cli_seed_2_pow_64_is_one_line(robust_kwargs: dict[str, Any], tmp_path: Path) -> None:
    result = runner.invoke(
        train_app,
        ["--model", "tiny-random-bert", "--seed", str(2**64), "--out-dir", str(tmp_path)],
    )
    _one_error_line(result, f"error: seed must be at most 2**63 - 1 = {MAX_SEED}, but got")


# --- files that are not UTF-8 -----------------------------------------------------------------


def test_config_file_that_is_not_utf8_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_bytes(b'rank: 4\nmodel: "caf\xe9"\n')  # Latin-1
    with pytest.raises(TrainerError) as info:
        read_config_mapping(path)
    assert str(info.value) == f"config file '{path}' is not UTF-8 text (byte 0xe9 at offset 19)."
    result = runner.invoke(train_app, ["--config", str(path), "--out-dir", str(tmp_path)])
    _one_error_line(result, f"error: config file '{path}' is not UTF-8 text")


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".json"])
def test_profile_file_that_is_not_utf8_is_refused_naming_it(suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"net{suffix}"
    path.write_bytes(b'name = "r\xe9seau"\n')
    for loader in (load_network, load_model):
        with pytest.raises(ProfileError, match=rf"^profile file '{path}' is not UTF-8 text"):
            loader(str(path))
    result = runner.invoke(plan_app, ["--profile", str(path)])
    _one_error_line(result, f"error: profile file '{path}' is not UTF-8 text")


# --- numbers that are not finite -------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_plan_compute_seconds_must_be_finite(value: str) -> None:
    result = runner.invoke(plan_app, ["--compute-seconds", value])
    _one_error_line(result, "error: compute seconds must be a finite number >= 0, but got")


def test_train_compute_seconds_must_be_finite(tmp_path: Path) -> None:
    result = runner.invoke(
        train_app, ["--compute-seconds", "inf", "--out-dir", str(tmp_path), "--no-progress"]
    )
    _one_error_line(result, "error: compute_seconds must be a finite number, but got inf.")
