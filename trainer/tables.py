"""Users' own tables, read offline: CSV, JSONL, Parquet, Arrow and Hugging Face datasets saved
with ``save_to_disk``, all into the same (texts, labels, clients) columns with the same errors.

Every reader yields rows (mappings of column -> value); ``table_columns`` checks the columns the
run needs once, for all formats, and names the file, the row and the column in one line.
Parquet and Arrow need pyarrow, a saved dataset needs ``datasets`` (the ``data`` extra); both
load only when such a file is read.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.errors import TrainerError

if TYPE_CHECKING:
    from trainer.config import RunConfig

Row = Mapping[str, Any]
# a folder of data files: these suffixes, in this order of preference; one kind per folder
DATA_FILE_SUFFIXES = (".parquet", ".arrow", ".jsonl", ".json", ".csv")
# the marker files of a folder written by datasets' save_to_disk (Dataset / DatasetDict)
SAVED_DATASET_MARKERS = ("state.json", "dataset_dict.json")


def _needs(package: str, what: str) -> TrainerError:
    return TrainerError(f"{what} needs the package {package!r}: pip install 'floss[data]'.")


def rows_csv(path: Path) -> list[Row]:
    # utf-8-sig: a CSV saved by Excel as "CSV UTF-8" starts with a byte-order mark
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def rows_jsonl(path: Path) -> list[Row]:
    rows: list[Row] = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise TrainerError(f"{str(path)!r} line {i} is not JSON.") from None
        if not isinstance(row, dict):
            raise TrainerError(f"{str(path)!r} line {i} is not a JSON object.")
        rows.append(row)
    return rows


def _arrow_table(path: Path) -> Any:
    """A pyarrow Table from a Parquet file or an Arrow IPC file/stream (datasets writes streams)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise _needs("pyarrow", f"reading {str(path)!r}") from None
    if path.suffix.lower() == ".parquet":
        return pq.read_table(path)
    with pa.memory_map(str(path), "r") as source:
        try:
            return pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            source.seek(0)
            return pa.ipc.open_file(source).read_all()


def rows_arrow(path: Path) -> list[Row]:
    """Rows of a Parquet or Arrow file; dictionary-encoded labels come back as their names."""
    table = _arrow_table(path)
    return list(table.to_pylist())


def _class_names(features: Any) -> dict[str, list[str]]:
    """column -> class names, for the ClassLabel columns of a datasets ``Features``."""
    out = {}
    for name, feature in dict(features).items():
        names = getattr(feature, "names", None)
        if isinstance(names, list) and names:
            out[name] = [str(n) for n in names]
    return out


def rows_saved_dataset(folder: Path) -> list[Row]:
    """Rows of a dataset saved with ``save_to_disk``: one Dataset, or every split of a
    DatasetDict in sorted split order (floss makes its own split). ClassLabel ids become names."""
    try:
        import datasets
    except ImportError:
        raise _needs("datasets", f"reading the saved dataset {str(folder)!r}") from None
    loaded = datasets.load_from_disk(str(folder))
    parts = [loaded[k] for k in sorted(loaded)] if isinstance(loaded, datasets.DatasetDict) else [
        loaded
    ]
    rows: list[Row] = []
    for part in parts:
        names = _class_names(part.features)
        for row in part:
            rows.append(
                {
                    k: names[k][v] if k in names and isinstance(v, int) and 0 <= v < len(names[k])
                    else v
                    for k, v in row.items()
                }
            )
    return rows


def _rows_file(path: Path) -> list[Row]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return rows_csv(path)
    if suffix in (".jsonl", ".json"):
        return rows_jsonl(path)
    if suffix in (".parquet", ".arrow"):
        return rows_arrow(path)
    raise TrainerError(
        f"{str(path)!r}: unknown data file type {path.suffix or '(none)'!r}; use "
        f"{', '.join(DATA_FILE_SUFFIXES)} or a folder saved with datasets' save_to_disk."
    )


def _rows_folder(folder: Path) -> list[Row]:
    if any((folder / marker).is_file() for marker in SAVED_DATASET_MARKERS):
        return rows_saved_dataset(folder)
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    for suffix in DATA_FILE_SUFFIXES:
        chosen = [p for p in files if p.suffix.lower() == suffix]
        if chosen:
            return [row for p in chosen for row in _rows_file(p)]
    raise TrainerError(
        f"folder {str(folder)!r} holds no data files ({', '.join(DATA_FILE_SUFFIXES)}) and is "
        "not a dataset saved with save_to_disk."
    )


def read_rows(config: RunConfig) -> list[Row]:
    """The rows of ``config.data_path`` as ``config.data`` says: csv, jsonl, parquet (a file or a
    folder of .parquet files) or hf (a saved dataset, or a file or folder of data files)."""
    path = Path(str(config.data_path)).expanduser()
    if config.data in ("csv", "jsonl") and not path.is_file():
        raise TrainerError(f"data_path {str(path)!r} is not a file.")
    if not path.exists():
        raise TrainerError(f"data_path {str(path)!r} does not exist.")
    try:
        if config.data == "csv":
            rows = rows_csv(path)
        elif config.data == "jsonl":
            rows = rows_jsonl(path)
        elif path.is_dir():
            if config.data == "parquet" and not any(
                p.suffix.lower() == ".parquet" for p in path.rglob("*")
            ):  # checked before anything is read
                raise TrainerError(f"folder {str(path)!r} holds no .parquet files.")
            rows = _rows_folder(path)
        else:
            if config.data == "parquet" and path.suffix.lower() != ".parquet":
                raise TrainerError(f"data=parquet needs a .parquet file, but got {str(path)!r}.")
            rows = _rows_file(path)
    except TrainerError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise TrainerError(f"cannot read {str(path)!r}: {first}") from None
    except Exception as exc:  # pyarrow and datasets raise their own types for a broken file
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise TrainerError(f"cannot read {str(path)!r} ({type(exc).__name__}): {first}") from None
    if not rows:
        raise TrainerError(f"{str(path)!r} holds no rows.")
    return rows


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def table_columns(
    rows: Iterable[Row], config: RunConfig, *, where: str
) -> tuple[list[str], list[str], list[str] | None]:
    """(texts, labels, clients or None) from rows: the columns the run needs must exist, every
    text must be a non-empty string, every label (classification) and client (natural) present."""
    rows = list(rows)
    need = [config.text_column]
    if config.task == "classification":
        need.append(config.label_column)
    if config.partition == "natural":
        need.append(config.client_column)
    for col in need:
        if col not in rows[0]:
            raise TrainerError(
                f"{where} has no column {col!r} (columns: {', '.join(map(str, rows[0]))})."
            )
    natural = config.partition == "natural"
    texts, labels, clients = [], [], []
    for i, row in enumerate(rows, start=1):
        text = row.get(config.text_column)
        if not isinstance(text, str) or not text.strip():
            raise TrainerError(f"{where} row {i} has an empty {config.text_column!r}.")
        texts.append(text)
        label = _cell(row.get(config.label_column))
        if config.task == "classification" and label == "":
            raise TrainerError(f"{where} row {i} has no {config.label_column!r}.")
        labels.append(label)
        client = _cell(row.get(config.client_column))
        if natural and client == "":
            raise TrainerError(f"{where} row {i} has no {config.client_column!r}.")
        clients.append(client)
    return texts, labels, clients if natural else None


def read_table(config: RunConfig) -> tuple[list[str], list[str], list[str] | None]:
    """(texts, labels, clients or None) from the file or folder ``config.data_path``."""
    rows = read_rows(config)
    return table_columns(rows, config, where=repr(str(Path(str(config.data_path)).expanduser())))
