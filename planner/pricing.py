"""Exact prices of a method spec's rounds on a network or a fleet, and what a budget buys of them.

``Population`` is where a run's rounds happen: one network (``planner.schedule.price_rounds``)
or a heterogeneous fleet (``planner.fleet.price_fleet_rounds``), the seed that draws each round's
clients, the population and the compute seconds. It prices a ``MethodSpec`` round by round, the
very bytes and simulated seconds ``floss-train`` records, and turns a parsed budget into seconds
or bytes (``planner.budget.resolve_budget``): ``N-dense-rounds`` counts in the dense reference
round of that network (``planner.afford.dense_reference_round``) or fleet (the mean of its
first seeded dense rounds, ``planner.fleet.dense_reference_seconds``). floss-train resolves its
budget with it (``trainer.budget``) and floss-tune prices every candidate with ``Pricing``.

``Pricing`` adds the wire format and the budget kind of a study's candidates. A candidate's
rounds, the full run's rounds and the fidelity checkpoints all come from the same per-round
prices the trainer will pay (the same seed draws the same clients and bandwidth factors), not
from rounds x a mean cost. ``planner.afford.rounds_within_budget`` is the rule: the longest
prefix of rounds whose cumulative seconds (or bytes) stay within the budget.

One shortcut, exact by construction: floss, dense and FFA-LoRA on identical links (no spread)
pay the same bytes and seconds every round, so their rounds are floor(budget / cost) of round 1
(``planner.budget.rounds_affordable``, the planner's rule); a test pins it to
``rounds_within_budget`` over the real generator. Everything else (a fleet with spread, the
mask-sharing methods, whose rounds differ) is priced round by round.

Heterogeneous fleets (docs/fleets.md): with ``fleet`` set (a ``planner.fleet.FleetSetup``, the
candidate's round and density policies in it, ``with_policy``), the rounds are
``planner.fleet.price_fleet_rounds``, always round by round. What a budget counts of them (each
round's seconds and bytes) comes from the planner's vectorised walk,
``planner.fleet_batch.fleet_round_costs``: the same numbers, priced a block of rounds at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol

from planner.afford import RoundSpend, dense_reference_round, rounds_within_budget
from planner.budget import Budget, BudgetAmount, resolve_budget, rounds_affordable
from planner.errors import PricingError
from planner.fleet import FleetSetup, dense_reference_seconds, price_fleet_rounds
from planner.fleet_batch import fleet_round_costs
from planner.method_spec import MethodSpec, wire_spec
from planner.network import NetworkProfile
from planner.schedule import RoundPrice, price_rounds

# A configuration that affords more rounds than this under a per-round schedule asks for a
# --max-rounds cap (pricing them one by one would take minutes, training them days).
MAX_PRICED_ROUNDS = 200_000
CONSTANT_METHODS = ("floss", "dense", "ffa")  # same message sizes every round


@dataclass(frozen=True, kw_only=True)
class Spend:
    """What a prefix of rounds costs: round count and totals."""

    rounds: int
    bytes: int  # all sampled clients, both directions
    seconds: float

    @property
    def bytes_per_round(self) -> float:
        return self.bytes / self.rounds if self.rounds else 0.0

    @property
    def seconds_per_round(self) -> float:
        return self.seconds / self.rounds if self.rounds else 0.0


class RoundShape(Protocol):
    """What a run's rounds take from its settings: clients per round, their compute seconds."""

    @property
    def clients_per_round(self) -> int: ...

    @property
    def compute_seconds(self) -> float: ...


@dataclass(frozen=True, kw_only=True)
class Population:
    """Where a run's rounds happen: its network or fleet, the seed that draws each round's
    clients, how many there are and take part, and each client's compute seconds."""

    network: NetworkProfile
    seed: int
    num_clients: int
    clients_per_round: int
    compute_seconds: float
    fleet: FleetSetup | None = None  # per-client links and the run's policies

    @staticmethod
    def of(
        run: RoundShape,
        *,
        network: NetworkProfile,
        seed: int,
        num_clients: int,
        fleet: FleetSetup | None = None,
    ) -> Population:
        """The population of ``run`` (plan settings or a run config: its clients per round and
        compute seconds) on ``network``, or on ``fleet``'s links."""
        return Population(
            network=network,
            fleet=fleet,
            seed=seed,
            num_clients=num_clients,
            clients_per_round=run.clients_per_round,
            compute_seconds=run.compute_seconds,
        )

    @property
    def draws(self) -> dict[str, Any]:
        """What every seeded pricing function takes beside the spec and the links: the seed,
        the population, the clients per round and their compute seconds."""
        return {
            "seed": self.seed,
            "num_clients": self.num_clients,
            "clients_per_round": self.clients_per_round,
            "compute_seconds": self.compute_seconds,
        }

    def prices(self, spec: MethodSpec) -> Iterator[RoundPrice]:
        """Rounds 1, 2, ... of ``spec`` (an unbounded generator), as floss-train pays them."""
        if self.fleet is not None:
            return price_fleet_rounds(spec, self.fleet, **self.draws)
        return price_rounds(spec, network=self.network, **self.draws)

    def costs(self, spec: MethodSpec) -> Iterator[RoundSpend]:
        """Each round's seconds and bytes, in order (what a budget counts): on a fleet the
        planner's vectorised walk (equal to ``prices``' rounds), else ``prices`` itself."""
        if self.fleet is not None:
            return fleet_round_costs(spec, self.fleet, **self.draws)
        return self.prices(spec)

    def dense_round_seconds(self, n: int) -> float:
        """Seconds of the round ``N-dense-rounds`` counts in: dense LoRA at n entries, dense
        fp32 values, on the network (the planner's expected slowest of the sampled clients) or
        on the fleet (the mean of its first seeded sync, uniform rounds)."""
        if self.fleet is not None:
            return dense_reference_seconds(self.fleet, n=n, **self.draws)
        return dense_reference_round(
            n=n,
            network=self.network,
            clients_per_round=self.clients_per_round,
            compute_seconds=self.compute_seconds,
        ).seconds

    def resolve(self, budget: Budget, *, reference_n: int) -> BudgetAmount:
        """``budget`` in seconds or bytes here; ``reference_n``: n of the dense reference round
        (dense LoRA at the reference rank), priced only for ``N-dense-rounds``."""
        return resolve_budget(budget, lambda: self.dense_round_seconds(reference_n))


