"""Base models, tokenizers and the PEFT LoRA wrap; device and mixed-precision choice.

Names: ``all-minilm-l6-v2`` (the packaged real model), ``tiny-random-bert`` and
``tiny-random-gpt2`` (random weights from a small config with MiniLM's tokenizer, for tests),
a local folder, or a Hugging Face hub id (loaded from the local cache; downloaded only when the
hub is reachable and ``HF_HUB_OFFLINE`` is not set).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planner.model import DEFAULT_TARGETS  # LoRA targets by model_type, shared with the planner
from trainer.config import DEFAULT_MODEL
from trainer.errors import TrainerError
from trainer.model_check import TINY_POSITIONS, check_max_length, read_config_json
from trainer.model_names import TINY_BERT, TINY_GPT2, TINY_SEED, packaged_minilm_path

if TYPE_CHECKING:
    import torch

    from trainer.config import RunConfig


def _quiet_transformers() -> None:
    import warnings

    import transformers

    # peft calls a transformers API that transformers 5 deprecates; users cannot act on it
    warnings.filterwarnings(
        "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
    )

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def _pretrained(loader: Any, name: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained`` from a folder or the cache; the hub only when reachable."""
    if name == DEFAULT_MODEL:
        return loader.from_pretrained(packaged_minilm_path(), **kwargs)
    if Path(name).exists():
        if not Path(name).is_dir():
            raise TrainerError(f"model path {name!r} must be a folder with config.json.")
        read_config_json(Path(name) / "config.json")  # one line for a wrong-typed field
        try:
            return loader.from_pretrained(name, **kwargs)
        except (OSError, ValueError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise TrainerError(f"cannot load model from {name!r}: {first}") from None
    try:
        return loader.from_pretrained(name, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        pass
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise TrainerError(
            f"model {name!r} is not a local folder nor in the Hugging Face cache, and "
            "HF_HUB_OFFLINE=1 forbids downloading it."
        )
    try:
        return loader.from_pretrained(name, **kwargs)
    except Exception as exc:  # hub errors come in many types; all mean "not available"
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise TrainerError(
            f"model {name!r} is not a local folder nor cached, and the hub could not provide it: {first}"
        ) from None


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    _quiet_transformers()
    source = DEFAULT_MODEL if name in (TINY_BERT, TINY_GPT2) else name
    tok = _pretrained(AutoTokenizer, source)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base_model(config: RunConfig, *, num_labels: int, tokenizer: Any) -> Any:
    """The frozen base model on the CPU in float32 (one load per workload)."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        BertConfig,
        BertForSequenceClassification,
        GPT2Config,
        GPT2LMHeadModel,
    )


    _quiet_transformers()
    lm = config.task == "lm"
    vocab = len(tokenizer)
    if config.model in (TINY_BERT, TINY_GPT2):
        torch.manual_seed(TINY_SEED)
        if config.model == TINY_GPT2:
            if not lm:
                raise TrainerError(f"model {TINY_GPT2!r} is for task='lm'; use {TINY_BERT!r}.")
            gpt2_cfg = GPT2Config(
                vocab_size=vocab,
                n_embd=32,
                n_layer=2,
                n_head=2,
                n_positions=TINY_POSITIONS,
                pad_token_id=tokenizer.pad_token_id,
            )
            model: Any = GPT2LMHeadModel(gpt2_cfg)
        else:
            if lm:
                raise TrainerError(f"model {TINY_BERT!r} is for classification; use {TINY_GPT2!r}.")
            bert_cfg = BertConfig(
                vocab_size=vocab,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                max_position_embeddings=TINY_POSITIONS,  # the default; check_model relies on it
            )
            bert_cfg.num_labels = num_labels
            model = BertForSequenceClassification(bert_cfg)
    elif lm:
        model = _pretrained(AutoModelForCausalLM, config.model, dtype=torch.float32)
    else:
        model = _pretrained(
            AutoModelForSequenceClassification,
            config.model,
            num_labels=num_labels,
            dtype=torch.float32,
        )

    # check_model (prepare) covered the models whose config.json was known before loading
    source = "the loaded model's config"
    check_max_length(config.max_length, model.config.to_dict(), model=config.model, source=source)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    for p in model.parameters():
        p.requires_grad_(False)
    return model.float().eval()


def target_modules(config: RunConfig, base: Any) -> list[str]:
    if config.target_modules:
        return list(config.target_modules)
    model_type = str(getattr(base.config, "model_type", ""))
    if model_type not in DEFAULT_TARGETS:
        raise TrainerError(
            f"no default LoRA targets for model_type {model_type!r}; set target_modules."
        )
    return list(DEFAULT_TARGETS[model_type])


def _reset_head(model: Any, seed: int) -> None:
    """A fresh, seeded classifier head per run (the base model is shared between runs)."""
    import torch

    std = float(getattr(model.config, "initializer_range", 0.02))
    gen = torch.Generator().manual_seed(seed)
    for name in ("classifier", "score"):
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.Linear):
            with torch.no_grad():
                head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * std)
                if head.bias is not None:
                    head.bias.zero_()


def wrap_lora(base: Any, config: RunConfig) -> Any:
    """PEFT LoRA on a private copy of the base model; seeded init of A and of the head."""
    import copy

    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    _quiet_transformers()
    model = copy.deepcopy(base)
    task = TaskType.CAUSAL_LM if config.task == "lm" else TaskType.SEQ_CLS
    if config.task == "classification":
        _reset_head(model, config.seed)
    lora = LoraConfig(
        task_type=task,
        r=config.rank,
        lora_alpha=config.lora_alpha,  # type: ignore[arg-type]  # peft accepts any number
        lora_dropout=config.lora_dropout,
        target_modules=target_modules(config, base),
        fan_in_fan_out=getattr(base.config, "model_type", "") == "gpt2",  # GPT-2 uses Conv1D
    )
    torch.manual_seed(config.seed)
    try:
        peft_model = get_peft_model(model, lora)
    except ValueError as exc:
        first = (str(exc).splitlines() or ["?"])[0]
        raise TrainerError(f"cannot put LoRA on {config.model!r}: {first}") from None
    if config.method == "ffa":  # FFA-LoRA: A stays at its random init, only B (and head) train
        for name, p in peft_model.named_parameters():
            if "lora_A" in name:
                p.requires_grad_(False)
    return peft_model


def resolve_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainerError("device='cuda' but torch sees no CUDA GPU.")
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise TrainerError("device='mps' but torch sees no Apple GPU.")
    return torch.device(name)


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU has it, else fp16; None (full fp32) on the CPU or with amp='off'."""
    import torch

    if mode == "off" or device.type == "cpu":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    import torch

    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
