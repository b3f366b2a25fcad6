"""Processes a test starts: a free local port, a bounded wait, and ending what it started by
its own handles and PIDs (never by name)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
from collections.abc import Callable, Iterable
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], *, seconds: float, what: str) -> Any:
    """The first truthy value of ``check()``, polled every 0.5 s; a connection refused or an
    HTTP error counts as not yet. Fails naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = check()
        except (OSError, urllib.error.URLError):
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {seconds:g} s")


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def stop(procs: Iterable[subprocess.Popen[Any]], pids: Iterable[int] = ()) -> None:
    """End the processes a test started: each handle still running gets SIGTERM (a service's
    workers stop with it) and SIGKILL after 30 s; each other PID still alive gets SIGKILL."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
