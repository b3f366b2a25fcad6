"""One client of a fleet round: the densities its policy gives it (``client_densities``:
``uniform``, ``tiered`` or ``bandwidth``), its messages priced with the encoder the trainer sends
through (``planner.method_spec.topk_message_bytes``), and its seconds on its own link,
t_c = rtt + bytes_down * 8 / down + compute + rtt + bytes_up * 8 / up (``client_seconds``,
``planner.network.round_seconds``); ``client_pricer`` memoises a configuration's prices by link."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from planner.fleet._data import ClientLink, Fleet
from planner.fleet._links import assign_links
from planner.fleet._setup import DEFAULT_GRID, FleetSetup, check_fleet_method, grid_under
from planner.method_spec import MethodSpec, topk_message_bytes, uniform_densities
from planner.network import round_seconds


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

    ups = grid_under(setup.grid, d_up)
    dd = d_down
    if setup.adapt_down:
        downs = grid_under(setup.grid, d_down)
        fitting = [g for g in downs if fits(g, ups[-1])]
        if not fitting:
            return downs[-1], ups[-1]
        dd = fitting[0]
    for du in ups:
        if fits(dd, du):
            return dd, du
    return dd, ups[-1]


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


def client_pricer(spec: MethodSpec, setup: FleetSetup, compute_seconds: float) -> _Pricer:
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
