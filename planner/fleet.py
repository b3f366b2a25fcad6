"""Heterogeneous fleets: per-client links, round policies, per-client densities (pure Python).

A fleet is a mixture of access-link tiers with weights (60 % LTE, 30 % Wi-Fi, 10 % 5G), each
with its own lognormal spread, or a CSV of measured per-client links. Each client of a run keeps
its link for the whole run: ``assign_links`` draws it once from (seed, num_clients, fleet).

A round (``fleet_round``, the trainer follows it; docs/fleets.md has the formulas):

* the clients are sampled with the trainer's seeded sampling (``planner.sampling``): m of them
  under ``sync``, ceil(m * over_selection) under ``deadline``;
* each sampled client c gets its densities (``client_densities``: ``uniform``, ``tiered`` or
  ``bandwidth``), its messages are priced with the encoder the trainer sends through
  (``planner.schedule.topk_message_bytes``), and it takes
  t_c = rtt + bytes_down * 8 / down + compute + rtt + bytes_up * 8 / up seconds
  (``planner.network.round_seconds`` on its own link);
* ``settle_round`` decides whose upload is aggregated and how long the round lasts: ``sync``
  keeps everybody and lasts max t_c; ``deadline`` keeps the first m arrivals by the deadline D.

The server averages the kept uploads as FLASC does, g = (1/|K|) sum_{c in K} decoded_c (each
decoded_c dense with zeros where c sent nothing); ``trainer.round.server_aggregate`` does this.

The planner's estimate (``estimate_fleet``) walks one configuration's rounds one by one and is the
reference; ``plan_fleet`` prices every configuration at once with ``planner.fleet_batch`` (the
same numbers, tested equal) and short-lists with ``planner.fleet_shortlist``.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import random
import statistics
import sys
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn

from planner.budget import BUDGET_RTOL
from planner.limits import LIMITS, check, check_derived
from planner.network import round_seconds
from planner.plan import PlanSettings, adapter_size
from planner.profiles import ProfileError, find_profile, read_mapping
from planner.sampling import sample_clients
from planner.schedule import (
    MethodSpec,
    RoundPrice,
    check_method,
    topk_message_bytes,
    uniform_densities,
)

FLEET_METHODS: tuple[str, ...] = ("floss", "dense", "ffa")
ROUND_POLICIES: tuple[str, ...] = ("sync", "deadline")
DENSITY_POLICIES: tuple[str, ...] = ("uniform", "tiered", "bandwidth")
DEFAULT_GRID: tuple[float, ...] = tuple(2.0**-i for i in range(9))  # 1, 1/2, ..., 1/256
DEFAULT_OVER_SELECTION = 1.3  # FedScale over-selects 1.3x and keeps the first to finish
MAX_PLAN_CLIENTS = 1_000_000  # a fleet plan draws every client's link (~100 bytes each)
WEIGHT_TOLERANCE = 1e-6  # tier weights must sum to 1 within this
MEASURED_TIER = "measured"  # the one tier of a CSV without a tier column
CSV_COLUMNS = ("client", "tier", "down_mbps", "up_mbps", "rtt_ms")  # client: a label, unused
CSV_REQUIRED = ("down_mbps", "up_mbps")
TIER_KEYS = ("name", "weight", "down_mbps", "up_mbps", "rtt_ms", "spread_sigma", "source")
FLEET_KEYS = ("name", "description", "source", "tiers")


class FleetError(ValueError):
    """A fleet file or fleet setting that cannot be used; one line naming the file and value."""


def _number(value: object, what: str) -> float:
    try:
        return check(value, "", name=what)  # finite, not a bool; no range
    except ValueError as exc:
        raise FleetError(str(exc)) from None


def _ranged(value: object, field: str, what: str) -> float:
    """A link number within its physical range (``planner.limits``), as a FleetError."""
    try:
        return check(value, field, name=what)
    except ValueError as exc:
        raise FleetError(str(exc)) from None


_MBPS_LOW, _MBPS_HIGH = LIMITS["down_mbps"].low, LIMITS["down_mbps"].high
_RTT_HIGH = LIMITS["rtt_ms"].high


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise FleetError(f"{what} must be a non-empty name, but got {value!r}.")
    return value.strip()


@dataclass(frozen=True, kw_only=True)
class Tier:
    """One access-link class of a fleet: its share of the clients and its median link."""

    name: str = field(metadata={"help": "tier name, e.g. lte"})
    weight: float = field(metadata={"help": "share of the clients, (0, 1]"})
    down_mbps: float = field(metadata={"help": "median downlink, 10^6 bit/s"})
    up_mbps: float = field(metadata={"help": "median uplink, 10^6 bit/s"})
    rtt_ms: float = field(default=0.0, metadata={"help": "round-trip latency, ms"})
    spread_sigma: float = field(
        default=0.0, metadata={"help": "sigma of ln(bandwidth) within the tier; 0: identical"}
    )
    source: str = field(default="", metadata={"help": "where the numbers come from"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _name(self.name, "tier name"))
        what = f"tier {self.name!r}"
        for key in ("weight", "down_mbps", "up_mbps", "rtt_ms", "spread_sigma"):
            object.__setattr__(self, key, _ranged(getattr(self, key), key, f"{what} {key}"))


@dataclass(frozen=True, kw_only=True)
class ClientLink:
    """One client's link for the whole run."""

    tier: str
    down_mbps: float
    up_mbps: float
    rtt_ms: float = 0.0

    def __post_init__(self) -> None:
        d, u, r = self.down_mbps, self.up_mbps, self.rtt_ms
        if not (
            type(d) is float
            and type(u) is float
            and type(r) is float
            and _MBPS_LOW <= d <= _MBPS_HIGH
            and _MBPS_LOW <= u <= _MBPS_HIGH
            and 0 <= r <= _RTT_HIGH
        ):  # the slow path names the bad one (nan, inf, out of range, not a number)
            _ranged(d, "down_mbps", "down_mbps")
            _ranged(u, "up_mbps", "up_mbps")
            _ranged(r, "rtt_ms", "rtt_ms")


