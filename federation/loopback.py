"""A Flower deployment on this machine (127.0.0.1): a SuperLink, one SuperNode per client and,
under ``--isolation process``, one long-lived ClientApp process per SuperNode
(``federation.worker``). Started, run and stopped as docs/federation.md's copy-paste block does
it; used by the deployment tests and ``bench/flower_overhead.py``. No flwr import: everything is
a subprocess, and every process started is ended by its PID (its own process group).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ISOLATIONS", "Loopback", "RunResult", "free_port"]

FLOWER_ENV = {
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
}
ISOLATIONS = ("subprocess", "process")  # Flower's SuperExec per message | federation.worker
_REPO = str(Path(__file__).resolve().parents[1])  # where `federation` is importable from


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        raise FileNotFoundError(f"{name} is not installed (pip install 'floss[flower]')")
    return path


@dataclass
class RunResult:
    """One `flwr run --stream`: its status row from `flwr ls --format json`, the wall seconds of
    the command (it returns when the run has ended) and what it printed."""

    run_id: str
    status: dict[str, Any]
    wall_seconds: float
    stream: str

    @property
    def elapsed(self) -> float:
        """The ServerApp's running time, as Flower counts it."""
        return float(self.status.get("elapsed", float("nan")))


@dataclass
class Loopback:
    """``with Loopback(folder, nodes=N, isolation="process") as lb: lb.run(app)``."""

    folder: Path
    nodes: int
    isolation: str = "process"
    fast_waits: bool = False  # SuperNodes via federation.supernode; SuperExec polls 0.1 s
    env: dict[str, str] = field(default_factory=dict)  # added to os.environ and FLOWER_ENV
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    supernodes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {ISOLATIONS}, got {self.isolation!r}.")
        if self.nodes < 1:
            raise ValueError(f"nodes must be at least 1, got {self.nodes!r}.")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.logs = self.folder / "logs"
        self.logs.mkdir(exist_ok=True)
        self.home = self.folder / "flwr-home"
        self.home.mkdir(exist_ok=True)
        self.port = free_port()
        (self.home / "config.toml").write_text(
            '[superlink]\ndefault = "loopback"\n\n[superlink.loopback]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n'
        )
        self._names: dict[int, str] = {}
        path = os.environ.get("PYTHONPATH", "")
        self._env = {
            **os.environ,
            **FLOWER_ENV,
            "FLWR_HOME": str(self.home),
            "PYTHONPATH": os.pathsep.join(p for p in (_REPO, path) if p),
            **({"FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.1"} if self.fast_waits else {}),
            **self.env,
        }

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args,
            env=self._env,
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: ended with its children
        )
        log.close()
        self.procs.append(proc)
        self._names[proc.pid] = name
        return proc

    def start(self) -> None:
        self._start(
            "superlink",
            [_bin("flower-superlink"), "--insecure", "--host", "127.0.0.1",
             "--port", str(self.port), f"--database={self.folder / 'state.db'}"],
        )  # fmt: skip
        for i in range(self.nodes):
            api = free_port()
            launcher = (
                [sys.executable, "-m", "federation.supernode"]
                if self.fast_waits
                else [_bin("flower-supernode")]
            )
            args = [
                *launcher, "--insecure", f"--superlink=127.0.0.1:{self.port}",
                "--host", "127.0.0.1", "--port", str(api),
                "--node-config", f"partition-id={i} num-partitions={self.nodes}",
            ]  # fmt: skip
            if self.isolation == "process":
                args += ["--isolation", "process"]
            node = self._start(f"supernode-{i}", args)
            self.supernodes.append(node)
            if self.isolation == "process":
                worker = [
                    sys.executable, "-m", "federation.worker", "--insecure",
                    "--runtime-api-address", f"127.0.0.1:{api}", "--parent-pid", str(node.pid),
                ]  # fmt: skip
                self.workers.append(self._start(f"worker-{i}", worker))

    def flwr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_bin("flwr"), *args], env=self._env, cwd=self.folder, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 120) -> float:
        """Until the SuperLink answers and every worker has imported its modules; seconds."""
        start = time.monotonic()
        deadline = start + timeout
        while self.flwr("ls", "loopback").returncode != 0:
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the SuperLink did not answer in {timeout:g} s\n{self.tails()}")
            time.sleep(0.5)
        for i in range(len(self.workers)):
            log = self.logs / f"worker-{i}.log"
            while "serving" not in log.read_text(errors="replace"):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"worker {i} did not start in {timeout:g} s\n{self.tails()}")
                time.sleep(0.2)
        return time.monotonic() - start

    def _check_alive(self) -> None:
        dead = [self._names[p.pid] for p in self.procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"ended early: {dead}\n{self.tails()}")

    def run(self, app: Path, *, timeout: float = 300, run_config: str | None = None) -> RunResult:
        """`flwr run APP loopback --stream` (it returns when the run has ended), then its status
        from `flwr ls` (polled every 0.5 s until Flower marks it finished)."""
        start = time.monotonic()
        extra = ["--run-config", run_config] if run_config else []
        res = self.flwr("run", str(app), "loopback", *extra, "--stream", timeout=timeout)
        wall = time.monotonic() - start
        found = re.search(r"started run (\d+)", res.stdout + res.stderr)
        if found is None:
            raise RuntimeError(f"flwr run failed: {res.stdout}{res.stderr}\n{self.tails()}")
        run_id, status = found.group(1), {}
        while time.monotonic() - start < timeout:
            status = self.status(run_id)
            if str(status.get("status", "")).startswith("finished"):
                return RunResult(run_id, status, wall, res.stdout + res.stderr)
            time.sleep(0.5)
        raise TimeoutError(f"run {run_id} not finished in {timeout:g} s: {status}\n{self.tails()}")

    def status(self, run_id: str) -> dict[str, Any]:
        try:
            runs = json.loads(self.flwr("ls", "loopback", "--format", "json").stdout)["runs"]
        except (ValueError, KeyError, TypeError):
            return {}
        return next((r for r in runs if str(r.get("run-id")) == run_id), {})

    def tails(self, chars: int = 2000) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')[-chars:]}"
            for p in sorted(self.logs.iterdir())
        )

    def stop(self) -> None:
        """End every process this started, by its PID and process group: SIGTERM, then
        SIGKILL after 15 s."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def __enter__(self) -> Loopback:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
