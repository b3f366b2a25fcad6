"""What a plan is asked and what it answers: ``PlanSettings`` (checked once, trusted after),
``RoundCost`` (one round of one configuration), ``PlanRow`` (one priced configuration) and
``Plan`` (the rows, the short list first); and the default grids a plan prices.

``planner.settings`` builds the settings from text; ``planner.plan_rows`` prices the grids into
rows; ``planner.shortlist`` picks the short list; ``planner.plan.plan`` puts them together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from planner.budget import Budget
from planner.encoding import check_density, check_encoding_choice, check_precision
from planner.errors import PlanError
from planner.limits import is_int
from planner.method_spec import DEFAULT_KEEP_RATE, check_floor, check_keep_rate, check_method
from planner.model import ModelProfile
from planner.network import NetworkProfile

DEFAULT_RANKS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_DENSITIES: tuple[float, ...] = tuple(2.0**-i for i in range(9))  # 1 .. 1/256
DEFAULT_HEURISTIC_DOWN: tuple[float, ...] = (1.0, 0.25, 0.0625)
REF_RANK = 16  # FLASC's default LoRA rank
DEFAULT_NUM_CLIENTS = 100  # floss-train's default population


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
            if not is_int(r) or r < 1:
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
        if not is_int(self.seed) or self.seed < 0:
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


def heuristic_pairs(
    settings: PlanSettings, up_slowdown: float | None = None
) -> list[tuple[float, float]]:
    """(d_down, d_up = d_down / S) for each heuristic download density, dense first; S is
    ``up_slowdown`` (a fleet's, ``planner.fleet_shortlist.fleet_up_slowdown``) or the settings'."""
    s = settings.up_slowdown if up_slowdown is None else up_slowdown
    return [(d, min(d / s, 1.0)) for d in sorted(settings.heuristic_down, reverse=True)]
