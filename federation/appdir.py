"""Write a runnable Flower app folder whose run config is a given ``RunConfig`` (no flwr import).

The folder holds ``pyproject.toml`` (``[tool.flwr.app]``: components and the run config under
``[tool.flwr.app.config]``), ``floss_app.py`` (the two components, imported from the installed
``federation`` package) and ``README.md`` with the command that runs it. Flower needs floss
installed where the SuperLink and SuperNodes run (``pip install 'floss[train,flower]'``); the app
declares no dependencies of its own so that the SuperLink installs nothing at run time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from federation.config import AppSettings, Scalar, to_run_config
from trainer.config import RunConfig

APP_MODULE = "floss_app.py"
APP_FILES = ("pyproject.toml", APP_MODULE, "README.md")  # what write_app writes
FLOWER_ENV = (
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1 FLWR_TELEMETRY_ENABLED=0 "
    "FLWR_DISABLE_UPDATE_CHECK=1"
)

_MODULE_TEXT = '''"""The floss Flower app: floss-train's round on Flower (see floss's docs/federation.md)."""

from federation.client import make_client_app
from federation.server import make_server_app

server_app = make_server_app()
client_app = make_client_app()
'''


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


def run_command(folder: Path | str, config: RunConfig) -> str:
    """The one command that runs the app on Flower's local simulation (one node per client)."""
    return (
        f"{FLOWER_ENV} flwr run {folder} "
        f"--federation-config 'num-supernodes={_num_nodes(config)}' --stream"
    )


def _num_nodes(config: RunConfig) -> int | str:
    return "N" if config.partition == "natural" else config.num_clients


def _out_dir_text(values: dict[str, Scalar]) -> str:
    out = values.get("out-dir")
    return f"`{out}`" if out else "none set: nothing is written"


def write_app(folder: Path, config: RunConfig, settings: AppSettings | None = None) -> list[Path]:
    """Write the app folder; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    values = to_run_config(config, settings)
    nodes = _num_nodes(config)
    pyproject = (
        "[build-system]\n"
        'requires = ["hatchling"]\n'
        'build-backend = "hatchling.build"\n\n'
        "[project]\n"
        'name = "floss-flower-app"\n'
        'version = "1.0.0"\n'
        'description = "floss: federated LoRA with sparse communication, on Flower"\n'
        'license = "Apache-2.0"\n'
        "dependencies = []  # floss[train,flower] must be installed where the nodes run\n\n"
        "[tool.hatch.build.targets.wheel]\n"
        'packages = ["."]\n\n'
        "[tool.flwr.app]\n"
        'publisher = "floss"\n\n'
        "[tool.flwr.app.components]\n"
        'serverapp = "floss_app:server_app"\n'
        'clientapp = "floss_app:client_app"\n\n' + to_toml(values, section="tool.flwr.app.config")
    )
    readme = (
        "# floss on Flower\n\n"
        "This app runs floss-train's round (the same P, bit for bit on the CPU, and the same\n"
        "payload bytes) on Flower. Its run config (`pyproject.toml`, `[tool.flwr.app.config]`)\n"
        "is the run floss exported. Run it on Flower's local simulation, one node per client:\n\n"
        f"    {run_command(folder, config)}\n\n"
        "On a deployment, start each SuperNode with `--node-config 'partition-id=I "
        f"num-partitions={nodes}'` (0 <= I < {nodes}) and pass the SuperLink connection's name\n"
        "after the folder; with `--isolation process` and one `python -m federation.worker`\n"
        "per SuperNode, each node loads the model once instead of once per message (floss's\n"
        "docs/federation.md). floss (`pip install 'floss[train,flower]'`) must be installed where\n"
        "the SuperLink and the SuperNodes run. Records, checkpoints every `checkpoint-every`\n"
        f"rounds and the adapter go to `out-dir` ({_out_dir_text(values)}; another with\n"
        "`--run-config \"out-dir='runs/a'\"`); a ServerApp started again with the same `out-dir`\n"
        "continues from the last checkpoint.\n"
    )
    files = dict(zip(APP_FILES, (pyproject, _MODULE_TEXT, readme), strict=True))
    out = []
    for name, text in files.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        out.append(path)
    return out
