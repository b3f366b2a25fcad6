"""Data sources, the seeded split and client partitions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trainer.config import RunConfig
from trainer.data import load_texts, read_fortunes, split_indices
from trainer.errors import TrainerError
from trainer.partition import cap_clients, dirichlet_partition, iid_partition, natural_partition


def _fortunes(folder: Path) -> Path:
    folder.mkdir()
    (folder / "cats").write_text("A cat.\n%\nTwo\nlines.\n%\nThird cat\n")
    (folder / "dogs").write_text("Woof.\n%\n%\nBark.\n%\n")
    (folder / "rare").write_text("Only one.\n")
    (folder / "cats.dat").write_bytes(b"\x00\x01")
    (folder / "off").mkdir()
    return folder


def test_fortunes_split_on_percent_lines(tmp_path: Path) -> None:
    texts, cats = read_fortunes(_fortunes(tmp_path / "f"))
    assert texts == ["A cat.", "Two\nlines.", "Third cat", "Woof.", "Bark.", "Only one."]
    assert cats == ["cats", "cats", "cats", "dogs", "dogs", "rare"]


def test_min_examples_per_class_drops_rare_labels(tmp_path: Path) -> None:
    cfg = RunConfig(data_path=str(_fortunes(tmp_path / "f")), min_examples_per_class=2)
    ds = load_texts(cfg)
    assert ds.label_names == ["cats", "dogs"]
    assert ds.labels == [0, 0, 0, 1, 1]
    with pytest.raises(TrainerError, match="only 1 label"):
        load_texts(RunConfig(data_path=cfg.data_path, min_examples_per_class=3))


def test_missing_fortunes_folder() -> None:
    with pytest.raises(TrainerError, match="fortunes folder '/nope' does not exist"):
        load_texts(RunConfig(data_path="/nope"))


def test_jsonl_with_clients(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rows = [{"text": f"t{i}", "label": "ab"[i % 2], "user": f"u{i % 3}"} for i in range(6)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_texts(
        RunConfig(
            data="jsonl",
            data_path=str(path),
            min_examples_per_class=1,
            partition="natural",
            client_column="user",
        )
    )
    assert ds.labels == [0, 1, 0, 1, 0, 1]
    assert ds.clients == ["u0", "u1", "u2", "u0", "u1", "u2"]


@pytest.mark.parametrize(
    ("content", "changes", "message"),
    [
        ("text,label\n,a\n", {}, r"row 1 has an empty 'text'"),
        ("body,label\nx,a\n", {}, r"has no column 'text' \(columns: body, label\)"),
        ("text,label\nx,a\n", {"partition": "natural"}, r"has no column 'client'"),
        ("text,label\nx,\n", {}, r"row 1 has no 'label'"),
    ],
)
def test_bad_csv(tmp_path: Path, content: str, changes: dict[str, str], message: str) -> None:
    path = tmp_path / "d.csv"
    path.write_text(content)
    with pytest.raises(TrainerError, match=message):
        load_texts(RunConfig(data="csv", data_path=str(path), min_examples_per_class=1, **changes))


def test_missing_csv() -> None:
    with pytest.raises(TrainerError, match=r"data_path '/no\.csv' is not a file"):
        load_texts(RunConfig(data="csv", data_path="/no.csv"))


def test_split_is_seeded_disjoint_and_complete() -> None:
    a = split_indices(100, val_fraction=0.1, test_fraction=0.2, seed=3)
    b = split_indices(100, val_fraction=0.1, test_fraction=0.2, seed=3)
    c = split_indices(100, val_fraction=0.1, test_fraction=0.2, seed=4)
    assert (len(a.train), len(a.val), len(a.test)) == (70, 10, 20)
    assert np.array_equal(a.val, b.val) and not np.array_equal(a.val, c.val)
    assert sorted(np.concatenate([a.train, a.val, a.test]).tolist()) == list(range(100))


def test_iid_partition_sizes() -> None:
    parts = iid_partition(np.arange(103), 10, seed=0)
    assert sorted(len(p) for p in parts) == [10] * 7 + [11] * 3
    assert sorted(np.concatenate(parts).tolist()) == list(range(103))
    with pytest.raises(TrainerError, match="cannot fill num_clients=200"):
        iid_partition(np.arange(103), 200, seed=0)


def test_dirichlet_small_alpha_is_skewed_and_complete() -> None:
    labels = np.repeat(np.arange(5), 100)
    parts = dirichlet_partition(np.arange(500), labels, 10, alpha=0.1, seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(500))
    assert min(len(p) for p in parts) >= 1
    # most clients are dominated by one label at alpha = 0.1
    top_share = [np.bincount(labels[p]).max() / len(p) for p in parts]
    assert np.median(top_share) > 0.6
    iid = dirichlet_partition(np.arange(500), labels, 10, alpha=1000.0, seed=0)
    assert max(np.bincount(labels[p], minlength=5).max() / len(p) for p in iid) < 0.4


def test_natural_partition_groups_by_client() -> None:
    clients = ["b", "a", "b", "c", "a"]
    parts = natural_partition(np.array([0, 1, 2, 4]), clients)
    assert [p.tolist() for p in parts] == [[1, 4], [0, 2]]


def test_cap_clients() -> None:
    parts = cap_clients([np.arange(10), np.arange(3)], 4, seed=0)
    assert [len(p) for p in parts] == [4, 3]
