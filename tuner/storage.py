"""Where studies live: any Optuna storage URL, or a journal file path.

* ``sqlite:///floss-tune.db`` (the default, in the working directory), ``postgresql://...``,
  ``mysql+pymysql://...``: Optuna's RDB storage. Its workers beat a heartbeat (every
  ``heartbeat_seconds``), so a trial whose worker was killed is marked failed after three beats
  missed, by any worker still running, and its configuration is tried once more. Server databases
  (``tuner.rdb``) also reconnect after a restart and are checked for reachability at start.
* a path without ``://`` (``tune.journal``, ``/shared/tune.log``): Optuna's journal file storage,
  an append-only log with file locks, safe for many processes on one machine or on a shared file
  system. Optuna's journal storage has no heartbeat: a killed worker's trial stays RUNNING, and is
  not counted as finished.

``study_lock`` serialises "check what the study holds, then enqueue or claim" across the workers
of a study: an exclusive ``fcntl.flock`` on ``<file>.seed-lock`` beside a file storage, a
PostgreSQL advisory lock keyed by the study name on PostgreSQL. MySQL gets no lock (see
docs/tuner.md).
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.settings import TuneError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.study import Study

HEARTBEAT_SECONDS = 30
GRACE_BEATS = 3  # a trial is stale (its worker dead) after this many heartbeats missed
SQLITE_TIMEOUT_SECONDS = 60  # several workers on one SQLite file wait for the write lock


# The pip package of each SQLAlchemy driver a storage URL may name (``scheme+driver://``).
DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]",  # what `pip install 'floss[postgres]'` installs
    "psycopg2": "psycopg2-binary",
    "pg8000": "pg8000",
    "mysqldb": "mysqlclient",  # SQLAlchemy's default for mysql:// and mariadb://
    "pymysql": "pymysql",
    "mysqlconnector": "mysql-connector-python",
    "mariadbconnector": "mariadb",
    "pyodbc": "pyodbc",
    "oracledb": "oracledb",
    "pysqlcipher": "pysqlcipher3",
}


def check_sqlite_url(url: str) -> None:
    """An SQLite URL names its file after three slashes (four for an absolute path):
    ``sqlite://x.db`` (the common typo) would be read as a folder ``sqlite:``."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] != "sqlite" or not rest or rest.startswith("/"):
        return  # not SQLite, in-memory (sqlite://), or sqlite:///FILE
    raise TuneError(
        f"--storage {url!r}: an SQLite URL has three slashes before a file name: "
        f"{scheme}:///{rest} (a file {rest!r} here), or four for an absolute path "
        f"({scheme}:////abs/path/{Path(rest).name})."
    )


def driver_message(url: str, dialect_name: str, driver: str, missing: str) -> str:
    """The one line for a database driver that is not installed: which package, and how."""
    from tuner.rdb import shown

    package = DRIVER_PACKAGES.get(driver, driver)
    line = (
        f"storage {shown(url)!r} needs the {dialect_name} driver {driver} (module {missing}), "
        f"which is not installed: pip install '{package}'"
    )
    scheme = url.split("://", 1)[0]
    if dialect_name == "postgresql" and "+" not in scheme:
        line += " (or install psycopg 3: pip install 'floss[postgres]')"
    elif dialect_name == "postgresql" and driver != "psycopg":
        line += " (or write postgresql+psycopg://... and pip install 'floss[postgres]')"
    elif dialect_name in ("mysql", "mariadb") and driver != "pymysql":
        line += f" (or write {dialect_name}+pymysql://... and pip install pymysql)"
    return line + "."


def storage_kind(url: str) -> str:
    """'rdb' or 'journal'; raises TuneError naming the URL when its scheme is unknown, an
    SQLite URL lacks its third slash, or a server's driver is not installed (the package to
    install named): all before a model loads."""
    if "://" not in url:
        return "journal"
    from tuner.rdb import engine_url, shown

    check_sqlite_url(url)

    try:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    except ImportError:  # pragma: no cover - optuna depends on sqlalchemy
        raise TuneError(f"storage {url!r} needs SQLAlchemy, which is not installed.") from None
    try:
        dialect = make_url(engine_url(url)).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        scheme = url.split("://", 1)[0]
        raise TuneError(
            f"unknown storage scheme {scheme!r} in {shown(url)!r}; use sqlite:///FILE.db, "
            "postgresql://..., mysql://... or a journal file path."
        ) from None
    except ImportError as exc:
        raise TuneError(f"storage {shown(url)!r} needs a database driver: {exc}.") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise TuneError(driver_message(url, dialect.name, dialect.driver, missing)) from None
    return "rdb"


SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


