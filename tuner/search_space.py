"""The feasible search space (``SearchSpace``): every priced candidate, the seeds, the budgets,
and the projection of Optuna params (sampled or enqueued) onto the nearest feasible candidate.

Densities are snapped to the nearest grid density in log space (``snap``); a point the budget
cannot afford is projected to the nearest feasible candidate of that method and rank (ties: the
cheaper). A candidate's rounds are priced by ``planner.pricing`` (``spec_of`` is its
``planner.method_spec`` spec).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import astuple, dataclass, field, replace
from typing import Any, TypedDict, Unpack

from planner.fleet import served_shares
from planner.pricing import Pricing
from tuner.candidate import Candidate, Key, make_key
from tuner.grid import NO_FLEET, SPARSE_UP, MethodGrid, Policy, needs_deadline
from tuner.settings import (
    TuneError,
)

TensorSizes = Callable[[str, int], tuple[int, ...]]  # (method, rank) -> P's tensors, in order


class Wanted(TypedDict, total=False):
    """What a look-up names beside (rank, d_down, d_up); left out: floss, global top-k, no keep
    rate, the space's first precisions and the method's first policy point."""

    method: str
    topk: str
    keep_rate: float | None
    precision_down: str | None
    precision_up: str | None
    policy: Policy | None


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
    # --trial-clients-per-round (None: the base run's); ``clients_per_trial`` is what trials use
    trial_clients_per_round: int | None = None
    _keys: dict[Key, Candidate] = field(  # candidate key -> candidate (``lookup``)
        default_factory=dict, init=False, repr=False, compare=False
    )
    # (candidate key, clients per round) -> what its fleet trial trains (``settles_as``)
    _trained_runs: dict[tuple[Key, int], tuple[Any, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.candidates:
            raise TuneError("the search space is empty: no configuration is feasible.")

    @property
    def clients_per_trial(self) -> int:
        """The clients per round every trial trains on (``trial_clients``)."""
        return trial_clients(self.trial_clients_per_round, self.pricing.clients_per_round)

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

    def _wanted(self, want: Wanted) -> tuple[str, str, float | None, tuple[str, str], Policy]:
        """(method, top-k mode, keep rate, (download, upload) precisions, policy point) that
        ``want`` names, the defaults filled in; a name ``Wanted`` does not have is a TypeError
        (as a misspelled keyword of a plain signature would be)."""
        unknown = sorted(set(want) - set(Wanted.__annotations__))
        if unknown:
            raise TypeError(f"unexpected look-up keyword(s): {', '.join(unknown)}")
        method = want.get("method", "floss")
        policy = want.get("policy")
        return (
            method,
            want.get("topk", "global"),
            want.get("keep_rate"),
            (
                want.get("precision_down") or self.precisions_down[0],
                want.get("precision_up") or self.precisions_up[0],
            ),
            policy if policy is not None else self.policy_for(method, {}),
        )

    def lookup(
        self, rank: int, d_down: float, d_up: float, **want: Unpack[Wanted]
    ) -> Candidate | None:
        """The candidate at exactly these values (``Wanted``: the rest), or None."""
        method, topk, keep_rate, (pd, pu), point = self._wanted(want)
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
        if not self._keys:
            self._keys.update((c.key, c) for c in self.candidates)
        return self._keys

    def nearest(self, rank: int, d_down: float, d_up: float, **want: Unpack[Wanted]) -> Candidate:
        """The feasible candidate closest in log densities (and keep rate): same precisions,
        fleet policies, method, top-k mode and rank first, then the nearest rank; ties go to the
        cheaper."""
        method, topk, keep_rate, wire, point = self._wanted(want)
        pools = (
            [c for c in self.candidates if (c.method, c.topk, c.rank) == (method, topk, rank)],
            [c for c in self.candidates if (c.method, c.rank) == (method, rank)],
            [c for c in self.candidates if c.method == method],
            list(self.candidates),
        )
        pool = next(p for p in pools if p)
        pool = [c for c in pool if (c.precision_down, c.precision_up) == wire] or pool
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

    def settles_as(self, candidate: Candidate) -> Candidate:
        """The first candidate of the space (in its order) whose trial trains exactly as
        ``candidate``'s does; ``candidate`` itself when none comes before it.

        On a fleet, two deadlines of the same policies settle identically when the seeded
        schedule the trainer follows is the same over the trial's rounds: the same rounds, and
        in every round the same sampled and kept clients, densities, bytes and seconds, and the
        same served mixture (a deadline that drops no client in any affordable round and leaves
        every client its densities), at the trials' clients per round (``clients_per_trial``).
        Decided from the planner's prices, before training."""
        if candidate.deadline is None:
            return candidate
        mine = _without_deadline(candidate)
        earlier = []
        for other in self.candidates:
            if other.key == candidate.key:
                break
            if other.deadline is not None and _without_deadline(other) == mine:
                earlier.append(other)  # the same configuration and policies at another deadline
        if not earlier:
            return candidate
        trains = self._trained(candidate)
        return next((c for c in earlier if self._trained(c) == trains), candidate)

    def _trained(self, c: Candidate) -> tuple[Any, ...]:
        """What a fleet trial of ``c`` trains, as the planner prices it (``settles_as``)."""
        m = self.clients_per_trial
        memo = (c.key, m)
        if memo not in self._trained_runs:
            pricing = replace(self._pricing(c), clients_per_round=m)
            spec = self._spec(c)
            rounds = [astuple(p) for p in itertools.islice(pricing.prices(spec), c.rounds)]
            shares: tuple[tuple[float, float], ...] = ()
            if c.method == "floss" and pricing.fleet is not None:
                shares = served_shares(
                    spec,
                    pricing.fleet,
                    seed=pricing.seed,
                    num_clients=pricing.num_clients,
                    compute_seconds=pricing.compute_seconds,
                )
            self._trained_runs[memo] = (c.rounds, rounds, shares)
        return self._trained_runs[memo]

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


def trial_clients(requested: int | None, base: int) -> int:
    """The clients per round a trial trains on: ``--trial-clients-per-round`` (``requested``)
    capped at the base run's ``base``, which it is when not given. The trial's RunConfig, the
    halving's client-step prices and ``settles_as`` all read it here."""
    return base if requested is None else min(requested, base)


def _without_deadline(c: Candidate) -> Key:
    """``c``'s key with the deadline left out: its configuration and policies."""
    return replace(c, deadline=None).key


def snap(value: float, grid: Iterable[float]) -> float:
    """The grid value nearest to ``value`` in log space (ties: the smaller)."""
    return min(sorted(grid), key=lambda g: round(abs(math.log(g / value)), 12))


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
    """The planner.method_spec spec of a configuration (per-tensor top-k with P's tensor sizes;
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
