"""Every method priced round by round, exactly as the trainer sends it (pure Python).

One cost model for all methods (docs/trainer.md, "Baselines in the same harness"; what each
method sends is ``planner.method_spec``):

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
round. What a budget buys of these rounds: ``planner.afford``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from planner.encoding import kept_entries, message_bytes
from planner.method_spec import (
    SRD_METHODS,
    MethodSpec,
    lth_next_density,
    mask_entries,
    topk_message_bytes,
    uniform_densities,
)
from planner.network import NetworkProfile, client_round_seconds
from planner.sampling import cached_draws

__all__ = ["RoundPrice", "ScheduleWalk", "price_rounds", "synchronous_seconds"]


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


class ScheduleWalk:
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
    walk = ScheduleWalk(
        spec,
        network=network,
        seed=seed,
        num_clients=num_clients,
        clients_per_round=clients_per_round,
        compute_seconds=compute_seconds,
    )
    while True:
        yield walk.next()
