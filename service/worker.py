"""A tuning worker of ``floss serve``: ``floss-tune`` in a child process that ends with its parent.

``python -m service.worker PARENT_PID run --config ... --storage ... --study-name ...`` asks the
kernel (Linux ``prctl(PR_SET_PDEATHSIG)``) to send it SIGTERM when the service dies, even by
``kill -9``, then runs ``tuner.cli`` with the remaining arguments. SIGTERM is an interrupt to
floss-tune: its study keeps every finished trial in the storage, and the service resumes it.
Elsewhere (no prctl) the worker outlives a killed service and finishes its study on its own.
"""

from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the service died before the request took effect
        os._exit(130)


def main() -> None:
    if len(sys.argv) < 2 or not sys.argv[1].isdigit():
        sys.stderr.write("usage: python -m service.worker PARENT_PID floss-tune-arguments...\n")
        sys.exit(2)
    die_with_parent(int(sys.argv[1]))
    sys.argv = ["floss-tune", *sys.argv[2:]]
    from tuner.cli import main as tune_main

    tune_main()


if __name__ == "__main__":
    main()
