"""A throwaway PostgreSQL server for the many-workers tests and bench: ``initdb`` into a fresh
folder, ``pg_ctl start`` on a free port of 127.0.0.1 (trust auth, loopback only), stopped by the
postmaster's PID. Root runs the server as the unprivileged ``postgres`` user.

``start_cluster`` raises ``ClusterUnavailable`` with one line where PostgreSQL cannot be started
(not installed, no unprivileged user, initdb or start failed): the tests skip with that line.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DB_USER = "floss"


class ClusterUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bin_dir() -> Path:
    """The folder of initdb / pg_ctl: PATH first, else Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not versions:
        raise ClusterUnavailable(
            "PostgreSQL is not installed (no initdb; apt-get install postgresql)"
        )
    return Path(versions[-1]).parent


@dataclass
class Cluster:
    root: Path
    port: int
    bindir: Path
    run_as: str | None  # the unprivileged user that owns the data (root only), else None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{database}"

    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return [*prefix, *args]

    def _run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
            raise ClusterUnavailable(f"{Path(args[0]).name} failed: {lines[-1]}")

    def start(self) -> None:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-o", opts, "-w", "-t", "60", "start",
        )  # fmt: skip

    def pid(self) -> int | None:
        """The postmaster's PID (first line of postmaster.pid), None when it is not running."""
        try:
            first = (self.data / "postmaster.pid").read_text().splitlines()[0]
        except (OSError, IndexError):
            return None
        return int(first) if first.strip().isdigit() else None

    def stop(self, timeout: float = 60) -> None:
        """Fast shutdown (SIGINT to the postmaster, by PID): open sessions are cut."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={DB_USER} dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> Cluster:
    """initdb + start on a free loopback port; ClusterUnavailable (one line) when it cannot."""
    bindir = bin_dir()
    run_as = None
    if os.geteuid() == 0:  # the server refuses to run as root
        import pwd

        for user in ("postgres", "nobody"):
            try:
                pwd.getpwnam(user)
            except KeyError:
                continue
            run_as = user
            break
        if run_as is None or shutil.which("runuser") is None:
            raise ClusterUnavailable("running as root with no unprivileged user to run PostgreSQL")
    try:
        root = Path(tempfile.mkdtemp(prefix="floss-pg-"))
    except OSError as exc:
        raise ClusterUnavailable(f"cannot make the server's folder: {exc}") from None
    if run_as:
        import pwd

        entry = pwd.getpwnam(run_as)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(root=root, port=free_port(), bindir=bindir, run_as=run_as)
    try:
        cluster._run(
            str(bindir / "initdb"), "-D", str(cluster.data), "-U", DB_USER,
            "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        cluster.start()
    except (ClusterUnavailable, OSError, subprocess.TimeoutExpired) as exc:
        cluster.remove()
        raise ClusterUnavailable(f"cannot start PostgreSQL: {exc}") from None
    return cluster
