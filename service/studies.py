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

States: ``running`` / ``stopping`` (a worker of this service is on it), ``finished`` (the target
of finished trials is reached), ``stopped`` (stopped through the API), ``failed`` (the worker
ended with an error, kept in the answer), ``unfinished`` (no worker: killed, timed out, the
service stopped or restarted; resumable, and resumed at start with ``--resume-unfinished``),
``external`` (made by floss-tune outside the service: listed and shown, not resumed here).
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.config import ServeConfig
from service.errors import FieldError, ServiceError
from service.paths import looks_like_path
from service.schemas import StudyRequest
from service.workers import Worker, WorkerPool, child_env, error_line, tail

if TYPE_CHECKING:
    import optuna

ATTR_SERVE = "floss_serve"  # {"request": ..., "submitted": epoch seconds}
ATTR_EXIT = "floss_serve_exit"  # {"code", "at", "stopped", "error"} of the last worker
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


# floss-tune's fleet flags and the request fields they are
_FLEET_FLAGS = (
    ("--methods", "methods"),
    ("--round-policies", "round_policies"),
    ("--density-policies", "density_policies"),
    ("--deadlines", "deadlines"),
    ("--tier-densities", "base.tier_densities"),
    ("tier densities", "base.tier_densities"),
    ("tiered densities", "base.tier_densities"),
    ("--deadline", "base.deadline_seconds"),
    ("density grid", "base.density_grid"),
    ("over-selection", "base.over_selection"),
)


def check_fleet_search(req: StudyRequest, config: Any) -> None:
    """What floss-tune run checks of a fleet search before its first trial, checked at submit:
    the policy lists need base.fleet, deadline rounds and bandwidth densities need a deadline
    (``deadlines``, or base.deadline_seconds), tiered needs every tier's densities, the fleet
    file must parse. A FieldError naming the field; never a study that fails later."""
    from tuner.runner import PlanArgs, fleet_setup_for

    def names(text: object) -> tuple[str, ...]:  # normalised to comma text as it was read
        return () if text is None else tuple(str(text).split(","))

    try:
        args = PlanArgs(
            methods=tuple(p.strip() for p in str(req.methods).split(",") if p.strip()),
            round_policies=names(req.round_policies),
            density_policies=names(req.density_policies),
            deadlines=tuple(float(d) for d in names(req.deadlines)),
        )
        fleet_setup_for(config, args.method_grid(config))
    except ValueError as exc:  # TuneError, FleetError, TrainerError
        message = str(exc)
        field = "base.fleet"
        for flag, name in _FLEET_FLAGS:
            if flag in message:
                field = name
                break
        if "need a fleet" in message:  # a policy list without base.fleet
            given = [f for f in ("round_policies", "density_policies", "deadlines")
                     if getattr(req, f) is not None]  # fmt: skip
            field = given[0] if given else "base.fleet"
        elif "need a deadline" in message and req.deadlines is None:
            searched = req.round_policies is not None or req.density_policies is not None
            field = "deadlines" if searched else "base.deadline_seconds"
        elif "needs both round and density policies" in message:
            field = "density_policies" if req.density_policies is None else "round_policies"
        raise FieldError(field, message) from None


