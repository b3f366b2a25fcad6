"""Load network and model profiles: built-in TOML files, user folders, or a path.

Lookup of ``--profile NAME|PATH``: an existing file path wins; otherwise NAME is searched in the
folders of ``$FLOSS_PROFILE_DIR`` (``os.pathsep``-separated; each may hold ``network/``,
``model/`` and ``fleets/`` subfolders or the files directly), then in the built-in ``profiles/``
package. Files are TOML (``.toml``), YAML (``.yaml``/``.yml``) or JSON (``.json``); a fleet may
also be a CSV of measured clients (``planner.fleet`` reads fleets; this module finds them).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from planner.errors import ProfileError
from planner.limits import is_int
from planner.model import LoraModule, ModelProfile, model_profile_from_hf_config
from planner.network import NetworkProfile

Kind = Literal["network", "model", "fleet"]
KINDS: tuple[Kind, ...] = ("network", "model", "fleet")
FOLDERS: dict[Kind, str] = {"network": "network", "model": "model", "fleet": "fleets"}
SUFFIXES = (".toml", ".yaml", ".yml", ".json")
FLEET_SUFFIXES = (*SUFFIXES, ".csv")
ENV_DIRS = "FLOSS_PROFILE_DIR"
DEFAULT_NETWORK = "thesis"
DEFAULT_MODEL = "all-minilm-l6-v2"


@dataclass(frozen=True)
class ProfileEntry:
    kind: Kind
    name: str
    path: Path
    origin: str  # "built-in" or the user folder
    description: str


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark is allowed
    except OSError as exc:
        raise ProfileError(
            f"cannot read profile file {str(path)!r}: {exc.strerror or exc}."
        ) from None
    except UnicodeDecodeError as exc:
        raise ProfileError(
            f"profile file {str(path)!r} is not UTF-8 text "
            f"(byte 0x{exc.object[exc.start]:02x} at offset {exc.start})."
        ) from None
    suffix = path.suffix.lower()  # PROFILE.TOML as profile.toml
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ProfileError(
                f"profile file {str(path)!r} must end in {', '.join(SUFFIXES)}, got {path.suffix!r}."
            )
    except ProfileError:
        raise
    except Exception as exc:  # the parsers raise many types; all mean "not a valid file"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ProfileError(f"cannot parse profile file {str(path)!r}: {first}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"profile file {str(path)!r} must hold a mapping of keys to values.")
    return data


def _user_dirs() -> list[Path]:
    """The folders of $FLOSS_PROFILE_DIR; one that is missing or not a folder is refused (a
    typo there would otherwise silently fall back to the built-in profiles)."""
    raw = os.environ.get(ENV_DIRS, "")
    folders = [Path(p) for p in raw.split(os.pathsep) if p]
    for folder in folders:
        try:
            ok = folder.is_dir()
        except OSError:
            ok = False
        if not ok:
            what = "is not a folder" if folder.exists() else "does not exist"
            raise ProfileError(f"{ENV_DIRS}: {str(folder)!r} {what}; unset it or fix the path.")
    return folders


def _builtin_dir() -> Path:
    return Path(str(resources.files("profiles")))


def _suffixes(kind: Kind) -> tuple[str, ...]:
    return FLEET_SUFFIXES if kind == "fleet" else SUFFIXES


def _candidates(kind: Kind) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    suffixes = _suffixes(kind)
    for folder in _user_dirs():
        for sub in (folder / FOLDERS[kind], folder):
            if sub.is_dir():
                found += [
                    (p, str(folder))
                    for p in sorted(sub.iterdir())
                    if p.suffix.lower() in suffixes and not p.is_dir()
                ]
    builtin = _builtin_dir() / FOLDERS[kind]
    if builtin.is_dir():
        found += [(p, "built-in") for p in sorted(builtin.iterdir()) if p.suffix in suffixes]
    return found


def _csv_description(path: Path) -> str:
    """A measured fleet's description: its first comment line (``# ...``), if any."""
    try:
        with path.open(encoding="utf-8") as f:
            first = f.readline().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return first.lstrip("#").strip() if first.startswith("#") else ""


def list_profiles(kind: Kind | None = None) -> list[ProfileEntry]:
    """Every profile visible by name (user folders first: they shadow built-ins)."""
    entries: list[ProfileEntry] = []
    seen: set[tuple[str, str]] = set()
    for k in KINDS if kind is None else (kind,):
        for path, origin in _candidates(k):
            if path.suffix.lower() == ".csv":  # only fleets list CSV files
                name, description = path.stem, _csv_description(path)
            else:
                try:
                    data = _read_mapping(path)
                except ProfileError:
                    continue
                if k == "model" and "modules" not in data:
                    continue
                if k == "network" and "down_mbps" not in data:
                    continue
                if k == "fleet" and "tiers" not in data:
                    continue
                name, description = (
                    str(data.get("name", path.stem)),
                    str(data.get("description", "")),
                )
            if (k, name) in seen:
                continue
            seen.add((k, name))
            entries.append(ProfileEntry(k, name, path, origin, description))
    return entries


