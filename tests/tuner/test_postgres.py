"""Many tuning workers on one study in a real PostgreSQL server of the test's own (pg_cluster):
an exact trial target, seeds enqueued once, no configuration trained twice, a SIGKILLed worker's
trial retried by a survivor, a server restart ridden out, an unreachable server refused at start.

Workers are separate processes running ``run_study`` with the fake millisecond trainer (the
cheapest objective the suite has); the CLI tests need no server at all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import optuna
import pytest
from optuna.trial import TrialState
from pg_cluster import Cluster, ClusterUnavailable, free_port, start_cluster
from support.serve import TINY_STUDY
from support.task import TINY_STUDY_BASE
from typer.testing import CliRunner

from tuner.cli import app

optuna.logging.set_verbosity(optuna.logging.WARNING)

T = TypeVar("T")
HERE = Path(__file__).parent
ROOT = HERE.parent.parent
WORKER = """
import json, sys
from pathlib import Path
from tuner.objective import Objective
from tuner.settings import TuneSettings
from tuner.study import run_study
from tuner_fakes import FakeConfig, FakeTrain, small_space

storage, n_trials, sleep, seed, beat, started = sys.argv[1:7]
space = small_space()
mine = []

class Mine(Objective):
    def __call__(self, trial):
        mine.append(trial.number)
        with open(started, "a") as fh:  # the test picks a victim mid-trial from this file
            fh.write(f"{trial.number}\\n")
        return super().__call__(trial)

settings = TuneSettings(
    storage=storage, study_name="s", n_trials=int(n_trials), seed=int(seed), pruner="none",
    heartbeat_seconds=int(beat),
)
obj = Mine(
    space=space, base_config=FakeConfig(), settings=settings,
    train_fn=FakeTrain(space, sleep=float(sleep)), log=lambda m: print(m, file=sys.stderr),
)
run_study(settings, space, obj, space_meta=space.summary(), log=lambda m: print(m, file=sys.stderr))
print(json.dumps(mine))
"""


@pytest.fixture(scope="module")
def pg() -> Iterator[Cluster]:
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed")
    try:
        cluster = start_cluster()
    except ClusterUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield cluster
    finally:
        cluster.remove()  # stops the postmaster by its PID


def worker(
    storage: str, n_trials: int, *, seed: int, started: Path, sleep: float = 0.01, beat: int = 1
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
        "OMP_NUM_THREADS": "1",
    }
    args = [storage, str(n_trials), str(sleep), str(seed), str(beat), str(started)]
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def finish(procs: list[subprocess.Popen[str]], timeout: float = 180) -> list[tuple[str, str]]:
    """Every worker's (stdout, stderr); kills (by PID) any still running at the timeout."""
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return outs


def load(url: str) -> optuna.Study:
    from tuner.storage import open_storage

    return optuna.load_study(study_name="s", storage=open_storage(url))


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Finished trials that trained their configuration (not duplicates of another)."""
    done = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    return [t for t in done if "duplicate_of" not in t.user_attrs]


def finished_count(url: str) -> int:
    try:
        return len(counted(load(url)))
    except KeyError:  # no worker has made the study yet
        return 0


def trained_keys(study: optuna.Study) -> list[str]:
    return [t.user_attrs["key"] for t in counted(study)]


def check_one_study(study: optuna.Study, target: int) -> None:
    """The invariants every test below ends with."""
    assert len(counted(study)) == target  # the study-wide target, exactly
    keys = trained_keys(study)
    assert len(keys) == len(set(keys)), "a configuration was trained twice"
    left = [t.number for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert not left, f"trials left running or waiting: {left}"


def test_four_workers_meet_the_target_exactly_and_recommend_as_one(
    pg: Cluster, tmp_path: Path
) -> None:
    from tuner_fakes import small_space

    from tuner.report import best_trial

    url = pg.create_database("four")
    target = 16
    procs = [
        worker(url, target, seed=s, started=tmp_path / f"w{s}.txt", sleep=0.005) for s in range(4)
    ]
    outs = finish(procs)
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err
    mine = [set(json.loads(out.strip().splitlines()[-1])) for out, _ in outs]
    study = load(url)
    check_one_study(study, target)
    # every trial is one worker's, and no worker's is another's
    assert sum(len(m) for m in mine) == len(set().union(*mine)) == len(study.trials)
    assert sum(1 for m in mine if m) >= 2, "the workers did not share the study"
    # the seeds were enqueued once (PostgreSQL advisory lock), not once per worker
    enqueued = [
        t.user_attrs["key"]
        for t in study.trials
        if "fixed_params" in t.system_attrs and "failed_trial" not in t.system_attrs
    ]
    assert len(enqueued) == len(set(enqueued)) == len(small_space().seeds)
    # one worker training the same configurations one after the other recommends the same
    one_url = f"sqlite:///{tmp_path / 'one.db'}"
    single = optuna.create_study(storage=one_url, study_name="s", direction="maximize")
    for t in sorted(counted(study), key=lambda t: t.number):
        single.enqueue_trial(t.system_attrs.get("fixed_params") or t.params)
    one = worker(one_url, target, seed=0, started=tmp_path / "one.txt", sleep=0, beat=30)
    ((_, err),) = finish([one])
    assert one.returncode == 0, err
    alone = optuna.load_study(study_name="s", storage=one_url)
    assert sorted(trained_keys(alone)) == sorted(trained_keys(study))
    many_best, one_best = best_trial(study), best_trial(alone)
    assert many_best is not None and one_best is not None
    assert many_best.user_attrs["key"] == one_best.user_attrs["key"]
    assert many_best.value == one_best.value


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60) -> T:
    """The first value of ``check()`` that is not None or False, polled every 0.1 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value is not None and value is not False:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def running_trial_of(url: str, started: Path) -> int | None:
    """A trial the worker that writes ``started`` is training now (RUNNING, not a skip)."""
    if not started.exists():
        return None
    numbers = [int(n) for n in started.read_text().split()]
    if len(numbers) < 2:  # its second trial: the worker is well into the study
        return None
    study = load(url)
    t = study.trials[numbers[-1]]
    if (
        t.state == TrialState.RUNNING
        and "key" in t.user_attrs
        and "duplicate_of" not in t.user_attrs
    ):
        return t.number
    return None


