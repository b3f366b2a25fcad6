"""The service's tuning worker processes: at most ``max_workers`` at once, each a
``service.worker`` child running ``floss-tune run`` on one study, its output in a log file.

Only what a process needs lives here; what a study is and how it went is in the storage
(``service.studies``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from service.errors import ServiceError

LOG_TAIL_LINES = 20
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    started: float = field(default_factory=time.time)
    stop_requested: bool = False
    shutdown: bool = False  # interrupted because the service stopped (not through the API)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last non-empty lines of a log (at most its last 16 KiB)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16_384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def error_line(lines: list[str]) -> str:
    """The CLI's own one-line ``error: ...`` if there is one, else the last line."""
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    return lines[-1] if lines else "the worker ended without a message"


def child_env() -> dict[str, str]:
    """The service's environment, with this package importable from any folder."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p),
    }
    env.pop("FLOSS_TUNE_STORAGE", None)  # the service says which storage
    return env


def worker_command(args: list[str]) -> list[str]:
    """``floss-tune`` with ``args`` in a child that ends with this process."""
    return [sys.executable, "-m", "service.worker", str(os.getpid()), *args]


class WorkerPool:
    def __init__(
        self, max_workers: int, command: Callable[[list[str]], list[str]] = worker_command
    ):
        self.max_workers = max_workers
        self.command = command  # tests put a stand-in here
        self.workers: dict[str, Worker] = {}
        self._lock = threading.Lock()

    def live(self) -> dict[str, Worker]:
        with self._lock:
            return {n: w for n, w in self.workers.items() if w.proc.poll() is None}

    def any_ended(self) -> bool:
        with self._lock:
            return any(w.proc.poll() is not None for w in self.workers.values())

    def check_capacity(self, name: str) -> None:
        live = self.live()
        if name in live:
            raise ServiceError(409, f"study {name!r} already has a running worker")
        if len(live) >= self.max_workers:
            raise ServiceError(
                429,
                f"all {self.max_workers} tuning worker(s) are busy (studies: "
                f"{', '.join(sorted(live))}); retry when one finishes, or stop one with "
                "POST /api/studies/NAME/stop",
                headers={"Retry-After": "30"},
            )

    def start(self, name: str, args: list[str], folder: Path) -> Worker:
        """Start a worker; call it from a thread that lives as long as the service (the
        worker's death signal follows the thread that forks it)."""
        self.check_capacity(name)
        log_path = folder / "worker.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                self.command(args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=folder,
                env=child_env(),
            )
        worker = Worker(name=name, proc=proc, log_path=log_path)
        with self._lock:
            self.workers[name] = worker
        return worker

    def signal(self, name: str, *, force: bool) -> Worker | None:
        worker = self.live().get(name)
        if worker is None:
            return None
        worker.stop_requested = True
        worker.proc.send_signal(signal.SIGKILL if force else signal.SIGTERM)
        return worker

    def take_ended(self) -> list[Worker]:
        with self._lock:
            ended = [w for w in self.workers.values() if w.proc.poll() is not None]
            for w in ended:
                del self.workers[w.name]
        return ended

    def stop_all(self, timeout: float) -> None:
        """SIGTERM every worker, wait up to ``timeout`` seconds, then SIGKILL the rest."""
        live = self.live()
        for w in live.values():
            w.shutdown = not w.stop_requested  # a stop asked through the API stays one
            w.stop_requested = True
            w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for w in live.values():
            try:
                w.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait(5)