@dataclass(frozen=True, kw_only=True)
class Pricing(Population):
    """The run a study's candidates are priced on: a population, the wire format, the budget
    kind."""

    encoding: str
    precision: str
    budget_kind: str  # "seconds" or "bytes"
    lth_floor: float | None = None

    @classmethod
    def on(
        cls,
        population: Population,
        *,
        encoding: str,
        precision: str,
        budget_kind: str,
        lth_floor: float | None = None,
    ) -> Pricing:
        """Candidates of ``population``'s run in this wire format, counted in ``budget_kind``."""
        where = {f.name: getattr(population, f.name) for f in fields(Population)}
        return cls(
            **where,
            encoding=encoding,
            precision=precision,
            budget_kind=budget_kind,
            lth_floor=lth_floor,
        )

    def __post_init__(self) -> None:
        if self.budget_kind not in ("seconds", "bytes"):
            raise ValueError(f"budget_kind must be seconds or bytes, but got {self.budget_kind!r}.")

    def spec(
        self,
        *,
        method: str,
        n: int,
        d_down: float,
        d_up: float,
        keep_rate: float | None,
        tensor_sizes: tuple[int, ...] = (),
        precisions: tuple[str, str] | None = None,
    ) -> MethodSpec:
        """What the method sends (``tensor_sizes``: per-tensor top-k; () for global;
        ``precisions``: (download, upload) value precisions, default ``precision`` both ways)."""
        down, up = precisions or (self.precision, self.precision)
        extra: dict[str, Any] = {} if keep_rate is None else {"keep_rate": keep_rate}
        if method == "adapterlth" and self.lth_floor is not None:
            extra["floor"] = self.lth_floor
        return wire_spec(
            method, n, encoding=self.encoding, precision=self.precision, precisions=(down, up),
            d_down=d_down, d_up=d_up, tensor_sizes=tensor_sizes, **extra,
        )  # fmt: skip

    def with_policy(
        self, round_policy: str, density_policy: str, deadline: float | None
    ) -> Pricing:
        """This pricing under a candidate's fleet policies (itself without a fleet)."""
        if self.fleet is None:
            return self
        setup = replace(
            self.fleet,
            round_policy=round_policy or "sync",
            density_policy=density_policy or "uniform",
            deadline_seconds=deadline,
        )
        return replace(self, fleet=setup)

    def constant(self, spec: MethodSpec) -> bool:
        return (
            self.fleet is None
            and spec.method in CONSTANT_METHODS
            and self.network.spread_sigma == 0
        )

    def cost(self, price: RoundSpend) -> float:
        return price.seconds if self.budget_kind == "seconds" else float(price.bytes_total)

    def within(
        self, spec: MethodSpec, *, budget: float, max_rounds: int | None, label: str
    ) -> tuple[Spend, list[RoundSpend] | None]:
        """The rounds ``spec`` affords: (totals, the per-round prices or None when constant)."""
        if self.constant(spec):
            first = next(self.prices(spec))
            rounds = rounds_affordable(budget_amount=budget, cost_per_round=self.cost(first))
            if max_rounds is not None:
                rounds = min(rounds, max_rounds)
            return (
                Spend(
                    rounds=rounds, bytes=rounds * first.bytes_total, seconds=rounds * first.seconds
                ),
                None,
            )
        cap = MAX_PRICED_ROUNDS + 1 if max_rounds is None else max_rounds
        kept = self.prefix(
            itertools.islice(self.costs(spec), cap), budget=budget, max_rounds=max_rounds
        )
        if max_rounds is None and len(kept) > MAX_PRICED_ROUNDS:
            raise PricingError(
                f"{label} affords more than {MAX_PRICED_ROUNDS:,} rounds of a per-round "
                "schedule; cap the rounds with --max-rounds."
            )
        return totals(kept), kept

    def prefix(
        self, prices: Iterable[RoundSpend], *, budget: float, max_rounds: int | None
    ) -> list[RoundSpend]:
        """The longest prefix of ``prices`` within ``budget`` (planner.afford's rule)."""
        return rounds_within_budget(
            prices,
            budget_seconds=budget if self.budget_kind == "seconds" else None,
            budget_bytes=int(budget) if self.budget_kind == "bytes" else None,
            max_rounds=max_rounds,
        )

    def curve(self, spec: MethodSpec, rounds: int) -> list[float]:
        """Cumulative spend (seconds or bytes, by the budget kind) after rounds 1..rounds."""
        if self.constant(spec):
            cost = self.cost(next(self.prices(spec)))
            return [r * cost for r in range(1, rounds + 1)]
        return list(itertools.accumulate(self.cost(p) for p in self.round_prices(spec, rounds)))

    def round_prices(self, spec: MethodSpec, rounds: int) -> list[RoundSpend]:
        """Rounds 1..rounds: each one's seconds and bytes (``costs``)."""
        return list(itertools.islice(self.costs(spec), rounds))


def totals(prices: list[RoundSpend]) -> Spend:
    return Spend(
        rounds=len(prices),
        bytes=sum(p.bytes_total for p in prices),
        seconds=sum(p.seconds for p in prices),
    )