@dataclass(frozen=True, kw_only=True)
class Fleet:
    """A mixture of tiers (weights sum to 1), or measured client links (tiers derived)."""

    name: str
    tiers: tuple[Tier, ...]
    measured: tuple[ClientLink, ...] = ()
    source: str = ""
    description: str = ""
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        if not self.tiers:
            raise FleetError(f"fleet {self.name!r} has no tiers (an empty fleet).")
        names = [t.name for t in self.tiers]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise FleetError(f"fleet {self.name!r}: tier {repeated[0]!r} is given twice.")
        total = math.fsum(t.weight for t in self.tiers)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise FleetError(
                f"fleet {self.name!r}: tier weights must sum to 1, but they sum to {total:.6g}."
            )
        unknown = sorted({c.tier for c in self.measured} - set(names))
        if unknown:
            raise FleetError(
                f"fleet {self.name!r}: measured client of unknown tier {unknown[0]!r}."
            )
        # the fleet keys memo caches (planner prices per link); hash its 10**4 links only once
        object.__setattr__(self, "_hash", hash((self.name, self.tiers, self.measured, self.source)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def tier_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tiers)

    def tier(self, name: str) -> Tier:
        for t in self.tiers:
            if t.name == name:
                return t
        raise FleetError(
            f"fleet {self.name!r} has no tier {name!r}; its tiers: {', '.join(self.tier_names)}."
        )


# ---------------------------------------------------------------------------------------------
# Loading


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
    low, high, rtt_high = _MBPS_LOW, _MBPS_HIGH, _RTT_HIGH
    for (no, _), cells in zip(body[1:], parsed, strict=True):
        if len(cells) != width:
            raise FleetError(f"{where} line {no}: {len(cells)} values for {width} columns.")
        try:
            down = float(cells[i_down])
            up = float(cells[i_up])
            rtt = 0.0 if i_rtt is None else float(cells[i_rtt])
        except ValueError:
            _bad_cell(cells, at, where=where, no=no)
        if not (low <= down <= high and low <= up <= high and 0 <= rtt <= rtt_high):
            _bad_cell(cells, at, where=where, no=no)
        if (
            "_" in cells[i_down]
            or "_" in cells[i_up]
            or (i_rtt is not None and "_" in cells[i_rtt])
        ):
            _bad_cell(cells, at, where=where, no=no)
        tier = MEASURED_TIER if i_tier is None else cells[i_tier].strip()
        if not tier or not tier.isprintable():
            raise FleetError(f"{where} line {no}: tier must be a non-empty name, got {tier!r}.")
        if i_client is not None and (client := cells[i_client].strip()):
            ids.append(hash(client))
        rows.append(ClientLink(tier=tier, down_mbps=down, up_mbps=up, rtt_ms=rtt))
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
                down_mbps=_median([m.down_mbps for m in mine]),
                up_mbps=_median([m.up_mbps for m in mine]),
                rtt_ms=_median([m.rtt_ms for m in mine]),
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


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


# ---------------------------------------------------------------------------------------------
# Links: drawn once per run


@lru_cache(maxsize=32)
def assign_links(fleet: Fleet, num_clients: int, seed: int) -> tuple[ClientLink, ...]:
    """Client c's link for the whole run, a function of (fleet, num_clients, seed) alone.

    Tiers: each tier gets its share of the clients by largest remainder (exactly 6/3/1 of 10 for
    60/30/10 %), the labels are shuffled, then client c's two links are the tier's medians times
    one lognormal factor exp(N(0, sigma)) (as ``planner.network.client_bandwidth_factors``).
    Measured: the rows in seeded random order, client c the c-th (in passes when the population
    outnumbers the rows, so every row serves floor or ceil of num_clients / rows clients).
    """
    picks, factors = link_draws(fleet, num_clients, seed)
    if fleet.measured:
        return tuple(fleet.measured[i] for i in picks)
    links = []
    for i, f in zip(picks, factors, strict=True):
        t = fleet.tiers[i]
        links.append(
            ClientLink(
                tier=t.name, down_mbps=t.down_mbps * f, up_mbps=t.up_mbps * f, rtt_ms=t.rtt_ms
            )
        )
    return tuple(links)


def link_draws(fleet: Fleet, num_clients: int, seed: int) -> tuple[list[int], list[float]]:
    """``assign_links``'s seeded draws: per client the measured row it takes (factors empty), or
    its tier's index and its lognormal factor (1.0 without spread). The one source of the links:
    ``assign_links`` builds them, ``planner.fleet_batch.link_arrays`` the planner's arrays."""
    if isinstance(num_clients, bool) or not isinstance(num_clients, int) or num_clients < 1:
        raise FleetError(f"num_clients must be an integer >= 1, but got {num_clients!r}.")
    rng = random.Random(f"floss/fleet/{seed}/{num_clients}")
    if fleet.measured:
        order: list[int] = []
        while len(order) < num_clients:
            perm = list(range(len(fleet.measured)))
            rng.shuffle(perm)
            order += perm
        return order[:num_clients], []
    total = math.fsum(t.weight for t in fleet.tiers)
    quotas = [t.weight / total * num_clients for t in fleet.tiers]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: num_clients - sum(counts)]:
        counts[i] += 1
    labels = [i for i, c in enumerate(counts) for _ in range(c)]
    rng.shuffle(labels)
    sigmas = [t.spread_sigma for t in fleet.tiers]
    gauss, exp = rng.gauss, math.exp
    factors = [exp(gauss(0.0, sigmas[i])) if sigmas[i] else 1.0 for i in labels]
    return labels, factors


# ---------------------------------------------------------------------------------------------
# Settings


def _fraction(text: str, what: str) -> float:
    part = text.strip()
    try:
        value = float(Fraction(part))
    except (ValueError, ZeroDivisionError, OverflowError):
        raise FleetError(
            f"{what}: {part!r} is not a density (expected e.g. 1, 1/4, 0.0625)."
        ) from None
    if not 0 < value <= 1:
        raise FleetError(f"{what}: density must be in (0, 1], but got {part!r}.")
    return value


def parse_tier_densities(text: str) -> tuple[tuple[str, float, float], ...]:
    """``"lte=1/4:1/16,wifi=1:1/4"`` -> (("lte", 0.25, 0.0625), ("wifi", 1.0, 0.25))."""
    what = "tier densities"
    items = [p.strip() for p in text.split(",")]
    if not text.strip() or not all(items):
        raise FleetError(f"{what} must look like lte=1/4:1/16,wifi=1:1/4, but got {text!r}.")
    out: list[tuple[str, float, float]] = []
    for item in items:
        name, eq, pair = item.partition("=")
        down, colon, up = pair.partition(":")
        if not eq or not colon or not name.strip():
            raise FleetError(f"{what}: {item!r} is not tier=d_down:d_up (e.g. lte=1/4:1/16).")
        tier = name.strip()
        if any(t == tier for t, _, _ in out):
            raise FleetError(f"{what}: tier {tier!r} is given twice.")
        out.append((tier, _fraction(down, f"{what} {tier}"), _fraction(up, f"{what} {tier}")))
    return tuple(out)