def test_a_worker_killed_mid_trial_is_retried_once_by_a_survivor(
    pg: Cluster, tmp_path: Path
) -> None:
    url = pg.create_database("kill")
    target = 12
    victim_log = tmp_path / "victim.txt"
    victim = worker(url, target, seed=0, started=victim_log, sleep=0.1)
    logs = [tmp_path / f"w{s}.txt" for s in (1, 2)]
    survivors = [worker(url, target, seed=s, started=logs[s - 1], sleep=0.02) for s in (1, 2)]
    # the survivors are running trials before the kill: they, not a restart, must notice it
    wait_for("the survivors' first trials", lambda: all(p.exists() for p in logs))
    killed = wait_for("the victim's second trial", lambda: running_trial_of(url, victim_log))
    time.sleep(0.3)
    victim.send_signal(signal.SIGKILL)  # mid-trial: its trial stays RUNNING in the database
    _, err = victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL, err
    outs = finish(survivors)
    for p, (_, err) in zip(survivors, outs, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err
    study = load(url)
    check_one_study(study, target)
    dead = study.trials[killed]
    assert dead.state == TrialState.FAIL  # by the heartbeat, not by a rerun: none was started
    # the heartbeat's retry (the survivors were past their start, where a rerun would look
    # for orphans): Optuna's stale-trial callback marks it with ``failed_trial``
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retries) == 1  # retried once
    retry = retries[0]
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.user_attrs["key"] == dead.user_attrs["key"]
    mine = set().union(*(json.loads(out.strip().splitlines()[-1]) for out, _ in outs))
    assert retry.number in mine  # a surviving worker trained it


def test_a_database_restart_mid_study_is_ridden_out_and_a_rerun_resumes(
    pg: Cluster, tmp_path: Path
) -> None:
    url = pg.create_database("restart")
    target = 12
    procs = [
        worker(url, target, seed=s, started=tmp_path / f"w{s}.txt", sleep=0.05, beat=2)
        for s in (1, 2)
    ]
    wait_for("3 finished trials", lambda: finished_count(url) >= 3, timeout=120)
    pg.stop()  # fast shutdown: every open connection is cut
    time.sleep(2.0)
    pg.start()
    outs = finish(procs)
    outages = 0
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err
        # one line when the connection is lost, one when it is back; a worker that touched no
        # connection while the server was down gets a fresh one on checkout and says nothing
        lost = [line for line in err.splitlines() if "unreachable" in line]
        back = [line for line in err.splitlines() if "reconnected after" in line]
        assert len(lost) == len(back) <= 1, err
        assert all("reconnecting for up to 60 s" in line for line in lost), err
        outages += len(lost)
    assert outages >= 1, "no worker noticed the restart: the test proved nothing"
    study = load(url)
    check_one_study(study, target)
    before = {t.number: (t.state, t.value, t.user_attrs["key"]) for t in counted(study)}
    # a rerun with a higher target resumes the same study: nothing lost, nothing trained again
    rerun = worker(url, target + 3, seed=3, started=tmp_path / "rerun.txt")
    ((_, err),) = finish([rerun])
    assert rerun.returncode == 0, err
    after = load(url)
    check_one_study(after, target + 3)
    assert {n: (after.trials[n].state, after.trials[n].value, after.trials[n].user_attrs["key"])
            for n in before} == before  # fmt: skip


