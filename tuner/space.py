"""The search space: every configuration the budget affords, and how an Optuna trial picks one.

A candidate is a method with its parameters (``MethodGrid``): FLoSS at (rank, d_down, d_up) in
either top-k mode; dense LoRA and FFA-LoRA at a rank (d = 1 both ways); SparseAdapter at a rank
and a mask density (its d_up); AdapterLTH at a rank and a keep rate. Each is priced round by
round by ``planner.schedule`` on the base run's seeded clients (``planner.pricing``) under the
full budget (the exported run's rounds; ``--min-rounds``/``--max-rounds`` apply) and under the
trial budget (the budget times ``--budget-scale``, the round cap scaled alike). A candidate must
afford one trial round and ``--min-rounds`` full rounds.

How a trial picks (``suggest``): ``method`` (when several) and ``rank`` are categorical; FLoSS
draws ``topk`` (when both modes are searched), ``d_down`` and ``d_up``; SparseAdapter draws
``d_up`` only (its mask density: what each client uploads, so TPE models one upload-density axis
across both sparse methods); AdapterLTH draws ``keep_rate`` (when several); dense and FFA draw
nothing more. Densities are log-uniform floats snapped to the nearest grid density (log space),
so TPE learns that neighbouring densities behave alike; a point the budget cannot afford is
projected to the nearest feasible candidate of that method and rank (ties: the cheaper). Every
choice list is fixed per study (RDB storages refuse a "dynamic value space").

Value precisions (``MethodGrid.precisions_down``/``precisions_up``, ``floss-tune --bits-down/
--bits-up``): every candidate is priced at each (download, upload) pair; when a list has more
than one entry the trial draws it as a categorical (``precision_down``, ``precision_up``), any
method. Not searched by default: the base run's precisions are the only pair.

Heterogeneous fleets (``build_space(fleet=...)``, ``floss-tune --fleet``; docs/fleets.md): every
candidate is also priced at each policy point of ``MethodGrid.round_policies`` x
``density_policies`` x ``deadlines`` (a deadline only where the point uses one: deadline rounds or
bandwidth densities; dense and FFA-LoRA take uniform densities only) with
``planner.fleet.price_fleet_rounds``, and an ``N-dense-rounds`` budget counts in the fleet's dense
round (``planner.fleet.dense_reference_seconds``), as ``floss-train --fleet --budget`` resolves
it. A point whose deadline no client can meet is infeasible. The trial draws ``round_policy``,
``density_policy`` (FLoSS) and ``deadline`` (where the point uses one) as categoricals, each only
when its list has more than one entry.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Protocol

from planner.budget import Budget, resolve_budget
from planner.fleet import DENSITY_POLICIES, ROUND_POLICIES, FleetError, FleetSetup
from planner.plan_rows import adapter_size as planner_adapter_size
from planner.plan_rows import heuristic_pairs
from planner.plan_types import PlanSettings
from planner.pricing import Population, Pricing, PricingError, Spend, totals
from tuner.settings import (
    METHODS,
    TOPK_MODES,
    TuneError,
    check_budget_scale,
    check_choices,
    check_methods,
    check_topks,
)

Key = tuple[str, str, int, Fraction, Fraction, Fraction | None, str, str, str, str, float | None]
Policy = tuple[str, str, float | None]  # (round_policy, density_policy, deadline); "" = no fleet
NO_FLEET: Policy = ("", "", None)
AdapterSize = Callable[[str, int], int]  # (method, rank) -> n, entries of P as trained
TensorSizes = Callable[[str, int], tuple[int, ...]]  # (method, rank) -> P's tensors, in order
THESIS_KEEP_RATE = 0.98  # AdapterLTH: the thesis keeps 98 % of the surviving entries per round
SPARSE_UP = ("floss", "sparseadapter")  # methods whose upload density is searched (d_up)


class SuggestingTrial(Protocol):
    """The part of ``optuna.Trial`` that ``suggest`` uses (a fake can stand in for it in tests)."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...


def density_key(d: float) -> Fraction:
    return Fraction(d).limit_denominator(1 << 40)


def density_label(d: float) -> str:
    """1 -> '1', 0.0625 -> '1/16', 0.3 -> '0.3'."""
    f = Fraction(d).limit_denominator(1 << 20)
    if abs(float(f) - d) < 1e-12 * max(d, 1e-300):
        return str(f)
    return f"{d:.4g}"


def make_key(
    method: str,
    topk: str,
    rank: int,
    d_down: float,
    d_up: float,
    keep_rate: float | None,
    precision_down: str = "fp32",
    precision_up: str = "fp32",
    policy: Policy = NO_FLEET,
) -> Key:
    keep = None if keep_rate is None else density_key(keep_rate)
    return (
        method, topk, rank, density_key(d_down), density_key(d_up), keep,
        precision_down, precision_up, *policy,
    )  # fmt: skip


def needs_deadline(round_policy: str, density_policy: str) -> bool:
    """Deadline rounds and bandwidth densities need a deadline; sync with uniform or tiered
    densities does not."""
    return round_policy == "deadline" or density_policy == "bandwidth"


