"""Server databases behind a study (PostgreSQL; MySQL opens but gets no lock): the driver, a
reachability check before anything loads, a per-study lock, and reconnection.

* ``postgresql://`` means psycopg (3) when psycopg2 is not installed (SQLAlchemy's default
  driver for that scheme is psycopg2); ``pip install 'floss[postgres]'`` installs psycopg.
* ``check_reachable``: a worker that cannot reach its database says so in one line before any
  model loads.
* ``advisory_lock``: a PostgreSQL session advisory lock keyed by the study name, so "check what
  the study holds, then enqueue or claim" is one step across machines. The server drops it when
  the holder's connection ends, so a killed worker never leaves it held.
* ``ReconnectingRDBStorage``: a server restart cuts every open connection. Each storage call
  that fails for a lost connection is retried (connections are pinged on checkout, so a retry
  gets a fresh one) for up to ``RECONNECT_SECONDS``; the worker logs one line when the
  connection is lost and one when it is back, and raises ``DatabaseLost`` when it stays away.
  A write whose commit reached the server but whose answer was lost with the connection is
  retried too: for a new trial that leaves one extra RUNNING trial without a heartbeat.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from optuna.storages import RDBStorage

from tuner.settings import TuneError

RECONNECT_SECONDS = 60.0  # how long a worker keeps retrying a lost database before it stops
RETRY_PAUSE_SECONDS = 0.5
CONNECT_TIMEOUT_SECONDS = 10

T = TypeVar("T")


class DatabaseLost(TuneError):
    """The database stayed unreachable for longer than the reconnect window, mid-study."""


def is_server(url: str) -> bool:
    """A database server URL (not SQLite, not a journal file path)."""
    return "://" in url and not url.startswith("sqlite")


def shown(url: str) -> str:
    """The URL for messages and logs: its password masked."""
    if not is_server(url):
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has no password we could find
        return url


def engine_url(url: str) -> str:
    """``postgresql://`` with psycopg when psycopg2 is missing; every other URL as given."""
    scheme, sep, rest = url.partition("://")
    if (
        sep
        and scheme == "postgresql"
        and importlib.util.find_spec("psycopg2") is None
        and importlib.util.find_spec("psycopg") is not None
    ):
        return f"postgresql+psycopg://{rest}"
    return url


