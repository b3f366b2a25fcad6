"""Paths in requests: only under ``--data-root``, whatever the spelling (``..``, symlinks).

A value that names a path (it has a slash, starts with ``.`` or ``~``, or ends like a profile or
config file) is resolved against the data root, symlinks followed, and must stay inside it;
without ``--data-root`` no path is accepted at all. Names (a profile, a packaged model, a hub
id) pass through: the planner and the trainer look them up in their own tables.
"""

from __future__ import annotations

import os
from pathlib import Path

from service.errors import FieldError

FILE_SUFFIXES = (".toml", ".yaml", ".yml", ".json", ".csv", ".jsonl", ".txt")
ACCEPTED_PATH = "a path under the service's --data-root (relative paths are taken from it)"


def looks_like_path(value: str) -> bool:
    return (
        "/" in value
        or os.sep in value
        or value.startswith((".", "~"))
        or value.lower().endswith(FILE_SUFFIXES)
    )


def under_root(value: str, *, field: str, data_root: Path | None, must_exist: bool = True) -> str:
    """The absolute, symlink-free path of ``value`` inside ``data_root``; FieldError otherwise."""
    if data_root is None:
        raise FieldError(
            field,
            f"{value!r} is a path, and this service was started without --data-root, so it "
            "accepts no paths",
            "a name (GET /api/profiles) or, once the service has --data-root, " + ACCEPTED_PATH,
        )
    if "\x00" in value:
        raise FieldError(field, "the path holds a NUL character", ACCEPTED_PATH)
    raw = Path(value).expanduser() if value.startswith("~") else Path(value)
    root = Path(os.path.realpath(data_root))
    resolved = Path(os.path.realpath(raw if raw.is_absolute() else root / raw))
    if resolved != root and root not in resolved.parents:
        raise FieldError(field, f"{value!r} lies outside the data root", ACCEPTED_PATH)
    if must_exist and not resolved.exists():
        raise FieldError(field, f"{value!r} does not exist under the data root", ACCEPTED_PATH)
    return str(resolved)


def name_or_path(value: str, *, field: str, data_root: Path | None) -> str:
    """A name as given, or a path checked by ``under_root``."""
    if looks_like_path(value):
        return under_root(value, field=field, data_root=data_root)
    return value
