"""Users' own data offline: Parquet, Arrow, JSONL folders and Hugging Face datasets saved with
save_to_disk, read into the same columns with the same one-line errors as CSV."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trainer.config import RunConfig
from trainer.data import load_texts
from trainer.errors import TrainerError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ROWS = [
    {"body": f"text number {i}", "topic": "ab"[i % 2], "user": f"u{i % 3}"} for i in range(12)
]


def _config(data: str, path: Path, **changes: Any) -> RunConfig:
    base: dict[str, Any] = {
        "data": data,
        "data_path": str(path),
        "text_column": "body",
        "label_column": "topic",
        "client_column": "user",
        "min_examples_per_class": 1,
        "partition": "natural",
    }
    return RunConfig(**{**base, **changes})


def _parquet(path: Path, rows: list[dict[str, Any]] = ROWS) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _expected() -> tuple[list[str], list[int], list[str]]:
    return (
        [r["body"] for r in ROWS],
        [0 if r["topic"] == "a" else 1 for r in ROWS],
        [r["user"] for r in ROWS],
    )


def test_parquet_file_and_folder(tmp_path: Path) -> None:
    ds = load_texts(_config("parquet", _parquet(tmp_path / "d.parquet")))
    assert (ds.texts, ds.labels, ds.clients) == _expected()
    assert ds.label_names == ["a", "b"]
    folder = tmp_path / "parts"
    folder.mkdir()
    _parquet(folder / "part-0.parquet", ROWS[:5])
    _parquet(folder / "part-1.parquet", ROWS[5:])
    ds = load_texts(_config("parquet", folder))
    assert (ds.texts, ds.labels, ds.clients) == _expected()
    assert "12 texts in 2 classes" in ds.source


def test_hf_reads_parquet_arrow_and_jsonl_locally(tmp_path: Path) -> None:
    assert load_texts(_config("hf", _parquet(tmp_path / "d.parquet"))).texts == _expected()[0]
    arrow = tmp_path / "d.arrow"
    table = pa.Table.from_pylist(ROWS)
    with pa.OSFile(str(arrow), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    assert load_texts(_config("hf", arrow)).clients == _expected()[2]
    folder = tmp_path / "jsonl"
    folder.mkdir()
    (folder / "a.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS[:6]))
    (folder / "b.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS[6:]))
    assert load_texts(_config("hf", folder)).labels == _expected()[1]


def test_saved_dataset_with_class_labels_and_splits(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "body": datasets.Value("string"),
            "topic": datasets.ClassLabel(names=["a", "b"]),
            "user": datasets.Value("string"),
        }
    )
    as_ids = [{**r, "topic": 0 if r["topic"] == "a" else 1} for r in ROWS]
    one = datasets.Dataset.from_list(as_ids, features=features)
    one.save_to_disk(str(tmp_path / "one"))
    ds = load_texts(_config("hf", tmp_path / "one"))
    assert (ds.texts, ds.labels, ds.clients) == _expected()
    assert ds.label_names == ["a", "b"]  # ClassLabel ids became their names
    # a DatasetDict: every split, in sorted split order (floss makes its own split)
    both = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(as_ids[4:], features=features),
            "test": datasets.Dataset.from_list(as_ids[:4], features=features),
        }
    )
    both.save_to_disk(str(tmp_path / "both"))
    ds = load_texts(_config("hf", tmp_path / "both"))
    assert ds.texts == [r["body"] for r in ROWS[:4] + ROWS[4:]]


@pytest.mark.parametrize(
    ("rows", "changes", "message"),
    [
        (
            [{"text": "x", "topic": "a", "user": "u"}],
            {},
            r"has no column 'body' \(columns: text, topic, user\)",
        ),
        ([{"body": " ", "topic": "a", "user": "u"}], {}, r"row 1 has an empty 'body'"),
        ([{"body": "x", "topic": None, "user": "u"}], {}, r"row 1 has no 'topic'"),
        ([{"body": "x", "topic": "a", "user": None}], {}, r"row 1 has no 'user'"),
        ([{"body": "x", "topic": "a"}], {}, r"has no column 'user'"),
    ],
)
def test_bad_columns_are_one_line(
    tmp_path: Path, rows: list[dict[str, Any]], changes: dict[str, Any], message: str
) -> None:
    path = _parquet(tmp_path / "d.parquet", rows)
    with pytest.raises(TrainerError, match=message):
        load_texts(_config("parquet", path, **changes))


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not a parquet file at all")
    with pytest.raises(TrainerError, match=r"cannot read '.*broken\.parquet'"):
        load_texts(_config("parquet", broken))
    with pytest.raises(TrainerError, match=r"data_path '/nope\.parquet' does not exist"):
        load_texts(_config("parquet", Path("/nope.parquet")))
    with pytest.raises(TrainerError, match=r"data=parquet needs a \.parquet file"):
        load_texts(_config("parquet", _write(tmp_path / "d.csv", "body,topic\nx,a\n")))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrainerError, match=r"holds no data files"):
        load_texts(_config("hf", empty))
    with pytest.raises(TrainerError, match=r"unknown data file type '\.txt'"):
        load_texts(_config("hf", _write(tmp_path / "d.txt", "x")))


def test_csv_with_a_byte_order_mark(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a BOM; the first column keeps its name."""
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffbody,topic,user\nhello,a,u1\nworld,b,u2\n".encode())
    ds = load_texts(_config("csv", path))
    assert ds.texts == ["hello", "world"] and ds.clients == ["u1", "u2"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