def check_driver(url: str) -> None:
    """The URL's database driver imports; names the package to install when it does not."""
    from sqlalchemy.engine import make_url

    dialect = make_url(engine_url(url)).get_dialect()
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        hint = (
            "pip install 'floss[postgres]' (psycopg)"
            if dialect.name == "postgresql"
            else f"install the {dialect.name} driver"
        )
        raise TuneError(
            f"storage {shown(url)!r} needs a database driver that is not installed ({exc}): {hint}."
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect_args(url: str) -> dict[str, Any]:
    if engine_url(url).startswith(("postgresql", "mysql")):
        return {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return {}


def check_reachable(url: str) -> None:
    """Connect once (``CONNECT_TIMEOUT_SECONDS`` at most); one line naming the URL if not."""
    if not is_server(url):
        return
    check_driver(url)
    import sqlalchemy

    engine = sqlalchemy.create_engine(
        engine_url(url), connect_args=connect_args(url), poolclass=sqlalchemy.pool.NullPool
    )
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:  # the driver's own error types, many of them
        raise TuneError(f"cannot reach the database {shown(url)!r}: {_first_line(exc)}") from None
    finally:
        engine.dispose()


def lock_key(study_name: str) -> int:
    """A signed 64-bit advisory-lock key for a study (stable across machines and versions)."""
    digest = hashlib.blake2b(f"floss-tune/{study_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def transient(exc: BaseException) -> bool:
    """A lost or refused connection (anywhere in the cause chain), not a bad query."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, (OperationalError, InterfaceError)):
            return True
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# RDBStorage's calls that talk to the database: the public ones and the private ones Optuna's
# cache in front of it (``_CachedStorage``) calls directly
RETRIED = (
    "_create_new_trial", "_set_trial_param", "_get_best_trial_id", "_get_trials",
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
    "get_study_user_attrs", "get_study_system_attrs", "get_trial_user_attrs",
    "get_trial_system_attrs", "get_all_studies", "create_new_trial", "set_trial_param",
    "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value",
    "set_trial_user_attr", "set_trial_system_attr", "get_trial_id_from_study_id_trial_number",
    "get_trial", "get_all_trials", "get_best_trial", "record_heartbeat", "_get_stale_trial_ids",
)  # fmt: skip


class ReconnectingRDBStorage(RDBStorage):
    """Optuna's RDB storage that rides out a database restart (see the module doc)."""

    def __init__(
        self,
        url: str,
        *,
        log: Callable[[str], None],
        reconnect_seconds: float | None = None,  # None: RECONNECT_SECONDS
        **kwargs: Any,
    ) -> None:
        self.log = log
        self.reconnect_seconds = (
            RECONNECT_SECONDS if reconnect_seconds is None else reconnect_seconds
        )
        self.shown_url = shown(url)
        self._outage_since: float | None = None
        self._back_at = -float("inf")  # when the last outage ended (monotonic seconds)
        self._outage_lock = threading.Lock()
        self.round_trips = 0  # statements and commits sent (bench: round trips per trial)
        super().__init__(engine_url(url), **kwargs)
        self._count_round_trips()

    def connected_for(self) -> float:
        """Seconds since the last outage ended (inf if none): during an outage no worker could
        beat, so no trial's heartbeat says anything until a grace period has passed again."""
        if self._outage_since is not None:
            return 0.0
        return time.monotonic() - self._back_at

    def _count_round_trips(self) -> None:
        from sqlalchemy import event

        def count(*_args: Any, **_kwargs: Any) -> None:
            self.round_trips += 1

        event.listen(self.engine, "before_cursor_execute", count)
        event.listen(self.engine, "commit", count)

    def retry(self, call: Callable[[], T]) -> T:
        """``call()``, again after a pause while the connection is lost, up to the window."""
        while True:
            try:
                result = call()
            except Exception as exc:
                if not transient(exc):
                    raise
                now = time.monotonic()
                with self._outage_lock:
                    if self._outage_since is None:
                        self._outage_since = now
                        self.log(
                            f"database {self.shown_url} unreachable ({_first_line(exc)}); "
                            f"reconnecting for up to {self.reconnect_seconds:g} s"
                        )
                    since = self._outage_since
                if now - since > self.reconnect_seconds:
                    raise DatabaseLost(
                        f"lost the database {self.shown_url!r} for over "
                        f"{self.reconnect_seconds:g} s: {_first_line(exc)}"
                    ) from None
                time.sleep(RETRY_PAUSE_SECONDS)
                continue
            if self._outage_since is not None:
                with self._outage_lock:
                    if self._outage_since is not None:
                        self._back_at = time.monotonic()
                        took = self._back_at - self._outage_since
                        self._outage_since = None
                        self.log(f"database {self.shown_url} reconnected after {took:.1f} s")
            return result


def _retrying(name: str) -> Callable[..., Any]:
    method = getattr(RDBStorage, name)

    @functools.wraps(method)
    def call(self: ReconnectingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return self.retry(lambda: method(self, *args, **kwargs))

    return call


for _name in RETRIED:
    setattr(ReconnectingRDBStorage, _name, _retrying(_name))


@contextmanager
def advisory_lock(storage: RDBStorage, study_name: str) -> Iterator[bool]:
    """Hold PostgreSQL's session advisory lock for ``study_name`` while the block runs; yields
    False (no lock) on other servers."""
    import sqlalchemy

    if storage.engine.dialect.name != "postgresql":
        yield False
        return
    key = lock_key(study_name)

    def acquire() -> sqlalchemy.engine.Connection:
        conn = storage.engine.connect()
        try:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()  # end the implicit transaction; the session lock stays held
        except BaseException:
            with suppress(Exception):
                conn.invalidate()
                conn.close()
            raise
        return conn

    retry = getattr(storage, "retry", None)
    conn = retry(acquire) if retry is not None else acquire()
    try:
        yield True
    finally:
        try:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
        except Exception:  # the connection died with the server: the lock died with it
            with suppress(Exception):
                conn.invalidate()
        finally:
            with suppress(Exception):
                conn.close()
