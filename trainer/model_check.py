"""The model's ``config.json`` checked before transformers reads it, and ``max_length`` against
the model's positions, before the slow part of a run.

JSON lets a size be a string, a boolean, a fraction or ``1e400`` (parsed as inf). transformers
then fails deep inside model construction with a traceback, or worse builds something else
silently (``num_hidden_layers: true`` is one layer). The fields it reads to build the supported
families (BERT / RoBERTa / DistilBERT, GPT-2, Llama-like) are type-checked here instead, and a
mistake is one ``TrainerError`` line naming the file and the field.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.config import DEFAULT_MODEL
from trainer.errors import TrainerError
from trainer.model_names import TINY_BERT, TINY_GPT2, TINY_POSITIONS, packaged_minilm_path

if TYPE_CHECKING:
    from trainer.config import RunConfig

# integers >= 1; None allowed where transformers derives the value (e.g. n_inner = 4 * n_embd)
SIZE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "num_key_value_heads",
    "head_dim",
    "n_positions",
    "n_ctx",
    "n_embd",
    "n_layer",
    "n_head",
    "n_inner",
    "dim",
    "n_layers",
    "n_heads",
    "hidden_dim",
)
OPTIONAL_SIZES = frozenset({"num_key_value_heads", "head_dim", "n_inner"})
# finite numbers >= 0 (dropout rates, epsilons, init scale, RoPE base)
RATE_FIELDS = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "classifier_dropout",
    "layer_norm_eps",
    "initializer_range",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "summary_first_dropout",
    "layer_norm_epsilon",
    "rms_norm_eps",
    "rope_theta",
    "attention_dropout",
    "dropout",
    "qa_dropout",
    "seq_classif_dropout",
)
OPTIONAL_RATES = frozenset({"classifier_dropout"})  # None = use hidden_dropout_prob
TOKEN_FIELDS = ("pad_token_id", "bos_token_id", "eos_token_id")  # int, None, or a list of ints
# RoBERTa-style position ids start after the padding index: two positions are not usable
POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2}


def _bad(path: Path, field: str, need: str, value: Any) -> TrainerError:
    return TrainerError(f"model config {str(path)!r}: {field} must be {need}, but got {value!r}.")


def check_config_fields(cfg: dict[str, Any], path: Path) -> None:
    """Refuse wrong-typed fields of a parsed config.json; ``path`` names it in the message."""
    if "model_type" in cfg and not isinstance(cfg["model_type"], str):
        raise _bad(path, "model_type", "a string", cfg["model_type"])
    for field in SIZE_FIELDS:
        if field not in cfg or (cfg[field] is None and field in OPTIONAL_SIZES):
            continue
        value = cfg[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _bad(path, field, "an integer >= 1", value)
    for field in RATE_FIELDS:
        if field not in cfg or (cfg[field] is None and field in OPTIONAL_RATES):
            continue
        value = cfg[field]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise _bad(path, field, "a finite number >= 0", value)
    for field in TOKEN_FIELDS:
        value = cfg.get(field)
        ids = value if isinstance(value, list) else [value]
        if not all(v is None or type(v) is int for v in ids):  # old Llama configs hold -1
            raise _bad(path, field, "a token id (an integer), a list of them, or null", value)


def config_json_path(name: str) -> Path | None:
    """The config.json a model name resolves to without loading anything: the packaged model's,
    a local folder's, or a hub id's in the local cache; None when not known before loading."""
    if name == DEFAULT_MODEL:
        return Path(packaged_minilm_path()) / "config.json"
    if Path(name).is_dir():
        return Path(name) / "config.json"
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return None
    try:
        cached = try_to_load_from_cache(name, "config.json")
    except Exception:  # not a valid repo id: the loader will say so
        return None
    return Path(cached) if isinstance(cached, str) else None


def read_config_json(path: Path) -> dict[str, Any]:
    """A config.json parsed and type-checked (see ``check_config_fields``)."""
    try:
        cfg = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise TrainerError(f"model folder {str(path.parent)!r} has no config.json.") from None
    except OSError as exc:
        raise TrainerError(
            f"cannot read model config {str(path)!r}: {exc.strerror or exc}."
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise TrainerError(f"model config {str(path)!r} is not valid JSON: {first}") from None
    if not isinstance(cfg, dict):
        raise TrainerError(f"model config {str(path)!r} must be a JSON object.")
    check_config_fields(cfg, path)
    return cfg


def usable_positions(cfg: dict[str, Any]) -> tuple[str, int] | None:
    """(field, tokens a sequence may have) from a model config mapping; None if it sets none."""
    for field in ("max_position_embeddings", "n_positions"):
        value = cfg.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            return field, value - POSITION_OFFSET.get(str(cfg.get("model_type")), 0)
    return None


def check_max_length(max_length: int, cfg: dict[str, Any], *, model: str, source: str) -> None:
    found = usable_positions(cfg)
    if found is not None and max_length > found[1]:
        field, positions = found
        raise TrainerError(
            f"max_length {max_length} exceeds the {positions} positions of model {model!r} "
            f"({field} in {source}); lower --max-length to at most {positions}."
        )


def check_model(config: RunConfig) -> None:
    """Everything about the model that can be checked before data and weights are loaded."""
    if config.model in (TINY_BERT, TINY_GPT2):
        key = "n_positions" if config.model == TINY_GPT2 else "max_position_embeddings"
        cfg: dict[str, Any] = {key: TINY_POSITIONS}
        check_max_length(config.max_length, cfg, model=config.model, source="its built-in config")
        return
    path = config_json_path(config.model)
    if path is None:  # a hub model not cached yet: checked after loading (load_base_model)
        return
    cfg = read_config_json(path)
    check_max_length(config.max_length, cfg, model=config.model, source=str(path))
