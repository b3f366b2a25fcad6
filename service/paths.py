"""Every path a request can name is checked here, once, against ``--data-root``.

A request field that may name a file is typed with one of the markers below (``NetworkRef``,
``ModelProfileRef``, ``RunConfigPaths`` for a run config's ``model``, ``data_path``,
``network`` and ``fleet``). Pydantic calls ``confine`` on it while the request is read, whatever
the endpoint (the API, the page's form, a stored request read back on resume), so no route can
forget it. A value that names a path (a slash, a leading ``.`` or ``~``, a file suffix) is
resolved against the data root with symlinks followed and must stay inside it; a file the
planner reads (a network or model profile, a fleet) is also parsed here, and a file that does
not parse is refused by its name only: the service never echoes a file's content. Without
``--data-root`` no path is accepted at all. Names (a profile, a packaged model, a hub id) pass
through: the planner and the trainer look them up in their own tables.

The data root in force is the one of the service answering the request (``DataRootScope``, an
ASGI middleware, sets it for the request); outside any scope nothing is accepted (fail closed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, ValidationInfo
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import FieldError

FILE_SUFFIXES = (".toml", ".yaml", ".yml", ".json", ".csv", ".jsonl", ".txt", ".parquet")
PROFILE_SUFFIXES = (".json", ".toml", ".yaml", ".yml")
ACCEPTED_PATH = "a path under the service's --data-root (relative paths are taken from it)"

_NO_SCOPE = object()
_ROOT: ContextVar[Any] = ContextVar("floss_data_root", default=_NO_SCOPE)


@contextmanager
def data_root_scope(root: Path | None) -> Iterator[None]:
    """Check paths against ``root`` (None: accept none) while the block runs."""
    token = _ROOT.set(None if root is None else Path(os.path.realpath(root)))
    try:
        yield
    finally:
        _ROOT.reset(token)


class DataRootScope:
    """ASGI middleware: every request is read with the service's data root in force."""

    def __init__(self, app: ASGIApp, *, root: Path | None) -> None:
        self.app = app
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with data_root_scope(self.root):
            await self.app(scope, receive, send)


def looks_like_path(value: str) -> bool:
    return (
        "/" in value
        or os.sep in value
        or value.startswith((".", "~"))
        or value.lower().endswith(FILE_SUFFIXES)
    )


def current_root(field: str) -> Path | None:
    root: Path | None = _ROOT.get()
    if root is _NO_SCOPE:
        raise FieldError(field, "no data root is in force (paths are checked by floss serve)")
    return root


def under_root(value: str, *, field: str, data_root: Path | None, must_exist: bool = True) -> str:
    """The absolute, symlink-free path of ``value`` inside ``data_root``; FieldError otherwise.
    Messages quote the value as given, never what it resolves to or what the file holds."""
    if data_root is None:
        raise FieldError(
            field,
            f"{value!r} is a path, and this service was started without --data-root, so it "
            "accepts no paths",
            "a name (GET /api/profiles) or, once the service has --data-root, " + ACCEPTED_PATH,
        )
    if "\x00" in value:
        raise FieldError(field, "the path holds a NUL character", ACCEPTED_PATH)
    try:
        raw = Path(value).expanduser() if value.startswith("~") else Path(value)
        root = Path(os.path.realpath(data_root))
        resolved = Path(os.path.realpath(raw if raw.is_absolute() else root / raw))
        inside = resolved == root or root in resolved.parents
        exists = inside and resolved.exists()
    except (OSError, RuntimeError, ValueError):  # a name too long, a symlink loop, no $HOME
        raise FieldError(field, f"{value!r} cannot be a path", ACCEPTED_PATH) from None
    if not inside:
        raise FieldError(field, f"{value!r} lies outside the data root", ACCEPTED_PATH)
    if must_exist and not exists:
        raise FieldError(field, f"{value!r} does not exist under the data root", ACCEPTED_PATH)
    return str(resolved)


def name_or_path(value: str, *, field: str, data_root: Path | None) -> str:
    """A name as given, or a path checked by ``under_root``."""
    if looks_like_path(value):
        return under_root(value, field=field, data_root=data_root)
    return value


# --- what each kind of file is, and how the service reads it ---------------------------------


def _load_network(path: str) -> None:
    from planner.profiles import load_network

    load_network(path)


def _load_model_profile(path: str) -> None:
    from planner.profiles import load_model

    load_model(path)


def _load_fleet(path: str) -> None:
    from planner.fleet import load_fleet

    load_fleet(path)


@dataclass(frozen=True)
class PathKind:
    name: str  # what the file is, in messages
    loader: Callable[[str], None] | None  # parses the file (None: the worker reads it)
    always_path: bool = False  # a value that is never a name (a data file)
    hub_ids: bool = False  # "org/name" that is no file under the root is a hub id


NETWORK = PathKind("network profile", _load_network)
MODEL_PROFILE = PathKind("model profile", _load_model_profile)
FLEET = PathKind("fleet", _load_fleet)
MODEL = PathKind("model", None, hub_ids=True)
DATA = PathKind("data", None, always_path=True)

# RunConfig fields that name files (tests hold this to RunConfig's own field help)
RUN_CONFIG_PATHS: dict[str, PathKind] = {
    "model": MODEL,
    "data_path": DATA,
    "network": NETWORK,
    "fleet": FLEET,
}


def confine(value: str, *, kind: PathKind, field: str) -> str:
    """A name as given, or the checked absolute path of a file under the data root in force
    (parsed when the service reads that kind of file); FieldError naming ``field`` otherwise."""
    if not kind.always_path and not looks_like_path(value):
        return value
    root = current_root(field)
    if kind.hub_ids and not value.startswith(("/", ".", "~")):
        inside = root is not None and os.path.lexists(root / value)
        if not inside and not value.lower().endswith(PROFILE_SUFFIXES):
            # a hub id such as org/name; workers run in their own folder, so no relative path
            # of the service's is reachable this way
            return value
    path = under_root(value, field=field, data_root=root)
    if kind.loader is not None:
        try:
            kind.loader(path)
        except (ValueError, OSError):
            # the parser's own message may quote the file (a header cell, a value): name it only
            raise FieldError(
                field,
                f"{value!r} is not a readable {kind.name} file",
                f"a {kind.name} file under --data-root (docs/profiles.md, docs/fleets.md)",
            ) from None
    return path


@dataclass(frozen=True)
class PathRef:
    """Marks a request field that may name a file of ``kind`` (found by the audit test)."""

    kind: PathKind


def _field_check(kind: PathKind) -> Callable[[str, ValidationInfo], str]:
    def check(value: str, info: ValidationInfo) -> str:
        return confine(value, kind=kind, field=str(info.field_name))

    return check


def _run_config_check(value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    out = dict(value)
    for key, kind in RUN_CONFIG_PATHS.items():
        field = f"{info.field_name}.{key}"
        if out.get(key) is None:
            continue
        if not isinstance(out[key], str):  # the trainer would take str() of it: a path unseen
            raise FieldError(field, f"expected a string, but got {out[key]!r}")
        out[key] = confine(out[key], kind=kind, field=field)
    return out


NetworkRef = Annotated[str, PathRef(NETWORK), AfterValidator(_field_check(NETWORK))]
ModelProfileRef = Annotated[
    str, PathRef(MODEL_PROFILE), AfterValidator(_field_check(MODEL_PROFILE))
]
FleetRef = Annotated[str, PathRef(FLEET), AfterValidator(_field_check(FLEET))]
RunConfigPaths = Annotated[dict[str, Any], PathRef(DATA), AfterValidator(_run_config_check)]