def test_the_study_lock_is_a_postgresql_advisory_lock(pg: Cluster) -> None:
    import psycopg

    from tuner.rdb import lock_key
    from tuner.storage import open_storage, study_lock

    url = pg.create_database("lock")
    storage = open_storage(url)
    probe = psycopg.connect(f"host=127.0.0.1 port={pg.port} user=floss dbname=lock")
    key = lock_key("s")

    def try_lock() -> bool:
        taken = probe.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        assert taken is not None
        if taken[0]:
            probe.execute("SELECT pg_advisory_unlock(%s)", (key,))
        return bool(taken[0])

    try:
        with study_lock(url, "s", storage) as held:
            assert held
            assert not try_lock()  # another session cannot take it
            with study_lock(url, "other", storage) as other:  # another study's is free
                assert other
        assert try_lock()  # released
        # a holder whose connection ends (a killed worker's does) holds it no more: its server
        # process releases it as it exits, a moment after the connection closes
        conn = psycopg.connect(f"host=127.0.0.1 port={pg.port} user=floss dbname=lock")
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        assert not try_lock()
        conn.close()
        assert wait_for("the lock released", try_lock, timeout=10)
    finally:
        probe.close()


def test_a_lost_database_stops_the_worker_with_one_line(pg: Cluster) -> None:
    from tuner import rdb

    url = pg.create_database("lost")
    messages: list[str] = []
    storage = rdb.ReconnectingRDBStorage(
        url, log=messages.append, reconnect_seconds=1.5,
        engine_kwargs={"pool_pre_ping": True, "connect_args": rdb.connect_args(url)},
    )  # fmt: skip
    study = optuna.create_study(storage=storage, study_name="gone")
    pg.stop()
    try:
        with pytest.raises(rdb.DatabaseLost, match=r"lost the database .* for over 1.5 s") as err:
            study.get_trials()
        assert "\n" not in str(err.value)
        assert len(messages) == 1 and "reconnecting for up to 1.5 s" in messages[0]
    finally:
        pg.start()
    assert study.get_trials() == []  # and it is back
    assert messages[-1].startswith(f"database {rdb.shown(url)} reconnected after")


runner = CliRunner()


def run_cli(storage: str, tmp_path: Path) -> tuple[int, str]:
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "".join(f"t {i},{i % 2}\n" for i in range(40)))
    result = runner.invoke(
        app,
        ["run", "--model", "tiny-random-bert", "--data", "csv", "--data-path", str(data),
         "--n-trials", "2", "--storage", storage],
    )  # fmt: skip
    return result.exit_code, result.output


