"""`floss flower-app`: an app folder for any run config, and one line for bad input."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from federation.config import from_run_config
from floss_cli import build_app
from trainer.config import RunConfig


def test_writes_an_app_whose_run_config_is_the_given_one(tmp_path: Path) -> None:
    run = RunConfig(rank=4, d_down=0.25, d_up=1 / 64, rounds=7, num_clients=12, clients_per_round=3)
    run.save(tmp_path / "run.yaml")
    result = CliRunner().invoke(
        build_app(), ["flower-app", str(tmp_path / "app"), "--config", str(tmp_path / "run.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert "flwr run" in result.output and "num-supernodes=12" in result.output
    values = tomllib.loads((tmp_path / "app" / "pyproject.toml").read_text())
    back, _settings = from_run_config(values["tool"]["flwr"]["app"]["config"])
    assert back == run


def test_bad_config_and_bad_folder_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("rank: -3\n")
    (tmp_path / "file").write_text("x")
    RunConfig().save(tmp_path / "ok.yaml")
    for args in (
        ["flower-app", str(tmp_path / "app"), "--config", str(tmp_path / "bad.yaml")],
        ["flower-app", str(tmp_path / "app"), "--config", str(tmp_path / "missing.yaml")],
        ["flower-app", str(tmp_path / "file"), "--config", str(tmp_path / "ok.yaml")],
    ):
        result = CliRunner().invoke(build_app(), args)
        assert result.exit_code == 2, result.output
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), result.output
        assert "Traceback" not in result.output


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(build_app(), ["flower-app", *args])


def _one_error_line(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"fleet": "no-such-fleet"}, "no-such-fleet"),
        ({"fleet": "mixed-mobile", "round_policy": "deadline"}, "deadline"),
        ({"network": "no-such-network"}, "no-such-network"),
    ],
)
def test_refuses_what_floss_train_refuses_in_the_same_words(
    tmp_path: Path, fields: dict[str, Any], says: str
) -> None:
    """Issue 20: floss-train refused these configs; flower-app wrote an app that failed inside
    Flower. Both now run trainer.preflight: the same one line, and no folder is written."""
    from trainer.errors import TrainerError
    from trainer.preflight import preflight

    run = RunConfig(**fields)
    run.save(tmp_path / "run.yaml")
    with pytest.raises(TrainerError) as train_refusal:
        preflight(run)  # what floss-train runs before anything slow
    line = _one_error_line(_invoke(str(tmp_path / "app"), "--config", str(tmp_path / "run.yaml")))
    assert line == f"error: {train_refusal.value}" and says in line
    assert not (tmp_path / "app").exists()


def test_a_folder_that_holds_files_needs_overwrite(tmp_path: Path) -> None:
    RunConfig(num_clients=12, clients_per_round=3).save(tmp_path / "run.yaml")
    app = tmp_path / "app"
    app.mkdir()
    (app / "pyproject.toml").write_text("# my edits\n")
    (app / "notes.txt").write_text("mine\n")
    line = _one_error_line(_invoke(str(app), "--config", str(tmp_path / "run.yaml")))
    assert "is not empty (notes.txt, pyproject.toml)" in line and "--overwrite" in line
    assert (app / "pyproject.toml").read_text() == "# my edits\n"  # untouched
    result = _invoke(str(app), "--config", str(tmp_path / "run.yaml"), "--overwrite")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"replaced pyproject.toml in {app}"
    assert (app / "notes.txt").read_text() == "mine\n"  # other files kept
    assert "[tool.flwr.app]" in (app / "pyproject.toml").read_text()


def test_the_printed_command_is_sized_to_the_run_and_writes_results(tmp_path: Path) -> None:
    RunConfig(num_clients=20, clients_per_round=4).save(tmp_path / "run.yaml")
    app = tmp_path / "app"
    result = _invoke(str(app), "--config", str(tmp_path / "run.yaml"))
    assert result.exit_code == 0, result.output
    out = (tmp_path / "app-results").resolve()
    lines = result.output.splitlines()
    assert (
        lines[0] == f"{app}: a runnable Flower app of {tmp_path / 'run.yaml'}; results go to {out}"
    )
    assert lines[1] == "run it on Flower's simulation (one SuperNode per client: 20, 4 a round):"
    assert "--federation-config 'num-supernodes=20' --stream" in lines[2]
    values = tomllib.loads((app / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    assert values["out-dir"] == str(out)  # a plain `flwr run` writes results too
    assert f"`{out}`" in (app / "README.md").read_text()
    mine = tmp_path / "mine"
    again = _invoke(
        str(tmp_path / "app2"), "--config", str(tmp_path / "run.yaml"), "--results", str(mine)
    )
    assert again.exit_code == 0 and f"results go to {mine.resolve()}" in again.output


def _readme_block(heading: str) -> list[str]:
    """The commands of the first bash block under ``heading`` in README.md, continuation
    lines joined, comments dropped."""
    import shlex

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = text.split(f"## {heading}\n", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    joined = block.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(" ".join(shlex.quote(w) for w in words))
    return commands


def test_the_readmes_flower_lines_are_what_the_tool_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20: the README's line (num-supernodes=100) failed on the README's own 20-client run.
    Its first floss-train command writes runs/a/config.yaml (training replaced by saving the
    config it got: the flags are parsed by floss-train itself), then the README's flower-app
    line runs as written and prints exactly the README's flwr line."""
    import shlex

    import trainer.run
    from trainer.cli import app as train_app
    from trainer.errors import TrainerError

    train_line = next(c for c in _readme_block("Train and tune") if c.startswith("floss-train "))
    app_line, flwr_line = _readme_block("Run on Flower")[:2]
    assert app_line.startswith("floss flower-app ") and " flwr run " in flwr_line

    def save_only(cfg: RunConfig, *, out_dir: Path, **_kw: Any) -> Any:
        out_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(out_dir / "config.yaml")
        raise TrainerError("config saved; no training in this test")

    monkeypatch.setattr(trainer.run, "train", save_only)
    monkeypatch.chdir(tmp_path)
    saved = CliRunner().invoke(train_app, shlex.split(train_line)[1:])
    assert "config saved" in saved.output, saved.output
    result = CliRunner().invoke(build_app(), shlex.split(app_line)[1:])
    assert result.exit_code == 0, result.output
    printed = result.output.splitlines()[-1].strip()
    assert shlex.split(printed) == shlex.split(flwr_line), (printed, flwr_line)
    assert "num-supernodes=20" in printed


def test_floss_tune_exports_a_flower_app_that_writes_results(tmp_path: Path) -> None:
    """floss-tune export's flower-app/ sets out-dir beside the app (outside the folder `flwr run`
    packs), as floss flower-app does: a plain `flwr run` of it writes its results."""
    import tomllib

    import optuna
    from support.studies import make_fake_study

    from tuner.export import export_study
    from tuner.storage import open_storage

    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    make_fake_study(storage)
    study = optuna.load_study(study_name="fake", storage=open_storage(storage))
    lines = export_study(study, tmp_path / "export")
    pyproject = tomllib.loads((tmp_path / "export" / "flower-app" / "pyproject.toml").read_text())
    out = pyproject["tool"]["flwr"]["app"]["config"]["out-dir"]
    assert out == str((tmp_path / "export" / "flower-app-results").resolve())
    assert any("flower-app" in line and "flwr run" in line for line in lines)
