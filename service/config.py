"""The service's own settings: one frozen record, checked once, trusted everywhere after.

Safe by default: it binds to loopback; any other address needs a token, which is then checked
on every request (``service.security``).
"""

from __future__ import annotations

import ipaddress
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from planner.limits import is_int

TOKEN_ENV = "FLOSS_SERVE_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_WORKERS = 1
# the largest round plan (10,000 clients, 64-character ids, every number at full length) is
# 3.3 MB indented with 64-character tiers and deadline fields: it fits (tests/service/test_limits.py)
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_PLAN_WORK = 20_000_000  # service.limits: about 10-20 s of planning on 2 cores
DEFAULT_PLAN_CACHE = 128  # plans kept, rendered: a plan is a pure function of its settings
MIN_TOKEN_CHARS = 16


class ServeError(ValueError):
    """A service setting that cannot be used; the message names the value."""


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost`` only (a name that resolves elsewhere is not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    host: str = field(default=DEFAULT_HOST, metadata={"help": "address to bind"})
    port: int = field(default=DEFAULT_PORT, metadata={"help": "TCP port (0: any free one)"})
    storage: str = field(
        default="sqlite:///floss-tune.db", metadata={"help": "Optuna storage of the studies"}
    )
    max_workers: int = field(
        default=DEFAULT_MAX_WORKERS, metadata={"help": "tuning worker processes at once"}
    )
    data_root: Path | None = field(
        default=None, metadata={"help": "paths in requests must lie under this folder"}
    )
    token: str | None = field(
        default=None, metadata={"help": "bearer token every request must carry"}
    )
    max_body_bytes: int = field(
        default=DEFAULT_MAX_BODY_BYTES, metadata={"help": "largest request body accepted"}
    )
    plan_cache: int = field(
        default=DEFAULT_PLAN_CACHE, metadata={"help": "rendered plans kept (0: none)"}
    )
    work_dir: Path | None = field(
        default=None, metadata={"help": "worker configs and logs (default: a temporary folder)"}
    )
    resume_unfinished: bool = field(
        default=False, metadata={"help": "start a worker on each unfinished study at start"}
    )
    max_plan_work: int = field(
        default=DEFAULT_MAX_PLAN_WORK,
        metadata={"help": "client draws a plan's mask-sharing schedules may walk (422 beyond)"},
    )
    export_timeout_seconds: float = field(
        default=600.0, metadata={"help": "longest an export may take"}
    )

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise ServeError(f"--host must be an address, but got {self.host!r}.")
        if not is_int(self.port):
            raise ServeError(f"--port must be an integer in [0, 65535], but got {self.port!r}.")
        if not 0 <= self.port <= 65535:
            raise ServeError(f"--port must be in [0, 65535], but got {self.port}.")
        for name, value, low in (
            ("--max-workers", self.max_workers, 1),
            ("--max-body-bytes", self.max_body_bytes, 1024),
            ("--plan-cache", self.plan_cache, 0),
            ("--max-plan-work", self.max_plan_work, 1),
        ):
            if not is_int(value) or value < low:
                raise ServeError(f"{name} must be an integer >= {low}, but got {value!r}.")
        if not isinstance(self.storage, str) or not self.storage.strip():
            raise ServeError(f"--storage must be a URL or a file path, but got {self.storage!r}.")
        if self.token is not None and len(self.token) < MIN_TOKEN_CHARS:
            raise ServeError(
                f"--token must be at least {MIN_TOKEN_CHARS} characters (got {len(self.token)}); "
                f"e.g. {secrets.token_urlsafe(24)}"
            )
        if not is_loopback(self.host) and self.token is None:
            raise ServeError(
                f"--host {self.host} is not a loopback address: give a token (--token or "
                f"${TOKEN_ENV}); every request must then carry it (Authorization: Bearer ...)."
            )
        if self.data_root is not None and not self.data_root.is_dir():
            raise ServeError(f"--data-root {str(self.data_root)!r} is not a folder.")
        if not (math.isfinite(self.export_timeout_seconds) and self.export_timeout_seconds > 0):
            raise ServeError(
                f"export timeout must be positive, but got {self.export_timeout_seconds!r}."
            )

    @property
    def data_root_resolved(self) -> Path | None:
        return None if self.data_root is None else Path(os.path.realpath(self.data_root))
