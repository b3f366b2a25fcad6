"""Fleet files: a built-in or user fleet by name, a ``.toml`` of tiers, a ``.csv`` of measured
clients (docs/fleets.md has both formats). Each bad file is one ``FleetError`` line naming the
file, the line and the value; the rows of a CSV become a measured ``Fleet`` with derived tiers."""

from __future__ import annotations

import csv
import io
import statistics
import sys
from array import array
from pathlib import Path
from typing import Any, NoReturn

from planner.errors import ProfileError
from planner.fleet._data import ClientLink, Fleet, FleetError, Tier
from planner.limits import LIMITS, check
from planner.profiles import find_profile, read_mapping

MEASURED_TIER = "measured"  # the one tier of a CSV without a tier column
CSV_COLUMNS = ("client", "tier", "down_mbps", "up_mbps", "rtt_ms")  # client: a label, unused
CSV_REQUIRED = ("down_mbps", "up_mbps")
TIER_KEYS = ("name", "weight", "down_mbps", "up_mbps", "rtt_ms", "spread_sigma", "source")
FLEET_KEYS = ("name", "description", "source", "tiers")


def load_fleet(name_or_path: str) -> Fleet:
    """A built-in or user fleet by name (``profiles/fleets/<name>.toml|csv``; see
    ``planner.profiles``), or a ``.toml`` (tiers) / ``.csv`` (measured clients) path."""
    try:
        path = find_profile("fleet", name_or_path)
    except ProfileError as exc:
        raise FleetError(str(exc)) from None
    if path.suffix.lower() == ".csv":
        return fleet_from_csv(_read_text(path), path=path)
    try:
        data = read_mapping(path)
    except ProfileError as exc:
        raise FleetError(str(exc)) from None
    return fleet_from_mapping(data, path=path)


def _read_text(path: Path) -> str:
    """UTF-8, with or without the byte-order mark Excel writes ("CSV UTF-8")."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise FleetError(f"cannot read fleet file {str(path)!r}: {exc.strerror or exc}.") from None
    except UnicodeDecodeError as exc:
        raise FleetError(
            f"fleet file {str(path)!r} is not UTF-8 text (offset {exc.start})."
        ) from None


def fleet_from_mapping(data: dict[str, Any], *, path: Path) -> Fleet:
    """A fleet file's mapping: name, description, source and a ``[[tiers]]`` list."""
    where = f"fleet file {str(path)!r}"
    unknown = sorted(map(str, set(data) - set(FLEET_KEYS)))
    if unknown:
        raise FleetError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(FLEET_KEYS)}.")
    raw = data.get("tiers")
    if not isinstance(raw, list) or not raw:
        raise FleetError(f"{where} needs a non-empty [[tiers]] list (an empty fleet).")
    tiers = []
    try:
        for i, t in enumerate(raw, start=1):
            if not isinstance(t, dict):
                raise FleetError(f"tier {i} must be a table, but got {t!r}.")
            bad = sorted(map(str, set(t) - set(TIER_KEYS)))
            if bad:
                raise FleetError(
                    f"tier {i}: unknown key {bad[0]!r}; allowed: {', '.join(TIER_KEYS)}."
                )
            for key in ("name", "weight", "down_mbps", "up_mbps"):
                if key not in t:
                    raise FleetError(f"tier {i} is missing {key}.")
            tiers.append(
                Tier(
                    name=t["name"],
                    weight=t["weight"],
                    down_mbps=t["down_mbps"],
                    up_mbps=t["up_mbps"],
                    rtt_ms=t.get("rtt_ms", 0.0),
                    spread_sigma=t.get("spread_sigma", 0.0),
                    source=str(t.get("source", "")),
                )
            )
        return Fleet(
            name=str(data.get("name", path.stem)),
            tiers=tuple(tiers),
            source=str(data.get("source", "")),
            description=str(data.get("description", "")),
        )
    except FleetError as exc:
        raise FleetError(f"{where}: {exc}") from None


