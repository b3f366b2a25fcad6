"""Planning: every method and configuration on the grids, what its rounds cost, how many fit.

Per client per round (FLoSS): bytes_down = the cheapest encoding of k_down = k(n, d_down) entries
of the n-vector P (``auto``), bytes_up likewise for k_up. Per round: m clients each download and
upload, so the round moves m * (bytes_down + bytes_up) bytes and lasts
``network.fleet_round_seconds``. Rounds affordable = floor(budget / cost per round), capped at
``max_rounds``; configs under ``min_rounds`` are infeasible.

Methods (``planner.schedule``): floss (rank x d_down x d_up), dense and ffa (one row per rank,
d = 1; ffa sends B and the head only) cost the same every round, so the closed form above holds.
sparseadapter (rank x mask density) and adapterlth (rank; keep rate and floor as set) cost
differently by round (a dense first round, then positions only to clients that lack the current
mask): their rounds come from the seeded schedule (``--seed``, ``--num-clients``), walked while
the cost changes and closed-form once it is steady; their per-round columns are means.

The short list (``recommended``, each with its reason in ``why``; SHORT_LIST_REASONS):
dense LoRA at the reference rank; the thesis heuristic d_up = d_down / S at the reference rank
for each heuristic download density (default 1, 1/4, 1/16: where FLoSS matched dense); per rank,
the FLoSS config with the most communication (densest d_down, then d_up, with d_up <= d_down / S)
that still buys the baseline's rounds; and each other method at its best feasible setting (the
largest rank, then density, buying the baseline's rounds). "The baseline's rounds" are what dense
LoRA at the reference rank affords (``min_rounds`` when it affords none).

Value precisions (``precision_down`` x ``precision_up`` grids, each defaulting to ``precision``):
every floss row is priced at every pair; the other methods at every pair too. The short list is
built at the first pair (the primary); each further pair adds one row, the densest floss config at
the reference rank with d_up <= d_down / S that buys the baseline's rounds ("bits down/up: ...").
Fewer bits buy denser messages for the same bytes: the tuner decides which trade trains better.

Pareto flags (kept in JSON/CSV, per method and precision pair): a config is dominated when another is at least as
large in rank, d_down, d_up *and* rounds, and larger in one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from planner.budget import Budget, rounds_affordable
from planner.encoding import (
    check_density,
    check_encoding_choice,
    check_precision,
    information_bound_bytes,
    kept_entries,
    resolve_encoding,
    values_bytes,
)
from planner.model import ModelProfile
from planner.network import NetworkProfile, fleet_round_seconds, transfer_seconds
from planner.schedule import (
    DEFAULT_KEEP_RATE,
    MASK_METHODS,
    METHODS,
    SRD_METHODS,
    Afforded,
    MethodSpec,
    afford,
    check_floor,
    check_keep_rate,
    check_method,
)

DEFAULT_RANKS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_DENSITIES: tuple[float, ...] = tuple(2.0**-i for i in range(9))  # 1 .. 1/256
DEFAULT_HEURISTIC_DOWN: tuple[float, ...] = (1.0, 0.25, 0.0625)
REF_RANK = 16  # FLASC's default LoRA rank
DEFAULT_NUM_CLIENTS = 100  # floss-train's default population

# The short list's reasons, in the order the rows appear (``why``); ``{...}`` are filled in.
SHORT_LIST_REASONS = {
    "baseline": "dense LoRA baseline at the reference rank",
    "heuristic": "thesis heuristic d_up = d_down/S",
    "rank": "rank {rank}: densest d_up <= d_down/S with >= {rounds} rounds",
    "method": "{method}: its largest setting with >= {rounds} rounds",
    "most": "{method}: most rounds (none buys {rounds})",
    "precision": "{down}/{up}: densest d_up <= d_down/S at the reference rank with >= {rounds} rounds",
}


class PlanError(ValueError):
    """A planning request that cannot be met; the message says which value and why."""


@dataclass(frozen=True, kw_only=True)
class PlanSettings:
    model: ModelProfile
    network: NetworkProfile
    budget: Budget
    ranks: tuple[int, ...] = DEFAULT_RANKS
    d_down: tuple[float, ...] = DEFAULT_DENSITIES
    d_up: tuple[float, ...] = DEFAULT_DENSITIES
    heuristic_down: tuple[float, ...] = DEFAULT_HEURISTIC_DOWN
    ref_rank: int = REF_RANK
    clients_per_round: int = 10
    num_labels: int = 0
    head_params: int = 0
    precision: str = "fp32"
    encoding: str = "auto"
    compute_seconds: float = 0.0
    min_rounds: int = 1
    max_rounds: int | None = None
    methods: tuple[str, ...] = ("floss",)
    num_clients: int = DEFAULT_NUM_CLIENTS  # the seeded schedule of the mask-sharing methods
    seed: int = 0
    keep_rate: float = DEFAULT_KEEP_RATE  # adapterlth
    floor: float | None = None  # adapterlth: density floor; None = k shrinks down to 1
    precision_down: tuple[str, ...] = ()  # download precisions to price; () = (precision,)
    precision_up: tuple[str, ...] = ()  # upload precisions to price; () = (precision,)

    def __post_init__(self) -> None:
        for r in (*self.ranks, self.ref_rank):
            if isinstance(r, bool) or not isinstance(r, int) or r < 1:
                raise PlanError(f"rank must be an integer >= 1, but got {r!r}.")
        if not self.ranks:
            raise PlanError("the rank grid is empty.")
        for name, grid in (("d_down", self.d_down), ("d_up", self.d_up)):
            if not grid:
                raise PlanError(f"the {name} grid is empty.")
            for d in grid:
                check_density(d, name=name)
        for d in self.heuristic_down:
            check_density(d, name="heuristic d_down")
        if self.clients_per_round < 1:
            raise PlanError(
                f"clients per round must be at least 1, but got {self.clients_per_round}."
            )
        if self.head_params < 0:
            raise PlanError(f"head params must be >= 0, but got {self.head_params}.")
        check_precision(self.precision, name="--precision")
        for name in ("precision_down", "precision_up"):
            grid = getattr(self, name)
            for value in grid:
                check_precision(value, name=f"--{name.replace('_', '-')}")
            if len(set(grid)) != len(grid):
                raise PlanError(f"--{name.replace('_', '-')} has a repeated value: {grid!r}.")
        check_encoding_choice(self.encoding)
        if not math.isfinite(self.compute_seconds) or self.compute_seconds < 0:
            raise PlanError(
                f"compute seconds must be a finite number >= 0, but got {self.compute_seconds}."
            )
        if self.min_rounds < 1:
            raise PlanError(f"--min-rounds must be at least 1, but got {self.min_rounds}.")
        if self.max_rounds is not None and self.max_rounds < self.min_rounds:
            raise PlanError(
                f"--max-rounds ({self.max_rounds}) must be at least --min-rounds ({self.min_rounds})."
            )
        if not self.methods:
            raise PlanError("the method list is empty.")
        for method in self.methods:
            check_method(method, name="--method")
        if self.num_clients < self.clients_per_round:
            raise PlanError(
                f"--num-clients ({self.num_clients}) must be at least --clients-per-round "
                f"({self.clients_per_round})."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise PlanError(f"--seed must be an integer >= 0, but got {self.seed!r}.")
        check_keep_rate(self.keep_rate, name="--keep-rate")
        check_floor(self.floor, name="--lth-floor")

    @property
    def up_slowdown(self) -> float:
        return self.network.up_slowdown

    @property
    def precision_pairs(self) -> list[tuple[str, str]]:
        """(download, upload) precisions priced, the primary pair first."""
        downs = self.precision_down or (self.precision,)
        ups = self.precision_up or (self.precision,)
        return [(d, u) for d in downs for u in ups]


@dataclass(frozen=True, kw_only=True)
class RoundCost:
    """What one round of one configuration costs (per client bytes; fleet seconds)."""

    n: int
    k_down: int
    k_up: int
    bytes_down: int
    bytes_up: int
    encoding_down: str
    encoding_up: str
    bound_down: float
    bound_up: float
    seconds_down: float
    seconds_up: float
    seconds_per_round: float
    bytes_per_round: int  # all sampled clients, both directions


@dataclass(frozen=True, kw_only=True)
class PlanRow:
    method: str
    rank: int
    d_down: float
    d_up: float
    n: int
    k_down: int
    k_up: int
    bytes_down: int
    bytes_up: int
    encoding_down: str
    encoding_up: str
    bound_bytes_down: float
    bound_bytes_up: float
    seconds_down: float
    seconds_up: float
    seconds_per_round: float
    bytes_per_round: int
    rounds: int
    total_bytes: int
    total_seconds: float
    keep_rate: float | None = None  # adapterlth only
    floor: float | None = None  # adapterlth only
    pareto: bool = False
    recommended: bool = False
    why: str = ""
    precision_down: str = "fp32"
    precision_up: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        # flat scalar fields: a shallow dict (dataclasses.asdict deep-copies, 10x slower here)
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Plan:
    settings: PlanSettings
    rows: list[PlanRow] = field(default_factory=list)  # recommended first, then frontier, then rest
    budget_seconds: float | None = None
    budget_bytes: int | None = None
    dense_round: RoundCost | None = None
    infeasible: int = 0


def round_cost(
    *,
    n: int,
    d_down: float,
    d_up: float,
    settings: PlanSettings,
    precisions: tuple[str, str] | None = None,
) -> RoundCost:
    """Bytes and seconds of one round for an n-entry adapter (the planner's one cost function);
    ``precisions`` = (download, upload), default the primary pair."""
    k_down = kept_entries(n, d_down)
    k_up = kept_entries(n, d_up)
    p_down, p_up = precisions or settings.precision_pairs[0]
    enc = settings.encoding
    enc_down, b_down = resolve_encoding(n, k_down, encoding=enc, precision=p_down)
    enc_up, b_up = resolve_encoding(n, k_up, encoding=enc, precision=p_up)
    net = settings.network
    return RoundCost(
        n=n,
        k_down=k_down,
        k_up=k_up,
        bytes_down=b_down,
        bytes_up=b_up,
        encoding_down=enc_down,
        encoding_up=enc_up,
        bound_down=information_bound_bytes(n, k_down, precision=p_down),
        bound_up=information_bound_bytes(n, k_up, precision=p_up),
        seconds_down=transfer_seconds(b_down, net.down_mbps),
        seconds_up=transfer_seconds(b_up, net.up_mbps),
        seconds_per_round=fleet_round_seconds(
            bytes_down=b_down,
            bytes_up=b_up,
            network=net,
            clients_per_round=settings.clients_per_round,
            compute_seconds=settings.compute_seconds,
        ),
        bytes_per_round=settings.clients_per_round * (b_down + b_up),
    )


def adapter_size(settings: PlanSettings, rank: int, *, method: str = "floss") -> int:
    """n(r) as the method trains it (ffa: A frozen, so B and the head only)."""
    return settings.model.adapter_params(
        rank,
        num_labels=settings.num_labels,
        head_params=settings.head_params,
        freeze_a=method == "ffa",
    )


def dense_round_cost(settings: PlanSettings) -> RoundCost:
    """The dense reference round: dense LoRA at ``ref_rank``, always dense-encoded fp32 values,
    whatever encoding or precision the plan forces (the budget must not move with them)."""
    from dataclasses import replace

    return round_cost(
        n=adapter_size(settings, settings.ref_rank),
        d_down=1.0,
        d_up=1.0,
        settings=replace(
            settings, encoding="dense", precision="fp32", precision_down=(), precision_up=()
        ),
    )


def _key(d: float) -> Fraction:
    return Fraction(d).limit_denominator(1 << 40)


def heuristic_pairs(settings: PlanSettings) -> list[tuple[float, float]]:
    """(d_down, d_up = d_down / S) for each heuristic download density, dense first."""
    s = settings.up_slowdown
    return [(d, min(d / s, 1.0)) for d in sorted(settings.heuristic_down, reverse=True)]


def pareto_flags(rows: Sequence[PlanRow]) -> list[bool]:
    """True where no other row is >= in rank, d_down, d_up and rounds (configs are distinct, so
    >= in all four means better in one).

    Sweep in decreasing rounds (ties: larger configs first, so a dominating row is always seen
    before the rows it dominates), keeping the largest frontier d_up per (rank, d_down).
    """
    order = sorted(
        range(len(rows)),
        key=lambda i: (-rows[i].rounds, -rows[i].rank, -rows[i].d_down, -rows[i].d_up),
    )
    best_up: dict[tuple[int, float], float] = {}
    flags = [False] * len(rows)
    for i in order:
        r = rows[i]
        dominated = any(
            up >= r.d_up
            for (rank, down), up in best_up.items()
            if rank >= r.rank and down >= r.d_down
        )
        if not dominated:
            flags[i] = True
            key = (r.rank, r.d_down)
            best_up[key] = max(best_up.get(key, 0.0), r.d_up)
    return flags


def _budget_amounts(settings: PlanSettings, dense: RoundCost) -> tuple[float | None, int | None]:
    budget = settings.budget
    if budget.kind == "dense-rounds":
        return budget.amount * dense.seconds_per_round, None
    if budget.kind == "seconds":
        return budget.amount, None
    return None, int(budget.amount)


def _uniform_rounds(
    settings: PlanSettings, cost: RoundCost, budget_seconds: float | None, budget_bytes: int | None
) -> int:
    if budget_seconds is not None:
        rounds = rounds_affordable(
            budget_amount=budget_seconds, cost_per_round=cost.seconds_per_round
        )
    else:
        rounds = (budget_bytes or 0) // cost.bytes_per_round  # integers: exact
    if settings.max_rounds is not None:
        rounds = min(rounds, settings.max_rounds)
    return rounds


def _uniform_row(
    settings: PlanSettings,
    *,
    method: str,
    rank: int,
    n: int,
    d_down: float,
    d_up: float,
    budget_seconds: float | None,
    budget_bytes: int | None,
    precisions: tuple[str, str],
) -> PlanRow | None:
    """floss, dense or ffa: every round costs the same, so rounds = floor(budget / cost)."""
    cost = round_cost(n=n, d_down=d_down, d_up=d_up, settings=settings, precisions=precisions)
    rounds = _uniform_rounds(settings, cost, budget_seconds, budget_bytes)
    if rounds < settings.min_rounds:
        return None
    return PlanRow(
        method=method,
        rank=rank,
        d_down=d_down,
        d_up=d_up,
        n=n,
        k_down=cost.k_down,
        k_up=cost.k_up,
        bytes_down=cost.bytes_down,
        bytes_up=cost.bytes_up,
        encoding_down=cost.encoding_down,
        encoding_up=cost.encoding_up,
        bound_bytes_down=cost.bound_down,
        bound_bytes_up=cost.bound_up,
        seconds_down=cost.seconds_down,
        seconds_up=cost.seconds_up,
        seconds_per_round=cost.seconds_per_round,
        bytes_per_round=cost.bytes_per_round,
        rounds=rounds,
        total_bytes=rounds * cost.bytes_per_round,
        total_seconds=rounds * cost.seconds_per_round,
        precision_down=precisions[0],
        precision_up=precisions[1],
    )


def _afford_within(
    settings: PlanSettings,
    spec: MethodSpec,
    *,
    budget_seconds: float | None,
    budget_bytes: int | None,
) -> Afforded | None:
    """What the budget buys a method with a seeded schedule on the settings' network and
    population (``planner.schedule.afford``); None below ``min_rounds``."""
    got = afford(
        spec,
        network=settings.network,
        seed=settings.seed,
        num_clients=settings.num_clients,
        clients_per_round=settings.clients_per_round,
        compute_seconds=settings.compute_seconds,
        budget_seconds=budget_seconds,
        budget_bytes=budget_bytes,
        max_rounds=settings.max_rounds,
    )
    return None if got.rounds < settings.min_rounds else got


def _schedule_row(
    settings: PlanSettings,
    *,
    method: str,
    rank: int,
    n: int,
    density: float,
    budget_seconds: float | None,
    budget_bytes: int | None,
    precisions: tuple[str, str],
) -> PlanRow | None:
    """sparseadapter or adapterlth: the seeded schedule's rounds; per-round columns are means."""
    p_down, p_up = precisions
    spec = MethodSpec(
        method=method,
        n=n,
        d_down=density,
        d_up=density,
        keep_rate=settings.keep_rate,
        floor=settings.floor,
        encoding=settings.encoding,
        precision=settings.precision,
        precision_down=p_down,
        precision_up=p_up,
    )
    got = _afford_within(settings, spec, budget_seconds=budget_seconds, budget_bytes=budget_bytes)
    if got is None:
        return None
    k = max(1, round(got.mean_density * n))
    full_encoding = resolve_encoding(n, k, encoding=settings.encoding, precision=p_down)[0]
    net = settings.network
    lth = method == "adapterlth"
    return PlanRow(
        method=method,
        rank=rank,
        d_down=k / n if lth else density,
        d_up=k / n if lth else density,
        n=n,
        k_down=k,
        k_up=k,
        bytes_down=round(got.mean_bytes_down),
        bytes_up=round(got.mean_bytes_up),
        encoding_down=f"values/{full_encoding}",
        encoding_up="values",
        # both ends hold the mask: values carry all the information (k * v)
        bound_bytes_down=float(values_bytes(k, p_down)),
        bound_bytes_up=float(values_bytes(k, p_up)),
        seconds_down=transfer_seconds(round(got.mean_bytes_down), net.down_mbps),
        seconds_up=transfer_seconds(round(got.mean_bytes_up), net.up_mbps),
        seconds_per_round=got.mean_seconds,
        bytes_per_round=round(got.total_bytes / max(got.rounds, 1)),
        rounds=got.rounds,
        total_bytes=got.total_bytes,
        total_seconds=got.total_seconds,
        keep_rate=settings.keep_rate if lth else None,
        floor=settings.floor if lth else None,
        precision_down=p_down,
        precision_up=p_up,
    )


def srd_pairs(settings: PlanSettings, rank: int) -> tuple[tuple[int, int], ...]:
    """(entries of A, of B) of every LoRA pair the model profile targets at ``rank`` (a raw
    ``--lora-params`` profile has no modules: () prices P as one pair of halves)."""
    return tuple(
        (rank * m.d_in, rank * m.d_out) for m in settings.model.modules for _ in range(m.count)
    )


def _srd_row(
    settings: PlanSettings,
    *,
    method: str,
    rank: int,
    n: int,
    budget_seconds: float | None,
    budget_bytes: int | None,
    precisions: tuple[str, str],
) -> PlanRow | None:
    """fedsrd or fedsrd-e at the authors' defaults: the seeded schedule's rounds (catch-up
    downloads), uploads at the rule's expected density (``planner.srd``); columns are means."""
    p_down, p_up = precisions
    spec = MethodSpec(
        method=method,
        n=n,
        srd_pairs=srd_pairs(settings, rank),
        encoding=settings.encoding,
        precision=settings.precision,
        precision_down=p_down,
        precision_up=p_up,
    )
    got = _afford_within(settings, spec, budget_seconds=budget_seconds, budget_bytes=budget_bytes)
    if got is None:
        return None
    k_down = max(1, round(got.mean_density * n))
    k_up = spec.srd_upload_entries()
    enc_up, _ = resolve_encoding(n, k_up, encoding=settings.encoding, precision=p_up)
    net = settings.network
    return PlanRow(
        method=method,
        rank=rank,
        d_down=k_down / n,
        d_up=k_up / n,
        n=n,
        k_down=k_down,
        k_up=k_up,
        bytes_down=round(got.mean_bytes_down),
        bytes_up=round(got.mean_bytes_up),
        encoding_down="catch-up",  # the deltas a client missed, or a dense fp32 P
        encoding_up=enc_up,
        bound_bytes_down=information_bound_bytes(n, k_down, precision=p_down),
        bound_bytes_up=information_bound_bytes(n, k_up, precision=p_up),
        seconds_down=transfer_seconds(round(got.mean_bytes_down), net.down_mbps),
        seconds_up=transfer_seconds(round(got.mean_bytes_up), net.up_mbps),
        seconds_per_round=got.mean_seconds,
        bytes_per_round=round(got.total_bytes / max(got.rounds, 1)),
        rounds=got.rounds,
        total_bytes=got.total_bytes,
        total_seconds=got.total_seconds,
        precision_down=p_down,
        precision_up=p_up,
    )


RowKey = tuple[str, int, Fraction, Fraction, str, str]


def _row_key(r: PlanRow) -> RowKey:
    return (r.method, r.rank, _key(r.d_down), _key(r.d_up), r.precision_down, r.precision_up)


def _method_rows(
    settings: PlanSettings, budget_seconds: float | None, budget_bytes: int | None
) -> tuple[list[PlanRow], int]:
    """Every feasible row of every requested method, and how many configs were infeasible."""
    rows: list[PlanRow] = []
    infeasible = 0
    sizes: dict[tuple[int, str], int] = {}

    def size(rank: int, method: str) -> int:
        key = (rank, "ffa" if method == "ffa" else "lora")
        if key not in sizes:
            sizes[key] = adapter_size(settings, rank, method=method)
        return sizes[key]

    ranks = sorted({*settings.ranks, settings.ref_rank}, reverse=True)
    pairs = settings.precision_pairs
    for method in (m for m in METHODS if m in settings.methods):
        found: list[PlanRow | None] = []
        if method == "floss":
            heuristic = heuristic_pairs(settings)
            values = {
                _key(d): d
                for d in (
                    *settings.d_down,
                    *settings.d_up,
                    1.0,
                    *(x for p in heuristic for x in p),
                )
            }
            extra = {(settings.ref_rank, _key(dd), _key(du)) for dd, du in heuristic}
            extra.add((settings.ref_rank, _key(1.0), _key(1.0)))
            configs = {
                (r, _key(dd), _key(du))
                for r in settings.ranks
                for dd in settings.d_down
                for du in settings.d_up
            } | extra
            for rank, kd, ku in sorted(configs, reverse=True):
                for pair in pairs:
                    found.append(
                        _uniform_row(
                            settings,
                            method=method,
                            rank=rank,
                            n=size(rank, method),
                            d_down=values[kd],
                            d_up=values[ku],
                            budget_seconds=budget_seconds,
                            budget_bytes=budget_bytes,
                            precisions=pair,
                        )
                    )
        elif method in MASK_METHODS:
            densities = (
                sorted({_key(d): d for d in settings.d_up}.values(), reverse=True)
                if method == "sparseadapter"
                else [1.0]
            )
            for rank in ranks:
                for d in densities:
                    for pair in pairs:
                        found.append(
                            _schedule_row(
                                settings,
                                method=method,
                                rank=rank,
                                n=size(rank, method),
                                density=d,
                                budget_seconds=budget_seconds,
                                budget_bytes=budget_bytes,
                                precisions=pair,
                            )
                        )
        elif method in SRD_METHODS:
            for rank in ranks:
                for pair in pairs:
                    found.append(
                        _srd_row(
                            settings,
                            method=method,
                            rank=rank,
                            n=size(rank, method),
                            budget_seconds=budget_seconds,
                            budget_bytes=budget_bytes,
                            precisions=pair,
                        )
                    )
        else:  # dense, ffa
            for rank in ranks:
                for pair in pairs:
                    found.append(
                        _uniform_row(
                            settings,
                            method=method,
                            rank=rank,
                            n=size(rank, method),
                            d_down=1.0,
                            d_up=1.0,
                            budget_seconds=budget_seconds,
                            budget_bytes=budget_bytes,
                            precisions=pair,
                        )
                    )
        infeasible += sum(r is None for r in found)
        rows += [r for r in found if r is not None]
    return rows, infeasible


def short_list(
    settings: PlanSettings, rows: Sequence[PlanRow], base_rounds: int
) -> dict[RowKey, str]:
    """The recommended rows, in table order, each with its reason (module docstring)."""
    by_key = {_row_key(r): r for r in rows}
    all_rows = rows
    chosen: dict[RowKey, str] = {}

    def pick(key: RowKey | None, why: str) -> None:
        if key is not None and key in by_key and key not in chosen:
            chosen[key] = why

    ref, one = settings.ref_rank, _key(1.0)
    pd, pu = primary = settings.precision_pairs[0]
    rows = [r for r in rows if (r.precision_down, r.precision_up) == primary]
    others = [r for r in all_rows if (r.precision_down, r.precision_up) != primary]
    base_method = "dense" if "dense" in settings.methods else "floss"
    pick((base_method, ref, one, one, pd, pu), SHORT_LIST_REASONS["baseline"])
    s = settings.up_slowdown
    if "floss" in settings.methods:
        for dd, du in heuristic_pairs(settings):
            pick(("floss", ref, _key(dd), _key(du), pd, pu), SHORT_LIST_REASONS["heuristic"])
        for rank in sorted(set(settings.ranks)):
            fits = [
                r
                for r in rows
                if r.method == "floss"
                and r.rank == rank
                and r.rounds >= base_rounds
                and r.d_up <= r.d_down / s * (1 + 1e-12)
            ]
            if fits:
                best = max(fits, key=lambda r: (r.d_down, r.d_up))
                why = SHORT_LIST_REASONS["rank"].format(rank=rank, rounds=base_rounds)
                pick(_row_key(best), why)
    for method in METHODS:
        if method not in settings.methods or method in ("floss", base_method):
            continue
        mine = [r for r in rows if r.method == method]
        if not mine:
            continue
        fits = [r for r in mine if r.rounds >= base_rounds]
        if fits:
            best = max(fits, key=lambda r: (r.rank, r.d_down, r.d_up))
            why = SHORT_LIST_REASONS["method"].format(method=method, rounds=base_rounds)
        else:
            best = max(mine, key=lambda r: (r.rounds, r.rank, r.d_down))
            why = SHORT_LIST_REASONS["most"].format(method=method, rounds=base_rounds)
        pick(_row_key(best), why)
    if "floss" in settings.methods:
        for down, up in settings.precision_pairs[1:]:
            fits = [
                r
                for r in others
                if r.method == "floss"
                and (r.precision_down, r.precision_up) == (down, up)
                and r.rank == ref
                and r.rounds >= base_rounds
                and r.d_up <= r.d_down / s * (1 + 1e-12)
            ]
            if fits:
                best = max(fits, key=lambda r: (r.d_down, r.d_up))
                why = SHORT_LIST_REASONS["precision"].format(down=down, up=up, rounds=base_rounds)
                pick(_row_key(best), why)
    return chosen


def plan(settings: PlanSettings) -> Plan:
    """Every feasible configuration of every requested method, the short list first."""
    budget = settings.budget
    dense = dense_round_cost(settings)
    budget_seconds, budget_bytes = _budget_amounts(settings, dense)
    rows, infeasible = _method_rows(settings, budget_seconds, budget_bytes)
    if not rows:
        raise PlanError(
            f"budget {budget.text!r} affords fewer than {settings.min_rounds} round(s) for every "
            f"configuration (a dense round at rank {settings.ref_rank} takes "
            f"{dense.seconds_per_round:.3g} s and moves {dense.bytes_per_round:,} bytes)."
        )
    # The baseline's rounds: dense LoRA at the reference rank, priced as the plan prices it.
    base_cost = round_cost(
        n=adapter_size(settings, settings.ref_rank), d_down=1.0, d_up=1.0, settings=settings
    )
    base_rounds = max(
        _uniform_rounds(settings, base_cost, budget_seconds, budget_bytes), settings.min_rounds
    )
    chosen = short_list(settings, rows, base_rounds)
    flags: dict[RowKey, bool] = {}
    for method in settings.methods:
        for pair in settings.precision_pairs:
            mine = [
                r for r in rows if r.method == method and (r.precision_down, r.precision_up) == pair
            ]
            flags.update(zip(map(_row_key, mine), pareto_flags(mine), strict=True))
    order = {key: i for i, key in enumerate(chosen)}
    rows = [
        _with(
            r,
            pareto=flags[_row_key(r)],
            recommended=_row_key(r) in chosen,
            why=chosen.get(_row_key(r), ""),
        )
        for r in rows
    ]
    log_s = math.log2(settings.up_slowdown)
    # After the short list: by method, then nearest the balanced ratio d_down/d_up = S.
    rows.sort(
        key=lambda r: (
            order.get(_row_key(r), len(order)),
            METHODS.index(r.method),
            round(abs(math.log2(r.d_down / r.d_up) - log_s), 6),
            -r.rank,
            -r.d_down,
        )
    )
    return Plan(
        settings=settings,
        rows=rows,
        budget_seconds=budget_seconds,
        budget_bytes=budget_bytes,
        dense_round=dense,
        infeasible=infeasible,
    )


def _with(row: PlanRow, **changes: Any) -> PlanRow:
    from dataclasses import replace

    return replace(row, **changes)