def policy_label(c: Mapping[str, Any]) -> str:
    """' sync/uniform', ' deadline 0.5s/bandwidth' ('' without a fleet)."""
    rp, dp = str(c.get("round_policy") or ""), str(c.get("density_policy") or "")
    if not rp:
        return ""
    deadline = c.get("deadline")
    at = "" if deadline is None else f" {float(deadline):g}s"
    return f" {rp}{at}/{dp}"


@dataclass(frozen=True, kw_only=True)
class MethodGrid:
    """Which methods and method parameters the study searches (beside ranks and densities)."""

    methods: tuple[str, ...] = field(default=("floss",), metadata={"help": "methods to search"})
    topks: tuple[str, ...] = field(default=("global",), metadata={"help": "FLoSS top-k modes"})
    keep_rates: tuple[float, ...] = field(
        default=(THESIS_KEEP_RATE,), metadata={"help": "AdapterLTH keep rates per round"}
    )
    lth_floor: float | None = field(
        default=None, metadata={"help": "AdapterLTH density floor (None: k never below 1)"}
    )
    precisions_down: tuple[str, ...] = field(
        default=(), metadata={"help": "download value precisions (searched when > 1; () = base)"}
    )
    precisions_up: tuple[str, ...] = field(
        default=(), metadata={"help": "upload value precisions (searched when > 1; () = base)"}
    )
    # fleets only (empty without one; build_space fills them from the fleet setup when empty)
    round_policies: tuple[str, ...] = field(
        default=(), metadata={"help": "fleet round policies (searched when > 1)"}
    )
    density_policies: tuple[str, ...] = field(
        default=(), metadata={"help": "fleet density policies (FLoSS; searched when > 1)"}
    )
    deadlines: tuple[float, ...] = field(
        default=(), metadata={"help": "fleet deadlines, s (searched when > 1)"}
    )

    def policies(self, method: str) -> list[Policy]:
        """The fleet policy points a method is priced at ([NO_FLEET] without a fleet)."""
        if not self.round_policies:
            return [NO_FLEET]
        densities = self.density_policies if method == "floss" else ("uniform",)
        out: list[Policy] = []
        for rp in self.round_policies:
            for dp in densities:
                if needs_deadline(rp, dp):
                    out += [(rp, dp, d) for d in self.deadlines]
                else:
                    out.append((rp, dp, None))
        return out

    def _check_fleet_lists(self) -> None:
        for name, allowed, flag in (
            ("round_policies", ROUND_POLICIES, "--round-policies"),
            ("density_policies", DENSITY_POLICIES, "--density-policies"),
        ):
            values = getattr(self, name)
            if values:
                object.__setattr__(self, name, check_choices(values, allowed, flag))
        deadlines = []
        for d in self.deadlines:
            if (
                isinstance(d, bool)
                or not isinstance(d, (int, float))
                or not math.isfinite(d)
                or d <= 0
            ):
                raise TuneError(f"--deadlines values must be seconds > 0, but got {d!r}.")
            deadlines.append(float(d))
        if len(set(deadlines)) != len(deadlines):
            raise TuneError(f"--deadlines has a repeated value: {self.deadlines!r}.")
        object.__setattr__(self, "deadlines", tuple(deadlines))
        if bool(self.round_policies) != bool(self.density_policies):
            raise TuneError("a fleet search needs both round and density policies.")
        if self.round_policies and not self.deadlines:
            for rp in self.round_policies:
                for dp in self.density_policies:
                    if needs_deadline(rp, dp):
                        what = "deadline rounds" if rp == "deadline" else "bandwidth densities"
                        raise TuneError(
                            f"{what} need a deadline: give --deadlines (seconds, e.g. 0.5,1,2)."
                        )
        if self.round_policies:
            shared = [m for m in self.methods if m not in ("floss", "dense", "ffa")]
            if shared:
                raise TuneError(
                    f"fleets support floss, dense and ffa; {shared[0]} keeps one shared mask: "
                    "drop it from --methods or drop --fleet."
                )

    def __post_init__(self) -> None:
        from planner.encoding import parse_precision

        for name in ("precisions_down", "precisions_up"):
            flag = "--bits-" + name.removeprefix("precisions_")
            values = getattr(self, name)
            try:
                parsed = tuple(parse_precision(v, name=flag) for v in values)
            except ValueError as exc:
                raise TuneError(str(exc)) from None
            if len(set(parsed)) != len(parsed):
                raise TuneError(f"{flag} has a repeated value: {values!r}.")
            object.__setattr__(self, name, parsed)
        object.__setattr__(self, "methods", check_methods(self.methods))
        object.__setattr__(self, "topks", check_topks(self.topks))
        if not self.keep_rates:
            raise TuneError("--keep-rates is empty.")
        for k in self.keep_rates:
            if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0 < k < 1:
                raise TuneError(f"--keep-rates values must be in (0, 1), but got {k!r}.")
        if len(set(self.keep_rates)) != len(self.keep_rates):
            raise TuneError(f"--keep-rates has a repeated value: {self.keep_rates!r}.")
        if self.lth_floor is not None and not 0 < self.lth_floor <= 1:
            raise TuneError(f"the AdapterLTH floor must be in (0, 1], but got {self.lth_floor!r}.")
        self._check_fleet_lists()


