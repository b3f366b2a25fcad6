"""A ``RunConfig`` as a Flower run config, and back (no flwr import: the app folder writer and
the tuner's export use it without Flower installed).

Flower apps read flat TOML scalars from ``context.run_config`` (``[tool.flwr.app.config]`` in the
app's pyproject, overridable with ``flwr run --run-config``). Every ``RunConfig`` field has a
kebab-case key; a few keep the names of Flower's templates and of earlier exports
(``num-server-rounds``, ``floss-method``, ``lora-rank``, ``model-name``, ...). ``tuner.flower``
writes exactly this mapping. ``None``
is left out (TOML has no null), a tuple becomes a comma-separated string. Besides the run itself
the app reads a few engine settings (``APP_KEYS``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from trainer.config import RunConfig
from trainer.errors import TrainerError

Scalar = int | float | str | bool

# RunConfig fields whose Flower key is not their kebab-case name
RENAMED: dict[str, str] = {
    "rounds": "num-server-rounds",
    "method": "floss-method",
    "rank": "lora-rank",
    "lora_alpha": "lora-alpha",
    "lora_dropout": "lora-dropout",
    "model": "model-name",
    "target_modules": "lora-target-modules",
}
# keys Flower's templates use that follow from the run config (written, not read back)
DERIVED = ("fraction-train", "min-train-nodes")


@dataclass(frozen=True, kw_only=True)
class AppSettings:
    """Engine settings of the Flower app (not part of the training run's trajectory)."""

    out_dir: str = ""  # server outputs (records, checkpoints, adapter); "" = none
    node_wait_seconds: float = 120.0  # how long the ServerApp waits for num_clients nodes
    round_timeout: float = 0.0  # seconds to wait for a round's replies; 0 = until all arrive

    def __post_init__(self) -> None:
        if not isinstance(self.out_dir, str):
            raise TrainerError(f"out-dir must be a path string, but got {self.out_dir!r}.")
        for name in ("node_wait_seconds", "round_timeout"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise TrainerError(
                    f"{name.replace('_', '-')} must be a number >= 0, but got {value!r}."
                )
            object.__setattr__(self, name, float(value))


APP_KEYS: dict[str, str] = {
    "out-dir": "out_dir",
    "node-wait-seconds": "node_wait_seconds",
    "round-timeout": "round_timeout",
}


def key_of(field_name: str) -> str:
    return RENAMED.get(field_name, field_name.replace("_", "-"))


FIELD_OF: dict[str, str] = {key_of(f.name): f.name for f in fields(RunConfig)}


def to_run_config(config: RunConfig, settings: AppSettings | None = None) -> dict[str, Scalar]:
    """Flat Flower run-config values of ``config`` (and the app settings), sorted by key."""
    out: dict[str, Scalar] = {}
    for name, value in config.to_dict().items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        out[key_of(name)] = value
    out["fraction-train"] = config.clients_per_round / config.num_clients
    out["min-train-nodes"] = config.clients_per_round
    s = settings or AppSettings()
    for key, attr in APP_KEYS.items():
        out[key] = getattr(s, attr)
    return dict(sorted(out.items()))


def from_run_config(
    values: Mapping[str, Any],
    *,
    base: RunConfig | None = None,
    base_settings: AppSettings | None = None,
) -> tuple[RunConfig, AppSettings]:
    """The RunConfig and app settings of a Flower run config, laid over ``base`` and
    ``base_settings`` (the defaults when None). Unknown keys raise one TrainerError naming them."""
    data: dict[str, Any] = base.to_dict() if base is not None else {}
    app: dict[str, Any] = dict(vars(base_settings)) if base_settings is not None else {}
    unknown = []
    for key, value in values.items():
        if key in FIELD_OF:
            data[FIELD_OF[key]] = value
        elif key in APP_KEYS:
            app[APP_KEYS[key]] = value
        elif key not in DERIVED:
            unknown.append(key)
    if unknown:
        raise TrainerError(f"unknown Flower run-config keys: {', '.join(sorted(unknown))}.")
    if isinstance(data.get("target_modules"), str):
        data["target_modules"] = [m for m in data["target_modules"].split(",") if m]
    return RunConfig.from_dict(data), AppSettings(**app)


# fields a client's training does not read (the server's schedule, accounting, the machine)
NOT_CLIENT_FIELDS = frozenset(
    {
        "rounds", "budget", "max_rounds", "ref_rank", "checkpoint_every", "eval_every",
        "eval_test", "max_eval_examples", "device", "amp", "network", "up_slowdown",
        "compute_seconds",
    }
)  # fmt: skip


def config_digest(config: RunConfig) -> str:
    """A short digest of what a client trains with: server and clients check they agree."""
    kept = {k: v for k, v in config.to_dict().items() if k not in NOT_CLIENT_FIELDS}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