def fleet_from_csv(text: str, *, path: Path) -> Fleet:
    """Measured clients, one per row: ``down_mbps``, ``up_mbps`` (required), ``rtt_ms`` (default
    0), ``tier`` (default: one tier ``measured``), ``client`` (a label, unique when given). Lines
    starting with ``#`` are comments; other columns (a timestamp, a region) are ignored with one
    note on stderr. Numbers are plain decimals ("1e3", "0.5"; not "1_000", not "nan") within
    their physical range (``planner.limits``). Tiers are derived: weight = the tier's share of
    the rows, links = its medians."""
    where = f"fleet file {str(path)!r}"
    lines = [(i, line) for i, line in enumerate(text.splitlines(), start=1)]
    body = [(i, line) for i, line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not body:
        raise FleetError(f"{where} has no header and no clients (an empty fleet).")
    header_no, header_line = body[0]
    header = [h.strip() for h in next(csv.reader(io.StringIO(header_line)))]
    for col in CSV_REQUIRED:
        if col not in header:
            raise FleetError(
                f"{where} is missing the column {col!r} (header line {header_no}; "
                f"floss reads {', '.join(CSV_COLUMNS)})."
            )
    repeated = sorted({h for h in header if header.count(h) > 1 and h in CSV_COLUMNS})
    if repeated:
        raise FleetError(f"{where}: column {repeated[0]!r} appears twice.")
    rows: list[ClientLink] = []
    parsed = csv.reader([line for _, line in body[1:]])  # one row per line: split above
    width = len(header)
    at: dict[str, int] = {
        c: header.index(c) for c in ("down_mbps", "up_mbps", "rtt_ms") if c in header
    }
    i_tier = header.index("tier") if "tier" in header else None
    i_client = header.index("client") if "client" in header else None
    i_rtt = at.get("rtt_ms")
    i_down, i_up = at["down_mbps"], at["up_mbps"]
    ids = array("q")  # the clients' id hashes: 8 bytes a row, not a set of a million strings
    low, high = LIMITS["down_mbps"].low, LIMITS["down_mbps"].high
    rtt_high = LIMITS["rtt_ms"].high
    names: dict[str, str] = {}  # a tier cell -> its name, checked once (one string a tier)
    link = ClientLink.checked
    for (no, _), cells in zip(body[1:], parsed, strict=True):
        if len(cells) != width:
            raise FleetError(f"{where} line {no}: {len(cells)} values for {width} columns.")
        down_text, up_text = cells[i_down], cells[i_up]
        rtt_text = "" if i_rtt is None else cells[i_rtt]
        try:
            down = float(down_text)
            up = float(up_text)
            rtt = 0.0 if i_rtt is None else float(rtt_text)
        except ValueError:
            _bad_cell(cells, at, where=where, no=no)
        if (
            not (low <= down <= high and low <= up <= high and 0 <= rtt <= rtt_high)
            or "_" in down_text
            or "_" in up_text
            or "_" in rtt_text
        ):  # out of range, nan, or "1_000" (float() reads it; a plain number has no "_")
            _bad_cell(cells, at, where=where, no=no)
        cell = MEASURED_TIER if i_tier is None else cells[i_tier]
        tier = names.get(cell)
        if tier is None:
            tier = cell.strip()
            if not tier or not tier.isprintable():
                raise FleetError(f"{where} line {no}: tier must be a non-empty name, got {tier!r}.")
            names[cell] = tier
        if i_client is not None and (client := cells[i_client].strip()):
            ids.append(hash(client))
        rows.append(link(tier=tier, down_mbps=down, up_mbps=up, rtt_ms=rtt))
    if not rows:
        raise FleetError(f"{where} has a header but no clients (an empty fleet).")
    if i_client is not None:
        _check_unique_ids(ids, body[1:], i_client, where=where)
    extra = [h for h in header if h not in CSV_COLUMNS]
    if extra:  # said once the file is read: a refused file ends in its one error line
        _note_once(
            f"note: {where}: column(s) {', '.join(map(repr, extra))} ignored "
            f"(floss reads {', '.join(CSV_COLUMNS)})."
        )
    return measured_fleet(tuple(rows), name=path.stem, source=str(path))


def _check_unique_ids(
    ids: array[int], body: list[tuple[int, str]], column: int, *, where: str
) -> None:
    """One row per client id: equal hashes are looked at exactly (a collision is not a repeat)."""
    import numpy as np

    hashes = np.sort(np.frombuffer(ids, dtype=np.int64))
    if not (hashes[1:] == hashes[:-1]).any():
        return
    first: dict[str, int] = {}
    for (no, _), cells in zip(body, csv.reader([line for _, line in body]), strict=True):
        client = cells[column].strip()
        if client and client in first:
            raise FleetError(
                f"{where} line {no}: client {client!r} is given twice (first on line "
                f"{first[client]}); one row per client."
            )
        first.setdefault(client, no)


_NOTED: set[str] = set()


def _note_once(message: str) -> None:
    """One line on stderr, once per process (a fleet file may be read twice by one run)."""
    if message not in _NOTED:
        _NOTED.add(message)
        print(message, file=sys.stderr, flush=True)


def _bad_cell(cells: list[str], at: dict[str, int], *, where: str, no: int) -> NoReturn:
    """The one-line error for the first bad number of a CSV row."""
    for col, i in at.items():
        text = cells[i].strip()
        if "_" in text or not text.isascii():
            raise FleetError(f"{where} line {no}: {col} {text!r} is not a plain number.")
        try:
            value = float(text)
        except ValueError:
            raise FleetError(f"{where} line {no}: {col} {text!r} is not a number.") from None
        try:
            check(value, col, name=col)
        except ValueError as exc:
            raise FleetError(f"{where} line {no}: {exc}") from None
    raise FleetError(f"{where} line {no}: a bad value.")  # pragma: no cover - one above fails


def measured_fleet(links: tuple[ClientLink, ...], *, name: str, source: str = "") -> Fleet:
    """A fleet of measured links; one derived tier per distinct tier label, in first-seen order,
    weighted by its share of the rows, with the median links of its rows."""
    order = list(dict.fromkeys(link.tier for link in links))
    tiers = []
    for tier in order:
        mine = [link for link in links if link.tier == tier]
        tiers.append(
            Tier(
                name=tier,
                weight=len(mine) / len(links),
                down_mbps=statistics.median([m.down_mbps for m in mine]),
                up_mbps=statistics.median([m.up_mbps for m in mine]),
                rtt_ms=statistics.median([m.rtt_ms for m in mine]),
                source="measured",
            )
        )
    return Fleet(
        name=name,
        tiers=tuple(tiers),
        measured=links,
        source=source,
        description=f"{len(links)} measured clients",
    )
