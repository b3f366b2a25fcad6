"""One torch thread while a test trains in process: on a shared 2-core CPU, torch's intra-op
threads spin against other processes and run ~30x slower than one thread (the subprocesses
the tests start get OMP_NUM_THREADS=1 for the same reason)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch.set_num_threads(1) inside, the previous count restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
