"""Every method priced round by round, exactly as the trainer sends it (pure Python).

One cost model for all methods (DESIGN.md, "Evaluation, methods and budgets"):

* ``floss``: download = the encoding of k(n, d_down) entries of P (``auto``: the cheapest),
  upload = k(n, d_up) entries of each client's update, same every round.
* ``dense``: d = 1 both ways. ``ffa`` (FFA-LoRA): d = 1 both ways, with n = the B matrices and
  the head only (A stays frozen at its shared seeded init).
* ``sparseadapter``: round 1 is dense both ways; after it the top-k(n, d_up) |P| form a mask both
  ends keep. Later uploads are values only (k * v bytes); a download is a full sparse message
  (positions + values) to a client that does not hold the current mask version yet, values only
  to one that does.
* ``adapterlth`` (AdapterLTH as the thesis runs it): round 1 is dense; after every round the
  density is multiplied by ``keep_rate`` (0.98 by default), never below ``floor`` when one is
  set, k never below 1; the mask is re-cut when k changes, which is a new mask version (every
  client is stale again). Bytes as sparseadapter with that round's mask.
* ``fedsrd``, ``fedsrd-e`` (``planner.srd``, ``trainer.fedsrd``): an upload is the kurtosis
  rule's kept entries of each client's update, priced at a stated kurtosis (data-dependent: the
  trainer records the real sizes); after every round the server sends a delta of k(size, 1 -
  mask_rate) entries of A (odd rounds) or B (even) and the head; a sampled client receives the
  deltas it missed, or a dense fp32 P when cheaper (P_0 is the seeded init both ends build).

Values travel at ``precision_down`` on downloads and ``precision_up`` on uploads (each None:
``precision``); a b-bit precision changes only the value section's bytes
(``planner.encoding.values_bytes``).

The sampled clients and their bandwidth factors are ``planner.sampling.round_draws``, the draws
the trainer makes, so ``price_rounds`` predicts each round's per-client bytes and its simulated
seconds (the slowest sampled client sets the pace) exactly; a trainer test pins them round by
round.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from planner.budget import BUDGET_RTOL
from planner.encoding import (
    QUANTIZED,
    check_density,
    check_encoding_choice,
    check_precision,
    kept_entries,
    message_bytes,
    resolve_encoding,
)
from planner.network import NetworkProfile, client_round_seconds, fleet_round_seconds
from planner.sampling import cached_draws
from planner.srd import (
    DEFAULT_BASE,
    DEFAULT_COEFF,
    DEFAULT_MASK_RATE,
    DEFAULT_UPPER,
    EXPECTED_KURTOSIS,
    check_srd,
    download_entries,
    expected_upload_entries,
)

METHODS: tuple[str, ...] = (
    "floss", "dense", "sparseadapter", "adapterlth", "ffa", "fedsrd", "fedsrd-e",
)  # fmt: skip
MASK_METHODS: tuple[str, ...] = ("sparseadapter", "adapterlth")
SRD_METHODS: tuple[str, ...] = ("fedsrd", "fedsrd-e")  # planner.srd: data-dependent uploads
DEFAULT_KEEP_RATE = 0.98  # the thesis's AdapterLTH keeps 98 % of the survivors per round


def check_method(method: str, *, name: str = "method") -> str:
    if method not in METHODS:
        raise ValueError(f"{name} must be one of {', '.join(METHODS)}, but got {method!r}.")
    return method


def check_keep_rate(value: float, *, name: str = "keep_rate") -> float:
    """A keep rate is the share of mask entries kept per round, in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number in (0, 1], but got {value!r}.")
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1], but got {value!r}.")
    return float(value)


def check_floor(value: float | None, *, name: str = "lth_floor") -> float | None:
    """None (no floor: k shrinks down to 1) or a density in (0, 1]."""
    if value is None:
        return None
    return check_density(value, name=name)


def lth_next_density(density: float, *, keep_rate: float, floor: float | None) -> float:
    """AdapterLTH's density after one more round: density * keep_rate, not below the floor."""
    d = density * keep_rate
    return d if floor is None else max(d, floor)


def mask_entries(n: int, density: float) -> int:
    """k of a mask at ``density``: max(1, round(d * n)) (halves up), capped at n; any d >= 0."""
    return min(n, max(1, math.floor(density * n + 0.5)))


