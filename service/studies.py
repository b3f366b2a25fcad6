"""Tuning studies behind the service: the Optuna storage holds them, worker processes run them.

Nothing lives only in the service's memory. A study is created in the storage when it is
submitted, with the request beside it (study user attribute ``floss_serve``), so after any
restart (also ``kill -9`` of the service or of a worker) the service lists every study from the
storage, derives its state from its trials, and can start a worker again from the stored
request; floss-tune's resume keeps every finished trial and retries interrupted ones. A trial
left RUNNING by a process that is gone (a worker killed with -9, a machine restart) is failed at
start and retried on resume (``tuner.orphans``); with ``--resume-unfinished`` the service starts
a worker on each unfinished study itself. A duplicate trial (a configuration that already ran)
counts for nothing towards the target.

Workers are ``floss-tune run`` processes (``service.worker``), at most ``max_workers`` at once,
started from the event loop's thread (their death signal is tied to the thread that forks them)
and reaped by a background task that writes each exit into the storage (``floss_serve_exit``).

A study's state and summary are read in ``service.study_state``, a request is checked (and
turned into floss-tune run's arguments) in ``service.study_requests``, and a study's plot and
export are made in ``service.study_files``; this module is the registry and the workers' life.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service import study_files, study_state
from service.config import ServeConfig
from service.errors import FieldError, ServiceError
from service.schemas import StudyRequest
from service.study_requests import checked_request, cli_args
from service.study_state import ATTR_EXIT, ATTR_SERVE, log_tail
from service.workers import Worker, WorkerPool, error_line, tail

if TYPE_CHECKING:
    import optuna

EXIT_INTERRUPTED = 130


def absolute_storage(url: str) -> str:
    """The same storage with its file made absolute: workers run in another folder."""
    if "://" not in url:
        return str(Path(url).expanduser().resolve())
    if url.startswith("sqlite:///"):
        db = url.removeprefix("sqlite:///")
        if db and db != ":memory:" and not Path(db).is_absolute():
            return "sqlite:///" + str(Path(db).expanduser().resolve())
    return url


class StudyManager:
    """The service's studies: the storage they live in and the worker processes on them."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.storage_url = absolute_storage(config.storage)
        self.data_root = config.data_root_resolved
        if config.work_dir is not None:
            self.work_dir = config.work_dir
            self.work_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.work_dir = Path(tempfile.mkdtemp(prefix="floss-serve-"))
        self.pool = WorkerPool(config.max_workers)
        self._storage: Any = None

    # storage ---------------------------------------------------------------------------------
    def storage(self) -> Any:
        if self._storage is None:
            from tuner.storage import open_storage

            self._storage = open_storage(self.storage_url)
        return self._storage

    def check_storage(self) -> None:
        """Refuse a storage that cannot be opened before the service starts listening."""
        from tuner.storage import storage_kind

        storage_kind(self.storage_url)
        self.storage()

    def names(self) -> list[str]:
        import optuna

        summaries = optuna.get_all_study_summaries(self.storage(), include_best_trial=False)
        return sorted(s.study_name for s in summaries)

    def load(self, name: str) -> optuna.Study:
        import optuna

        try:
            return optuna.load_study(study_name=name, storage=self.storage())
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise ServiceError(404, f"no study {name!r} (studies: {known})") from None

    # requests --------------------------------------------------------------------------------
    def checked_request(self, req: StudyRequest) -> tuple[StudyRequest, Any, str]:
        """(the request with its paths resolved, its RunConfig, the study direction)."""
        return checked_request(req, storage_url=self.storage_url)

    def cli_args(self, req: StudyRequest, config_file: Path) -> list[str]:
        """floss-tune run's arguments for a request, flag for field."""
        return cli_args(req, config_file, storage_url=self.storage_url)

    # workers ---------------------------------------------------------------------------------
    def live_workers(self) -> dict[str, Worker]:
        return self.pool.live()

    def prepare_submit(self, req: StudyRequest) -> StudyRequest:
        """Check everything and create the study in the storage (runs in a worker thread)."""
        import optuna

        checked, _config, direction = self.checked_request(req)
        self.pool.check_capacity(req.name)
        if req.name in self.names():
            raise ServiceError(
                409,
                f"a study named {req.name!r} is already in the storage: resume it "
                f"(POST /api/studies/{req.name}/resume) or pick another name",
            )
        study = optuna.create_study(
            storage=self.storage(),
            study_name=req.name,
            direction=direction,  # type: ignore[arg-type]
        )
        study.set_user_attr(
            ATTR_SERVE, {"request": checked.model_dump(mode="json"), "submitted": time.time()}
        )
        return checked

    def prepare_resume(self, name: str) -> StudyRequest:
        study = self.load(name)
        stored = study.user_attrs.get(ATTR_SERVE)
        if not stored:
            raise ServiceError(
                409,
                f"study {name!r} was made by floss-tune outside this service; resume it with "
                "`floss-tune run` and the same flags",
            )
        req = StudyRequest.model_validate(stored["request"])
        checked, _config, _direction = self.checked_request(req)
        self.pool.check_capacity(name)
        counts, target = study_state.counts(study), study_state.target(study) or req.n_trials
        if counts["finished"] >= target:
            raise ServiceError(
                409, f"study {name!r} is finished ({counts['finished']}/{target} trials)"
            )
        if ATTR_EXIT in study.user_attrs:
            study.set_user_attr(ATTR_EXIT, None)
        return checked

    def spawn(self, req: StudyRequest) -> Worker:
        """Start the worker; call this from the event loop's thread (see the module doc)."""
        import json

        folder = self.work_dir / req.name
        folder.mkdir(parents=True, exist_ok=True)
        config_file = folder / "base.json"
        config_file.write_text(json.dumps(req.base, indent=2, sort_keys=True), encoding="utf-8")
        return self.pool.start(req.name, self.cli_args(req, config_file), folder)

    def stop(self, name: str, *, force: bool) -> dict[str, Any]:
        worker = self.pool.signal(name, force=force)
        if worker is None:
            self.load(name)  # 404 for an unknown study
            raise ServiceError(409, f"study {name!r} has no running worker to stop")
        return {"name": name, "pid": worker.proc.pid, "signal": "SIGKILL" if force else "SIGTERM"}

    def reap(self) -> list[str]:
        """Record in the storage how each ended worker ended; returns their studies."""
        ended = self.pool.take_ended()
        for w in ended:
            code = w.proc.returncode
            quiet = code in (0, EXIT_INTERRUPTED) or w.stop_requested
            record = {
                "code": code,
                "at": time.time(),
                "stopped": w.stop_requested and not w.shutdown,
                "shutdown": w.shutdown,
                "error": None if quiet else error_line(tail(w.log_path)),
            }
            with contextlib.suppress(ServiceError):  # the study was deleted meanwhile
                self.load(w.name).set_user_attr(ATTR_EXIT, record)
        return [w.name for w in ended]

    def recover(self, *, resume: bool, log: Callable[[str], None]) -> None:
        """At start: in every study, fail the trials left RUNNING by a process that is gone
        (``tuner.orphans``; a resumed worker enqueues them again); with ``resume``, start a
        worker on each ``unfinished`` study of this service, oldest first, while workers are
        free (the rest stay unfinished, listed and resumable). Call from the event loop's
        thread, with the data root in force (a stored request is checked again)."""
        from pydantic import ValidationError

        from service.errors import validation_entries
        from tuner.orphans import fail_orphans

        for name in self.names():
            try:
                failed = fail_orphans(self.load(name))
            except Exception as exc:  # one unreadable study must not keep the service down
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                log(f"study {name!r}: its running trials could not be checked: {first}")
                continue
            if failed:
                log(
                    f"study {name!r}: trial(s) {', '.join(map(str, failed))} were left running "
                    "by a process that is gone; marked failed, retried when the study resumes"
                )
        if not resume:
            return
        pending = sorted(
            (s for s in self.list() if s["state"] == "unfinished"),
            key=lambda s: s.get("submitted") or 0.0,
        )
        for s in pending:
            name = s["name"]
            try:
                worker = self.spawn(self.prepare_resume(name))
            except ServiceError as exc:
                log(f"study {name!r} left unfinished: {exc.message}")
                continue
            except FieldError as exc:
                log(f"study {name!r} left unfinished: {exc.field}: {exc.message}")
                continue
            except ValidationError as exc:
                entry = validation_entries(exc.errors())[0]
                log(f"study {name!r} left unfinished: {entry['field']}: {entry['message']}")
                continue
            done = s["progress"]
            log(
                f"study {name!r} resumed ({done['finished']}/{done['target']} trials finished): "
                f"worker pid {worker.proc.pid}"
            )

    def shutdown(self, timeout: float = 10.0) -> None:
        """Interrupt every worker (they keep their finished trials) and wait a little."""
        self.pool.stop_all(timeout)
        self.reap()

    # reading ---------------------------------------------------------------------------------
    def _log_path(self, name: str) -> Path:
        """The log of the study's live worker, or of its last one."""
        worker = self.live_workers().get(name)
        return worker.log_path if worker else self.work_dir / name / "worker.log"

    def summary(self, study: optuna.Study, *, trials: bool = False) -> dict[str, Any]:
        name = study.study_name
        worker = self.live_workers().get(name)
        return study_state.summary(
            study, worker=worker, log_path=self._log_path(name), trials=trials
        )

    def list(self, *, trials: bool = False) -> list[dict[str, Any]]:
        """Every study's summary (``trials``: with its trial rows, for the page)."""
        return [self.summary(self.load(n), trials=trials) for n in self.names()]

    def show(self, name: str) -> dict[str, Any]:
        from tuner.report import recommended_full_config, trial_rows

        study = self.load(name)
        out = self.summary(study)
        out["trials"] = [r.to_dict() for r in trial_rows(study)]
        out["recommended_config"] = recommended_full_config(study)
        out["request"] = (study.user_attrs.get(ATTR_SERVE) or {}).get("request")
        out["log_tail"] = log_tail(self._log_path(name))
        return out

    def recommended_candidate(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(candidate, full run config) of a study's recommended trial."""
        return study_files.recommended_candidate(self.load(name))

    def plot_png(self, name: str) -> bytes:
        return study_files.plot_png(self.load(name))

    def export_zip(self, name: str) -> bytes:
        """floss-tune export in a child process (it loads peft), zipped."""
        self.load(name)
        return study_files.export_zip(
            name,
            storage_url=self.storage_url,
            work_dir=self.work_dir,
            timeout_seconds=self.config.export_timeout_seconds,
        )