def format_tier_densities(items: Sequence[tuple[str, float, float]]) -> str:
    """The inverse of ``parse_tier_densities`` (exact fractions where the float is one)."""
    return ",".join(f"{t}={_fmt(d)}:{_fmt(u)}" for t, d, u in items)


def _fmt(d: float) -> str:
    f = Fraction(d).limit_denominator(1 << 20)
    return str(f) if float(f) == d else repr(d)


def parse_grid(text: str) -> tuple[float, ...]:
    """``"1,1/2,1/4"`` -> (1.0, 0.5, 0.25): sorted descending, each once, each in (0, 1]."""
    items = [p.strip() for p in text.split(",")]
    if not text.strip() or not all(items):
        raise FleetError(f"density grid must be a comma list like 1,1/2,1/4, but got {text!r}.")
    return _grid(tuple(_fraction(p, "density grid") for p in items))


def _grid(values: Sequence[float]) -> tuple[float, ...]:
    if not values:
        raise FleetError("the density grid is empty.")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise FleetError(f"density grid values must be in (0, 1], but got {v!r}.")
    return tuple(sorted({float(v) for v in values}, reverse=True))


def check_fleet_method(method: str, density_policy: str) -> None:
    """Fleets price stateless rounds; per-client densities exist for floss only."""
    check_method(method)
    if method not in FLEET_METHODS:
        raise FleetError(f"fleets support floss, dense and ffa; {method} keeps one shared mask.")
    if density_policy not in DENSITY_POLICIES:
        raise FleetError(
            f"density policy must be one of {', '.join(DENSITY_POLICIES)}, "
            f"but got {density_policy!r}."
        )
    if method != "floss" and density_policy != "uniform":
        raise FleetError(
            f"density policy {density_policy} needs per-client densities, which only floss has; "
            f"{method} sends every entry: use uniform."
        )


@dataclass(frozen=True, kw_only=True)
class FleetSetup:
    """How a run meets its fleet: the round policy and the density policy (docs/fleets.md).

    ``adapt_down`` matters under the bandwidth policy only, ``tier_densities`` under tiered only
    (both are still checked: a tier the fleet lacks is a typo whatever the policy).
    """

    fleet: Fleet
    round_policy: str = field(default="sync", metadata={"help": "sync | deadline"})
    deadline_seconds: float | None = field(
        default=None, metadata={"help": "deadline D (deadline rounds; bandwidth's target)"}
    )
    over_selection: float = field(
        default=DEFAULT_OVER_SELECTION, metadata={"help": "deadline: sample ceil(m * this)"}
    )
    density_policy: str = field(
        default="uniform", metadata={"help": "uniform | tiered | bandwidth"}
    )
    tier_densities: tuple[tuple[str, float, float], ...] = field(
        default=(), metadata={"help": "tiered: (tier, d_down, d_up) for every tier"}
    )
    grid: tuple[float, ...] = field(
        default=DEFAULT_GRID, metadata={"help": "bandwidth: the densities a client may take"}
    )
    adapt_down: bool = field(default=False, metadata={"help": "bandwidth: adapt d_down too"})

    def __post_init__(self) -> None:
        if not isinstance(self.fleet, Fleet):
            raise FleetError(f"fleet must be a Fleet, but got {self.fleet!r}.")
        if self.round_policy not in ROUND_POLICIES:
            raise FleetError(
                f"round policy must be one of {', '.join(ROUND_POLICIES)}, "
                f"but got {self.round_policy!r}."
            )
        if self.density_policy not in DENSITY_POLICIES:
            raise FleetError(
                f"density policy must be one of {', '.join(DENSITY_POLICIES)}, "
                f"but got {self.density_policy!r}."
            )
        if self.deadline_seconds is not None:
            d = _ranged(self.deadline_seconds, "deadline_seconds", "deadline (seconds)")
            object.__setattr__(self, "deadline_seconds", d)
        elif self.round_policy == "deadline" or self.density_policy == "bandwidth":
            needs = "deadline rounds" if self.round_policy == "deadline" else "bandwidth densities"
            raise FleetError(f"{needs} need a deadline in seconds (--deadline).")
        over = _ranged(self.over_selection, "over_selection", "over-selection")
        object.__setattr__(self, "over_selection", over)
        object.__setattr__(self, "grid", _grid(self.grid))
        if not isinstance(self.adapt_down, bool):
            raise FleetError(f"adapt_down must be true or false, but got {self.adapt_down!r}.")
        names = self.fleet.tier_names
        seen: set[str] = set()
        items: list[tuple[str, float, float]] = []
        for item in self.tier_densities:
            if not isinstance(item, (tuple, list)) or len(item) != 3:
                raise FleetError(f"tier densities need (tier, d_down, d_up), but got {item!r}.")
            tier, down, up = item
            if tier not in names:
                raise FleetError(
                    f"tier densities name tier {tier!r}, which fleet {self.fleet.name!r} lacks; "
                    f"its tiers: {', '.join(names)}."
                )
            if tier in seen:
                raise FleetError(f"tier densities: tier {tier!r} is given twice.")
            seen.add(tier)
            for d in (down, up):
                if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d <= 1:
                    raise FleetError(
                        f"tier densities {tier}: density must be in (0, 1], got {d!r}."
                    )
            items.append((tier, float(down), float(up)))
        object.__setattr__(self, "tier_densities", tuple(items))
        if self.density_policy == "tiered":
            missing = [t for t in names if t not in seen]
            if missing:
                raise FleetError(
                    f"tiered densities: no density for tier {missing[0]!r} of fleet "
                    f"{self.fleet.name!r} (--tier-densities needs all of {', '.join(names)})."
                )

    def with_deadline(self, deadline_seconds: float) -> FleetSetup:
        """This setup with another deadline (a finite number > 0; a derived default may lie
        below the range a user may give), the rest already checked."""
        new = copy.copy(self)
        try:
            check_derived(
                _number(deadline_seconds, "deadline (seconds)"),
                "the round deadline (seconds)",
                hint="give a deadline in seconds (--deadline)",
            )
        except ValueError as exc:
            raise FleetError(str(exc)) from None
        object.__setattr__(new, "deadline_seconds", float(deadline_seconds))
        return new

    def sampled_per_round(self, clients_per_round: int, num_clients: int) -> int:
        """Clients sampled a round: m under sync, ceil(m * over_selection) under deadline, at most
        the population (1.3 * 10 is 13, not 14: the product is rounded to 9 decimals first)."""
        if self.round_policy == "sync":
            return min(clients_per_round, num_clients)
        return min(math.ceil(round(clients_per_round * self.over_selection, 9)), num_clients)

    def densities_of(self, tier: str) -> tuple[float, float]:
        """tiered: (d_down, d_up) of ``tier``."""
        for t, d, u in self.tier_densities:
            if t == tier:
                return d, u
        raise FleetError(f"tiered densities: no density for tier {tier!r}.")


