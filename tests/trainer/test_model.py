"""The adapter vector P: its size matches the planner's model profile, and views stay views."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from planner.profiles import load_model
from trainer.config import RunConfig
from trainer.flat import FlatAdapter
from trainer.modeling import packaged_minilm_path, wrap_lora


@pytest.mark.parametrize(("rank", "labels"), [(1, 2), (16, 24), (64, 5)])
def test_n_equals_planner_profile_for_packaged_minilm(rank: int, labels: int) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    cfg = AutoConfig.from_pretrained(packaged_minilm_path(), num_labels=labels)
    base = AutoModelForSequenceClassification.from_config(cfg)  # shapes only, no weights read
    adapter = FlatAdapter(wrap_lora(base, RunConfig(rank=rank)), torch.device("cpu"))
    assert adapter.n == load_model("all-minilm-l6-v2").adapter_params(rank, num_labels=labels)


def test_params_are_views_of_the_flat_buffer(tiny_workload: Any) -> None:
    model = wrap_lora(tiny_workload.base_model, RunConfig(model="tiny-random-bert", rank=2))
    adapter = FlatAdapter(model, torch.device("cpu"))
    adapter.flat.fill_(0.5)
    assert all(bool((p == 0.5).all()) for p in adapter.params)
    assert adapter.slices[-1].stop == adapter.n
    assert any("classifier" in s.name for s in adapter.slices)


def test_lm_task_runs_on_tiny_gpt2(tiny_kwargs: dict[str, Any]) -> None:
    from trainer.run import train
    from trainer.workload import prepare

    config = RunConfig(**{**tiny_kwargs, "model": "tiny-random-gpt2", "task": "lm", "rounds": 2})
    result = train(config, workload=prepare(config), progress=False)
    assert result.final_val_accuracy is None
    assert result.final_val_loss is not None and result.final_val_loss > 0
    assert all(r.val_accuracy is None for r in result.records)
