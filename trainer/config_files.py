"""Run config files: read (YAML or JSON, one mapping), written back (sorted), and the keys of
older configs migrated to today's (``prune_rate`` -> ``keep_rate``).

Every failure is one ``TrainerError`` line naming the file: a wrong suffix, unreadable bytes, text
that does not parse, a document that is not a mapping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from planner.limits import is_number
from trainer.errors import TrainerError


def migrate_prune_rate(values: dict[str, Any]) -> dict[str, Any]:
    """Configs written before keep_rate: ``prune_rate`` p becomes keep_rate = 1 - p, and an
    adapterlth run keeps its old floor, d_up (the old schedule pruned down to d_up). Other
    methods never used prune_rate (every config saved it), so it is dropped for them."""
    if "prune_rate" not in values:
        return values
    rate = values.pop("prune_rate")
    if "keep_rate" in values:
        raise TrainerError("give keep_rate or the older prune_rate, not both.")
    if not is_number(rate) or not 0 <= rate < 1:
        raise TrainerError(f"prune_rate (old name) must be in [0, 1), but got {rate!r}.")
    if values.get("method") == "adapterlth":
        values["keep_rate"] = 1 - rate
        values.setdefault("lth_floor", values.get("d_up", 0.25))
    return values


def write_config(path: str | Path, data: dict[str, Any]) -> Path:
    """Write a run config's mapping as YAML (.yaml/.yml) or sorted, indented JSON (.json)."""
    p = Path(path)
    if p.suffix in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(data, sort_keys=True)
    elif p.suffix == ".json":
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    else:
        raise TrainerError(f"config file must end in .yaml, .yml or .json, but got {str(p)!r}.")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def read_config_mapping(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a YAML/JSON config file (the CLI merges flags into it)."""
    p = Path(path)
    if p.suffix not in (".yaml", ".yml", ".json"):
        raise TrainerError(f"config file must end in .yaml, .yml or .json, but got {str(p)!r}.")
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise TrainerError(f"cannot read config file {str(p)!r}: {exc.strerror or exc}.") from None
    except UnicodeDecodeError as exc:
        raise TrainerError(
            f"config file {str(p)!r} is not UTF-8 text "
            f"(byte 0x{exc.object[exc.start]:02x} at offset {exc.start})."
        ) from None
    try:
        if p.suffix == ".json":
            data: Any = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml and json raise many types; all mean "not a valid file"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TrainerError(f"cannot parse config file {str(p)!r}: {first}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TrainerError(f"config file {str(p)!r} must hold a mapping of keys to values.")
    return data
