"""Helpers of the tests that run a real `floss serve` process (stdlib HTTP, bounded waits)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(port: int, path: str) -> Any:
    status, body = call(port, "GET", path)
    assert status == 200, body
    return json.loads(body)


def wait_for(check: Any, *, seconds: float, what: str) -> Any:
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
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ")[-1][0] != "Z"  # a zombie has ended
    except OSError:
        return False


def start_service(tmp: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`floss serve` on 127.0.0.1:port, storage and folders in ``tmp``, output to ``log``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("FLOSS_SERVE_TOKEN", None)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "--port", str(port),
             "--storage", f"sqlite:///{tmp / 'studies.db'}", "--data-root", str(tmp / "data"),
             "--work-dir", str(tmp / "work"), "--max-workers", "1", "--log-level", "warning"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            env=env,
        )  # fmt: skip