def check_storage_file(url: str) -> None:
    """A study's local storage file can be written (or made), and an existing SQLite file is one:
    checked before a model loads, so a bad --storage fails in a second, with one line."""
    from planner.paths import OutputPathError, check_output_file

    path = storage_file(url)  # the journal or SQLite file; None for a server
    if path is None:
        return
    try:
        check_output_file(path, what="--storage")
    except OutputPathError as exc:
        raise TuneError(str(exc)) from None
    if url.startswith("sqlite") and path.is_file() and path.stat().st_size > 0:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
        if head != SQLITE_HEADER:
            raise TuneError(f"--storage {url!r}: {str(path)!r} is not an SQLite database.")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def open_storage(
    url: str,
    *,
    heartbeat_seconds: int = HEARTBEAT_SECONDS,
    log: Callable[[str], None] = _stderr,
) -> BaseStorage:
    """An Optuna storage for ``url`` (see the module doc); errors name the URL (its password
    masked). ``log`` gets the reconnect lines of a server database."""
    import optuna
    from optuna.storages import RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    from tuner import rdb

    kind = storage_kind(url)
    if kind == "journal":
        path = Path(url).expanduser()
        if path.is_dir():
            raise TuneError(f"journal storage {url!r} is a folder; give a file path.")
        if not path.parent.exists():
            raise TuneError(f"journal storage {url!r}: folder {str(path.parent)!r} does not exist.")
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except Exception as exc:  # an unreadable or garbled journal: optuna raises many types
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TuneError(f"cannot open journal storage {url!r}: {first}") from None
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        db = url.split(":///", 1)[-1]
        if db and db != ":memory:" and not Path(db).expanduser().parent.exists():
            raise TuneError(f"storage {url!r}: folder {str(Path(db).parent)!r} does not exist.")
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_SECONDS}}
    else:
        rdb.check_driver(url)
        # a pooled connection cut by a server restart is replaced on checkout, not used
        engine_kwargs = {"pool_pre_ping": True, "connect_args": rdb.connect_args(url)}
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" since optuna 2.8
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
                heartbeat: dict[str, Any] = {
                    "heartbeat_interval": heartbeat_seconds,
                    "grace_period": GRACE_BEATS * heartbeat_seconds,
                    "heartbeat_stale_trial_callback": retry,
                }
                if rdb.is_server(url):
                    return rdb.ReconnectingRDBStorage(
                        url, log=log, engine_kwargs=engine_kwargs, **heartbeat
                    )
                return RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
        except Exception as exc:  # SQLAlchemy raises many types for a bad database
            # Workers started together race to create the tables and the schema version row
            # ("table ... already exists", "UNIQUE constraint failed: alembic_version"); the
            # loser retries and finds them made.
            if _creation_race(exc) and attempt < 2:
                time.sleep(0.5 * (attempt + 1))
                continue
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TuneError(f"cannot open storage {rdb.shown(url)!r}: {first}") from None
    raise AssertionError("unreachable")  # pragma: no cover


SEED_LOCK_SUFFIX = ".seed-lock"


def storage_file(url: str) -> Path | None:
    """The file behind a SQLite URL or a journal path; None for server databases and
    in-memory SQLite."""
    if "://" not in url:
        return Path(url).expanduser()
    if url.startswith("sqlite"):
        db = url.split(":///", 1)[-1]
        if db and db != ":memory:":
            return Path(db).expanduser()
    return None


CHECKPOINTS_SUFFIX = ".checkpoints"  # beside a storage file: <file>.checkpoints/<study>/
SERVER_CHECKPOINTS = "floss-tune.checkpoints"  # server databases: in the working directory


def trial_checkpoints(url: str, study_name: str) -> Path | None:
    """The folder where the trials of a study keep the checkpoint of an interrupted trial
    (``tuner.objective``), one subfolder per configuration: beside the storage file
    (``floss-tune.db.checkpoints/<study>/``), or for a server database in the working directory
    (``floss-tune.checkpoints/<study>/``: a rerun on another machine trains from round 1).
    None for in-memory SQLite. Nothing is made here: a trial makes it when it is interrupted."""
    path = storage_file(url)
    if path is None:
        if "://" in url and not url.startswith("sqlite"):
            return Path(SERVER_CHECKPOINTS) / study_name
        return None
    return path.with_name(path.name + CHECKPOINTS_SUFFIX) / study_name


@contextmanager
def study_lock(url: str, study_name: str, storage: BaseStorage | None = None) -> Iterator[bool]:
    """Hold the study's lock while the block runs (see the module doc); yields whether one is
    held (not on MySQL, nor where ``fcntl`` is missing, e.g. Windows)."""
    from tuner import rdb

    backend = getattr(storage, "_backend", storage)  # optuna wraps RDB storages in a cache
    if rdb.is_server(url):
        from optuna.storages import RDBStorage

        if not isinstance(backend, RDBStorage):
            yield False
            return
        with rdb.advisory_lock(backend, study_name) as held:
            yield held
        return
    path = storage_file(url)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        path = None
    if path is None:
        yield False
        return
    lock = path.with_name(path.name + SEED_LOCK_SUFFIX)
    with lock.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _creation_race(exc: Exception) -> bool:
    text = str(exc)
    return any(s in text for s in ("already exists", "alembic_version", "database is locked"))


def load_existing_study(storage_url: str, study_name: str) -> Study:
    """A study that must already exist (export, show); names what is there when it does not."""
    import optuna

    local = storage_url.split(":///", 1)[-1] if storage_url.startswith("sqlite") else None
    if storage_kind(storage_url) == "journal":
        local = storage_url
    try:
        missing = (
            local is not None
            and local not in ("", ":memory:")
            and not (Path(local).expanduser().exists())
        )
    except OSError as exc:  # e.g. a name too long: exists() raises
        reason = (exc.strerror or type(exc).__name__).lower()
        raise TuneError(f"storage {storage_url!r} cannot be a file: {reason}.") from None
    if missing:
        raise TuneError(f"no study {study_name!r}: storage file {local!r} does not exist.")
    from tuner.rdb import check_reachable, shown

    check_reachable(storage_url)
    storage = open_storage(storage_url)
    names = [
        s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    ]
    if study_name not in names:
        there = ", ".join(repr(n) for n in names) or "none"
        raise TuneError(
            f"no study {study_name!r} in storage {shown(storage_url)!r} (studies: {there})."
        )
    return optuna.load_study(study_name=study_name, storage=storage)
