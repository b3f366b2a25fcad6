"""Planning: every (rank, d_down, d_up) on the grids, what one round costs, how many fit the budget.

Per client per round: bytes_down = the cheapest encoding of k_down = k(n, d_down) entries of the
n-vector P (``auto``), bytes_up likewise for k_up. Per round: m clients each download and upload, so
the round moves m * (bytes_down + bytes_up) bytes and lasts ``network.fleet_round_seconds``.
Rounds affordable = floor(budget / cost per round), capped at ``max_rounds``; configs under
``min_rounds`` are infeasible.

Pareto frontier: a config is dominated when another is at least as large in rank, d_down, d_up
*and* rounds, and larger in one (more capacity for no fewer rounds). Recommended: dense LoRA at
the reference rank, and the thesis heuristic d_up = d_down / S at the reference rank for each of
the heuristic download densities (default 1, 1/4, 1/16: the range where FLoSS matched dense).
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
    information_bound_bytes,
    kept_entries,
    resolve_encoding,
    value_bytes,
)
from planner.model import ModelProfile
from planner.network import NetworkProfile, fleet_round_seconds, transfer_seconds

DEFAULT_RANKS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_DENSITIES: tuple[float, ...] = tuple(2.0**-i for i in range(9))  # 1 .. 1/256
DEFAULT_HEURISTIC_DOWN: tuple[float, ...] = (1.0, 0.25, 0.0625)
REF_RANK = 16  # FLASC's default LoRA rank


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
        value_bytes(self.precision)
        check_encoding_choice(self.encoding)
        if self.compute_seconds < 0:
            raise PlanError(f"compute seconds must be >= 0, but got {self.compute_seconds}.")
        if self.min_rounds < 1:
            raise PlanError(f"--min-rounds must be at least 1, but got {self.min_rounds}.")
        if self.max_rounds is not None and self.max_rounds < self.min_rounds:
            raise PlanError(
                f"--max-rounds ({self.max_rounds}) must be at least --min-rounds ({self.min_rounds})."
            )

    @property
    def up_slowdown(self) -> float:
        return self.network.up_slowdown


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
    pareto: bool = False
    recommended: bool = False
    why: str = ""

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


def round_cost(*, n: int, d_down: float, d_up: float, settings: PlanSettings) -> RoundCost:
    """Bytes and seconds of one round for an n-entry adapter (the planner's one cost function)."""
    k_down = kept_entries(n, d_down)
    k_up = kept_entries(n, d_up)
    p, enc = settings.precision, settings.encoding
    enc_down, b_down = resolve_encoding(n, k_down, encoding=enc, precision=p)
    enc_up, b_up = resolve_encoding(n, k_up, encoding=enc, precision=p)
    net = settings.network
    return RoundCost(
        n=n,
        k_down=k_down,
        k_up=k_up,
        bytes_down=b_down,
        bytes_up=b_up,
        encoding_down=enc_down,
        encoding_up=enc_up,
        bound_down=information_bound_bytes(n, k_down, precision=p),
        bound_up=information_bound_bytes(n, k_up, precision=p),
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


def adapter_size(settings: PlanSettings, rank: int) -> int:
    return settings.model.adapter_params(
        rank, num_labels=settings.num_labels, head_params=settings.head_params
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


def plan(settings: PlanSettings) -> Plan:
    """Every feasible configuration on the grids, recommended first, then the Pareto frontier."""
    budget = settings.budget
    dense = round_cost(
        n=adapter_size(settings, settings.ref_rank), d_down=1.0, d_up=1.0, settings=settings
    )
    budget_seconds: float | None = None
    budget_bytes: int | None = None
    if budget.kind == "dense-rounds":
        budget_seconds = budget.amount * dense.seconds_per_round
    elif budget.kind == "seconds":
        budget_seconds = budget.amount
    else:
        budget_bytes = int(budget.amount)

    heuristic = heuristic_pairs(settings)
    values = {
        _key(d): d
        for d in (*settings.d_down, *settings.d_up, 1.0, *(x for p in heuristic for x in p))
    }
    recommended = {
        (settings.ref_rank, _key(dd), _key(du)): "thesis heuristic d_up = d_down/S"
        for dd, du in heuristic
    }
    recommended[(settings.ref_rank, _key(1.0), _key(1.0))] = "dense LoRA baseline"
    configs = {
        (r, _key(dd), _key(du))
        for r in settings.ranks
        for dd in settings.d_down
        for du in settings.d_up
    } | set(recommended)

    rows: list[PlanRow] = []
    infeasible = 0
    sizes: dict[int, int] = {}
    for rank, kd, ku in sorted(configs, reverse=True):
        if rank not in sizes:
            sizes[rank] = adapter_size(settings, rank)
        n = sizes[rank]
        d_down, d_up = values[kd], values[ku]
        is_rec = (rank, kd, ku) in recommended
        cost = round_cost(n=n, d_down=d_down, d_up=d_up, settings=settings)
        if budget_seconds is not None:
            rounds = rounds_affordable(
                budget_amount=budget_seconds, cost_per_round=cost.seconds_per_round
            )
        else:
            rounds = rounds_affordable(
                budget_amount=float(budget_bytes or 0), cost_per_round=cost.bytes_per_round
            )
        if settings.max_rounds is not None:
            rounds = min(rounds, settings.max_rounds)
        if rounds < settings.min_rounds:
            infeasible += 1
            continue
        rows.append(
            PlanRow(
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
                recommended=is_rec,
                why=recommended.get((rank, kd, ku), ""),
            )
        )
    if not rows:
        raise PlanError(
            f"budget {budget.text!r} affords fewer than {settings.min_rounds} round(s) for every "
            f"configuration (a dense round at rank {settings.ref_rank} takes "
            f"{dense.seconds_per_round:.3g} s and moves {dense.bytes_per_round:,} bytes)."
        )
    flags = pareto_flags(rows)
    rows = [_with(r, pareto=f) for r, f in zip(rows, flags, strict=True)]
    log_s = math.log2(settings.up_slowdown)
    # After the recommendations, frontier configs nearest the balanced ratio d_down/d_up = S first.
    rows.sort(
        key=lambda r: (
            not r.recommended,
            not r.pareto,
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
