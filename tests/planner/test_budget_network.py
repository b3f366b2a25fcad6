"""Budget strings, transfer and round times, against hand-computed values."""

from __future__ import annotations

import random

import pytest

from planner.budget import BudgetError, parse_budget, rounds_affordable
from planner.network import (
    NetworkProfile,
    client_bandwidth_factors,
    fleet_round_seconds,
    round_seconds,
    slowest_client_factor,
    transfer_seconds,
)


@pytest.mark.parametrize(
    ("text", "kind", "amount"),
    [
        ("50-dense-rounds", "dense-rounds", 50.0),
        ("2.5 dense rounds", "dense-rounds", 2.5),
        ("1-dense-round", "dense-rounds", 1.0),
        ("90m", "seconds", 5400.0),
        ("90min", "seconds", 5400.0),
        ("6h", "seconds", 21600.0),
        ("3600s", "seconds", 3600.0),
        ("2d", "seconds", 172800.0),
        ("1.5h", "seconds", 5400.0),
        ("500MB", "bytes", 500_000_000),
        ("2GB", "bytes", 2_000_000_000),
        ("10kB", "bytes", 10_000),
        ("1.5GiB", "bytes", 1_610_612_736),
        ("3MiB", "bytes", 3 * 2**20),
        ("1TB", "bytes", 10**12),
        ("123B", "bytes", 123),
    ],
)
def test_parse_budget(text: str, kind: str, amount: float) -> None:
    b = parse_budget(text)
    assert (b.kind, b.amount) == (kind, amount)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("50", "cannot read budget '50'"),
        ("-3h", "cannot read budget '-3h'"),
        ("0GB", "positive"),
        ("10 parsecs", "unknown budget unit 'parsecs'"),
        ("5Mb", "in bits"),
        ("5Mbit", "in bits"),
        ("abc-dense-rounds", "cannot read budget"),
        ("", "cannot read budget ''"),
    ],
)
def test_bad_budget(text: str, match: str) -> None:
    with pytest.raises(BudgetError, match=match):
        parse_budget(text)


def test_rounds_affordable_is_exact_at_integers() -> None:
    t = 0.1 + 0.2  # a round time that is not exact in binary
    assert rounds_affordable(budget_amount=50 * t, cost_per_round=t) == 50
    assert rounds_affordable(budget_amount=10, cost_per_round=3) == 3


@pytest.mark.parametrize(
    ("nbytes", "mbps", "seconds"),
    [
        (1_000_000, 8.0, 1.0),
        (589_824, 200.0, 0.02359296),
        (589_824, 12.5, 0.37748736),
        (0, 1.0, 0.0),
    ],
)
def test_transfer_seconds(nbytes: int, mbps: float, seconds: float) -> None:
    assert transfer_seconds(nbytes, mbps) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(
    ("down", "up", "mbps_down", "mbps_up", "rtt", "compute", "expected"),
    [
        # thesis setting, dense n=1000 fp32: 32 kbit / 200 Mbps + 32 kbit / 20 Mbps
        (4000, 4000, 200.0, 20.0, 0.0, 0.0, 0.00016 + 0.0016),
        # + 50 ms RTT on each transfer + 2 s compute
        (4000, 4000, 200.0, 20.0, 50.0, 2.0, 0.1 + 2.0 + 0.00016 + 0.0016),
        # MiniLM r=16 dense, S = 16: 0.02359296 + 0.37748736
        (589_824, 589_824, 200.0, 12.5, 0.0, 0.0, 0.40108032),
    ],
)
def test_round_seconds(
    down: int,
    up: int,
    mbps_down: float,
    mbps_up: float,
    rtt: float,
    compute: float,
    expected: float,
) -> None:
    got = round_seconds(
        bytes_down=down,
        bytes_up=up,
        down_mbps=mbps_down,
        up_mbps=mbps_up,
        rtt_ms=rtt,
        compute_seconds=compute,
    )
    assert got == pytest.approx(expected, rel=1e-12)


def test_slowest_client_sets_the_pace() -> None:
    assert slowest_client_factor(0.0, 10) == 1.0
    assert slowest_client_factor(0.5, 1) == 1.0
    f10, f100 = slowest_client_factor(0.5, 10), slowest_client_factor(0.5, 100)
    assert 0 < f100 < f10 < 1
    net = NetworkProfile(name="x", down_mbps=100, up_mbps=10, spread_sigma=0.5)
    flat = NetworkProfile(name="y", down_mbps=100, up_mbps=10)
    slow = fleet_round_seconds(bytes_down=10**6, bytes_up=10**6, network=net, clients_per_round=10)
    fast = fleet_round_seconds(bytes_down=10**6, bytes_up=10**6, network=flat, clients_per_round=10)
    assert slow == pytest.approx(fast / f10)
    draws = client_bandwidth_factors(net, 5, random.Random(0))
    assert len(draws) == 5 and len(set(draws)) == 5
    assert client_bandwidth_factors(flat, 3, random.Random(0)) == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"down_mbps": 0, "up_mbps": 1}, "down_mbps: 0 is out of range"),
        ({"down_mbps": 1, "up_mbps": -2}, "up_mbps: -2 is out of range"),
        ({"down_mbps": 1, "up_mbps": 1, "rtt_ms": -1}, "rtt_ms: -1 is out of range"),
        ({"down_mbps": "fast", "up_mbps": 1}, "down_mbps: 'fast' is not a number"),
    ],
)
def test_bad_network(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NetworkProfile(name="bad", **kwargs)  # type: ignore[arg-type]


def test_up_slowdown_override() -> None:
    net = NetworkProfile(name="t", down_mbps=200, up_mbps=20).with_links(up_slowdown=16)
    assert net.up_mbps == 12.5 and net.up_slowdown == 16
    with pytest.raises(ValueError, match="either --up or --up-slowdown"):
        net.with_links(up_mbps=5, up_slowdown=4)
    with pytest.raises(ValueError, match="--up-slowdown: 0 is out of range"):
        net.with_links(up_slowdown=0)
