"""`floss-tune show` at 100 columns: no line longer, one line per trial (cells never wrap), a
footnote for the columns, what a pruned trial really ran, the waiting trials; --wide and
--trial N for the details."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from tuner_fakes import FakeConfig, FakeTrain, small_space
from typer.testing import CliRunner

from tuner.cli import app
from tuner.grid import MethodGrid
from tuner.objective import Objective
from tuner.settings import TuneSettings
from tuner.study import ATTR_SPACE, enqueue_seeds, make_pruner

optuna.logging.set_verbosity(optuna.logging.WARNING)
runner = CliRunner()


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A study with complete, pruned, duplicate and waiting trials of several methods."""
    url = f"sqlite:///{tmp_path_factory.mktemp('show') / 'show.db'}"
    grid = MethodGrid(
        methods=("floss", "sparseadapter", "adapterlth"), topks=("global", "per-tensor")
    )
    space = small_space(grid=grid)
    obj = Objective(
        space=space, base_config=FakeConfig(), settings=TuneSettings(), train_fn=FakeTrain(space)
    )
    study = optuna.create_study(
        storage=url,
        study_name="floss",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=3),
        pruner=make_pruner(obj.settings),
    )
    study.set_user_attr(ATTR_SPACE, {"metric": "val_accuracy", "levels": 4})
    enqueue_seeds(study, space, lrs={})
    for _ in range(24):
        trial = study.ask()
        try:
            study.tell(trial, obj(trial))
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
    study.enqueue_trial({"method": "floss", "rank": 8, "d_down": 0.5, "d_up": 0.25})
    study.enqueue_trial({"method": "sparseadapter", "rank": 4, "d_up": 0.0625})
    return url


def _show(storage: str, *args: str) -> list[str]:
    result = runner.invoke(app, ["show", "--storage", storage, *args], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_the_default_table_fits_100_columns_one_line_per_trial(storage: str) -> None:
    lines = _show(storage)
    too_long = [line for line in lines if len(line) > 100]
    assert not too_long, "\n".join(too_long)
    study = optuna.load_study(study_name="floss", storage=storage)
    rows = [line for line in lines if line[:4].strip().isdigit()]
    # every trial (the waiting ones too) on exactly one line: cells never wrap
    assert sorted(int(line.split()[0]) for line in rows) == [t.number for t in study.trials]
    waiting = [t.number for t in study.trials if t.state == TrialState.WAITING]
    assert len(waiting) == 2
    assert [int(line.split()[0]) for line in rows[-2:]] == waiting  # listed last
    assert all(" waiting " in line for line in rows[-2:])
    assert "sparseadapter r4 ↑1/16" in rows[-1]
    text = " ".join(lines)
    for column in ("rounds:", "val acc:", "MB sent:", "note:", "P on the Pareto front", "config:"):
        assert column in text, column
    assert "--wide" in text and "--trial N" in text
    assert any(line.startswith("recommended: ") for line in lines)


def test_a_pruned_trial_shows_what_it_ran(storage: str) -> None:
    study = optuna.load_study(study_name="floss", storage=storage)
    pruned = [
        t
        for t in study.get_trials(states=(TrialState.PRUNED,))
        if "duplicate_of" not in t.user_attrs and t.user_attrs.get("records")
    ]
    assert pruned
    lines = {int(line.split()[0]): line for line in _show(storage) if line[:4].strip().isdigit()}
    for t in pruned:
        records, planned = t.user_attrs["records"], t.user_attrs["config"]["rounds"]
        assert len(records) < planned
        cells = lines[t.number].split()
        assert f"{len(records)}/{planned}" in cells  # trained of planned, not the planned rounds
        mb = records[-1]["cum_bytes"] / 1e6
        assert (f"{mb:,.1f}" if mb >= 10 else f"{mb:.3g}") in cells  # bytes up to its stop
        assert f"{t.user_attrs['candidate']['full_rounds']} rounds" not in lines[t.number]


def test_wide_shows_every_column_and_explains_it(storage: str) -> None:
    lines = _show(storage, "--wide")
    text = " ".join(lines)
    for column in ("test acc*", "at step", "client steps", "sim s", "full run (plan)"):
        assert column in text, column
    assert "at step: the fidelity step of the value, 1..8 (step s = s/8 of the trial budget)" in (
        " ".join(text.split())
    )
    rows = [line for line in lines if line[:4].strip().isdigit()]
    assert len(rows) == len(optuna.load_study(study_name="floss", storage=storage).trials)


def test_one_trial_in_full(storage: str) -> None:
    study = optuna.load_study(study_name="floss", storage=storage)
    t = next(
        t for t in study.get_trials(states=(TrialState.PRUNED,)) if t.user_attrs.get("records")
    )
    lines = _show(storage, "--trial", str(t.number))
    assert lines[0] == f"trial {t.number} of study 'floss'"
    records = t.user_attrs["records"]
    assert (
        f"  rounds: {len(records)} trained of {t.user_attrs['config']['rounds']} planned" in lines
    )
    assert any(line.startswith("  reports: 1: ") for line in lines)
    assert all(len(line) <= 100 for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trial", "999"], "error: --trial 999: study 'floss' has no trial 999 (trials: 0.."),
        (["--trial", "1", "--wide"], "error: --trial N shows one trial in full; give it without"),
    ],
)
def test_bad_show_options_are_one_line(storage: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["show", "--storage", storage, *args])
    assert result.exit_code == 2
    assert (
        result.output.strip().startswith(message) and len(result.output.strip().splitlines()) == 1
    )
