"""The Debian package-descriptions task on a miniature package list in `apt-cache dumpavail`
format, and once (slow) on this machine's real lists."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from trainer import debian
from trainer.config import RunConfig
from trainer.data import load_texts
from trainer.debian import DEFAULT_SECTIONS, NAME_MASK, debian_rows, parse_packages
from trainer.errors import TrainerError
from trainer.partition import describe_partition, natural_partition, partition_stats

STANZA = """Package: {name}
Version: 1.0-1
Maintainer: {maint}
Architecture: amd64
{source}Description: {desc}
Section: {section}
Priority: optional
"""


def _list(rows: list[tuple[str, str, str, str, str]]) -> str:
    """(name, source or '', section, maintainer, description) -> a dumpavail text."""
    return "\n".join(
        STANZA.format(
            name=name,
            source=f"Source: {src} (1.0-1)\n" if src else "",
            section=section,
            maint=maint,
            desc=desc,
        )
        for name, src, section, maint, desc in rows
    )


ANN = "Ann <ann@example.org>"
BOB = "Games Team <games@example.org>"
MINI = _list(
    [
        ("zsnake", "", "games", BOB, "snake game for the terminal"),
        ("xblast", "", "games", BOB, "multi-player XBlast bomber game"),  # name masked
        ("xblast-data", "xblast", "games", BOB, "data files for xblast"),  # same source: dropped
        ("chess", "", "contrib/games", ANN, "chess engine with a board"),  # area stripped
        ("mutt", "", "mail", ANN, "text-based mail reader"),
        ("neomutt", "", "mail", ANN, "text-based mail reader"),  # same description: dropped
        ("python3-foo", "foo", "python", ANN, "Python 3 module foo"),  # not a default section
        ("postfix", "", "mail", BOB, "high-performance mail transport agent"),
    ]
)


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    path = tmp_path / "packages.txt"
    path.write_text(MINI)
    return path


def test_parse_keeps_long_descriptions_and_strips_archive_areas() -> None:
    text = _list([("a", "", "non-free/net", ANN, "short line")]).replace(
        "Section:", " Long line one.\n .\n Long line two.\nSection:"
    )
    (pkg,) = parse_packages(text)
    assert pkg.section == "net"
    assert pkg.description == "short line Long line one. Long line two."


def test_rows_one_per_source_descriptions_once_names_masked(mini: Path) -> None:
    rows = debian_rows(str(mini), None)
    # sorted by package name: chess, mutt, (neomutt: same text), postfix, xblast, (xblast-data),
    # zsnake; python3-foo is in no default section
    assert rows.sections == ["games", "mail", "mail", "games", "games"]
    assert rows.maintainers == [ANN, ANN, BOB, BOB, BOB]
    assert rows.texts[3] == f"multi-player {NAME_MASK} bomber game"
    assert "8 packages" in rows.provenance and "5 kept" in rows.provenance
    assert debian_rows(str(mini), None).provenance == rows.provenance  # deterministic
    assert debian_rows(str(mini), "all").sections.count("python") == 1
    assert debian_rows(str(mini), "mail").sections == ["mail", "mail"]


def test_mask_is_whole_word_and_case_insensitive() -> None:
    assert debian.mask_names("Foo and foobar, FOO-ish; foo.", ("foo",)) == (
        f"{NAME_MASK} and foobar, FOO-ish; {NAME_MASK}."
    )


def test_natural_partition_by_maintainer(mini: Path) -> None:
    cfg = RunConfig(
        data="debian-packages",
        data_path=str(mini),
        partition="natural",
        min_examples_per_class=1,
    )
    ds = load_texts(cfg)
    assert ds.label_names == ["games", "mail"]
    assert ds.clients == [ANN, ANN, BOB, BOB, BOB]
    parts = natural_partition(np.arange(5), ds.clients)
    stats = partition_stats(parts, np.asarray(ds.labels), batch_size=2)
    assert stats["clients"] == 2 and stats["examples"] == 5
    assert stats["examples_per_client"] == {"min": 2, "median": 2.5, "max": 3}
    assert stats["labels_per_client"] == {"min": 2, "median": 2.0, "max": 2}
    assert stats["clients_below_batch"] == 0
    line = describe_partition(partition_stats(parts, np.asarray(ds.labels), batch_size=3),
                              partition="natural")  # fmt: skip
    assert line.startswith("clients (natural): 2 holding 5 training examples; per client min 2")
    assert "1 clients hold fewer than a batch (3): each trains one smaller batch" in line


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sections": "Games!"}, r"sections must be 'all' or a comma list"),
        ({"sections": ","}, r"sections must be 'all' or a comma list"),
        ({"data": "fortunes", "sections": "games"}, r"sections picks the labels of"),
        ({"min_client_examples": 4}, r"min_client_examples=4 filters the clients of"),
        ({"min_client_examples": 0, "partition": "natural"}, r"min_client_examples must be"),
        ({"text_column": ""}, r"text_column must be a column name"),
        ({"data": "parquet"}, r"data='parquet' needs data_path"),
    ],
)
def test_bad_settings_are_one_line(changes: dict[str, object], message: str) -> None:
    with pytest.raises(TrainerError, match=message):
        RunConfig(**{"data": "debian-packages", **changes})  # type: ignore[arg-type]


def test_missing_lists_and_bad_paths(
    tmp_path: Path, mini: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TrainerError, match=r"is a folder; debian-packages reads one file"):
        debian_rows(str(tmp_path), None)
    with pytest.raises(TrainerError, match=r"data_path '/nope' does not exist"):
        debian_rows("/nope", None)
    with pytest.raises(TrainerError, match=r"holds no package in the sections hamradio"):
        debian_rows(str(mini), "hamradio")
    (tmp_path / "junk.txt").write_text("not a package list\n")
    with pytest.raises(TrainerError, match=r"holds no package stanza"):
        debian_rows(str(tmp_path / "junk.txt"), None)
    monkeypatch.setattr(debian.shutil, "which", lambda _: None)
    with pytest.raises(TrainerError, match=r"no apt-cache here; pass --data-path FILE"):
        debian_rows(None, None)


def test_empty_lists_say_run_apt_get_update(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = "/bin/true"  # prints nothing and succeeds, like apt-cache before `apt-get update`
    monkeypatch.setattr(debian, "DUMPAVAIL", (fake,))
    monkeypatch.setattr(debian.shutil, "which", lambda _: fake)
    with pytest.raises(TrainerError, match=r"run `apt-get update` as root first"):
        debian_rows(None, None)


@pytest.mark.slow
def test_real_package_lists_make_a_many_class_non_iid_task() -> None:
    """This machine's lists (filled by .ci/setup.sh's apt-get update)."""
    if shutil.which("apt-cache") is None or not list(Path("/var/lib/apt/lists").glob("*Packages*")):
        pytest.skip("no Debian package lists on this machine (apt-get update fills them)")
    ds = load_texts(RunConfig(data="debian-packages", partition="natural"))
    assert set(ds.label_names) <= set(DEFAULT_SECTIONS) and len(ds.label_names) >= 8
    assert ds.clients is not None and len(set(ds.clients)) >= 500
    parts = natural_partition(np.arange(len(ds.texts)), ds.clients)
    sizes = sorted(len(p) for p in parts)
    assert sizes[len(sizes) // 2] <= 3 and sizes[-1] >= 100  # heavy-tailed
    assert not any(NAME_MASK in t and t.strip() == NAME_MASK for t in ds.texts)
    assert load_texts(RunConfig(data="debian-packages", partition="natural")).texts == ds.texts


def test_floss_train_prints_and_saves_the_partition(mini: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from trainer.cli import app

    out = tmp_path / "run"
    args = ["--model", "tiny-random-bert", "--data", "debian-packages", "--data-path", str(mini),
            "--partition", "natural", "--min-examples-per-class", "1", "--clients-per-round", "2",
            "--rounds", "1", "--max-length", "16", "--rank", "2", "--batch-size", "2",
            "--device", "cpu", "--out-dir", str(out), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "x 2 of the natural partition's (by Maintainer) clients" in lines[0]
    assert any(line.startswith(f"debian-packages from '{mini}': 8 packages") for line in lines)
    shape = [line for line in lines if line.startswith("clients (natural): ")]
    assert len(shape) == 1 and "hold fewer than a batch (2)" in shape[0]
    saved = json.loads((out / "clients.json").read_text())
    assert saved["clients"] == 2 and saved["batch_size"] == 2
    assert saved["data"].startswith("debian-packages from")
    assert saved["examples"] == 4  # 5 texts less 1 for validation (10 %, at least 1), 0 for test
    assert saved["clients_below_batch"] >= 1 and saved["examples_per_client"]["min"] == 1