def synchronous_seconds(
    network: NetworkProfile,
    *,
    bytes_down: Sequence[int],
    bytes_up: Sequence[int],
    factors: Sequence[float],
    compute_seconds: float = 0.0,
) -> float:
    """A synchronous round: the slowest sampled client sets the pace (trainer and planner)."""
    return max(
        client_round_seconds(
            bytes_down=bd,
            bytes_up=bu,
            network=network,
            bandwidth_factor=f,
            compute_seconds=compute_seconds,
        )
        for bd, bu, f in zip(bytes_down, bytes_up, factors, strict=True)
    )


@dataclass(frozen=True, kw_only=True)
class MethodSpec:
    """What one method sends for an n-entry adapter (n as trained: for ffa, B + head only)."""

    method: str = field(default="floss", metadata={"help": "one of METHODS"})
    n: int = field(metadata={"help": "entries of the adapter vector P as trained"})
    d_down: float = field(default=1.0, metadata={"help": "floss: download density"})
    d_up: float = field(
        default=1.0, metadata={"help": "floss: upload density; sparseadapter: mask density"}
    )
    keep_rate: float = field(
        default=DEFAULT_KEEP_RATE, metadata={"help": "adapterlth: share kept per round"}
    )
    floor: float | None = field(
        default=None, metadata={"help": "adapterlth: density floor (None: k down to 1)"}
    )
    encoding: str = field(default="auto", metadata={"help": "auto | dense | coo | bitmap | rice"})
    precision: str = field(
        default="fp32", metadata={"help": "value precision both ways (planner.encoding)"}
    )
    precision_down: str | None = field(
        default=None, metadata={"help": "download value precision; None: precision"}
    )
    precision_up: str | None = field(
        default=None, metadata={"help": "upload value precision; None: precision"}
    )
    tensor_sizes: tuple[int, ...] = field(
        default=(), metadata={"help": "per-tensor top-k: sizes of P's tensors in order; () global"}
    )
    srd_pairs: tuple[tuple[int, int], ...] = field(
        default=(),
        metadata={
            "help": "fedsrd: (entries of A, of B) per LoRA pair; the rest of n is the head; "
            "(): P as one pair of halves"
        },
    )
    srd_base: float = field(default=DEFAULT_BASE, metadata={"help": "fedsrd: rule's base"})
    srd_upper: float = field(default=DEFAULT_UPPER, metadata={"help": "fedsrd: rule's upper"})
    srd_coeff: float = field(default=DEFAULT_COEFF, metadata={"help": "fedsrd: rule's coeff"})
    srd_mask_rate: float = field(
        default=DEFAULT_MASK_RATE, metadata={"help": "fedsrd: share a download drops"}
    )
    srd_kurtosis: float = field(
        default=EXPECTED_KURTOSIS,
        metadata={"help": "fedsrd: the score kurtosis uploads are priced at (planner.srd)"},
    )

    def __post_init__(self) -> None:
        check_method(self.method)
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"adapter size n must be an integer >= 1, but got {self.n!r}.")
        check_density(self.d_down, name="d_down")
        check_density(self.d_up, name="d_up")
        check_keep_rate(self.keep_rate)
        check_floor(self.floor)
        check_encoding_choice(self.encoding)
        check_precision(self.precision)
        for name in ("precision_down", "precision_up"):
            if getattr(self, name) is not None:
                check_precision(getattr(self, name), name=name)
        if self.tensor_sizes and sum(self.tensor_sizes) != self.n:
            raise ValueError(
                f"tensor sizes sum to {sum(self.tensor_sizes)}, but the adapter has n={self.n}."
            )
        check_srd(
            base=self.srd_base,
            upper=self.srd_upper,
            coeff=self.srd_coeff,
            mask_rate=self.srd_mask_rate,
        )
        if self.method in SRD_METHODS and sum(a + b for a, b in self.srd_pairs) > self.n:
            raise ValueError(f"fedsrd's LoRA pairs hold more than the adapter's n={self.n}.")
        check_wire(self)

    @property
    def wire_down(self) -> str:
        """The download's value precision."""
        return self.precision_down or self.precision

    @property
    def wire_up(self) -> str:
        """The upload's value precision."""
        return self.precision_up or self.precision

    @property
    def uniform(self) -> bool:
        """True when every round costs the same bytes (no mask to share, no catch-up)."""
        return self.method not in MASK_METHODS and self.method not in SRD_METHODS

    def srd_parts(self) -> tuple[tuple[int, ...], tuple[int, ...], int]:
        """fedsrd: (sizes of the A matrices, of the B matrices, entries of the rest)."""
        pairs = self.srd_pairs or ((self.n // 2, self.n - self.n // 2),)
        a = tuple(p[0] for p in pairs)
        b = tuple(p[1] for p in pairs)
        return a, b, self.n - sum(a) - sum(b)

    def srd_upload_entries(self) -> int:
        """k of one fedsrd upload as priced: every matrix and the head at the stated kurtosis."""
        a, b, rest = self.srd_parts()
        sizes = (*a, *b, *((rest,) if rest else ()))
        return expected_upload_entries(
            sizes,
            base=self.srd_base,
            upper=self.srd_upper,
            coeff=self.srd_coeff,
            kurtosis=self.srd_kurtosis,
        )

    def srd_delta_entries(self, round_: int) -> int:
        """k of the delta the server sends after 1-based round ``round_``: the masked share of
        A's entries (odd rounds: 0-based even) or B's (even rounds), and of the head's."""
        a, b, rest = self.srd_parts()
        updated = (sum(a) if round_ % 2 == 1 else sum(b)) + rest
        return download_entries(updated, self.srd_mask_rate)

    def topk_entries(self, density: float) -> int:
        """k of a top-k message: global k(n, d), or the sum of k(n_t, d) per tensor."""
        if density >= 1.0:
            return self.n
        if self.tensor_sizes:
            return sum(kept_entries(s, density) for s in self.tensor_sizes)
        return kept_entries(self.n, density)


def uniform_densities(spec: MethodSpec) -> tuple[float, float]:
    """(d_down, d_up) a stateless method sends at: 1 both ways for dense and ffa."""
    return (1.0, 1.0) if spec.method in ("dense", "ffa") else (spec.d_down, spec.d_up)


def topk_message_bytes(spec: MethodSpec, k: int, precision: str) -> int:
    """Bytes of one top-k message of ``spec``: k of n entries, positions and values, in the
    run's encoding (``auto``: the cheapest), values at ``precision``: what the trainer sends."""
    return resolve_encoding(spec.n, k, encoding=spec.encoding, precision=precision)[1]


def check_wire(spec: MethodSpec) -> None:
    """Refuse a precision/encoding pair that does not exist for what ``spec`` sends: the forced
    ``dense`` encoding writes the dropped zeros, which b-bit codes cannot hold, so it needs
    every entry kept (floss at d = 1; the mask methods send k < n after round 1)."""
    if spec.encoding != "dense":
        return
    for direction, precision in (("download", spec.wire_down), ("upload", spec.wire_up)):
        if precision not in QUANTIZED:
            continue
        density = spec.d_down if direction == "download" else spec.d_up
        if spec.method in ("dense", "ffa"):
            continue
        partial = (
            spec.method in MASK_METHODS
            or spec.method in SRD_METHODS
            or spec.topk_entries(density) < spec.n
        )
        if partial:
            raise ValueError(
                f"encoding dense with {direction} precision {precision} does not exist for "
                f"{spec.method} below density 1: b-bit codes carry the kept values only; "
                "use encoding auto, bitmap, rice or coo."
            )


@dataclass(frozen=True, kw_only=True)
class RoundPrice:
    """One round as the trainer will run it: per sampled client bytes, and its seconds."""

    round: int  # 1-based
    clients: list[int]  # sampled ids, sorted
    bytes_down: list[int]  # per sampled client, same order
    bytes_up: list[int]
    d_down: float  # k_down / n sent this round
    d_up: float
    seconds: float  # synchronous round with the seeded per-client bandwidth factors
    bytes_total: int  # all sampled clients, both directions
    # Fleet rounds (planner.fleet.fleet_round) fill these; the defaults mean "no fleet".
    kept: list[int] | None = None  # clients whose upload is aggregated; None: every sampled one
    client_seconds: list[float] = field(default_factory=list)  # per sampled client, same order
    client_d_down: list[float] = field(default_factory=list)  # densities each client encodes at
    client_d_up: list[float] = field(default_factory=list)


class _Walk:
    """The stateful schedule: mask version and which client holds which version."""

    def __init__(
        self,
        spec: MethodSpec,
        *,
        network: NetworkProfile,
        seed: int,
        num_clients: int,
        clients_per_round: int,
        compute_seconds: float,
    ) -> None:
        if num_clients < 1:
            raise ValueError(f"num_clients must be at least 1, but got {num_clients}.")
        if clients_per_round < 1:
            raise ValueError(f"clients_per_round must be at least 1, but got {clients_per_round}.")
        if not math.isfinite(compute_seconds) or compute_seconds < 0:
            raise ValueError(f"compute seconds must be >= 0, but got {compute_seconds!r}.")
        self.spec = spec
        self.network = network
        self.seed = seed
        self.num_clients = num_clients
        self.m = clients_per_round
        self.compute = compute_seconds
        self.round = 0
        n = spec.n
        if spec.uniform:
            dd, du = uniform_densities(spec)
            self.k_down = spec.topk_entries(dd)
            self.k_up = spec.topk_entries(du)
        else:
            self.k_down = self.k_up = n  # round 1 is dense both ways
        self.k = n  # mask entries (mask methods, from round 2)
        self.density = 1.0
        self.version = 0  # 0: no mask yet
        self.seen: dict[int, int] = {}
        self.unseen = num_clients  # clients not holding the current version
        self._full: dict[tuple[int, str], int] = {}
        self.down, self.up = spec.wire_down, spec.wire_up
        # fedsrd: cumulative bytes of the deltas sent so far ([0, d1, d1 + d2, ...]); ``seen``
        # holds the delta count each client has applied
        self.srd_cum: list[int] = [0]
        self.srd_last_k = 0
        self.srd_dense = message_bytes(n, n, encoding="dense", precision="fp32")

    def full_bytes(self, k: int, precision: str) -> int:
        if (k, precision) not in self._full:
            self._full[k, precision] = topk_message_bytes(self.spec, k, precision)
        return self._full[k, precision]

    def values_bytes(self, k: int, precision: str) -> int:
        return message_bytes(k, k, encoding="dense", precision=precision)

    @property
    def final_k(self) -> bool:
        """No later round changes the mask (sparseadapter after round 1; adapterlth at k's end)."""
        s = self.spec
        if s.uniform:
            return True
        if self.version == 0 or s.method in SRD_METHODS:
            return False
        if s.method == "sparseadapter":
            return True
        limit = 1 if s.floor is None else mask_entries(s.n, s.floor)
        return self.k <= limit or s.keep_rate == 1.0

    @property
    def steady(self) -> bool:
        """Every later round costs what the next one costs (bytes; seconds without a spread);
        never for fedsrd (its downloads follow who missed which delta)."""
        if self.spec.method in SRD_METHODS:
            return False
        return self.spec.uniform or (self.final_k and self.unseen == 0)

    def steady_bytes(self) -> tuple[int, int]:
        """(down, up) bytes per client of a steady round."""
        if self.spec.uniform:
            return self.full_bytes(self.k_down, self.down), self.full_bytes(self.k_up, self.up)
        return self.values_bytes(self.k, self.down), self.values_bytes(self.k, self.up)

    def next(self) -> RoundPrice:
        self.round += 1
        r = self.round
        s = self.spec
        sampled, factors = cached_draws(self.seed, r, self.num_clients, self.m, self.network)
        if s.method in SRD_METHODS:
            # catch-up: the deltas a client missed, or a dense fp32 P when that is cheaper
            down = []
            version = len(self.srd_cum) - 1
            for c in sampled:
                missed = self.srd_cum[version] - self.srd_cum[self.seen.get(c, 0)]
                down.append(min(missed, self.srd_dense))
                self.seen[c] = version
            k_up = s.srd_upload_entries()
            up = [self.full_bytes(k_up, self.up)] * len(sampled)
            d_down, d_up = self.srd_last_k / s.n, k_up / s.n
            self.srd_last_k = s.srd_delta_entries(r)
            self.srd_cum.append(self.srd_cum[-1] + self.full_bytes(self.srd_last_k, self.down))
        elif s.uniform or self.version == 0:
            down = [self.full_bytes(self.k_down, self.down)] * len(sampled)
            up = [self.full_bytes(self.k_up, self.up)] * len(sampled)
            d_down, d_up = self.k_down / s.n, self.k_up / s.n
        else:
            full, values = self.full_bytes(self.k, self.down), self.values_bytes(self.k, self.down)
            down = []
            for c in sampled:
                if self.seen.get(c) != self.version:
                    down.append(full)
                    self.seen[c] = self.version
                    self.unseen -= 1
                else:
                    down.append(values)
            up = [self.values_bytes(self.k, self.up)] * len(sampled)
            d_down = d_up = self.k / s.n
        seconds = synchronous_seconds(
            self.network,
            bytes_down=down,
            bytes_up=up,
            factors=factors,
            compute_seconds=self.compute,
        )
        price = RoundPrice(
            round=r,
            clients=list(sampled),
            bytes_down=down,
            bytes_up=up,
            d_down=d_down,
            d_up=d_up,
            seconds=seconds,
            bytes_total=sum(down) + sum(up),
        )
        self._after_aggregate()
        return price

    def _after_aggregate(self) -> None:
        s = self.spec
        if s.uniform or s.method in SRD_METHODS:
            return
        if s.method == "sparseadapter":
            if self.version == 0:
                self._new_mask(kept_entries(s.n, s.d_up), s.d_up)
            return
        d = lth_next_density(self.density, keep_rate=s.keep_rate, floor=s.floor)
        k = mask_entries(s.n, d)
        if self.version == 0 or k < self.k:
            self._new_mask(k, d)
        else:
            self.density = d

    def _new_mask(self, k: int, density: float) -> None:
        self.k, self.density = k, density
        self.version += 1
        self.unseen = self.num_clients


def price_rounds(
    spec: MethodSpec,
    *,
    network: NetworkProfile,
    seed: int,
    num_clients: int,
    clients_per_round: int,
    compute_seconds: float = 0.0,
) -> Iterator[RoundPrice]:
    """Round 1, 2, ... as the trainer runs them (an unbounded generator)."""
    walk = _Walk(
        spec,
        network=network,
        seed=seed,
        num_clients=num_clients,
        clients_per_round=clients_per_round,
        compute_seconds=compute_seconds,
    )
    while True:
        yield walk.next()


def _check_budget(budget_seconds: float | None, budget_bytes: int | None) -> None:
    if (budget_seconds is None) == (budget_bytes is None):
        raise ValueError("give exactly one of budget_seconds and budget_bytes.")
    amount = budget_seconds if budget_seconds is not None else budget_bytes
    if amount is None or not math.isfinite(amount) or amount <= 0:
        raise ValueError(f"a budget must be positive, but got {amount!r}.")


class RoundSpend(Protocol):
    """What a budget counts of a round: its seconds and its bytes (all clients, both ways)."""

    @property
    def seconds(self) -> float: ...

    @property
    def bytes_total(self) -> int: ...


Spent = TypeVar("Spent", bound=RoundSpend)


def rounds_within_budget(
    prices: Iterable[Spent],
    *,
    budget_seconds: float | None,
    budget_bytes: int | None,
    max_rounds: int | None = None,
) -> list[Spent]:
    """The longest prefix of ``prices`` whose cumulative seconds (or bytes: all sampled clients,
    both directions) stay within the budget, at most ``max_rounds`` rounds.

    Seconds are compared with a relative tolerance of ``BUDGET_RTOL`` (so 50 dense rounds buy
    exactly 50 of them despite float sums); bytes exactly.
    """
    _check_budget(budget_seconds, budget_bytes)
    if max_rounds is not None and max_rounds < 0:
        raise ValueError(f"max_rounds must be >= 0, but got {max_rounds}.")
    out: list[Spent] = []
    cum_s = 0.0
    cum_b = 0
    limit_s = None if budget_seconds is None else budget_seconds * (1 + BUDGET_RTOL)
    for price in prices:
        if max_rounds is not None and len(out) >= max_rounds:
            break
        if limit_s is not None:
            if cum_s + price.seconds > limit_s:
                break
            cum_s += price.seconds
        else:
            assert budget_bytes is not None
            if cum_b + price.bytes_total > budget_bytes:
                break
            cum_b += price.bytes_total
        out.append(price)
    return out


@dataclass(frozen=True, kw_only=True)
class Afforded:
    """What a budget buys one method: rounds, totals, and per-round means over those rounds."""

    rounds: int
    total_bytes: int  # all sampled clients, both directions
    total_seconds: float
    mean_bytes_down: float  # per client per round
    mean_bytes_up: float
    mean_seconds: float  # per round
    mean_density: float  # mean k / n of the downloads (mask methods: the mask density)


def afford(
    spec: MethodSpec,
    *,
    network: NetworkProfile,
    seed: int,
    num_clients: int,
    clients_per_round: int,
    compute_seconds: float = 0.0,
    budget_seconds: float | None,
    budget_bytes: int | None,
    max_rounds: int | None = None,
) -> Afforded:
    """Rounds a budget buys: the seeded schedule walked while its cost changes by round, then a
    closed form for the steady rounds (floor(budget left / steady cost)).

    Exact for bytes. Seconds are exact without a bandwidth spread; with one the steady rounds are
    priced by the planner's fleet estimate (the expected slowest of m clients), as FLoSS rows are.
    """
    _check_budget(budget_seconds, budget_bytes)
    walk = _Walk(
        spec,
        network=network,
        seed=seed,
        num_clients=num_clients,
        clients_per_round=clients_per_round,
        compute_seconds=compute_seconds,
    )
    m = min(clients_per_round, num_clients)
    limit_s = None if budget_seconds is None else budget_seconds * (1 + BUDGET_RTOL)
    rounds = 0
    cum_s = 0.0
    cum_b = 0
    sum_down = sum_up = 0
    sum_density = 0.0
    cap = math.inf if max_rounds is None else max_rounds
    while rounds < cap and not walk.steady:
        price = walk.next()
        if limit_s is not None and cum_s + price.seconds > limit_s:
            break
        if budget_bytes is not None and cum_b + price.bytes_total > budget_bytes:
            break
        rounds += 1
        cum_s += price.seconds
        cum_b += price.bytes_total
        sum_down += sum(price.bytes_down)
        sum_up += sum(price.bytes_up)
        sum_density += price.d_down
    else:
        if rounds < cap:  # steady: the same cost every round from here
            b_down, b_up = walk.steady_bytes()
            per_round_bytes = m * (b_down + b_up)
            seconds = fleet_round_seconds(
                bytes_down=b_down,
                bytes_up=b_up,
                network=network,
                clients_per_round=m,
                compute_seconds=compute_seconds,
            )
            if limit_s is not None:
                more = math.floor(max(limit_s - cum_s, 0.0) / seconds)
                # the float division may land one round either side of the walked sum
                while more > 0 and cum_s + more * seconds > limit_s:
                    more -= 1
            else:
                assert budget_bytes is not None
                more = (budget_bytes - cum_b) // per_round_bytes
            more = int(min(more, cap - rounds))
            rounds += more
            cum_s += more * seconds
            cum_b += more * per_round_bytes
            sum_down += more * m * b_down
            sum_up += more * m * b_up
            density = (walk.k if not spec.uniform else walk.k_down) / spec.n
            sum_density += more * density
    per = max(rounds, 1)
    return Afforded(
        rounds=rounds,
        total_bytes=cum_b,
        total_seconds=cum_s,
        mean_bytes_down=sum_down / (per * m),
        mean_bytes_up=sum_up / (per * m),
        mean_seconds=cum_s / per,
        mean_density=sum_density / per,
    )


@dataclass(frozen=True, kw_only=True)
class ReferenceRound:
    """One dense LoRA round at the reference rank: always the dense encoding, fp32 values."""

    n: int
    bytes_per_client: int  # each direction
    bytes_per_round: int  # all sampled clients, both directions
    seconds: float  # the planner's fleet estimate (expected slowest of m)


def dense_reference_round(
    *, n: int, network: NetworkProfile, clients_per_round: int, compute_seconds: float = 0.0
) -> ReferenceRound:
    """The round that ``N-dense-rounds`` counts in, whatever encoding or precision a run forces."""
    b = message_bytes(n, n, encoding="dense", precision="fp32")
    return ReferenceRound(
        n=n,
        bytes_per_client=b,
        bytes_per_round=clients_per_round * 2 * b,
        seconds=fleet_round_seconds(
            bytes_down=b,
            bytes_up=b,
            network=network,
            clients_per_round=clients_per_round,
            compute_seconds=compute_seconds,
        ),
    )
