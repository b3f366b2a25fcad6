"""floss-tune end to end on the trainer's tiny random BERT, the export, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support.cpu import one_torch_thread
from support.task import write_study_config
from typer.testing import CliRunner

from tuner.cli import app

optuna.logging.set_verbosity(optuna.logging.WARNING)
runner = CliRunner()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, object]:
    """One small study on the tiny model (shared by the tests below), exported."""
    folder = tmp_path_factory.mktemp("tune")
    storage = f"sqlite:///{folder / 'tune.db'}"
    args = [
        "run",
        "--config", str(write_study_config(folder)),
        "--budget", "50-dense-rounds",
        "--budget-scale", "0.1",
        "--max-rounds", "60",
        "--ranks", "2,4,16",
        "--d-down", "1,1/4,1/16",
        "--d-up", "1,1/4,1/16,1/64,1/256",
        "--methods", "floss,sparseadapter",
        "--topk", "global,per-tensor",
        "--metric", "val_accuracy",
        "--search", "optuna",  # TPE + pruning, seeds first; halving: test_tuner_halving.py
        "--n-trials", "8",
        "--seed", "0",
        "--storage", storage,
        "--study-name", "tiny",
        "--export", str(folder / "out"),
    ]  # fmt: skip
    with one_torch_thread():
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return folder, storage, result


def test_study_runs_reports_and_recommends(tuned: tuple[Path, str, object]) -> None:
    _, storage, result = tuned
    out = result.output  # type: ignore[attr-defined]
    assert "study 'tiny'" in out and "recommended: " in out and "reported only" in out
    study = optuna.load_study(study_name="tiny", storage=storage)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) >= 8
    first = study.trials[0].user_attrs
    assert first["candidate"]["why"] == "dense LoRA baseline"
    seeds = [t.user_attrs["candidate"] for t in study.trials[:5]]
    assert [c["method"] for c in seeds] == ["floss"] * 4 + ["sparseadapter"]
    assert seeds[-1]["d_up"] == 1 / 16  # SparseAdapter at density 1/S
    assert first["config"]["rounds"] == 5  # 50 dense rounds x 0.1
    assert first["full_config"]["rounds"] == 50
    assert (
        first["config"]["checkpoint_every"] == 0 and first["full_config"]["checkpoint_every"] == 5
    )
    twins = [t for t in finished if "duplicate_of" in t.user_attrs]
    for t in twins:  # a config that already ran is not trained again
        assert "records" not in t.user_attrs
        assert t.user_attrs["key"] == study.trials[t.user_attrs["duplicate_of"]].user_attrs["key"]
    for t in (t for t in finished if t not in twins):
        recs = t.user_attrs["records"]
        cand = t.user_attrs["candidate"]
        assert recs and len(recs) <= cand["rounds"]
        assert t.user_attrs["client_steps"] == sum(r["client_steps"] for r in recs)
        # the fidelity checkpoints are exactly the rounds the trainer evaluated (and the last)
        evaluated = [r["round"] for r in recs if r["val_accuracy"] is not None]
        assert evaluated == sorted(set(t.user_attrs["checkpoint_rounds"]) & set(evaluated))
        if t.state == TrialState.COMPLETE:
            assert len(recs) == cand["rounds"]
            assert t.value == pytest.approx(recs[-1]["val_accuracy"])  # served model, validation
            assert evaluated == sorted(set(t.user_attrs["checkpoint_rounds"]))
            # planner.schedule's seeded prices are what the trainer really spent, for every
            # method and top-k mode: the trial's spend equals its planned spend
            assert recs[-1]["cum_bytes"] == cand["trial_bytes"]
            assert recs[-1]["cum_sim_seconds"] == pytest.approx(cand["trial_seconds"])
            assert "test_accuracy" in t.user_attrs and "test_accuracy_server" in t.user_attrs
    tried = {(t.user_attrs["candidate"]["method"], t.user_attrs["candidate"]["topk"])
             for t in finished}  # fmt: skip
    assert ("sparseadapter", "global") in tried and ("floss", "global") in tried


def test_export_round_trips_into_floss_train(tuned: tuple[Path, str, object]) -> None:
    from trainer.config import RunConfig

    folder, storage, _ = tuned
    out = folder / "out"
    study = optuna.load_study(study_name="tiny", storage=storage)
    best = max(
        (
            t
            for t in study.trials
            if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs
        ),
        key=lambda t: (t.value, -t.user_attrs["records"][-1]["cum_bytes"]),
    )
    for name in ("run.yaml", "run.json"):
        loaded = RunConfig.load(out / name)
        assert loaded.to_dict() == best.user_attrs["full_config"]
        assert loaded.rounds == best.user_attrs["candidate"]["full_rounds"]
    peft_cfg = json.loads((out / "peft" / "adapter_config.json").read_text())
    assert peft_cfg["r"] == best.user_attrs["candidate"]["rank"]
    assert sorted(peft_cfg["target_modules"]) == ["query", "value"]
    assert peft_cfg["task_type"] == "SEQ_CLS"
    import tomllib

    flower = tomllib.loads((out / "flower" / "run_config.toml").read_text())
    assert flower["num-server-rounds"] == best.user_attrs["candidate"]["full_rounds"]
    assert flower["lora-rank"] == best.user_attrs["candidate"]["rank"]
    import pandas as pd

    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == len(study.trials) and trials["recommended"].sum() == 1
    assert (out / "pareto.png").stat().st_size > 10_000
    assert len(pd.read_csv(out / "rounds.csv")) == sum(
        len(t.user_attrs.get("records", [])) for t in study.trials
    )


def test_exported_config_trains_with_floss_train(tuned: tuple[Path, str, object]) -> None:
    from trainer.cli import app as train_app
    from trainer.config import RunConfig

    folder, _, _ = tuned
    run_yaml = folder / "out" / "run.yaml"
    exported = RunConfig.load(run_yaml)
    # the file as exported; only --rounds 1 keeps the test short (flags override the file)
    result = runner.invoke(
        train_app,
        ["--config", str(run_yaml), "--rounds", "1", "--out-dir", str(folder / "train"),
         "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"method {exported.method}, rank {exported.rank}" in result.output
    assert f"d_up {exported.d_up:g}, 1 rounds" in result.output


def test_show_and_export_subcommands(tuned: tuple[Path, str, object], tmp_path: Path) -> None:
    _, storage, _ = tuned
    shown = runner.invoke(app, ["show", "--storage", storage, "--study-name", "tiny"])
    assert shown.exit_code == 0 and "recommended: " in shown.output
    assert "reported only" in shown.output  # the test split: in the recommendation line only
    wide = runner.invoke(app, ["show", "--storage", storage, "--study-name", "tiny", "--wide"])
    assert wide.exit_code == 0, wide.output
    assert "test split, complete trials only: reported, never used to pick" in " ".join(
        wide.output.split()
    )
    exported = runner.invoke(
        app, ["export", str(tmp_path / "x"), "--storage", storage, "--study-name", "tiny"]
    )
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "x" / "run.yaml").exists()
    import pandas as pd

    csv_trials = pd.read_csv(tmp_path / "x" / "trials.csv")
    parquet_trials = pd.read_parquet(tmp_path / "x" / "trials.parquet")
    assert list(parquet_trials.columns) == list(csv_trials.columns)
    assert f"{tmp_path / 'x' / 'trials.parquet'}: all {len(csv_trials)} trials" in exported.output
    assert len(parquet_trials) == len(csv_trials) > 0
    assert parquet_trials["trial"].tolist() == csv_trials["trial"].tolist()


def test_resume_with_another_budget_is_refused(tuned: tuple[Path, str, object]) -> None:
    folder, storage, _ = tuned
    result = runner.invoke(
        app,
        ["run", "--config", str(folder / "base.yaml"), "--budget", "20-dense-rounds",
         "--budget-scale", "0.1", "--max-rounds", "60", "--ranks", "2,4,16", "--d-down",
         "1,1/4,1/16", "--d-up", "1,1/4,1/16,1/64,1/256", "--storage", storage,
         "--study-name", "tiny"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "error: study 'tiny'" in result.output and "made for another search" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--storage", "mongodb://x/y"], "error: unknown storage scheme 'mongodb'"),
        (["run", "--study-name", "bad name!"], "error: study name 'bad name!'"),
        (["run", "--budget-scale", "0"], "error: --budget-scale must be in (0, 1], but got 0.0"),
        (["run", "--budget-scale", "2"], "error: --budget-scale must be in (0, 1], but got 2.0"),
        (["run", "--pruner", "magic"], "error: --pruner must be one of"),
        (["run", "--n-trials", "0"], "error: --n-trials must be an integer >= 1, but got 0"),
        (["run", "--budget", "12 parsecs"], "error: unknown budget unit 'parsecs' in '12 parsecs'"),
        (["run", "--ranks", "4,x"], "error: --ranks: 'x' is not an integer"),
        (["run", "--methods", "floss,lora"], "error: --methods: 'lora' is not one of"),
        (["run", "--topk", "local"], "error: --topk: 'local' is not one of"),
        (["run", "--metric", "test_accuracy"], "error: --metric must be one of val_accuracy"),
        (["run", "--keep-rates", "0.9,x"], "error: --keep-rates: 'x' is not a number"),
        (["show", "--storage", "sqlite:///nowhere/none.db"], "error: no study 'floss'"),
        (["export", "OUT", "--storage", "nope.journal"], "error: no study 'floss'"),
    ],
)
def test_bad_inputs_end_in_one_line(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.glob("*.db"))  # a refused run leaves no database behind


def test_no_feasible_config_and_missing_study(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 't.db'}"
    cfg = write_study_config(tmp_path)
    result = runner.invoke(
        app, ["run", "--config", str(cfg), "--budget", "1B", "--storage", storage]
    )
    assert result.exit_code == 2
    assert "error: no feasible configuration" in result.output and "'1B'" in result.output
    result = runner.invoke(app, ["export", str(tmp_path / "o"), "--storage", storage,
                                 "--study-name", "other"])  # fmt: skip
    assert result.exit_code == 2 and "error: no study 'other'" in result.output


def test_cli_module_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tuner.cli; "
        "print(sorted(m for m in ('torch', 'transformers', 'optuna', 'peft', 'pandas', "
        "'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