@dataclass(frozen=True, kw_only=True)
class Candidate:
    method: str = "floss"
    topk: str = "global"
    rank: int
    d_down: float  # 1 for dense, ffa and adapterlth; = d_up (the mask density) for sparseadapter
    d_up: float
    keep_rate: float | None = None  # adapterlth only
    n: int = 0  # adapter entries as trained (ffa: B and the head only)
    rounds: int  # affordable under the trial budget
    full_rounds: int  # affordable under the full budget
    bytes_per_round: int  # mean over the trial's rounds; all sampled clients, both directions
    seconds_per_round: float  # mean over the trial's rounds
    trial_bytes: int = 0  # the trial's planned spend, exact
    trial_seconds: float = 0.0
    full_bytes: int = 0  # the full run's planned spend, exact
    full_seconds: float = 0.0
    why: str = ""
    precision_down: str = "fp32"
    precision_up: str = "fp32"
    round_policy: str = ""  # fleets: sync | deadline ("" without a fleet)
    density_policy: str = ""  # fleets: uniform | tiered | bandwidth
    deadline: float | None = None  # fleets: seconds, where the policies use one

    @property
    def policy(self) -> Policy:
        return (self.round_policy, self.density_policy, self.deadline)

    @property
    def key(self) -> Key:
        return make_key(self.method, self.topk, self.rank, self.d_down, self.d_up, self.keep_rate,
                        self.precision_down, self.precision_up, self.policy)  # fmt: skip

    @property
    def label(self) -> str:
        return candidate_label(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def candidate_label(c: Mapping[str, Any]) -> str:
    """A short name of a candidate mapping (``Candidate.to_dict`` or a trial's attribute)."""
    wire = (str(c.get("precision_down", "fp32")), str(c.get("precision_up", "fp32")))
    values = "" if wire == ("fp32", "fp32") else f" {wire[0]}/{wire[1]}"
    return _method_label(c) + values + policy_label(c)


def _method_label(c: Mapping[str, Any]) -> str:
    method, rank = str(c.get("method", "floss")), c.get("rank")
    if method == "floss":
        topk = " per-tensor" if c.get("topk") == "per-tensor" else ""
        if c.get("density_policy") == "tiered":  # the tiers' densities, not the run's
            return f"r{rank} tier densities{topk}"
        return (
            f"r{rank} d_down={density_label(float(c['d_down']))} "
            f"d_up={density_label(float(c['d_up']))}{topk}"
        )
    if method == "sparseadapter":
        return f"sparseadapter r{rank} d={density_label(float(c['d_up']))}"
    if method == "adapterlth":
        return f"adapterlth r{rank} keep={c.get('keep_rate')}"
    return f"{method} r{rank}"


@dataclass(frozen=True, kw_only=True)
class SearchSpace:
    candidates: tuple[Candidate, ...]
    seeds: tuple[Candidate, ...]  # dense LoRA, the d_up = d_down / S family, one per method
    budget_kind: str  # "seconds" or "bytes"
    trial_budget: float  # seconds or bytes of one trial
    full_budget: float
    pricing: Pricing
    grid: MethodGrid = field(default_factory=MethodGrid)
    tensor_sizes: TensorSizes | None = None  # per-tensor top-k prices need them

    def __post_init__(self) -> None:
        if not self.candidates:
            raise TuneError("the search space is empty: no configuration is feasible.")

    @property
    def methods(self) -> list[str]:
        """Searched methods with at least one feasible candidate, in the user's order."""
        present = {c.method for c in self.candidates}
        return [m for m in self.grid.methods if m in present]

    @property
    def topks(self) -> list[str]:
        return list(self.grid.topks)

    @property
    def keep_rates(self) -> list[float]:
        return list(self.grid.keep_rates)

    @property
    def precisions_down(self) -> list[str]:
        return list(self.grid.precisions_down) or [self.pricing.precision]

    @property
    def precisions_up(self) -> list[str]:
        return list(self.grid.precisions_up) or [self.pricing.precision]

    @property
    def ranks(self) -> list[int]:
        return sorted({c.rank for c in self.candidates})

    @property
    def fleet(self) -> bool:
        return bool(self.grid.round_policies)

    @property
    def round_policies(self) -> list[str]:
        return list(self.grid.round_policies)

    @property
    def density_policies(self) -> list[str]:
        return list(self.grid.density_policies)

    @property
    def deadlines(self) -> list[float]:
        return list(self.grid.deadlines)

    def policy_for(self, method: str, params: Mapping[str, Any]) -> Policy:
        """The policy point that Optuna params (or a config's fields) name; values outside
        the lists fall back to the first entry."""
        if not self.fleet:
            return NO_FLEET
        rp = str(params.get("round_policy", self.round_policies[0]))
        rp = rp if rp in self.round_policies else self.round_policies[0]
        dp = "uniform"
        if method == "floss":
            dp = str(params.get("density_policy", self.density_policies[0]))
            dp = dp if dp in self.density_policies else self.density_policies[0]
        if not needs_deadline(rp, dp):
            return (rp, dp, None)
        raw = params.get("deadline")
        deadline = self.deadlines[0] if raw is None else float(raw)
        if deadline not in self.deadlines:
            deadline = snap(deadline, self.deadlines)
        return (rp, dp, deadline)

    def density_range(self, which: str) -> tuple[float, float]:
        """Range of ``d_down`` (FLoSS) or ``d_up`` (FLoSS and SparseAdapter) over the space."""
        methods = ("floss",) if which == "d_down" else SPARSE_UP
        values = [getattr(c, which) for c in self.candidates if c.method in methods]
        return (min(values), max(values)) if values else (1.0, 1.0)

    def grid_of(self, which: str, method: str = "floss") -> list[float]:
        return sorted({getattr(c, which) for c in self.candidates if c.method == method}) or [1.0]

    def lookup(
        self,
        rank: int,
        d_down: float,
        d_up: float,
        *,
        method: str = "floss",
        topk: str = "global",
        keep_rate: float | None = None,
        precision_down: str | None = None,
        precision_up: str | None = None,
        policy: Policy | None = None,
    ) -> Candidate | None:
        pd = precision_down or self.precisions_down[0]
        pu = precision_up or self.precisions_up[0]
        point = policy if policy is not None else self.policy_for(method, {})
        return self._by_key.get(
            make_key(method, topk, rank, d_down, d_up, keep_rate, pd, pu, point)
        )

    def lookup_config(self, config: Any) -> Candidate | None:
        """The candidate a trial RunConfig trains (the inverse of ``trial_config``)."""
        method = str(getattr(config, "method", "floss"))
        keep = getattr(config, "keep_rate", None) if method == "adapterlth" else None
        fields = {
            "round_policy": getattr(config, "round_policy", "sync"),
            "density_policy": getattr(config, "density_policy", "uniform"),
            "deadline": getattr(config, "deadline_seconds", None),
        }
        return self.lookup(
            config.rank,
            config.d_down,
            config.d_up,
            method=method,
            topk=str(getattr(config, "topk", "global")) if method == "floss" else "global",
            keep_rate=keep,
            precision_down=getattr(config, "wire_precisions", ("fp32", "fp32"))[0],
            precision_up=getattr(config, "wire_precisions", ("fp32", "fp32"))[1],
            policy=self.policy_for(method, {k: v for k, v in fields.items() if v is not None}),
        )

    @property
    def _by_key(self) -> dict[Key, Candidate]:
        cache: dict[Key, Candidate] | None = self.__dict__.get("_keys")
        if cache is None:
            cache = {c.key: c for c in self.candidates}
            object.__setattr__(self, "_keys", cache)
        return cache

    def nearest(
        self,
        rank: int,
        d_down: float,
        d_up: float,
        *,
        method: str = "floss",
        topk: str = "global",
        keep_rate: float | None = None,
        precision_down: str | None = None,
        precision_up: str | None = None,
        policy: Policy | None = None,
    ) -> Candidate:
        """The feasible candidate closest in log densities (and keep rate): same precisions,
        fleet policies, method, top-k mode and rank first, then the nearest rank; ties go to the
        cheaper."""
        wire = (precision_down or self.precisions_down[0], precision_up or self.precisions_up[0])
        pools = (
            [c for c in self.candidates if (c.method, c.topk, c.rank) == (method, topk, rank)],
            [c for c in self.candidates if (c.method, c.rank) == (method, rank)],
            [c for c in self.candidates if c.method == method],
            list(self.candidates),
        )
        pool = next(p for p in pools if p)
        pool = [c for c in pool if (c.precision_down, c.precision_up) == wire] or pool
        point = policy if policy is not None else self.policy_for(method, {})
        pool = (  # the same policy point, else the same policies at another deadline, ...
            [c for c in pool if c.policy == point]
            or [c for c in pool if c.policy[:2] == point[:2]]
            or [c for c in pool if c.round_policy == point[0]]
            or pool
        )

        def distance(c: Candidate) -> tuple[float, float, int]:
            dist = abs(math.log2(c.d_down / d_down)) + abs(math.log2(c.d_up / d_up))
            if c.keep_rate is not None and keep_rate is not None:
                dist += abs(math.log2(c.keep_rate / keep_rate))
            if c.deadline is not None and point[2] is not None:
                dist += abs(math.log2(c.deadline / point[2]))
            return (round(dist, 9), abs(math.log2(c.rank / rank)), c.trial_bytes)

        return min(pool, key=distance)

    def candidate_for(self, params: Mapping[str, Any]) -> Candidate:
        """The feasible candidate that Optuna params (sampled, or fixed by enqueue) land on."""
        method = str(params.get("method", self.methods[0]))
        if method not in self.methods:
            method = self.methods[0]
        rank = int(params["rank"])
        topk, keep = "global", None
        d_down = d_up = 1.0
        if method == "floss":
            topk = str(params.get("topk", self.topks[0]))
            d_down = snap(float(params["d_down"]), self.grid_of("d_down"))
            d_up = snap(float(params["d_up"]), self.grid_of("d_up"))
        elif method == "sparseadapter":
            d_down = d_up = snap(float(params["d_up"]), self.grid_of("d_up", method))
        elif method == "adapterlth":
            keep = snap(float(params.get("keep_rate", self.keep_rates[0])), self.keep_rates)
        pd = str(params.get("precision_down", self.precisions_down[0]))
        pu = str(params.get("precision_up", self.precisions_up[0]))
        kw: dict[str, Any] = {
            "method": method,
            "topk": topk,
            "keep_rate": keep,
            "precision_down": pd if pd in self.precisions_down else self.precisions_down[0],
            "precision_up": pu if pu in self.precisions_up else self.precisions_up[0],
            "policy": self.policy_for(method, params),
        }
        return self.lookup(rank, d_down, d_up, **kw) or self.nearest(rank, d_down, d_up, **kw)

    def params_of(self, candidate: Candidate) -> dict[str, Any]:
        """The Optuna params that ``candidate_for`` maps back onto ``candidate``."""
        out: dict[str, Any] = {}
        if len(self.methods) > 1:
            out["method"] = candidate.method
        out["rank"] = candidate.rank
        if candidate.method == "floss":
            if len(self.topks) > 1:
                out["topk"] = candidate.topk
            out["d_down"] = candidate.d_down
        if candidate.method in SPARSE_UP:
            out["d_up"] = candidate.d_up
        if candidate.method == "adapterlth" and len(self.keep_rates) > 1:
            out["keep_rate"] = candidate.keep_rate
        if len(self.precisions_down) > 1:
            out["precision_down"] = candidate.precision_down
        if len(self.precisions_up) > 1:
            out["precision_up"] = candidate.precision_up
        if len(self.round_policies) > 1:
            out["round_policy"] = candidate.round_policy
        if candidate.method == "floss" and len(self.density_policies) > 1:
            out["density_policy"] = candidate.density_policy
        if candidate.deadline is not None and len(self.deadlines) > 1:
            out["deadline"] = candidate.deadline
        return out

    def spend_curve(self, candidate: Candidate) -> list[float]:
        """Cumulative planned spend after each of the trial's rounds (seconds or bytes)."""
        return self._pricing(candidate).curve(self._spec(candidate), candidate.rounds)

    def round_costs(self, candidate: Candidate, rounds: int) -> list[tuple[int, float]]:
        """(bytes_total, seconds) of rounds 1..rounds as the trainer will pay them."""
        return [
            (p.bytes_total, p.seconds)
            for p in self._pricing(candidate).round_prices(self._spec(candidate), rounds)
        ]

    def _pricing(self, c: Candidate) -> Pricing:
        return self.pricing.with_policy(*c.policy)

    def _spec(self, c: Candidate) -> Any:
        return spec_of(self.pricing, self.tensor_sizes, c.method, c.topk, c.rank, c.n,
                       c.d_down, c.d_up, c.keep_rate,
                       precisions=(c.precision_down, c.precision_up))  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """What identifies the space; stored on the study so a resume can check it matches."""
        return {
            "budget_kind": self.budget_kind,
            "trial_budget": self.trial_budget,
            "full_budget": self.full_budget,
            "candidates": len(self.candidates),
            "ranks": self.ranks,
            "methods": self.methods,
            "topks": self.topks,
            "keep_rates": self.keep_rates,
            "d_down_range": list(self.density_range("d_down")),
            "d_up_range": list(self.density_range("d_up")),
            # only when searched: studies made before the precision axis keep their summary
            **(
                {"precisions_down": self.precisions_down, "precisions_up": self.precisions_up}
                if len(self.precisions_down) > 1 or len(self.precisions_up) > 1
                else {}
            ),
            **(
                {
                    "fleet": self.pricing.fleet.fleet.name if self.pricing.fleet else None,
                    "round_policies": self.round_policies,
                    "density_policies": self.density_policies,
                    "deadlines": self.deadlines,
                }
                if self.fleet
                else {}
            ),
        }


def snap(value: float, grid: Iterable[float]) -> float:
    """The grid value nearest to ``value`` in log space (ties: the smaller)."""
    return min(sorted(grid), key=lambda g: round(abs(math.log(g / value)), 12))


def scaled_budget(budget: Budget, scale: float) -> Budget:
    check_budget_scale(scale)
    if scale == 1.0:
        return budget
    amount = budget.amount * scale
    if budget.kind == "bytes":
        amount = float(math.floor(amount))
        if amount < 1:
            raise TuneError(f"--budget-scale {scale} leaves less than one byte of {budget.text!r}.")
    return replace(budget, amount=amount, text=f"{budget.text} x {scale:g}")


def planner_sizes(settings: PlanSettings) -> AdapterSize:
    """n(method, rank) from the planner's model profile (FFA-LoRA: B and the head only)."""

    def size(method: str, rank: int) -> int:
        return planner_adapter_size(settings, rank, method=method)

    return size


def planner_tensor_sizes(settings: PlanSettings) -> TensorSizes:
    """P's tensors from the planner's model profile: A (r x d_in) and B (d_out x r) of every
    targeted module, then the head (weight, bias). The order does not change a top-k price."""

    def sizes(method: str, rank: int) -> tuple[int, ...]:
        model = settings.model
        if not model.modules:
            raise TuneError(
                f"per-tensor top-k needs the module shapes of {model.name!r}; give a model "
                "profile, not a raw adapter size."
            )
        out: list[int] = []
        for m in model.modules:
            pair = [m.d_out * rank] if method == "ffa" else [rank * m.d_in, m.d_out * rank]
            out += pair * m.count
        labels = settings.num_labels
        if labels:
            out += [model.hidden_size * labels, labels]
        if settings.head_params:
            out.append(settings.head_params)
        return tuple(out)

    return sizes


def spec_of(
    pricing: Pricing,
    tensor_sizes: TensorSizes | None,
    method: str,
    topk: str,
    rank: int,
    n: int,
    d_down: float,
    d_up: float,
    keep_rate: float | None,
    *,
    precisions: tuple[str, str] | None = None,
) -> Any:
    """The planner.schedule spec of a configuration (per-tensor top-k with P's tensor sizes;
    ``precisions``: (download, upload), default the pricing's)."""
    per_tensor = method == "floss" and topk == "per-tensor" and not d_down == d_up == 1.0
    sizes: tuple[int, ...] = ()
    if per_tensor:
        if tensor_sizes is None:
            raise TuneError("per-tensor top-k needs the sizes of the adapter's tensors.")
        sizes = tensor_sizes(method, rank)
    return pricing.spec(
        method=method, n=n, d_down=d_down, d_up=d_up, keep_rate=keep_rate, tensor_sizes=sizes,
        precisions=precisions,
    )  # fmt: skip


def _configs(
    settings: PlanSettings, grid: MethodGrid
) -> list[tuple[str, str, int, float, float, float | None]]:
    """(method, topk, rank, d_down, d_up, keep_rate) of every configuration on the grids."""
    out: list[tuple[str, str, int, float, float, float | None]] = []
    for method in grid.methods:
        for rank in settings.ranks:
            if method == "floss":
                for topk in grid.topks:
                    for dd in settings.d_down:
                        for du in settings.d_up:
                            if topk != "global" and dd == du == 1.0:
                                continue  # every entry is sent: the top-k mode does not matter
                            out.append((method, topk, rank, dd, du, None))
            elif method == "sparseadapter":
                out += [(method, "global", rank, du, du, None) for du in settings.d_up]
            elif method == "adapterlth":
                out += [(method, "global", rank, 1.0, 1.0, k) for k in grid.keep_rates]
            else:  # dense, ffa
                out.append((method, "global", rank, 1.0, 1.0, None))
    return out


def build_space(
    settings: PlanSettings,
    *,
    budget_scale: float = 1.0,
    grid: MethodGrid | None = None,
    num_clients: int | None = None,
    seed: int | None = None,
    adapter_size: AdapterSize | None = None,
    tensor_sizes: TensorSizes | None = None,
    fleet: FleetSetup | None = None,
) -> SearchSpace:
    """Price every configuration on the grids exactly under the full and the trial budget.

    ``num_clients`` and ``seed`` are the base run's (they draw the sampled clients; default: the
    plan settings'). ``fleet``: price on a heterogeneous fleet (its policies are the defaults of
    the grid's policy lists). Raises ``TuneError`` (a ``ValueError``) naming the budget when
    nothing fits.
    """
    check_budget_scale(budget_scale)
    grid = grid or MethodGrid()
    grid = replace(
        grid,
        precisions_down=grid.precisions_down or (settings.precision,),
        precisions_up=grid.precisions_up or (settings.precision,),
    )
    if fleet is not None:
        grid = fleet_grid(grid, fleet)
    elif grid.round_policies:
        raise TuneError("round and density policies need a fleet (--fleet NAME|PATH).")
    seed = int(seed if seed is not None else getattr(settings, "seed", 0))
    num_clients = int(
        num_clients if num_clients is not None else getattr(settings, "num_clients", 100)
    )
    size = adapter_size or planner_sizes(settings)
    cap = settings.max_rounds
    trial_cap = None if cap is None else max(1, math.ceil(cap * budget_scale))
    population = Population(
        network=settings.network,
        fleet=fleet,
        seed=seed,
        num_clients=num_clients,
        clients_per_round=settings.clients_per_round,
        compute_seconds=settings.compute_seconds,
    )
    # n of the dense reference round: the planner's model profile on a network (as floss-plan
    # counts it), the trial's adapter sizes on a fleet (as floss-train --fleet counts it)
    reference_n = (
        planner_adapter_size(settings, settings.ref_rank)
        if fleet is None
        else size("dense", settings.ref_rank)
    )
    try:
        kind, full_amount, trial_amount = budget_amounts(
            settings, population, budget_scale=budget_scale, reference_n=reference_n
        )
    except TuneError:
        if fleet is None:
            raise unaffordable(settings, budget_scale=budget_scale, trial_cap=trial_cap) from None
        raise
    pricing = Pricing.on(
        population,
        encoding=settings.encoding,
        precision=settings.precision,
        budget_kind=kind,
        lth_floor=grid.lth_floor,
    )
    tensors = tensor_sizes or planner_tensor_sizes(settings)
    priced: dict[tuple[Any, ...], tuple[Spend, Spend] | None] = {}
    candidates = []
    pairs = [(d, u) for d in grid.precisions_down for u in grid.precisions_up]
    for (method, topk, rank, dd, du, keep), (pd, pu) in itertools.product(
        _configs(settings, grid), pairs
    ):
        n = size(method, rank)
        spec = spec_of(pricing, tensors, method, topk, rank, n, dd, du, keep, precisions=(pd, pu))
        for point in grid.policies(method):
            # tiered densities ignore the run's (d_down, d_up): every client sends and receives
            # its tier's, and the served model is the mixture of the tiers' (trainer.round.
            # served_models); one candidate for all of them, at the first pair of the grid
            dens = (None, None) if point[1] == "tiered" else (density_key(dd), density_key(du))
            memo = (spec.method, n, *dens, keep, spec.tensor_sizes, pd, pu, point)
            if point[1] == "tiered" and memo in priced:
                continue
            if memo not in priced:
                on = pricing.with_policy(*point)
                priced[memo] = (
                    _price(on, spec, settings, full_amount, trial_amount, trial_cap)
                    if _reachable(on, spec)
                    else None
                )
            spends = priced[memo]
            if spends is None:
                continue
            full_spend, trial_spend = spends
            candidates.append(
                Candidate(
                    method=method,
                    topk=topk,
                    rank=rank,
                    d_down=dd,
                    d_up=du,
                    keep_rate=keep,
                    n=n,
                    rounds=trial_spend.rounds,
                    full_rounds=full_spend.rounds,
                    bytes_per_round=round(trial_spend.bytes_per_round),
                    seconds_per_round=trial_spend.seconds_per_round,
                    trial_bytes=trial_spend.bytes,
                    trial_seconds=trial_spend.seconds,
                    full_bytes=full_spend.bytes,
                    full_seconds=full_spend.seconds,
                    precision_down=pd,
                    precision_up=pu,
                    round_policy=point[0],
                    density_policy=point[1],
                    deadline=point[2],
                )
            )
    if not candidates:
        if fleet is None:
            raise unaffordable(settings, budget_scale=budget_scale, trial_cap=trial_cap)
        raise TuneError(
            f"no configuration is feasible under budget {settings.budget.text!r} scaled by "
            f"{budget_scale:g}."
        )
    space = SearchSpace(
        candidates=tuple(candidates),
        seeds=(),
        budget_kind=kind,
        trial_budget=trial_amount,
        full_budget=full_amount,
        pricing=pricing,
        grid=grid,
        tensor_sizes=tensors,
    )
    return with_seeds(space, settings)


def fleet_grid(grid: MethodGrid, fleet: FleetSetup) -> MethodGrid:
    """The grid's fleet lists, each defaulting to the fleet setup's own policy; every policy
    point checked against the fleet (tiered without a density for each tier is one line)."""
    default_deadlines = () if fleet.deadline_seconds is None else (fleet.deadline_seconds,)
    grid = replace(
        grid,
        round_policies=grid.round_policies or (fleet.round_policy,),
        density_policies=grid.density_policies or (fleet.density_policy,),
        deadlines=grid.deadlines or default_deadlines,
    )
    for method in grid.methods:
        for rp, dp, deadline in grid.policies(method):
            try:
                replace(fleet, round_policy=rp, density_policy=dp, deadline_seconds=deadline)
            except FleetError as exc:
                raise TuneError(str(exc)) from None
    return grid


def budget_amounts(
    settings: PlanSettings, population: Population, *, budget_scale: float, reference_n: int
) -> tuple[str, float, float]:
    """(kind, full amount, trial amount) of the budget where the run happens, as floss-plan and
    floss-train resolve it (``planner.pricing.Population.resolve``): ``N-dense-rounds`` is N x
    the dense reference round of ``reference_n`` entries (on a fleet the mean of its first
    seeded sync, uniform rounds), a time is seconds, a size bytes."""
    trial_budget = scaled_budget(settings.budget, budget_scale)
    dense = functools.cache(lambda: population.dense_round_seconds(reference_n))
    full = resolve_budget(settings.budget, dense)
    trial = resolve_budget(trial_budget, dense)
    return full.kind, full.amount, trial.amount


def unaffordable(
    settings: PlanSettings, *, budget_scale: float, trial_cap: int | None
) -> TuneError:
    """Why no configuration on a network fits the budget, in the planner's words when its plan
    of the full or the trial budget is empty (asked only once the space came out empty)."""
    from planner.errors import PlanError
    from planner.plan import plan

    try:
        plan(settings)
        plan(
            replace(
                settings,
                budget=scaled_budget(settings.budget, budget_scale),
                min_rounds=1,
                max_rounds=trial_cap,
            )
        )
    except PlanError as exc:
        return TuneError(f"no feasible configuration: {exc}")
    return TuneError(
        f"no configuration is feasible under budget {settings.budget.text!r} scaled by "
        f"{budget_scale:g}."
    )


def _reachable(pricing: Pricing, spec: Any) -> bool:
    """False when the candidate's deadline is one no client of the fleet can meet (floss-train
    refuses such a run before round 1)."""
    from planner.fleet import check_deadline_reachable

    if pricing.fleet is None:
        return True
    try:
        check_deadline_reachable(
            spec,
            pricing.fleet,
            seed=pricing.seed,
            num_clients=pricing.num_clients,
            compute_seconds=pricing.compute_seconds,
        )
    except FleetError:
        return False
    return True


def _price(
    pricing: Pricing,
    spec: Any,
    settings: PlanSettings,
    full_amount: float,
    trial_amount: float,
    trial_cap: int | None,
) -> tuple[Spend, Spend] | None:
    """(full, trial) spend of one configuration; None when it misses ``--min-rounds`` or one
    trial round."""
    label = f"{spec.method} n={spec.n} d_down={spec.d_down:g} d_up={spec.d_up:g}"
    try:
        full, prices = pricing.within(
            spec, budget=full_amount, max_rounds=settings.max_rounds, label=label
        )
    except PricingError as exc:  # more rounds than a per-round schedule can price
        raise TuneError(str(exc)) from None
    if full.rounds < settings.min_rounds:
        return None
    if prices is None:
        trial, _ = pricing.within(spec, budget=trial_amount, max_rounds=trial_cap, label=label)
    else:  # the trial's rounds are a prefix of the full run's (same seed, smaller budget)
        trial = totals(pricing.prefix(prices, budget=trial_amount, max_rounds=trial_cap))
    return (full, trial) if trial.rounds >= 1 else None


def with_seeds(space: SearchSpace, settings: PlanSettings) -> SearchSpace:
    """Enqueue-first configurations, each projected onto the feasible grid (``candidate_for``)
    and deduplicated: dense LoRA at the reference rank, the thesis heuristic d_up = d_down / S
    at each heuristic download density, then one per other searched method at the reference
    rank (FFA; SparseAdapter at density 1/S; AdapterLTH at the first keep rate)."""
    ref = settings.ref_rank
    s = settings.up_slowdown
    methods = space.methods
    wanted: list[tuple[dict[str, Any], str]] = []  # (Optuna-like params, why)
    if "dense" in methods:
        wanted.append(({"method": "dense", "rank": ref}, "dense LoRA baseline"))
    elif "floss" in methods:
        dense = {"method": "floss", "rank": ref, "d_down": 1.0, "d_up": 1.0}
        wanted.append((dense, "dense LoRA baseline"))
    if "floss" in methods:
        for dd, du in heuristic_pairs(settings):
            params = {"method": "floss", "rank": ref, "d_down": dd, "d_up": du}
            wanted.append((params, "thesis heuristic d_up = d_down/S"))
    if "ffa" in methods:
        wanted.append(({"method": "ffa", "rank": ref}, "FFA-LoRA baseline"))
    if "sparseadapter" in methods:
        params = {"method": "sparseadapter", "rank": ref, "d_up": min(1.0, 1.0 / s)}
        wanted.append((params, "SparseAdapter baseline (density 1/S)"))
    if "adapterlth" in methods:
        params = {"method": "adapterlth", "rank": ref, "keep_rate": space.keep_rates[0]}
        wanted.append((params, "AdapterLTH baseline"))
    why: dict[Key, str] = {}
    order: list[Key] = []
    for wish, reason in wanted:
        cand = space.candidate_for(wish)
        if cand.key in why:
            continue  # two seeds projected onto the same grid point
        exact = cand.rank == wish["rank"] and all(
            math.isclose(float(getattr(cand, k)), float(v))
            for k, v in wish.items()
            if k in ("d_down", "d_up", "keep_rate")
        )
        why[cand.key] = reason if exact else f"{reason}, nearest on the grid"
        order.append(cand.key)
    candidates = tuple(replace(c, why=why[c.key]) if c.key in why else c for c in space.candidates)
    by_key = {c.key: c for c in candidates}
    return replace(space, candidates=candidates, seeds=tuple(by_key[k] for k in order))


def suggest(trial: SuggestingTrial, space: SearchSpace) -> Candidate:
    """Sample a method and its parameters in the trial; return the feasible candidate it lands
    on (see the module docstring)."""
    params: dict[str, Any] = {}
    methods = space.methods
    if len(methods) > 1:
        params["method"] = trial.suggest_categorical("method", methods)
    method = params.get("method", methods[0])
    params["rank"] = int(trial.suggest_categorical("rank", space.ranks))
    if method == "floss":
        if len(space.topks) > 1:
            params["topk"] = trial.suggest_categorical("topk", space.topks)
        params["d_down"] = trial.suggest_float("d_down", *space.density_range("d_down"), log=True)
    if method in SPARSE_UP:
        params["d_up"] = trial.suggest_float("d_up", *space.density_range("d_up"), log=True)
    if method == "adapterlth" and len(space.keep_rates) > 1:
        params["keep_rate"] = trial.suggest_categorical("keep_rate", space.keep_rates)
    for name in ("precision_down", "precision_up"):
        choices = space.precisions_down if name == "precision_down" else space.precisions_up
        if len(choices) > 1:  # a static choice list: the grid's, fixed per study
            params[name] = trial.suggest_categorical(name, choices)
    if space.fleet:  # static lists too; the deadline only where the policies use one
        if len(space.round_policies) > 1:
            params["round_policy"] = trial.suggest_categorical("round_policy", space.round_policies)
        if method == "floss" and len(space.density_policies) > 1:
            params["density_policy"] = trial.suggest_categorical(
                "density_policy", space.density_policies
            )
        rp, dp, _ = space.policy_for(method, params)
        if needs_deadline(rp, dp) and len(space.deadlines) > 1:
            params["deadline"] = trial.suggest_categorical("deadline", space.deadlines)
    return space.candidate_for(params)


def seed_params(candidate: Candidate, space: SearchSpace) -> dict[str, Any]:
    """The Optuna params that ``suggest`` maps back onto ``candidate`` (for enqueue_trial)."""
    return space.params_of(candidate)


__all__ = [
    "METHODS",
    "TOPK_MODES",
    "AdapterSize",
    "Candidate",
    "MethodGrid",
    "SearchSpace",
    "build_space",
    "candidate_label",
    "density_key",
    "density_label",
    "scaled_budget",
    "seed_params",
    "snap",
    "suggest",
]