class StudyManager:
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
        from trainer.config import RunConfig
        from tuner.runner import PlanArgs, metric_for
        from tuner.settings import METRIC_DIRECTION, TuneSettings

        base = dict(req.base)  # its paths were confined and parsed as the request was read
        network = base.get("network")
        if isinstance(network, str) and not looks_like_path(network):
            from service.plans import check_profile_name

            check_profile_name(network, kind="network", field="base.network")
        try:
            config = RunConfig.from_dict(base)
        except ValueError as exc:
            raise FieldError("base", str(exc)) from None
        try:
            metric = metric_for(config, req.metric)
            TuneSettings(
                storage=self.storage_url,
                study_name=req.name,
                n_trials=req.n_trials,
                budget_scale=req.budget_scale,
                levels=req.levels,
                search=req.search,  # type: ignore[arg-type]
                pruner=req.pruner,  # type: ignore[arg-type]
                sampler=req.sampler,  # type: ignore[arg-type]
                seed=req.seed,
                timeout_seconds=req.timeout,
                max_client_steps=req.max_client_steps,
                trial_clients_per_round=req.trial_clients_per_round,
                metric=metric,
            )
            PlanArgs(max_rounds=req.max_rounds, min_rounds=req.min_rounds)
        except ValueError as exc:
            from service.errors import field_of_message

            raise FieldError(field_of_message(str(exc), "metric"), str(exc)) from None
        if req.max_rounds is not None and req.max_rounds < req.min_rounds:
            raise FieldError(
                "max_rounds",
                f"max_rounds ({req.max_rounds}) must be at least min_rounds ({req.min_rounds})",
            )
        check_fleet_search(req, config)
        return req.model_copy(update={"base": base}), config, METRIC_DIRECTION[metric]

    def cli_args(self, req: StudyRequest, config_file: Path) -> list[str]:
        """floss-tune run's arguments for a request, flag for field."""
        args = [
            "run",
            "--config", str(config_file),
            "--budget", req.budget,
            "--n-trials", str(req.n_trials),
            "--budget-scale", repr(req.budget_scale),
            "--ranks", str(req.ranks),
            "--d-down", str(req.d_down),
            "--d-up", str(req.d_up),
            "--ref-rank", str(req.ref_rank),
            "--min-rounds", str(req.min_rounds),
            "--methods", str(req.methods),
            "--topk", str(req.topk),
            "--levels", str(req.levels),
            "--search", req.search,
            "--pruner", req.pruner,
            "--sampler", req.sampler,
            "--tune-lr" if req.tune_lr else "--no-tune-lr",
            "--seeds" if req.seeds else "--no-seeds",
            "--storage", self.storage_url,
            "--study-name", req.name,
        ]  # fmt: skip
        for flag, value in (
            ("--max-rounds", req.max_rounds),
            ("--metric", req.metric),
            ("--seed", req.seed),
            ("--max-client-steps", req.max_client_steps),
            ("--trial-clients-per-round", req.trial_clients_per_round),
            ("--timeout", req.timeout),
            ("--round-policies", req.round_policies),
            ("--density-policies", req.density_policies),
            ("--deadlines", req.deadlines),
        ):
            if value is not None:
                args += [flag, str(value)]
        return args

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
        counts, target = self.counts(study), self.target(study) or req.n_trials
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
    @staticmethod
    def counts(study: optuna.Study) -> dict[str, int]:
        """Trials by state; ``finished`` counts towards the target: complete or pruned, not a
        duplicate of an earlier trial (``duplicates`` are those, listed apart)."""
        from collections import Counter

        from tuner.objective import counts_towards_target

        trials = study.get_trials(deepcopy=False)
        states = Counter(t.state.name for t in trials)
        finished = sum(counts_towards_target(t) for t in trials)
        interrupted = sum(t.state.name == "FAIL" and t.user_attrs.get("end") == "interrupted"
                          for t in trials)  # fmt: skip
        return {
            "complete": states["COMPLETE"],
            "pruned": states["PRUNED"],
            "running": states["RUNNING"],
            "failed": states["FAIL"],
            "interrupted": interrupted,
            "waiting": states["WAITING"],
            "finished": finished,
            "duplicates": states["COMPLETE"] + states["PRUNED"] - finished,
        }

    @staticmethod
    def target(study: optuna.Study) -> int | None:
        """The finished trials the study runs to: the request's n_trials, or fewer when the
        worker found the search space smaller (``floss_target``)."""
        from tuner.study import ATTR_TARGET

        request = (study.user_attrs.get(ATTR_SERVE) or {}).get("request") or {}
        wanted = request.get("n_trials")
        found = study.user_attrs.get(ATTR_TARGET)
        if wanted is None or found is None:
            return wanted if wanted is not None else None
        return min(int(wanted), int(found))

    def summary(self, study: optuna.Study, *, trials: bool = False) -> dict[str, Any]:
        from tuner.report import recommendation_line, trial_rows

        name = study.study_name
        attrs = study.user_attrs
        serve = attrs.get(ATTR_SERVE) or {}
        target = self.target(study)
        counts = self.counts(study)
        worker = self.live_workers().get(name)
        last_exit = attrs.get(ATTR_EXIT)
        if worker is not None:
            state = "stopping" if worker.stop_requested else "running"
        elif target is not None and counts["finished"] >= target:
            state = "finished"
        elif not serve:
            state = "external"
        elif last_exit and last_exit.get("stopped"):
            state = "stopped"
        elif last_exit and last_exit.get("error"):
            state = "failed"
        else:
            state = "unfinished"
        rows = trial_rows(study)
        best = next((r for r in rows if r.recommended), None)
        current = [
            {
                "trial": r.trial,
                "method": r.method,
                "rank": r.rank,
                "d_down": r.d_down,
                "d_up": r.d_up,
                "last_step": r.last_step,  # its last fidelity checkpoint (None: none yet)
                "rounds": r.rounds,
            }
            for r in rows
            if r.state == "RUNNING"
        ]
        return {
            "name": name,
            "state": state,
            "direction": study.direction.name.lower(),
            "metric": (attrs.get("floss_space") or {}).get("metric"),
            "progress": {
                **counts,
                "target": target,
                "fraction": None if not target else min(1.0, counts["finished"] / target),
            },
            "recommendation": None
            if best is None
            else {"trial": best.trial, "line": recommendation_line(study), **best.to_dict()},
            "current": current,  # the trials running now
            "log_last": self._log_last(name) if worker is not None else None,
            "plottable": any(r.state in ("COMPLETE", "PRUNED") for r in rows),
            "error": (last_exit or {}).get("error"),
            "worker": None
            if worker is None
            else {"pid": worker.proc.pid, "started": worker.started},
            "submitted": serve.get("submitted"),
            "resumable": state in ("unfinished", "stopped", "failed"),
            **({"trials": [r.to_dict() for r in rows]} if trials else {}),
        }

    def _log_last(self, name: str) -> str | None:
        """The worker's last log line (floss-tune's progress), for a live view."""
        worker = self.live_workers().get(name)
        path = worker.log_path if worker else self.work_dir / name / "worker.log"
        lines = tail(path) if path.exists() else []
        return lines[-1][:300] if lines else None

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
        worker = self.live_workers().get(name)
        log_path = worker.log_path if worker else self.work_dir / name / "worker.log"
        out["log_tail"] = tail(log_path) if log_path.exists() else []
        return out

    def recommended_candidate(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(candidate, full run config) of a study's recommended trial."""
        from tuner.report import best_trial

        study = self.load(name)
        trial = best_trial(study)
        if trial is None:
            raise ServiceError(409, f"study {name!r} has no recommendation yet")
        return dict(trial.user_attrs["candidate"]), dict(trial.user_attrs["full_config"])

    def plot_png(self, name: str) -> bytes:
        from tuner.export import plot_pareto
        from tuner.report import study_metric, trial_rows

        study = self.load(name)
        rows = trial_rows(study)
        if not any(r.state in ("COMPLETE", "PRUNED") for r in rows):
            raise ServiceError(409, f"study {name!r} has no finished trial to plot yet")
        with tempfile.TemporaryDirectory(prefix="floss-plot-") as tmp:
            path = Path(tmp) / "pareto.png"
            plot_pareto(
                rows,
                metric=study_metric(study),
                maximize=study.direction.name == "MAXIMIZE",
                path=path,
            )
            return path.read_bytes()

    def export_zip(self, name: str) -> bytes:
        """floss-tune export in a child process (it loads peft), zipped."""
        self.load(name)
        with tempfile.TemporaryDirectory(prefix="floss-export-", dir=self.work_dir) as tmp:
            out = Path(tmp) / name
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "tuner.cli", "export", str(out),
                     "--storage", self.storage_url, "--study-name", name],
                    capture_output=True,
                    timeout=self.config.export_timeout_seconds,
                    cwd=tmp,
                    env=child_env(),
                    check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                raise ServiceError(
                    504, f"export of {name!r} took over {self.config.export_timeout_seconds:g} s"
                ) from None
            if done.returncode != 0:
                lines = done.stderr.decode("utf-8", "replace").splitlines()
                raise ServiceError(409, f"cannot export {name!r}: {error_line(lines)}")
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(out.rglob("*")):
                    if path.is_file():
                        zf.write(path, str(Path(name) / path.relative_to(out)))
            return buf.getvalue()