# ---------------------------------------------------------------------------------------------
# One client, one round


def client_seconds(
    link: ClientLink, *, bytes_down: int, bytes_up: int, compute_seconds: float
) -> float:
    """t_c = rtt + bytes_down*8/down + compute + rtt + bytes_up*8/up on the client's own link."""
    return round_seconds(
        bytes_down=bytes_down,
        bytes_up=bytes_up,
        down_mbps=link.down_mbps,
        up_mbps=link.up_mbps,
        rtt_ms=link.rtt_ms,
        compute_seconds=compute_seconds,
    )


_EPS = 1e-12  # a grid value equal to the cap up to float noise is under it


def client_densities(
    setup: FleetSetup,
    link: ClientLink,
    *,
    d_down: float,
    d_up: float,
    bytes_down: Callable[[float], int],
    bytes_up: Callable[[float], int],
    compute_seconds: float,
) -> tuple[float, float]:
    """(d_down, d_up) client c encodes at, under the setup's density policy.

    bandwidth: d_up = the largest grid value <= the cap ``d_up`` whose t_c (download at d_down,
    this upload) is <= the deadline; if none fits, the smallest (the client will be late). With
    ``adapt_down``, d_down first: the largest grid value <= the cap ``d_down`` for which some
    d_up fits; if none does, both the smallest. A cap below the whole grid is its own grid.
    """
    if setup.density_policy == "uniform":
        return d_down, d_up
    if setup.density_policy == "tiered":
        return setup.densities_of(link.tier)
    deadline = setup.deadline_seconds
    assert deadline is not None  # FleetSetup checks it

    def fits(dd: float, du: float) -> bool:
        t = client_seconds(
            link, bytes_down=bytes_down(dd), bytes_up=bytes_up(du), compute_seconds=compute_seconds
        )
        return t <= deadline

    ups = [g for g in setup.grid if g <= d_up * (1 + _EPS)] or [d_up]
    dd = d_down
    if setup.adapt_down:
        downs = [g for g in setup.grid if g <= d_down * (1 + _EPS)] or [d_down]
        fitting = [g for g in downs if fits(g, ups[-1])]
        if not fitting:
            return downs[-1], ups[-1]
        dd = fitting[0]
    for du in ups:
        if fits(dd, du):
            return dd, du
    return dd, ups[-1]


@dataclass(frozen=True)
class Settled:
    """Whose upload the server aggregates (sorted ids) and how long the round lasted."""

    kept: tuple[int, ...]
    seconds: float


def settle_round(
    clients: Sequence[int], seconds: Sequence[float], *, clients_per_round: int, setup: FleetSetup
) -> Settled:
    """sync: everybody, max t_c. deadline: arrivals sorted by (t_c, client id); K = the first m
    with t_c <= D; the round lasts the m-th arrival's time when m arrive by D, else max t_c when
    every sampled client arrived by D, else D."""
    if len(clients) != len(seconds):
        raise ValueError(f"{len(clients)} clients but {len(seconds)} client seconds.")
    if not clients:
        raise ValueError("a round needs at least one sampled client.")
    if setup.round_policy == "sync":
        return Settled(kept=tuple(sorted(clients)), seconds=max(seconds))
    deadline = setup.deadline_seconds
    assert deadline is not None
    arrivals = sorted(zip(seconds, clients, strict=True))
    on_time = [(t, c) for t, c in arrivals if t <= deadline]
    kept = on_time[:clients_per_round]
    if len(on_time) >= clients_per_round:
        finish = kept[-1][0]
    elif len(on_time) == len(arrivals):
        finish = arrivals[-1][0]
    else:
        finish = deadline
    return Settled(kept=tuple(sorted(c for _, c in kept)), seconds=finish)


@dataclass(frozen=True)
class ClientPrice:
    """What one client (one link) costs a round of one configuration."""

    d_down: float
    d_up: float
    k_down: int
    k_up: int
    bytes_down: int
    bytes_up: int
    seconds: float


class _Pricer:
    """Bytes by density and prices by link for one (spec, setup, compute): a memo only."""

    def __init__(self, spec: MethodSpec, setup: FleetSetup, compute_seconds: float) -> None:
        check_fleet_method(spec.method, setup.density_policy)
        self.spec, self.setup, self.compute = spec, setup, compute_seconds
        self.d_down, self.d_up = uniform_densities(spec)
        self._bytes: dict[tuple[float, str], int] = {}
        self._links: dict[ClientLink, ClientPrice] = {}
        self._runs: dict[tuple[int, int], list[ClientPrice | None]] = {}

    def message(self, density: float, precision: str) -> int:
        key = (density, precision)
        if key not in self._bytes:
            self._bytes[key] = topk_message_bytes(
                self.spec, self.spec.topk_entries(density), precision
            )
        return self._bytes[key]

    def down(self, density: float) -> int:
        return self.message(density, self.spec.wire_down)

    def up(self, density: float) -> int:
        return self.message(density, self.spec.wire_up)

    def client(self, link: ClientLink) -> ClientPrice:
        price = self._links.get(link)
        if price is None:
            dd, du = client_densities(
                self.setup,
                link,
                d_down=self.d_down,
                d_up=self.d_up,
                bytes_down=self.down,
                bytes_up=self.up,
                compute_seconds=self.compute,
            )
            bd, bu = self.down(dd), self.up(du)
            price = ClientPrice(
                d_down=dd,
                d_up=du,
                k_down=self.spec.topk_entries(dd),
                k_up=self.spec.topk_entries(du),
                bytes_down=bd,
                bytes_up=bu,
                seconds=client_seconds(
                    link, bytes_down=bd, bytes_up=bu, compute_seconds=self.compute
                ),
            )
            self._links[link] = price
        return price

    def clients(
        self, fleet: Fleet, num_clients: int, seed: int, ids: Sequence[int]
    ) -> list[ClientPrice]:
        """The prices of clients ``ids`` of the run (links drawn by ``assign_links``)."""
        table = self._runs.get((num_clients, seed))
        if table is None:
            table = self._runs[num_clients, seed] = [None] * num_clients
        links: tuple[ClientLink, ...] | None = None
        out = []
        for c in ids:
            price = table[c]
            if price is None:
                if links is None:
                    links = assign_links(fleet, num_clients, seed)
                price = table[c] = self.client(links[c])
            out.append(price)
        return out


