"""The per-round record that flows to the tuner, the CLI, the CSV/JSONL files and the plots.

JSON has no NaN or infinity: every JSON file and attribute written from records (rounds.jsonl,
summary.json, checkpoint meta, a trial's records in the study) carries a number or null
(``json_safe``). ``RoundRecord.from_dict`` reads both that and the older files, which wrote a
non-finite float as the string "nan" / "inf".
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

CSV_NAME = "rounds.csv"
JSONL_NAME = "rounds.jsonl"


@dataclass(frozen=True, kw_only=True)
class RoundRecord:
    """One server round. Bytes are bytes (MB = 10**6 bytes), seconds are seconds."""

    round: int  # 1-based
    rank: int
    d_down: float  # density actually sent this round
    d_up: float
    bytes_down: int  # per client
    bytes_up: int  # per client, mean over the kept (aggregated) clients; 0 if none
    bytes_total: int  # all sampled clients, both directions, this round
    cum_bytes: int
    sim_seconds: float  # simulated network (+ given compute) time of this round
    cum_sim_seconds: float
    wall_seconds: float  # real time this process spent on the round
    train_loss: float
    # validation of the served model: the server's P as the next round's clients receive it
    # (masked to the download mask, through the wire precision); None when not evaluated
    val_loss: float | None
    val_accuracy: float | None  # None for LM too
    client_steps: int
    # the same for the server's dense P (equal to the served numbers when the vectors are equal)
    val_loss_server: float | None = None
    val_accuracy_server: float | None = None
    # the test split, served and server: only on the last round of a run with eval_test
    test_loss: float | None = None
    test_accuracy: float | None = None
    test_loss_server: float | None = None
    test_accuracy_server: float | None = None
    # per sampled client, in the order of ``clients`` (sorted ids): what each one received and
    # sent, its simulated seconds and densities; ``kept`` = the clients whose upload was
    # aggregated (every sampled one except stragglers of deadline rounds). Lists go to
    # rounds.jsonl and checkpoints, not to the CSV (scalar columns only).
    clients: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    client_bytes_down: list[int] = field(default_factory=list)
    client_bytes_up: list[int] = field(default_factory=list)  # 0: not aggregated, not sent
    client_seconds: list[float] = field(default_factory=list)
    client_d_down: list[float] = field(default_factory=list)
    client_d_up: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoundRecord:
        """Fields with a default may be missing (records written before they existed). A float
        written as null (a round with no loss: nobody aggregated) or, by older files, as the
        string "nan"/"inf" reads back as that float: NaN for train_loss, None for the metrics
        whose null means "not evaluated"."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in data:
                values[f.name] = _read_float(f.name, data[f.name])
            elif f.default is not MISSING:
                values[f.name] = f.default
            elif f.default_factory is not MISSING:
                values[f.name] = f.default_factory()
            else:
                values[f.name] = data[f.name]  # a required field: KeyError names it
        return cls(**values)


LIST_FIELDS = frozenset(f.name for f in fields(RoundRecord) if f.default_factory is not MISSING)
FIELDS = tuple(f.name for f in fields(RoundRecord) if f.name not in LIST_FIELDS)  # CSV columns


NON_FINITE_TEXT = frozenset({"nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"})


def _read_float(name: str, value: Any) -> Any:
    """A record value as read from JSON (see ``RoundRecord.from_dict``)."""
    if isinstance(value, str) and value.strip().lower() in NON_FINITE_TEXT:
        return float(value)  # an older file's "nan" / "inf"
    if value is None and name == "train_loss":  # the one float field without a None meaning
        return math.nan
    return value


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-inf), also inside lists and dicts, made
    None: JSON has no such numbers, and a reader must get a number or null, never a string."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


class RecordWriter:
    """Appends records to ``rounds.csv`` and ``rounds.jsonl`` in a folder, flushing each round."""

    def __init__(self, out_dir: Path, *, existing: list[RoundRecord] | None = None) -> None:
        self.csv_path = out_dir / CSV_NAME
        self.jsonl_path = out_dir / JSONL_NAME
        out_dir.mkdir(parents=True, exist_ok=True)
        # (re)write from the known records: a resumed run drops rounds after its checkpoint
        with self.csv_path.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(FIELDS)
        self.jsonl_path.write_text("", encoding="utf-8")
        for record in existing or []:
            self.write(record)

    def write(self, record: RoundRecord) -> None:
        row = record.to_dict()
        with self.csv_path.open("a", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(["" if row[k] is None else row[k] for k in FIELDS])
        with self.jsonl_path.open("a", encoding="utf-8") as fh:
            line = json.dumps(json_safe(row), sort_keys=True, allow_nan=False)
            fh.write(line + "\n")
