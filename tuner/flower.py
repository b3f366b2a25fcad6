"""The recommended run as a Flower run config (``[tool.flwr.app.config]`` keys).

Flower apps read their settings from ``context.run_config``: flat TOML scalars declared in the
app's ``pyproject.toml`` under ``[tool.flwr.app.config]`` and overridable with ``flwr run
--run-config``. The export writes both ``flower/run_config.toml`` (the flat mapping) and
``flower/pyproject-snippet.toml`` (the same keys under the section header, to paste). The keys
and their values are ``federation.config.to_run_config``'s, the mapping the floss Flower app
(``federation/``) reads back, so there is one list of keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from federation.appdir import to_toml
from federation.config import Scalar, to_run_config


def flower_run_config(run: dict[str, Any]) -> dict[str, Scalar]:
    """Flat Flower run-config values for a RunConfig mapping (None fields are left out)."""
    from trainer.config import RunConfig

    return to_run_config(RunConfig.from_dict(run))


def write_flower_config(run: dict[str, Any], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    values = flower_run_config(run)
    flat = folder / "run_config.toml"
    flat.write_text(to_toml(values), encoding="utf-8")
    snippet = folder / "pyproject-snippet.toml"
    snippet.write_text(to_toml(values, section="tool.flwr.app.config"), encoding="utf-8")
    return [flat, snippet]
