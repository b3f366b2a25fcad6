"""--storage mistakes say what is wrong and what to write instead, before a model loads: the
two-slash SQLite typo, and a server URL whose database driver is not installed (the package
named, with its pip command)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tuner.runner
from tuner.cli import app
from tuner.settings import TuneError
from tuner.storage import check_sqlite_url, storage_kind

runner = CliRunner()


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite://x.db", "sqlite:///x.db (a file 'x.db' here)"),
        ("sqlite://runs/t.db", "sqlite:///runs/t.db (a file 'runs/t.db' here)"),
        ("sqlite+pysqlite://x.db", "sqlite+pysqlite:///x.db"),
    ],
)
def test_the_two_slash_sqlite_typo_names_the_right_url(url: str, expected: str) -> None:
    with pytest.raises(TuneError, match="an SQLite URL has three slashes") as caught:
        storage_kind(url)
    assert expected in str(caught.value)
    assert "four for an absolute path" in str(caught.value)


@pytest.mark.parametrize("url", ["sqlite:///x.db", "sqlite:////tmp/x.db", "sqlite://", "x.log"])
def test_good_sqlite_urls_and_journal_paths_pass(url: str) -> None:
    check_sqlite_url(url)
    assert storage_kind(url) in ("rdb", "journal")


MISSING_DRIVERS = [
    ("mysql://u:secret@localhost/db", "MySQLdb", "pip install 'mysqlclient'", "mysql+pymysql"),
    ("mysql+pymysql://u@localhost/db", "pymysql", "pip install 'pymysql'", None),
    ("postgresql+psycopg2://u:secret@localhost/db", "psycopg2", "pip install 'psycopg2-binary'",
     "postgresql+psycopg://... and pip install 'floss[postgres]'"),
    ("postgresql+pg8000://u@localhost/db", "pg8000", "pip install 'pg8000'", None),
]  # fmt: skip


@pytest.mark.parametrize(("url", "module", "pip", "instead"), MISSING_DRIVERS)
def test_a_missing_driver_is_named_with_its_pip_command(
    url: str, module: str, pip: str, instead: str | None
) -> None:
    if _installed(module):
        pytest.skip(f"{module} is installed here")
    with pytest.raises(TuneError) as caught:
        storage_kind(url)
    text = str(caught.value)
    assert f"(module {module}), which is not installed: {pip}" in text
    assert "secret" not in text  # the password stays masked
    if instead is not None:
        assert instead in text


@pytest.mark.parametrize(
    "url", ["sqlite://x.db", "mysql://u@localhost/db", "postgresql+psycopg2://u@localhost/db"]
)
def test_the_cli_refuses_before_the_model_loads(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if url.startswith("mysql") and _installed("MySQLdb"):
        pytest.skip("MySQLdb is installed here")
    if "psycopg2" in url and _installed("psycopg2"):
        pytest.skip("psycopg2 is installed here")

    def no_model(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the model was loaded before the storage was checked")

    monkeypatch.setattr(tuner.runner, "run_tuning", no_model)
    monkeypatch.chdir(tmp_path)
    for args in (["run", "--storage", url], ["show", "--storage", url]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert "does not exist" not in lines[0] and "install appropriate" not in lines[0]
    assert not any(tmp_path.iterdir())  # nothing was made
