"""Model profiles: the LoRA-relevant module shapes, and the adapter size n(r) they imply.

A LoRA adapter on a module W (d_out x d_in) adds A (r x d_in) and B (d_out x r): r * (d_in + d_out)
trainable entries. n(r) sums that over every targeted module, plus a trainable head if any
(a classifier of ``hidden_size`` inputs and L labels has hidden_size * L + L entries).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.limits import is_int

# LoRA target modules by model_type when none are named: PEFT's defaults
# (peft.utils.constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING; distilbert and vit,
# absent there, take their attention query/value like BERT). The one table: the trainer wraps
# these modules and the planner prices them (model profiles and config.json alike).
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "bert": ("query", "value"),
    "roberta": ("query", "value"),
    "xlm-roberta": ("query", "value"),
    "distilbert": ("q_lin", "v_lin"),
    "vit": ("query", "value"),
    "gpt2": ("c_attn",),
    "llama": ("q_proj", "v_proj"),
    "mistral": ("q_proj", "v_proj"),
    "qwen2": ("q_proj", "v_proj"),
}


@dataclass(frozen=True, kw_only=True)
class LoraModule:
    """``count`` modules of shape d_in -> d_out that receive a LoRA adapter."""

    name: str
    d_in: int
    d_out: int
    count: int = 1

    def __post_init__(self) -> None:
        for key in ("d_in", "d_out", "count"):
            value = getattr(self, key)
            if not is_int(value) or value < 1:
                raise ValueError(
                    f"module {self.name!r}: {key} must be an integer >= 1, got {value!r}."
                )

    def params_per_rank(self, *, freeze_a: bool = False) -> int:
        """Entries per unit of rank: A (r x d_in) and B (d_out x r), or B alone when A is frozen."""
        return self.count * (self.d_out if freeze_a else self.d_in + self.d_out)


@dataclass(frozen=True, kw_only=True)
class ModelProfile:
    name: str
    modules: tuple[LoraModule, ...] = field(metadata={"help": "targeted modules"})
    hidden_size: int = field(default=0, metadata={"help": "classifier head input width"})
    num_labels: int = field(
        default=0, metadata={"help": "labels of the head the default task trains (0: no head)"}
    )
    source: str = ""
    description: str = ""
    # A raw adapter size given by the user (--lora-params N at the reference rank): n(r) is then
    # scaled linearly in r, which is exact for LoRA without a head.
    params_at_ref: int = 0
    ref_rank: int = 16

    def __post_init__(self) -> None:
        if not self.modules and self.params_at_ref < 1:
            raise ValueError(f"model profile {self.name!r} has no LoRA target modules.")
        if not is_int(self.num_labels):
            raise ValueError(f"num_labels must be an integer >= 0, but got {self.num_labels!r}.")
        self.head_params(self.num_labels)

    def head_params(self, num_labels: int) -> int:
        if num_labels < 0:
            raise ValueError(f"num_labels must be >= 0, but got {num_labels}.")
        if num_labels == 0:
            return 0
        if self.hidden_size < 1:
            raise ValueError(
                f"model profile {self.name!r} has no hidden_size, so a head of {num_labels} "
                "labels cannot be sized; use --head-params."
            )
        return self.hidden_size * num_labels + num_labels

    def adapter_params(
        self, rank: int, *, num_labels: int = 0, head_params: int = 0, freeze_a: bool = False
    ) -> int:
        """n(r): entries of the flattened adapter vector P (``freeze_a``: FFA-LoRA, B + head)."""
        if not is_int(rank) or rank < 1:
            raise ValueError(f"rank must be an integer >= 1, but got {rank!r}.")
        if self.params_at_ref:
            if freeze_a:
                raise ValueError(
                    f"{self.name}: a raw adapter size (--lora-params) cannot be split into A and "
                    "B, so ffa (A frozen) cannot be sized; give a model profile instead."
                )
            lora = math.floor(self.params_at_ref * rank / self.ref_rank + 0.5)
        else:
            lora = rank * sum(m.params_per_rank(freeze_a=freeze_a) for m in self.modules)
        return lora + self.head_params(num_labels) + head_params


MAX_ENTRIES = 2**53  # adapter sizes are scaled in rank through floats, exact up to 2**53
MAX_RANK = 2**31 - 1  # LoRA ranks are tensor dimensions (int32 in torch and PEFT)


def raw_model_profile(lora_params: int, *, ref_rank: int) -> ModelProfile:
    """A profile from ``--lora-params N``: N adapter entries at the reference rank."""
    if lora_params < 1:
        raise ValueError(f"--lora-params must be at least 1, but got {lora_params}.")
    if lora_params > MAX_ENTRIES:  # rank scaling runs through floats: 10**400 overflowed
        raise ValueError(f"--lora-params must be at most 2**53, but got {lora_params}.")
    return ModelProfile(
        name=f"raw-{lora_params}-at-r{ref_rank}",
        modules=(),
        params_at_ref=lora_params,
        ref_rank=ref_rank,
        description=f"{lora_params} LoRA entries at rank {ref_rank}, scaled linearly in rank",
    )


def _get(cfg: dict[str, Any], *keys: str, path: Path) -> int:
    for key in keys:
        if key in cfg and cfg[key] is not None:
            return int(cfg[key])
    raise ValueError(f"{path}: config.json has none of {', '.join(keys)}.")


def _bert_like(cfg: dict[str, Any], targets: tuple[str, ...], path: Path) -> list[LoraModule]:
    h = _get(cfg, "hidden_size", "dim", path=path)
    inter = (
        _get(cfg, "intermediate_size", "hidden_dim", path=path)
        if {"intermediate.dense", "output.dense"} & set(targets)
        else 4 * h
    )
    layers = _get(cfg, "num_hidden_layers", "n_layers", path=path)
    shapes = {
        "q_lin": (h, h),  # DistilBERT's names
        "k_lin": (h, h),
        "v_lin": (h, h),
        "out_lin": (h, h),
        "query": (h, h),
        "key": (h, h),
        "value": (h, h),
        "attention.output.dense": (h, h),
        "intermediate.dense": (h, inter),
        "output.dense": (inter, h),
    }
    return [
        LoraModule(name=t, d_in=shapes[t][0], d_out=shapes[t][1], count=layers)
        for t in targets
        if t in shapes
    ]


def _gpt2(cfg: dict[str, Any], targets: tuple[str, ...], path: Path) -> list[LoraModule]:
    h = _get(cfg, "n_embd", "hidden_size", path=path)
    layers = _get(cfg, "n_layer", "num_hidden_layers", path=path)
    inner = int(cfg.get("n_inner") or 4 * h)
    out: list[LoraModule] = []
    if "c_attn" in targets:
        out.append(LoraModule(name="attn.c_attn", d_in=h, d_out=3 * h, count=layers))
    if "c_proj" in targets:  # PEFT's "c_proj" matches attn.c_proj and mlp.c_proj
        out.append(LoraModule(name="attn.c_proj", d_in=h, d_out=h, count=layers))
        out.append(LoraModule(name="mlp.c_proj", d_in=inner, d_out=h, count=layers))
    if "c_fc" in targets:
        out.append(LoraModule(name="mlp.c_fc", d_in=h, d_out=inner, count=layers))
    return out


def _llama(cfg: dict[str, Any], targets: tuple[str, ...], path: Path) -> list[LoraModule]:
    h = _get(cfg, "hidden_size", path=path)
    layers = _get(cfg, "num_hidden_layers", path=path)
    heads = _get(cfg, "num_attention_heads", path=path)
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or h // heads)
    inter = _get(cfg, "intermediate_size", path=path)
    shapes = {
        "q_proj": (h, heads * head_dim),
        "k_proj": (h, kv_heads * head_dim),
        "v_proj": (h, kv_heads * head_dim),
        "o_proj": (heads * head_dim, h),
        "gate_proj": (h, inter),
        "up_proj": (h, inter),
        "down_proj": (inter, h),
    }
    return [
        LoraModule(name=t, d_in=shapes[t][0], d_out=shapes[t][1], count=layers)
        for t in targets
        if t in shapes
    ]


_BUILDERS = {
    "bert": _bert_like,
    "roberta": _bert_like,
    "xlm-roberta": _bert_like,
    "distilbert": _bert_like,
    "vit": _bert_like,
    "gpt2": _gpt2,
    "llama": _llama,
    "mistral": _llama,
    "qwen2": _llama,
}


def model_profile_from_hf_config(
    path: str | Path, *, target_modules: tuple[str, ...] | None = None
) -> ModelProfile:
    """A profile from a Hugging Face ``config.json`` (or its folder): shapes only, no weights."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"no config.json at {str(path)!r}.") from None
    except (OSError, ValueError) as exc:  # ValueError: bad JSON, or not UTF-8
        raise ValueError(f"cannot read {str(p)!r} as JSON: {exc}.") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{str(p)!r} is not a JSON object.")
    model_type = str(cfg.get("model_type", ""))
    if model_type not in _BUILDERS:
        raise ValueError(
            f"{str(p)!r}: model_type {model_type!r} is not one of {', '.join(sorted(_BUILDERS))}; "
            "write a model profile TOML instead (see `floss profiles`)."
        )
    build = _BUILDERS[model_type]
    targets = target_modules or DEFAULT_TARGETS[model_type]
    modules = build(cfg, targets, p)
    if not modules:
        raise ValueError(
            f"{str(p)!r}: none of the target modules {targets} exist in a {model_type} model."
        )
    return ModelProfile(
        name=str(cfg.get("_name_or_path") or p.parent.name),
        modules=tuple(modules),
        hidden_size=int(cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("dim") or 0),
        source=str(p),
        description=f"{model_type} from config.json, LoRA on {', '.join(targets)}",
    )
