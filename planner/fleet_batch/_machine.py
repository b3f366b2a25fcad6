"""How much a fleet plan prices at once: chunk sizes, threads, the allocator."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from planner.fleet import FleetError

CHUNK_ELEMENTS = 1 << 18  # entries per array of one chunk (2 MiB of float64)
HALVES_ELEMENTS = 1 << 21  # memoised client-seconds halves of one pricing (16 MiB)
THREADS_ENV = "FLOSS_PLAN_THREADS"  # chunks priced side by side; unset: ``threads()`` decides


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
KEEP_FREED_BYTES = 64 << 20  # arrays below this come from and return to the heap


def keep_freed_memory() -> bool:
    """Let this process reuse the memory of freed arrays instead of returning it to the system
    (glibc only; False elsewhere). A fleet plan allocates ~2 GB of short-lived chunk arrays in
    turn; by default each above 128 KiB is a fresh mmap, so every page is faulted in again:
    110,000 minor faults, a quarter second of system time for the default grid (measured). For
    a short-lived process such as floss-plan; a long-running service keeps the default."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None or "libc.so" not in name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, KEEP_FREED_BYTES) == 1
    return mallopt(M_TRIM_THRESHOLD, 4 * KEEP_FREED_BYTES) == 1 and ok


def side_by_side(work: Callable[[int], None], starts: Sequence[int], workers: int) -> None:
    """``work(start)`` for each start, on ``workers`` threads when there are several (numpy
    releases the GIL; each start writes its own results, so they do not depend on it)."""
    if workers > 1 and len(starts) > 1:
        from concurrent.futures import ThreadPoolExecutor  # imported only when used

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(work, starts))
    else:
        for start in starts:
            work(start)


def threads() -> int:
    """Chunks priced side by side (numpy releases the GIL; each chunk's numbers are its own, so
    the results do not depend on it): ``$FLOSS_PLAN_THREADS``, else 2 when a core is idle (the
    1-minute load average at most the cores less one), else 1 (a busy machine: two threads
    measured slower than one)."""
    given = os.environ.get(THREADS_ENV)
    if given is not None:
        try:
            return max(1, int(given))
        except ValueError:
            raise FleetError(f"{THREADS_ENV} must be an integer, but got {given!r}.") from None
    cores = os.cpu_count() or 1
    try:
        idle = os.getloadavg()[0] <= cores - 1
    except OSError:  # no load average on this system
        idle = False
    return 2 if cores >= 2 and idle else 1