def _pricer(spec: MethodSpec, setup: FleetSetup, compute_seconds: float) -> _Pricer:
    """The memo of one configuration's per-client prices; shared by every setup that prices
    clients alike (the round policy and the over-selection do not change a client's price)."""
    return _cached_pricer(spec, _densities_only(setup), compute_seconds)


@lru_cache(maxsize=256)
def _densities_only(setup: FleetSetup) -> FleetSetup:
    policy = setup.density_policy
    return FleetSetup(
        fleet=setup.fleet,
        density_policy=policy,
        deadline_seconds=setup.deadline_seconds if policy == "bandwidth" else None,
        tier_densities=setup.tier_densities if policy == "tiered" else (),
        grid=setup.grid if policy == "bandwidth" else DEFAULT_GRID,
        adapt_down=setup.adapt_down and policy == "bandwidth",
    )


@lru_cache(maxsize=64)
def _cached_pricer(spec: MethodSpec, setup: FleetSetup, compute_seconds: float) -> _Pricer:
    return _Pricer(spec, setup, compute_seconds)


def _check_run(num_clients: int, clients_per_round: int, compute_seconds: float) -> float:
    for name, value in (("num_clients", num_clients), ("clients_per_round", clients_per_round)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise FleetError(f"{name} must be an integer >= 1, but got {value!r}.")
    return _ranged(compute_seconds, "compute_seconds", "compute seconds")


def _mean(values: Sequence[float]) -> float:
    """The mean; exactly the value when all are equal (a uniform round reports its density)."""
    if not values:
        return 0.0
    first = values[0]
    if all(v == first for v in values):
        return first
    return math.fsum(values) / len(values)


def fleet_round(
    spec: MethodSpec,
    setup: FleetSetup,
    *,
    seed: int,
    round_: int,
    num_clients: int,
    clients_per_round: int,
    compute_seconds: float,
) -> RoundPrice:
    """Round ``round_`` (1-based) of a fleet run, a pure function of its arguments.

    ``bytes_up`` is 0 for a client not kept; ``bytes_total`` = every download + the kept uploads;
    ``d_down`` / ``d_up`` = the mean k/n sent (downloads over the sampled, uploads over the kept;
    0.0 when nobody is kept) and ``client_d_down`` / ``client_d_up`` the densities each client
    encodes at; ``seconds`` = the settled round's.
    """
    compute = _check_run(num_clients, clients_per_round, compute_seconds)
    if isinstance(round_, bool) or not isinstance(round_, int) or round_ < 1:
        raise FleetError(f"round must be an integer >= 1, but got {round_!r}.")
    pricer = _pricer(spec, setup, compute)
    count = setup.sampled_per_round(clients_per_round, num_clients)
    sampled = sample_clients(seed, round_, num_clients, count)
    prices = pricer.clients(setup.fleet, num_clients, seed, sampled)
    settled = settle_round(
        sampled, [p.seconds for p in prices], clients_per_round=clients_per_round, setup=setup
    )
    kept = set(settled.kept)
    down = [p.bytes_down for p in prices]
    up = [p.bytes_up if c in kept else 0 for c, p in zip(sampled, prices, strict=True)]
    n = spec.n
    return RoundPrice(
        round=round_,
        clients=list(sampled),
        bytes_down=down,
        bytes_up=up,
        d_down=_mean([p.k_down / n for p in prices]),
        d_up=_mean([p.k_up / n for c, p in zip(sampled, prices, strict=True) if c in kept]),
        seconds=settled.seconds,
        bytes_total=sum(down) + sum(up),
        kept=list(settled.kept),
        client_seconds=[p.seconds for p in prices],
        client_d_down=[p.d_down for p in prices],
        client_d_up=[p.d_up for p in prices],
    )


def price_fleet_rounds(
    spec: MethodSpec,
    setup: FleetSetup,
    *,
    seed: int,
    num_clients: int,
    clients_per_round: int,
    compute_seconds: float = 0.0,
) -> Iterator[RoundPrice]:
    """Rounds 1, 2, ... of a fleet run (an unbounded generator of ``fleet_round``)."""
    _check_run(num_clients, clients_per_round, compute_seconds)
    r = 0
    while True:
        r += 1
        yield fleet_round(
            spec,
            setup,
            seed=seed,
            round_=r,
            num_clients=num_clients,
            clients_per_round=clients_per_round,
            compute_seconds=compute_seconds,
        )


DENSE_REFERENCE_ROUNDS = 100  # rounds the fleet's dense reference round is averaged over


def served_shares(
    spec: MethodSpec,
    setup: FleetSetup,
    *,
    seed: int,
    num_clients: int,
    compute_seconds: float = 0.0,
) -> tuple[tuple[float, float], ...]:
    """((d_down, share), ...): the download densities the run's clients receive under the setup's
    density policy, each with the share of the run's ``num_clients`` clients (their links drawn
    once, ``assign_links``) that receive it; largest density first, shares summing to 1. One
    entry unless clients get their own d_down (tiered, or bandwidth with ``adapt_down``). The
    trainer scores the served model as this mixture (docs/fleets.md, "What is evaluated")."""
    compute = _check_run(num_clients, 1, compute_seconds)
    pricer = _pricer(spec, setup, compute)
    prices = pricer.clients(setup.fleet, num_clients, seed, range(num_clients))
    counts: dict[float, int] = {}
    for p in prices:
        counts[p.d_down] = counts.get(p.d_down, 0) + 1
    return tuple((d, counts[d] / num_clients) for d in sorted(counts, reverse=True))


def dense_reference_seconds(
    setup: FleetSetup,
    *,
    n: int,
    seed: int,
    num_clients: int,
    clients_per_round: int,
    compute_seconds: float = 0.0,
    rounds: int = DENSE_REFERENCE_ROUNDS,
) -> float:
    """The seconds of the round ``N-dense-rounds`` counts in on a fleet: the mean over the first
    ``rounds`` seeded rounds of dense LoRA (n entries at the reference rank, dense fp32 values)
    under sync rounds and uniform densities, whatever the run's own policies."""
    spec = MethodSpec(method="dense", n=n, encoding="dense", precision="fp32")
    sync = FleetSetup(fleet=setup.fleet)
    prices = price_fleet_rounds(
        spec,
        sync,
        seed=seed,
        num_clients=num_clients,
        clients_per_round=clients_per_round,
        compute_seconds=compute_seconds,
    )
    return math.fsum(next(prices).seconds for _ in range(rounds)) / rounds


def check_deadline_reachable(
    spec: MethodSpec,
    setup: FleetSetup,
    *,
    seed: int,
    num_clients: int,
    compute_seconds: float = 0.0,
) -> None:
    """A deadline that no client of the run can meet at its densities is one line (FleetError):
    every deadline round would end empty, every bandwidth client would be late."""
    if setup.deadline_seconds is None or (
        setup.round_policy != "deadline" and setup.density_policy != "bandwidth"
    ):
        return
    pricer = _pricer(spec, setup, _ranged(compute_seconds, "compute_seconds", "compute seconds"))
    links = assign_links(setup.fleet, num_clients, seed)
    best = min((pricer.client(link) for link in set(links)), key=lambda p: p.seconds)
    if best.seconds > setup.deadline_seconds:
        raise FleetError(
            f"deadline {setup.deadline_seconds:g} s: no client of fleet {setup.fleet.name!r} can "
            f"meet it (the fastest needs {best.seconds:.4g} s at d_down {_fmt(best.d_down)}, "
            f"d_up {_fmt(best.d_up)})."
        )


# ---------------------------------------------------------------------------------------------
# The planner's estimate

ESTIMATE_ROUNDS = 500  # seeded rounds the planner walks per policy before extrapolating


def default_deadline(
    spec: MethodSpec,
    fleet: Fleet,
    *,
    seed: int,
    num_clients: int,
    compute_seconds: float = 0.0,
    over_selection: float = DEFAULT_OVER_SELECTION,
) -> float:
    """The deadline the planner assumes when none is given: the 1/over_selection quantile
    (nearest rank) of the population's client seconds at the config's uniform densities, so that
    over-selecting ceil(m * over_selection) clients brings about m by the deadline."""
    uniform = FleetSetup(fleet=fleet, over_selection=over_selection)
    pricer = _pricer(spec, uniform, _ranged(compute_seconds, "compute_seconds", "compute seconds"))
    everybody = pricer.clients(fleet, num_clients, seed, range(num_clients))
    times = sorted(p.seconds for p in everybody)
    q = 1.0 / uniform.over_selection
    quantile = times[max(0, math.ceil(round(q * len(times), 9)) - 1)]
    try:
        return check_derived(
            quantile,
            "the default deadline (the clients' seconds at the 1/over-selection quantile)",
            hint="give a deadline in seconds (--deadline)",
        )
    except ValueError as exc:
        raise FleetError(str(exc)) from None


@dataclass(frozen=True, kw_only=True)
class TierEstimate:
    """One tier's clients over the estimate's rounds (each sampled client once per round)."""

    tier: str
    sampled: int  # client-rounds of this tier
    d_down: float  # median density encoded at
    d_up: float
    d_down_min: float
    d_down_max: float
    d_up_min: float
    d_up_max: float
    late: float  # share of them past the deadline (0.0 without one)


@dataclass(frozen=True, kw_only=True)
class FleetEstimate:
    """The planner's answer for one configuration under one (round, density) policy pair."""

    method: str
    n: int
    d_down: float  # the config's densities (bandwidth: the caps)
    d_up: float
    round_policy: str
    density_policy: str
    deadline_seconds: float | None
    clients_per_round: int
    sampled_per_round: int
    rounds_walked: int  # R: seeded rounds priced round by round
    mean_seconds: float  # per round, over the R rounds
    seconds_stderr: float  # standard error of that mean
    mean_bytes: float  # per round, all sampled clients, both directions (dropped uploads: 0)
    mean_kept: float  # clients aggregated per round
    late_fraction: float  # sampled clients with t_c > deadline (0.0 without one)
    dropped_fraction: float  # sampled clients whose upload is not aggregated
    empty_rounds: float  # share of rounds nobody made (no server step)
    rounds: int  # affordable under the budget (and max_rounds)
    exact: bool  # True: the budget ran out within the R walked rounds (rounds is exact)
    total_seconds: float
    total_bytes: float
    tiers: tuple[TierEstimate, ...]
    estimate: str  # the method, in words


def estimate_fleet(
    spec: MethodSpec,
    setup: FleetSetup,
    *,
    seed: int,
    num_clients: int,
    clients_per_round: int,
    compute_seconds: float = 0.0,
    budget_seconds: float | None,
    budget_bytes: int | None,
    max_rounds: int | None = None,
    rounds: int = ESTIMATE_ROUNDS,
) -> FleetEstimate:
    """Seeded Monte Carlo over the trainer's own rounds 1..R (``fleet_round`` at ``seed``): what
    the budget buys is counted round by round while it lasts within them (exact: the trainer's
    run prices the very same rounds), and beyond them at their mean cost (floor of the budget
    left over the mean seconds, or bytes, per round). Means, shares and tier densities are over
    the R rounds. ``seconds_stderr`` is the standard error of the mean round seconds: the
    extrapolated rounds carry about that relative error (docs/fleets.md states the tolerance)."""
    if (budget_seconds is None) == (budget_bytes is None):
        raise ValueError("give exactly one of budget_seconds and budget_bytes.")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 2:
        raise FleetError(f"estimate rounds must be an integer >= 2, but got {rounds!r}.")
    if max_rounds is not None and max_rounds < 0:
        raise FleetError(f"max_rounds must be >= 0, but got {max_rounds}.")
    limit_s = None if budget_seconds is None else budget_seconds * (1 + BUDGET_RTOL)
    deadline = setup.deadline_seconds
    links = assign_links(setup.fleet, num_clients, seed)
    cap = math.inf if max_rounds is None else max_rounds
    seconds: list[float] = []
    cum_s = 0.0
    cum_b = walk_bytes = 0
    within: int | None = None  # rounds bought, once the budget ran out within the walk
    late = dropped = sampled_total = kept_total = empty = 0
    by_tier: dict[str, list[tuple[float, float, bool]]] = {t: [] for t in setup.fleet.tier_names}
    for price in price_fleet_rounds(
        spec,
        setup,
        seed=seed,
        num_clients=num_clients,
        clients_per_round=clients_per_round,
        compute_seconds=compute_seconds,
    ):
        if len(seconds) == rounds:
            break
        if within is None:
            over = (
                cum_s + price.seconds > limit_s
                if limit_s is not None
                else cum_b + price.bytes_total > (budget_bytes or 0)
            )
            if over or len(seconds) >= cap:
                within = len(seconds)
        seconds.append(price.seconds)
        walk_bytes += price.bytes_total
        if within is None:
            cum_s += price.seconds
            cum_b += price.bytes_total
        kept = set(price.kept or ())
        kept_total += len(kept)
        empty += not kept
        sampled_total += len(price.clients)
        for c, t, dd, du in zip(
            price.clients,
            price.client_seconds,
            price.client_d_down,
            price.client_d_up,
            strict=True,
        ):
            is_late = deadline is not None and t > deadline
            late += is_late
            dropped += c not in kept
            by_tier[links[c].tier].append((dd, du, is_late))
    walked = len(seconds)
    mean_s = math.fsum(seconds) / walked
    stderr = statistics.stdev(seconds) / math.sqrt(walked)
    mean_b = walk_bytes / walked  # over the whole walk (cum_b stops with the budget)
    if within is not None:
        bought, exact = within, True
        total_s, total_b = cum_s, float(cum_b)
    else:
        if limit_s is not None:
            more = math.floor(max(limit_s - cum_s, 0.0) / mean_s) if mean_s > 0 else 0
        else:
            more = math.floor(max((budget_bytes or 0) - cum_b, 0) / mean_b) if mean_b > 0 else 0
        more = int(min(more, cap - walked))
        bought, exact = walked + more, False
        total_s, total_b = cum_s + more * mean_s, cum_b + more * mean_b
    return FleetEstimate(
        method=spec.method,
        n=spec.n,
        d_down=uniform_densities(spec)[0],
        d_up=uniform_densities(spec)[1],
        round_policy=setup.round_policy,
        density_policy=setup.density_policy,
        deadline_seconds=deadline,
        clients_per_round=clients_per_round,
        sampled_per_round=setup.sampled_per_round(clients_per_round, num_clients),
        rounds_walked=walked,
        mean_seconds=mean_s,
        seconds_stderr=stderr,
        mean_bytes=mean_b,
        mean_kept=kept_total / walked,
        late_fraction=late / sampled_total,
        dropped_fraction=dropped / sampled_total,
        empty_rounds=empty / walked,
        rounds=bought,
        exact=exact,
        total_seconds=total_s,
        total_bytes=total_b,
        tiers=tuple(_tier_estimate(t, rows) for t, rows in by_tier.items() if rows),
        estimate=(
            f"seeded Monte Carlo over {walked} rounds (the trainer's rounds 1..{walked} at seed "
            f"{seed}); rounds within them exact, beyond them at their mean"
        ),
    )


def _tier_estimate(tier: str, rows: list[tuple[float, float, bool]]) -> TierEstimate:
    downs = [r[0] for r in rows]
    ups = [r[1] for r in rows]
    return TierEstimate(
        tier=tier,
        sampled=len(rows),
        d_down=_median(downs),
        d_up=_median(ups),
        d_down_min=min(downs),
        d_down_max=max(downs),
        d_up_min=min(ups),
        d_up_max=max(ups),
        late=sum(r[2] for r in rows) / len(rows),
    )


# ---------------------------------------------------------------------------------------------
# floss-plan --fleet: every configuration under every policy pair asked for


@dataclass(frozen=True, kw_only=True)
class FleetRow:
    """One row of a fleet plan: a configuration, its precisions, and its estimate."""

    rank: int
    precision_down: str
    precision_up: str
    deadline_default: bool  # True: the deadline is default_deadline's, not the user's
    estimate: FleetEstimate
    recommended: bool = False  # on the short list (planner.fleet_shortlist)
    why: str = ""  # the short list's reasons


@dataclass(frozen=True, kw_only=True)
class FleetPlan:
    fleet: Fleet
    settings: PlanSettings
    rows: list[FleetRow]
    budget_seconds: float | None
    budget_bytes: int | None
    dense_reference_seconds: float  # the fleet's dense round (N-dense-rounds counts in it)
    dense_reference_n: int
    rounds_walked: int
    over_selection: float
    grid: tuple[float, ...]
    adapt_down: bool
    up_slowdown: float = 1.0  # S of the thesis heuristic on this fleet (fleet_up_slowdown)
    drop_share: float = 0.3  # short-listed deadline rows dropping more uploads are flagged
    short_list: tuple[int, ...] = ()  # indices of the recommended rows, in the list's order


def default_density_policies(tier_densities: Sequence[object]) -> tuple[str, ...]:
    """uniform and bandwidth; tiered too when tier densities are given."""
    return ("uniform", "bandwidth", "tiered") if tier_densities else ("uniform", "bandwidth")


def plan_fleet(
    settings: PlanSettings,
    *,
    fleet: Fleet,
    round_policies: Sequence[str] = ROUND_POLICIES,
    density_policies: Sequence[str] | None = None,
    deadline_seconds: float | None = None,
    over_selection: float = DEFAULT_OVER_SELECTION,
    tier_densities: tuple[tuple[str, float, float], ...] = (),
    grid: tuple[float, ...] = DEFAULT_GRID,
    adapt_down: bool = False,
    rounds: int = ESTIMATE_ROUNDS,
    drop_share: float | None = None,
) -> FleetPlan:
    """``estimate_fleet`` for each configuration of ``settings`` (methods x ranks x d_down x
    d_up x precision pairs, plus the thesis heuristic's at the reference rank; dense and ffa once
    per rank) under each (density, round) policy pair: dense and ffa under uniform only; and the
    short list (``planner.fleet_shortlist``). Without ``deadline_seconds`` each configuration
    gets ``default_deadline`` at its own densities (a deadline given is checked: one no client
    can meet is one line). All configurations are estimated at once
    (``planner.fleet_batch.estimate_fleet_many``: the same numbers as the walk, row by row)."""
    from planner.fleet_batch import (
        default_deadlines,
        dense_reference_seconds_fast,
        estimate_fleet_many,
        link_arrays,
    )
    from planner.fleet_shortlist import (
        DEFAULT_DROP_SHARE,
        fleet_short_list,
        fleet_up_slowdown,
        heuristic_pairs,
    )

    policies = tuple(density_policies or default_density_policies(tier_densities))
    for policy in policies:
        if policy not in DENSITY_POLICIES:
            raise FleetError(
                f"density policy must be one of {', '.join(DENSITY_POLICIES)}, but got {policy!r}."
            )
    for policy in round_policies:
        if policy not in ROUND_POLICIES:
            raise FleetError(
                f"round policy must be one of {', '.join(ROUND_POLICIES)}, but got {policy!r}."
            )
    if not policies or not round_policies:
        raise FleetError("give at least one round policy and one density policy.")
    share = DEFAULT_DROP_SHARE if drop_share is None else _number(drop_share, "drop share")
    if not 0 <= share <= 1:
        raise FleetError(f"the dropped share must be in [0, 1], but got {drop_share!r}.")
    for method in settings.methods:
        check_fleet_method(method, "uniform")
        if method != "floss" and "uniform" not in policies:
            check_fleet_method(method, policies[0])  # dense/ffa have uniform densities only
    s = settings
    base = FleetSetup(
        fleet=fleet,
        deadline_seconds=deadline_seconds,
        over_selection=over_selection,
        tier_densities=tier_densities,
        grid=grid,
        adapt_down=adapt_down,
    )
    seed, num_clients, compute = s.seed, s.num_clients, s.compute_seconds
    ref_n = adapter_size(s, s.ref_rank)
    _check_run(num_clients, s.clients_per_round, compute)
    if num_clients > MAX_PLAN_CLIENTS:
        raise FleetError(
            f"a fleet plan draws every client's link: --num-clients must be at most "
            f"{MAX_PLAN_CLIENTS:,}, but got {num_clients:,}."
        )
    link_arrays(fleet, num_clients, seed)  # a bad population is one line before any pricing
    ref = dense_reference_seconds_fast(
        fleet,
        n=ref_n,
        seed=seed,
        num_clients=num_clients,
        clients_per_round=s.clients_per_round,
        compute_seconds=compute,
        rounds=DENSE_REFERENCE_ROUNDS,
    )
    budget = s.budget
    budget_seconds: float | None = None
    budget_bytes: int | None = None
    if budget.kind == "dense-rounds":
        budget_seconds = budget.amount * ref
    elif budget.kind == "seconds":
        budget_seconds = budget.amount
    else:
        budget_bytes = int(budget.amount)
    up_slowdown = fleet_up_slowdown(fleet, num_clients=num_clients, seed=seed)
    heuristic = heuristic_pairs(s, up_slowdown)
    configs: list[tuple[int, str, str, MethodSpec]] = []  # rank, precisions, spec
    for method in (m for m in FLEET_METHODS if m in s.methods):
        for rank in sorted(set(s.ranks) | ({s.ref_rank} if method == "floss" else set())):
            n = adapter_size(s, rank, method=method)
            densities: list[tuple[float, float]] = [(1.0, 1.0)]
            if method == "floss":
                densities = (
                    [(dd, du) for dd in s.d_down for du in s.d_up] if rank in s.ranks else []
                )
                if rank == s.ref_rank:  # the baseline and the heuristic, on the grid or not
                    densities += [p for p in [(1.0, 1.0), *heuristic] if p not in densities]
            for dd, du in densities:
                for p_down, p_up in s.precision_pairs:
                    spec = MethodSpec(
                        method=method,
                        n=n,
                        d_down=dd,
                        d_up=du,
                        encoding=s.encoding,
                        precision=s.precision,
                        precision_down=p_down,
                        precision_up=p_up,
                    )
                    configs.append((rank, p_down, p_up, spec))
    if deadline_seconds is None:
        deadlines = default_deadlines(
            [spec for *_, spec in configs],
            fleet,
            seed=seed,
            num_clients=num_clients,
            compute_seconds=compute,
            over_selection=base.over_selection,
        )
    else:
        deadlines = [base.deadline_seconds or deadline_seconds] * len(configs)
    pairs = {  # each policy pair checked once; a configuration's deadline copied in
        (dp, rp): replace(base, round_policy=rp, density_policy=dp, deadline_seconds=deadlines[0])
        for dp in policies
        for rp in round_policies
    } if configs else {}  # fmt: skip
    setups: dict[tuple[str, str, float], FleetSetup] = {}
    items: list[tuple[MethodSpec, FleetSetup]] = []
    meta: list[tuple[int, str, str]] = []
    for (rank, p_down, p_up, spec), deadline in zip(configs, deadlines, strict=True):
        for density_policy in (p for p in policies if spec.method == "floss" or p == "uniform"):
            for round_policy in round_policies:
                key = (round_policy, density_policy, deadline)
                if key not in setups:
                    setups[key] = pairs[density_policy, round_policy].with_deadline(deadline)
                items.append((spec, setups[key]))
                meta.append((rank, p_down, p_up))
    estimates = estimate_fleet_many(
        items,
        clients_per_round=s.clients_per_round,
        budget_seconds=budget_seconds,
        budget_bytes=budget_bytes,
        max_rounds=s.max_rounds,
        rounds=rounds,
        seed=seed,
        num_clients=num_clients,
        compute_seconds=compute,
    )
    if deadline_seconds is not None:
        for (spec, setup), got in zip(items, estimates, strict=True):
            if got.late_fraction == 1.0:  # nobody walked made it: does anybody at all?
                check_deadline_reachable(
                    spec, setup, seed=seed, num_clients=num_clients, compute_seconds=compute
                )
    rows = [
        FleetRow(
            rank=rank,
            precision_down=p_down,
            precision_up=p_up,
            deadline_default=deadline_seconds is None,
            estimate=got,
        )
        for (rank, p_down, p_up), got in zip(meta, estimates, strict=True)
    ]
    why = fleet_short_list(rows, settings=s, up_slowdown=up_slowdown, drop_share=share)
    rows = [replace(r, recommended=True, why=why[i]) if i in why else r for i, r in enumerate(rows)]
    return FleetPlan(
        fleet=fleet,
        settings=s,
        rows=rows,
        budget_seconds=budget_seconds,
        budget_bytes=budget_bytes,
        dense_reference_seconds=ref,
        dense_reference_n=ref_n,
        rounds_walked=rounds,
        over_selection=base.over_selection,
        grid=base.grid,
        adapt_down=adapt_down,
        up_slowdown=up_slowdown,
        drop_share=share,
        short_list=tuple(why),
    )


__all__ = [
    "DEFAULT_GRID",
    "DEFAULT_OVER_SELECTION",
    "DENSITY_POLICIES",
    "ESTIMATE_ROUNDS",
    "FLEET_METHODS",
    "MAX_PLAN_CLIENTS",
    "ROUND_POLICIES",
    "ClientLink",
    "ClientPrice",
    "Fleet",
    "FleetError",
    "FleetEstimate",
    "FleetPlan",
    "FleetRow",
    "FleetSetup",
    "Settled",
    "Tier",
    "TierEstimate",
    "assign_links",
    "check_deadline_reachable",
    "check_fleet_method",
    "client_densities",
    "client_seconds",
    "default_deadline",
    "default_density_policies",
    "dense_reference_seconds",
    "estimate_fleet",
    "fleet_from_csv",
    "fleet_from_mapping",
    "format_tier_densities",
    "link_draws",
    "load_fleet",
    "measured_fleet",
    "parse_grid",
    "parse_tier_densities",
    "plan_fleet",
    "price_fleet_rounds",
    "settle_round",
]
