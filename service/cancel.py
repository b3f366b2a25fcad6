"""Work that stops when the client that asked for it goes away.

A plan is pure Python (the mask-sharing walks, the planner's loops) and numpy in bounded chunks,
computed in a thread of its own (``CancellableJob``). While it runs, the route polls the
connection (``request.is_disconnected``, which sees uvicorn's ``http.disconnect``); when the
client has gone, the job is interrupted: ``PyThreadState_SetAsyncExc`` raises ``Cancelled`` in
the job's thread at its next bytecode (a numpy call in progress finishes its chunk first). The
exception is only ever delivered inside the job's own ``try`` (a lock orders "cancel" against
"finished"), so it never reaches code that is not the plan's. The thread then ends, its memory
is freed, and the service logs one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
POLL_SECONDS = 0.1  # how often a running job looks at its connection


class Cancelled(Exception):
    """Raised inside a job's thread when its client went away."""


class CancellableJob(Generic[T]):
    """``fn(*args)`` in a thread of its own, interruptible by ``cancel()``."""

    def __init__(
        self, fn: Callable[..., T], *args: Any, on_done: Callable[[], None] | None = None
    ) -> None:
        self._fn, self._args, self._on_done = fn, args, on_done
        self._lock = threading.Lock()
        self._state = "new"  # new -> running -> done | cancelled
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="floss-plan", daemon=True)

    def _run(self) -> None:
        try:
            try:
                with self._lock:
                    if self._state != "new":  # cancelled before it started
                        return
                    self._state = "running"
                result = self._fn(*self._args)
                with self._lock:  # from here on no cancel is sent
                    sent = self._state == "cancelled"
                    if not sent:
                        self._state = "done"
                if sent:  # a cancel sent as fn returned: take its exception here, not later
                    for _ in range(10_000):
                        time.sleep(0.0001)
                self.result = result
            except Cancelled:
                pass
            except BaseException as exc:  # handed to the awaiting route, which raises it
                self.error = exc
        finally:
            self.done.set()
            if self._on_done is not None:
                self._on_done()

    def start(self) -> None:
        self.thread.start()

    def cancel(self) -> bool:
        """Interrupt the job if it still runs; True when it was interrupted."""
        with self._lock:
            if self._state == "new":
                self._state = "cancelled"
                return True
            if self._state != "running" or self.thread.ident is None:
                return False
            self._state = "cancelled"
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self.thread.ident), ctypes.py_object(Cancelled)
            )
            return True

    @property
    def cancelled(self) -> bool:
        return self._state == "cancelled"


async def run_while_connected(
    is_disconnected: Callable[[], Awaitable[bool]],
    fn: Callable[..., T],
    *args: Any,
    on_cancel: Callable[[float], None] | None = None,
) -> T:
    """``fn(*args)`` in its own thread; cancelled (and ``Cancelled`` raised here) as soon as
    ``is_disconnected()`` says the client has gone."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()

    def wake() -> None:  # from the job's thread: answer at once, no polling delay
        def settle() -> None:
            if not finished.done():
                finished.set_result(None)

        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle)

    job: CancellableJob[T] = CancellableJob(fn, *args, on_done=wake)
    start = time.monotonic()
    job.start()
    while True:
        try:
            await asyncio.wait_for(asyncio.shield(finished), POLL_SECONDS)
            break
        except TimeoutError:
            if await is_disconnected() and job.cancel():
                await asyncio.to_thread(job.done.wait, 30.0)
                if on_cancel is not None:
                    on_cancel(time.monotonic() - start)
                raise Cancelled("the client went away") from None
    if job.error is not None:
        raise job.error
    return job.result  # type: ignore[return-value]
