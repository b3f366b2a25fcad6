"""A real ``floss serve`` process for the tests (stdlib HTTP, bounded waits) and the tiny study
they submit to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.processes import free_port, stop, wait_for
from support.task import TINY_STUDY_BASE

ROOT = Path(__file__).resolve().parents[2]

# The tiny study the service tests submit (its data: support.task.write_study_task).
TINY_STUDY: dict[str, Any] = {
    "name": "tiny",
    "base": TINY_STUDY_BASE,
    "budget": "50-dense-rounds",
    "budget_scale": 0.06,
    "ranks": "2,4",
    "d_down": "1,1/4",
    "d_up": "1,1/16",
    "n_trials": 2,
    "levels": 1,
    "pruner": "none",
    "seed": 0,
}


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    """One HTTP request to the service on 127.0.0.1:port: (status, body), errors included."""
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


def start_service(tmp: Path, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`floss serve` on 127.0.0.1:port, storage and folders in ``tmp`` (``tmp/data`` made if
    missing), output to ``log``; ``extra`` flags replace the defaults of the same name (an
    option is given once)."""
    (tmp / "data").mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("FLOSS_SERVE_TOKEN", None)
    defaults = {
        "--storage": f"sqlite:///{tmp / 'studies.db'}",
        "--data-root": str(tmp / "data"),
        "--work-dir": str(tmp / "work"),
        "--max-workers": "1",
        "--log-level": "warning",
    }
    for flag in extra:
        defaults.pop(flag, None)
    args = [x for pair in defaults.items() for x in pair]
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "--port", str(port), *args, *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            env=env,
        )


@dataclass(frozen=True)
class Served:
    """A running `floss serve`: its port, process and log."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """End it (its workers stop with it) and put its log's tail on stderr."""
        stop([self.proc])
        show_tail(self.log)


def serve(tmp: Path, *extra: str) -> Served:
    """A `floss serve` (start_service on a free port, log in ``tmp/service.log``) that answers
    /api/health; the caller ends it with ``.stop()`` (here when it never answers)."""
    port = free_port()
    log = tmp / "service.log"
    served = Served(port=port, proc=start_service(tmp, port, log, *extra), log=log)
    try:
        wait_for(lambda: get_json(port, "/api/health"), seconds=90, what="service up")
    except BaseException:
        served.stop()
        raise
    return served


def show_tail(*logs: Path, chars: int = 4000) -> None:
    """The last ``chars`` of each log that exists, on stderr (pytest shows it on a failure)."""
    for path in logs:
        if path.exists():
            sys.stderr.write(f"== {path}\n{path.read_text(errors='replace')[-chars:]}\n")
