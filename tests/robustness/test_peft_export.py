"""The exported PEFT adapter_config.json names a base model PEFT can load, and is stable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tuner.export import peft_base_model, save_peft_config

RUN: dict[str, Any] = {
    "rank": 4,
    "lora_alpha": 8.0,
    "lora_dropout": 0.0,
    "task": "classification",
    "model": "all-minilm-l6-v2",
}
MODULES = ["value", "query", "key", "dense", "intermediate.dense", "output.dense"]


def test_packaged_model_is_exported_as_its_folder_and_peft_loads_it(tmp_path: Path) -> None:
    from peft import LoraConfig
    from transformers import AutoConfig

    path = save_peft_config(RUN, tmp_path / "peft", MODULES)
    loaded = LoraConfig.from_pretrained(str(path.parent))
    base = loaded.base_model_name_or_path
    assert base is not None and Path(base).is_dir()
    assert AutoConfig.from_pretrained(base).model_type == "bert"
    assert loaded.r == 4 and set(loaded.target_modules) == set(MODULES)


def test_target_modules_are_sorted_and_two_exports_are_the_same_file(tmp_path: Path) -> None:
    """LoraConfig holds target_modules as a set: written in hash order unless sorted."""
    first = save_peft_config(RUN, tmp_path / "a", MODULES)
    second = save_peft_config(RUN, tmp_path / "b", list(reversed(MODULES)))
    assert json.loads(first.read_text())["target_modules"] == sorted(MODULES)
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("hub_id", ["sentence-transformers/all-MiniLM-L6-v2", "tiny-random-bert"])
def test_hub_ids_are_kept_as_given(hub_id: str) -> None:
    assert peft_base_model(hub_id) == hub_id


def test_a_local_folder_is_exported_as_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my-model").mkdir()
    monkeypatch.chdir(tmp_path)
    assert peft_base_model("my-model") == str(tmp_path / "my-model")
