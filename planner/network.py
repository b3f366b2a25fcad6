"""Network profiles and round time (pure functions; Mbps = 10**6 bit/s, bytes are bytes).

Round time of a synchronous round (DESIGN.md), every sampled client in parallel:

    rtt + bytes_down * 8 / downlink + compute + rtt + bytes_up * 8 / uplink

Each of the two transfers pays one round-trip latency (request, then first byte). When clients
differ (``spread_sigma`` > 0: per-client bandwidth is lognormal around the profile's median), the
slowest sampled client sets the pace.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from statistics import NormalDist

from planner.limits import check

BITS_PER_BYTE = 8
MBPS = 1e6  # bits per second in one Mbps (decimal, as links are sold)


@dataclass(frozen=True, kw_only=True)
class NetworkProfile:
    """One client's access link, or the median of a fleet when ``spread_sigma`` > 0."""

    name: str = field(metadata={"help": "profile name"})
    down_mbps: float = field(metadata={"help": "downlink (server -> client), 10^6 bit/s"})
    up_mbps: float = field(metadata={"help": "uplink (client -> server), 10^6 bit/s"})
    rtt_ms: float = field(default=0.0, metadata={"help": "round-trip latency, milliseconds"})
    spread_sigma: float = field(
        default=0.0,
        metadata={"help": "sigma of ln(bandwidth) across clients; 0 = identical clients"},
    )
    source: str = field(default="", metadata={"help": "where the numbers come from"})
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"network profile name must be a non-empty string, got {self.name!r}.")
        for key in ("down_mbps", "up_mbps", "rtt_ms", "spread_sigma"):
            object.__setattr__(self, key, check(getattr(self, key), key))

    @property
    def up_slowdown(self) -> float:
        """S = downlink / uplink."""
        return self.down_mbps / self.up_mbps

    def with_links(
        self,
        *,
        down_mbps: float | None = None,
        up_mbps: float | None = None,
        up_slowdown: float | None = None,
        rtt_ms: float | None = None,
    ) -> NetworkProfile:
        """Override links: explicit values win; ``up_slowdown`` sets uplink = downlink / S."""
        down = self.down_mbps if down_mbps is None else check(down_mbps, "down_mbps", name="--down")
        if up_slowdown is not None:
            if up_mbps is not None:
                raise ValueError("give either --up or --up-slowdown, not both.")
            slowdown = check(up_slowdown, "up_slowdown", name="--up-slowdown")
            up = check(down / slowdown, "up_mbps", name=f"--up-slowdown {slowdown:g}: the uplink")
        else:
            up = self.up_mbps if up_mbps is None else check(up_mbps, "up_mbps", name="--up")
        changed = (down_mbps, up_mbps, up_slowdown, rtt_ms) != (None, None, None, None)
        return NetworkProfile(
            name=f"{self.name} (overridden)" if changed else self.name,
            down_mbps=down,
            up_mbps=up,
            rtt_ms=self.rtt_ms if rtt_ms is None else check(rtt_ms, "rtt_ms", name="--rtt-ms"),
            spread_sigma=self.spread_sigma,
            source=self.source,
            description=self.description,
        )


def transfer_seconds(nbytes: int, mbps: float) -> float:
    """Seconds to move ``nbytes`` over a link of ``mbps`` (10**6 bit/s)."""
    return nbytes * BITS_PER_BYTE / (mbps * MBPS)


def round_seconds(
    *,
    bytes_down: int,
    bytes_up: int,
    down_mbps: float,
    up_mbps: float,
    rtt_ms: float = 0.0,
    compute_seconds: float = 0.0,
) -> float:
    """One client's synchronous round: rtt + down + compute + rtt + up, in seconds."""
    rtt = rtt_ms / 1000.0
    return (
        rtt
        + transfer_seconds(bytes_down, down_mbps)
        + compute_seconds
        + rtt
        + transfer_seconds(bytes_up, up_mbps)
    )


def slowest_client_factor(spread_sigma: float, clients_per_round: int) -> float:
    """Bandwidth multiplier of the expected slowest of m lognormal clients.

    Uses Blom's approximation of the expected smallest of m normal draws,
    z = Phi^-1((1 - 0.375) / (m + 0.25)), so the factor is exp(sigma * z) <= 1.
    """
    if clients_per_round < 1:
        raise ValueError(f"clients per round must be at least 1, but got {clients_per_round}.")
    if spread_sigma == 0 or clients_per_round == 1:
        return 1.0  # no spread, or the single client is the median one
    z = NormalDist().inv_cdf((1 - 0.375) / (clients_per_round + 0.25))
    return math.exp(spread_sigma * z)


def client_bandwidth_factors(
    network: NetworkProfile, clients_per_round: int, rng: random.Random
) -> list[float]:
    """Per-client bandwidth multipliers for one simulated round (all 1.0 without spread)."""
    if network.spread_sigma == 0:
        return [1.0] * clients_per_round
    return [math.exp(rng.gauss(0.0, network.spread_sigma)) for _ in range(clients_per_round)]


def client_round_seconds(
    *,
    bytes_down: int,
    bytes_up: int,
    network: NetworkProfile,
    bandwidth_factor: float = 1.0,
    compute_seconds: float = 0.0,
) -> float:
    """One client's round on ``network`` with both links scaled by ``bandwidth_factor``."""
    return round_seconds(
        bytes_down=bytes_down,
        bytes_up=bytes_up,
        down_mbps=network.down_mbps * bandwidth_factor,
        up_mbps=network.up_mbps * bandwidth_factor,
        rtt_ms=network.rtt_ms,
        compute_seconds=compute_seconds,
    )


def fleet_round_seconds(
    *,
    bytes_down: int,
    bytes_up: int,
    network: NetworkProfile,
    clients_per_round: int,
    compute_seconds: float = 0.0,
) -> float:
    """Planner's round time: the expected slowest sampled client sets the pace."""
    return client_round_seconds(
        bytes_down=bytes_down,
        bytes_up=bytes_up,
        network=network,
        bandwidth_factor=slowest_client_factor(network.spread_sigma, clients_per_round),
        compute_seconds=compute_seconds,
    )