def test_an_unreachable_database_is_one_line_before_any_training(tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed")
    url = f"postgresql://floss:secret@127.0.0.1:{free_port()}/nothing_listens"
    code, out = run_cli(url, tmp_path)
    assert code == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("error: cannot reach the database 'postgresql://floss:***@127.0.0.1")
    assert "secret" not in out and "preparing" not in out  # no model was loaded


def test_a_missing_driver_is_named(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("MySQLdb") is not None:
        pytest.skip("mysqlclient is installed here: no missing driver to name")
    code, out = run_cli("mysql://u:pw@127.0.0.1:1/db", tmp_path)
    assert code == 2, out
    assert out.strip().splitlines() == [
        "error: storage 'mysql://u:***@127.0.0.1:1/db' needs the mysql driver mysqldb (module "
        "MySQLdb), which is not installed: pip install 'mysqlclient' (or write "
        "mysql+pymysql://... and pip install pymysql)."
    ]


def serve_study(name: str) -> dict[str, object]:
    """The service tests' tiny study with two configurations: the target covers the space,
    whatever the search."""
    return {**TINY_STUDY, "name": name, "ranks": "2", "d_down": "1"}


def write_rotated_task(path: Path) -> Path:
    """80 rows of two labels, each row a rotation of its label's five letters."""
    lines = [f"{' '.join(w.split()[i:] + w.split()[:i])},{label}"
             for label, w in {"a": "p q r s t", "b": "u v w x y"}.items() for i in range(5)]  # fmt: skip
    path.write_text("text,label\n" + "\n".join(lines * 8) + "\n")
    return path


@pytest.mark.slow
def test_floss_serve_runs_studies_on_postgresql_and_another_serve_resumes_them(
    pg: Cluster, tmp_path: Path
) -> None:
    """Item 4: `floss serve --storage postgresql://... --max-workers 2` runs two studies at
    once in the database; killed, a second `floss serve` on the same database lists both with
    every finished trial and resumes them to their targets."""
    from support.processes import alive, stop
    from support.processes import free_port as serve_port
    from support.processes import wait_for as serve_wait
    from support.serve import call, get_json, show_tail, start_service

    url = pg.create_database("serve")
    (tmp_path / "data").mkdir()
    write_rotated_task(tmp_path / "data" / "texts.csv")
    log = tmp_path / "serve.log"
    services: list[subprocess.Popen[bytes]] = []
    workers: set[int] = set()

    def finished(port: int, name: str) -> dict[int, float | None]:
        shown = get_json(port, f"/api/studies/{name}")
        return {
            t["trial"]: t["value"] for t in shown["trials"] if t["state"] in ("COMPLETE", "PRUNED")
        }

    try:
        port = serve_port()
        services.append(start_service(tmp_path, port, log, "--storage", url, "--max-workers", "2"))
        serve_wait(lambda: get_json(port, "/api/health"), seconds=90, what="service up")
        for name in ("a", "b"):
            status, body = call(port, "POST", "/api/studies", serve_study(name))
            assert status == 201, body
            workers.add(json.loads(body)["pid"])
        assert len(workers) == 2 and all(alive(p) for p in workers)  # two at once
        for name in ("a", "b"):
            serve_wait(lambda n=name: finished(port, n), seconds=400, what=f"{name}: a trial")
        before = {name: finished(port, name) for name in ("a", "b")}
        services[0].send_signal(signal.SIGKILL)
        services[0].wait(30)
        serve_wait(lambda: not any(alive(p) for p in workers), seconds=120, what="workers ended")

        port = serve_port()
        services.append(
            start_service(tmp_path, port, log, "--storage", url, "--max-workers", "2",
                          "--resume-unfinished")
        )  # fmt: skip
        serve_wait(lambda: get_json(port, "/api/health"), seconds=90, what="second service up")
        listed = {s["name"] for s in get_json(port, "/api/studies")}
        assert listed == {"a", "b"}
        for name in ("a", "b"):
            kept = finished(port, name)
            assert {k: kept[k] for k in before[name]} == before[name]  # nothing lost
            serve_wait(
                lambda n=name: get_json(port, f"/api/studies/{n}")["state"] == "finished",
                seconds=600,
                what=f"{name} finished",
            )
            study = optuna.load_study(study_name=name, storage=url.replace(
                "postgresql://", "postgresql+psycopg://"))  # fmt: skip
            keys = trained_keys(study)
            assert len(keys) == 2 and len(set(keys)) == 2  # the target, each config once
    finally:
        stop(services, workers)
        show_tail(log, *sorted((tmp_path / "work").rglob("*.log")), chars=2000)


# floss-tune run with a 2 s reconnect window (the default is 60 s): the database that stays away
CLI_WORKER = """
import sys
import tuner.rdb
tuner.rdb.RECONNECT_SECONDS = 2.0
from tuner.cli import main
sys.argv[0] = "floss-tune"
main()
"""


@pytest.mark.slow
def test_a_database_gone_for_good_stops_floss_tune_with_one_line_and_a_rerun_resumes(
    pg: Cluster, tmp_path: Path
) -> None:
    """Item 3, the other branch: the server stays down past the reconnect window, the worker
    stops cleanly (exit 3, one line naming the database and the resume command, no traceback),
    and the same command, once the server is back, finishes the study with nothing lost."""
    url = pg.create_database("gone")
    config = tmp_path / "base.yaml"
    data = write_rotated_task(tmp_path / "texts.csv")
    config.write_text(json.dumps({**TINY_STUDY_BASE, "data_path": str(data)}))
    args = [
        "run", "--config", str(config), "--budget", "50-dense-rounds", "--budget-scale", "0.1",
        "--ranks", "2,4", "--d-down", "1,1/4", "--d-up", "1,1/16", "--n-trials", "3",
        "--search", "optuna", "--pruner", "none", "--levels", "1", "--seed", "0",
        "--heartbeat", "1", "--storage", url, "--study-name", "s",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen([sys.executable, "-c", CLI_WORKER, *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)  # fmt: skip
    try:
        wait_for("a finished trial", lambda: finished_count(url) >= 1, timeout=300)
        before = {t.number: (t.value, t.user_attrs["key"]) for t in counted(load(url))}
        pg.stop()
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
        pg.start()
    assert first.returncode == 3, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert errors[0].startswith(
        f"error: lost the database 'postgresql://floss@127.0.0.1:{pg.port}/gone' for over 2 s: "
    )
    assert "finished trials are kept; resume with: " in errors[0]
    rerun = subprocess.run([sys.executable, "-c", CLI_WORKER, *args], capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=600)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    study = load(url)
    check_one_study(study, 3)
    assert {n: (study.trials[n].value, study.trials[n].user_attrs["key"]) for n in before} == before