def _find(kind: Kind, name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    try:
        if path.is_file():
            return path
        if path.is_dir() and (path.suffix.lower() in _suffixes(kind) or os.sep in name_or_path):
            raise ProfileError(f"{kind} profile {name_or_path!r} is a folder, not a file.")
    except OSError as exc:  # a name longer than the file system allows: is_file raises
        reason = (exc.strerror or type(exc).__name__).lower()
        raise ProfileError(f"{kind} profile {name_or_path!r} cannot be a file: {reason}.") from None
    if path.suffix.lower() in _suffixes(kind) or os.sep in name_or_path:
        raise ProfileError(f"{kind} profile file {name_or_path!r} does not exist.")
    for entry in list_profiles(kind):
        if entry.name == name_or_path or entry.path.stem == name_or_path:
            return entry.path
    names = ", ".join(sorted({e.name for e in list_profiles(kind)}))
    raise ProfileError(
        f"unknown {kind} profile {name_or_path!r}; known: {names} (or give a path to a file)."
    )


def _key(key: Any) -> str:
    """Plain when a printable name, else repr: a key holding a newline must not split the line."""
    if isinstance(key, str) and key and key.isprintable() and key.strip() == key:
        return key
    return repr(key)


def _check_keys(data: dict[str, Any], allowed: set[str], path: Path) -> None:
    unknown = sorted((k for k in data if k not in allowed), key=repr)  # YAML keys: any type
    if unknown:
        raise ProfileError(
            f"profile file {str(path)!r}: unknown key(s) {', '.join(map(_key, unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}."
        )


def network_from_mapping(data: dict[str, Any], *, path: Path, name: str) -> NetworkProfile:
    allowed = {"name", "description", "source", "down_mbps", "up_mbps", "rtt_ms", "spread_sigma"}
    _check_keys(data, allowed, path)
    for key in ("down_mbps", "up_mbps"):
        if key not in data:
            raise ProfileError(f"network profile {str(path)!r} is missing {key}.")
    try:
        return NetworkProfile(
            name=str(data.get("name", name)),
            down_mbps=data["down_mbps"],
            up_mbps=data["up_mbps"],
            rtt_ms=data.get("rtt_ms", 0.0),
            spread_sigma=data.get("spread_sigma", 0.0),
            source=str(data.get("source", "")),
            description=str(data.get("description", "")),
        )
    except ValueError as exc:
        raise ProfileError(f"network profile {str(path)!r}: {exc}") from None


def model_from_mapping(data: dict[str, Any], *, path: Path, name: str) -> ModelProfile:
    _check_keys(
        data, {"name", "description", "source", "hidden_size", "num_labels", "modules"}, path
    )
    raw = data.get("modules")
    if not isinstance(raw, list) or not raw:
        raise ProfileError(f"model profile {str(path)!r} needs a non-empty [[modules]] list.")
    try:
        modules = []
        for m in raw:
            if not isinstance(m, dict):
                raise ValueError(f"each module must be a table, got {m!r}")
            _check_keys(m, {"name", "d_in", "d_out", "count"}, path)
            modules.append(
                LoraModule(
                    name=str(m.get("name", "?")),
                    d_in=m.get("d_in", 0),
                    d_out=m.get("d_out", 0),
                    count=m.get("count", 1),
                )
            )
        hidden = data.get("hidden_size", 0)
        if not is_int(hidden) or hidden < 0:
            raise ValueError(f"hidden_size must be an integer >= 0, got {hidden!r}")
        labels = data.get("num_labels", 0)
        if not is_int(labels) or labels < 0:
            raise ValueError(f"num_labels must be an integer >= 0, got {labels!r}")
        return ModelProfile(
            name=str(data.get("name", name)),
            modules=tuple(modules),
            hidden_size=hidden,
            num_labels=labels,
            source=str(data.get("source", "")),
            description=str(data.get("description", "")),
        )
    except ValueError as exc:
        raise ProfileError(f"model profile {str(path)!r}: {exc}") from None


def find_profile(kind: Kind, name_or_path: str) -> Path:
    """The file of a profile given by name (user folders, then built-in) or by path."""
    return _find(kind, name_or_path)


def read_mapping(path: Path) -> dict[str, Any]:
    """A TOML, YAML or JSON profile file as a mapping (one-line ``ProfileError`` otherwise)."""
    return _read_mapping(path)


def load_network(name_or_path: str = DEFAULT_NETWORK) -> NetworkProfile:
    path = _find("network", name_or_path)
    return network_from_mapping(_read_mapping(path), path=path, name=path.stem)


def load_model(name_or_path: str = DEFAULT_MODEL) -> ModelProfile:
    """A model profile by name, profile file, or Hugging Face ``config.json`` (file or folder)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir() or path.name == "config.json":
        try:
            return model_profile_from_hf_config(path)
        except ValueError as exc:
            raise ProfileError(str(exc)) from None
    path = _find("model", name_or_path)
    return model_from_mapping(_read_mapping(path), path=path, name=path.stem)
