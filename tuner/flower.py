"""The recommended run as a Flower run config (``[tool.flwr.app.config]`` keys).

Flower apps read their settings from ``context.run_config``: flat TOML scalars declared in the
app's ``pyproject.toml`` under ``[tool.flwr.app.config]`` and overridable with ``flwr run
--run-config``. We write both: ``flower/run_config.toml`` (the flat mapping) and
``flower/pyproject-snippet.toml`` (the same keys under the section header, to paste). Keys are
kebab-case as in Flower's templates (``num-server-rounds``, ``fraction-train``). floss does not ship
the ServerApp/ClientApp that implement FLoSS's sparse messages; these keys are what such an app
needs, with the same meanings as ``run.yaml``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

Scalar = int | float | str | bool

# RunConfig field -> Flower run-config key
FIELDS: dict[str, str] = {
    "rounds": "num-server-rounds",
    "method": "floss-method",
    "rank": "lora-rank",
    "lora_alpha": "lora-alpha",
    "lora_dropout": "lora-dropout",
    "d_down": "d-down",
    "d_up": "d-up",
    "topk": "topk",
    "encoding": "encoding",
    "precision": "precision",
    "precision_down": "precision-down",  # None (= precision) is left out
    "precision_up": "precision-up",
    "error_feedback": "error-feedback",
    "local_epochs": "local-epochs",
    "batch_size": "batch-size",
    "client_optimizer": "client-optimizer",
    "client_lr": "client-lr",
    "client_momentum": "client-momentum",
    "server_optimizer": "server-optimizer",
    "server_lr": "server-lr",
    "server_weight_decay": "server-weight-decay",
    "model": "model-name",
    "max_length": "max-length",
    "seed": "seed",
}


def flower_run_config(run: dict[str, Any]) -> dict[str, Scalar]:
    """Flat Flower run-config values for a RunConfig mapping (None fields are left out)."""
    out: dict[str, Scalar] = {}
    for field, key in FIELDS.items():
        value = run.get(field)
        if value is not None:
            out[key] = value
    targets = run.get("target_modules")
    if targets:
        out["lora-target-modules"] = ",".join(targets)  # Flower run-config values are scalars
    out["fraction-train"] = run["clients_per_round"] / run["num_clients"]
    out["min-train-nodes"] = int(run["clients_per_round"])
    return out


def _toml_value(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write a non-finite number to a Flower config: {value!r}")
        return repr(value)
    return json.dumps(value)  # a TOML basic string: JSON's escapes are valid TOML escapes


def to_toml(values: dict[str, Scalar], *, section: str | None = None) -> str:
    lines = [f"[{section}]"] if section else []
    lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def write_flower_config(run: dict[str, Any], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    values = flower_run_config(run)
    flat = folder / "run_config.toml"
    flat.write_text(to_toml(values), encoding="utf-8")
    snippet = folder / "pyproject-snippet.toml"
    snippet.write_text(to_toml(values, section="tool.flwr.app.config"), encoding="utf-8")
    return [flat, snippet]
