"""The vectorised fleet estimate against today's per-configuration walk: equal, field for field.

``planner.fleet.estimate_fleet`` (one configuration, its rounds walked one by one) is the
reference; ``planner.fleet_batch.estimate_fleet_many`` must give exactly its numbers on every
fleet, policy pair, seed and budget kind, and ``plan_fleet`` (which uses it) exactly what the
reference gives configuration by configuration.
"""

from __future__ import annotations

import itertools
import math
import statistics
from pathlib import Path

import numpy as np
import pytest

from planner import fleet_batch
from planner.budget import parse_budget
from planner.fleet import (
    Fleet,
    FleetError,
    FleetSetup,
    assign_links,
    default_deadline,
    dense_reference_seconds,
    estimate_fleet,
    fleet_from_csv,
    fleet_round,
    load_fleet,
    price_fleet_rounds,
)
from planner.fleet_batch import (
    ROUND_BLOCK,
    default_deadlines,
    dense_reference_seconds_fast,
    estimate_fleet_many,
    fleet_round_costs,
)
from planner.fleet_plan import plan_fleet
from planner.method_spec import MethodSpec
from planner.network import MBPS
from planner.plan_types import PlanSettings
from planner.profiles import load_model, load_network
from planner.rowstats import fsum_rows, fsum_stdev_rows, stdev_rows

N16 = 156_696  # all-minilm-l6-v2 at rank 16 with its 24-label head
TIERS = {
    "mixed-mobile": (("lte", 0.25, 1 / 64), ("wifi", 1.0, 0.25), ("5g", 1.0, 1.0)),
    "sample-measured": (("lte", 0.25, 1 / 16), ("wifi", 1.0, 0.25), ("5g", 0.5, 0.5)),
}


def _ties_fleet(tmp_path: Path) -> Fleet:
    """Measured clients with repeated links: equal seconds, so the deadline's tie-break by
    client id decides who is kept."""
    rows = ["tier,down_mbps,up_mbps,rtt_ms"]
    rows += ["slow,10,2,80"] * 5 + ["fast,100,40,10"] * 4 + ["slow,12,3,60"] * 3
    path = tmp_path / "ties.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return fleet_from_csv(path.read_text(encoding="utf-8"), path=path)


def _specs(precision_up: str = "fp32") -> list[MethodSpec]:
    specs = [
        MethodSpec(method="floss", n=n, d_down=dd, d_up=du, precision_up=precision_up)
        for n in (N16, 9_000)
        for dd, du in ((1.0, 1.0), (0.25, 1 / 16), (1 / 16, 1 / 64), (0.5, 0.3))
    ]
    return [*specs, MethodSpec(method="dense", n=N16), MethodSpec(method="ffa", n=N16 // 2)]


def _items(
    fleet: Fleet,
    specs: list[MethodSpec],
    deadlines: list[float],
    *,
    tiers: tuple[tuple[str, float, float], ...],
    over_selection: float = 1.3,
) -> list[tuple[MethodSpec, FleetSetup]]:
    items = []
    for spec, deadline in zip(specs, deadlines, strict=True):
        policies = ["uniform"] if spec.method != "floss" else ["uniform", "bandwidth", "tiered"]
        for density_policy in policies:
            for round_policy in ("sync", "deadline"):
                for adapt in (False, True) if density_policy == "bandwidth" else (False,):
                    items.append((spec, FleetSetup(
                        fleet=fleet, round_policy=round_policy, density_policy=density_policy,
                        deadline_seconds=deadline, tier_densities=tiers, adapt_down=adapt,
                        over_selection=over_selection, grid=(1.0, 0.5, 0.25, 1 / 16, 1 / 64),
                    )))  # fmt: skip
    return items


def _same(items: list[tuple[MethodSpec, FleetSetup]], **kw: object) -> None:
    fast = estimate_fleet_many(items, **kw)  # type: ignore[arg-type]
    assert len(fast) == len(items)
    for (spec, setup), got in zip(items, fast, strict=True):
        want = estimate_fleet(spec, setup, **kw)  # type: ignore[arg-type]
        assert got == want, (spec, setup.round_policy, setup.density_policy, setup.adapt_down)


CASES = [  # fleet, clients, seed, clients per round, compute seconds
    ("mixed-mobile", 1000, 0, 10, 0.0),
    ("mixed-mobile", 400, 5, 7, 0.25),
    ("sample-measured", 20, 3, 10, 0.0),  # the deadline samples 13 of 20: many repeats
    ("home-broadband", 300, 11, 10, 0.0),
    ("sample-measured", 8, 1, 10, 0.1),  # fewer clients than m: every round samples all 8
]


@pytest.mark.parametrize(("name", "clients", "seed", "m", "compute"), CASES)
def test_many_equals_the_walk(name: str, clients: int, seed: int, m: int, compute: float) -> None:
    fleet = load_fleet(name)
    specs = _specs()
    deadlines = [default_deadline(s, fleet, seed=seed, num_clients=clients,
                                  compute_seconds=compute) for s in specs]  # fmt: skip
    tiers = TIERS.get(name, tuple((t, 0.5, 0.25) for t in fleet.tier_names))
    items = _items(fleet, specs, deadlines, tiers=tiers)
    kw = {"seed": seed, "num_clients": clients, "clients_per_round": m,
          "compute_seconds": compute, "rounds": 60}  # fmt: skip
    # a budget that runs out inside the walk for some, beyond it for others; then bytes
    _same(items, budget_seconds=20.0, budget_bytes=None, **kw)
    _same(items, budget_seconds=None, budget_bytes=3 * 10**8, max_rounds=40, **kw)


def test_many_equals_the_walk_ties_and_given_deadline(tmp_path: Path) -> None:
    fleet = _ties_fleet(tmp_path)
    specs = _specs(precision_up="fp16")
    tight = [0.9 * default_deadline(s, fleet, seed=2, num_clients=30) for s in specs]
    tiers = (("slow", 0.25, 1 / 16), ("fast", 1.0, 1.0))
    for over in (1.3, 2.0):
        items = _items(fleet, specs, tight, tiers=tiers, over_selection=over)
        _same(items, seed=2, num_clients=30, clients_per_round=6, budget_seconds=1e9,
              budget_bytes=None, max_rounds=25, rounds=40)  # fmt: skip
        _same(items, seed=2, num_clients=30, clients_per_round=6, budget_seconds=None,
              budget_bytes=10**12, rounds=40)  # fmt: skip


def test_many_equals_the_walk_at_500_rounds_in_small_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The planner's own walk (500 rounds), cut into many chunks, one thread or two."""
    fleet = load_fleet("mixed-mobile")
    specs = _specs()[:4]
    deadlines = [default_deadline(s, fleet, seed=0, num_clients=2000) for s in specs]
    items = _items(fleet, specs, deadlines, tiers=TIERS["mixed-mobile"])
    kw = {"seed": 0, "num_clients": 2000, "clients_per_round": 10, "budget_seconds": 300.0,
          "budget_bytes": None}  # fmt: skip
    want = [estimate_fleet(spec, setup, **kw) for spec, setup in items]  # type: ignore[arg-type]
    monkeypatch.setattr(fleet_batch._machine, "CHUNK_ELEMENTS", 20_000)
    for threads in ("1", "2", "3"):
        monkeypatch.setenv(fleet_batch.THREADS_ENV, threads)
        assert fleet_batch.threads() == int(threads)
        assert estimate_fleet_many(items, **kw) == want  # type: ignore[arg-type]
    monkeypatch.setenv(fleet_batch.THREADS_ENV, "two")
    with pytest.raises(FleetError, match="FLOSS_PLAN_THREADS must be an integer, but got 'two'"):
        estimate_fleet_many(items, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "clients", "seed"), [(c[0], c[1], c[2]) for c in CASES])
def test_deadlines_and_reference_round_equal_the_walk(name: str, clients: int, seed: int) -> None:
    fleet = load_fleet(name)
    specs = _specs()
    for over in (1.3, 1.7):
        want = [default_deadline(s, fleet, seed=seed, num_clients=clients, compute_seconds=0.5,
                                 over_selection=over) for s in specs]  # fmt: skip
        assert default_deadlines(specs, fleet, seed=seed, num_clients=clients,
                                 compute_seconds=0.5, over_selection=over) == want  # fmt: skip
    ref = dense_reference_seconds(FleetSetup(fleet=fleet), n=N16, seed=seed, num_clients=clients,
                                  clients_per_round=10, compute_seconds=0.5)  # fmt: skip
    assert dense_reference_seconds_fast(fleet, n=N16, seed=seed, num_clients=clients,
                                        clients_per_round=10, compute_seconds=0.5,
                                        rounds=100) == ref  # fmt: skip


@pytest.mark.parametrize(("name", "clients", "seed", "m", "compute"), CASES)
def test_round_costs_equal_the_walk(
    name: str, clients: int, seed: int, m: int, compute: float
) -> None:
    """What planner.pricing counts a budget with: every round's seconds and bytes_total, across
    the block boundary, from round 1 or any later one."""
    fleet = load_fleet(name)
    spec = MethodSpec(
        method="floss", n=N16, d_down=0.25, d_up=1 / 16, tensor_sizes=(N16 - 999, 999)
    )
    deadline = default_deadline(spec, fleet, seed=seed, num_clients=clients)
    tiers = TIERS.get(name, tuple((t, 0.5, 0.25) for t in fleet.tier_names))
    for spec_, setup in _items(fleet, [spec, MethodSpec(method="dense", n=N16)], [deadline] * 2,
                               tiers=tiers, over_selection=1.5):  # fmt: skip
        kw = {"seed": seed, "num_clients": clients, "clients_per_round": m,
              "compute_seconds": compute}  # fmt: skip
        walk = list(itertools.islice(price_fleet_rounds(spec_, setup, **kw), ROUND_BLOCK + 5))  # type: ignore[arg-type]
        fast = list(itertools.islice(fleet_round_costs(spec_, setup, **kw), ROUND_BLOCK + 5))  # type: ignore[arg-type]
        assert [(c.round, c.seconds, c.bytes_total) for c in fast] == [
            (p.round, p.seconds, p.bytes_total) for p in walk
        ]
        later = next(fleet_round_costs(spec_, setup, first=300, **kw))  # type: ignore[arg-type]
        assert (later.seconds, later.bytes_total) == (lambda p: (p.seconds, p.bytes_total))(
            fleet_round(spec_, setup, round_=300, **kw)  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("n", [10, 5000, 20_000])
def test_kth_smallest_is_partition(n: int) -> None:
    rng = np.random.default_rng(n)
    values = np.concatenate(
        [
            rng.lognormal(0, 1, (5, n)),
            np.round(rng.lognormal(0, 1, (3, n)), 1),  # many ties
            np.full((2, n), 0.5),
            np.sort(rng.random((2, n)), axis=1),  # sorted: a strided sample is not random
        ]
    )
    for k in (0, n // 3, (10 * n) // 13, n - 1):
        assert (fleet_batch.kth_smallest(values, k) == np.partition(values, k, axis=1)[:, k]).all()


def test_keep_freed_memory_on_glibc() -> None:
    """floss-plan --fleet asks glibc to reuse freed arrays; elsewhere it says it could not."""
    import ctypes.util

    name = ctypes.util.find_library("c") or ""
    assert fleet_batch.keep_freed_memory() is ("libc.so" in name)


@pytest.mark.parametrize(("name", "clients", "seed"), [(c[0], c[1], c[2]) for c in CASES])
def test_link_arrays_are_assign_links(name: str, clients: int, seed: int) -> None:
    """The planner's arrays come from assign_links's own draws (link_draws), number for number."""
    fleet = load_fleet(name)
    links = assign_links(fleet, clients, seed)
    got = fleet_batch.link_arrays(fleet, clients, seed)
    tiers = {t: i for i, t in enumerate(fleet.tier_names)}
    assert got.down_bps.tolist() == [lk.down_mbps * MBPS for lk in links]
    assert got.up_bps.tolist() == [lk.up_mbps * MBPS for lk in links]
    assert got.rtt_s.tolist() == [lk.rtt_ms / 1000.0 for lk in links]
    assert got.tier.tolist() == [tiers[lk.tier] for lk in links]


def _settings(**kw: object) -> PlanSettings:
    base = {"model": load_model("all-minilm-l6-v2"), "network": load_network("thesis"),
            "budget": parse_budget("50-dense-rounds"), "ranks": (4, 16),
            "d_down": (1.0, 0.25), "d_up": (0.25, 1 / 16), "num_labels": 24,
            "num_clients": 500, "seed": 4, "methods": ("floss", "dense")}  # fmt: skip
    return PlanSettings(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("deadline", [None, 1.5])
def test_plan_fleet_equals_the_walk_configuration_by_configuration(deadline: float | None) -> None:
    fleet = load_fleet("mixed-mobile")
    settings = _settings()
    plan = plan_fleet(settings, fleet=fleet, deadline_seconds=deadline, rounds=80)
    ref = dense_reference_seconds(FleetSetup(fleet=fleet), n=N16, seed=4, num_clients=500,
                                  clients_per_round=10)  # fmt: skip
    assert plan.dense_reference_seconds == ref and plan.budget_seconds == 50 * ref
    assert len(plan.rows) == (2 * 4 + 2) * 4 + 2 * 2  # + (1, 1) and (1/16, 1/64) at rank 16
    ffa = plan_fleet(_settings(methods=("floss", "dense", "ffa")), fleet=fleet, rounds=80)
    picked = [r for r in ffa.rows if r.estimate.method == "ffa" and r.recommended]
    assert [(r.rank, r.estimate.round_policy) for r in picked] == [(16, "sync"), (16, "deadline")]
    assert all(r.why.startswith("ffa: its largest setting with >= ") for r in picked)
    for row in plan.rows:
        e = row.estimate
        spec = MethodSpec(method=e.method, n=e.n, d_down=e.d_down, d_up=e.d_up)
        d = deadline or default_deadline(spec, fleet, seed=4, num_clients=500)
        setup = FleetSetup(fleet=fleet, round_policy=e.round_policy,
                           density_policy=e.density_policy, deadline_seconds=d)  # fmt: skip
        assert e == estimate_fleet(spec, setup, seed=4, num_clients=500, clients_per_round=10,
                                   budget_seconds=50 * ref, budget_bytes=None,
                                   rounds=80)  # fmt: skip


# ---------------------------------------------------------------------------- rowstats

ROWS = [
    np.random.default_rng(1).lognormal(0, 1, (50, 500)),
    np.random.default_rng(2).uniform(0.5, 0.5000001, (20, 300)),
    np.full((3, 40), 0.3),  # equal: stdev exactly 0
    np.array([[1.0] * 6 + [math.nextafter(1.0, 2.0)]] * 2),  # one ulp apart: Python decides
    np.random.default_rng(3).choice([0.1, 0.2, 0.30000000000000004], (30, 100)),
    np.round(np.random.default_rng(4).lognormal(0, 2, (30, 77)), 3),
    np.array([[1e-300, 1e300, 3.0], [0.0, 0.0, 5e-324]]),
]


@pytest.mark.parametrize("x", ROWS, ids=range(len(ROWS)))
def test_rowstats_equal_fsum_and_stdev(x: np.ndarray) -> None:
    rows = x.tolist()
    assert fsum_rows(x).tolist() == [math.fsum(r) for r in rows]
    assert stdev_rows(x).tolist() == [statistics.stdev(r) for r in rows]
    total, sdev = fsum_stdev_rows(x)
    assert total.tolist() == [math.fsum(r) for r in rows]
    assert sdev.tolist() == [statistics.stdev(r) for r in rows]


def test_rowstats_every_width_carries_its_odd_rows() -> None:
    """The pairwise sum halves the values level by level, an odd one out carried: every width
    from 1 to 70 (odd at different levels) still gives fsum's and stdev's floats."""
    for n in range(1, 71):
        x = np.random.default_rng(n).lognormal(0, 2, (4, n))
        rows = x.tolist()
        assert fsum_rows(x).tolist() == [math.fsum(r) for r in rows], n
        if n > 1:
            assert stdev_rows(x).tolist() == [statistics.stdev(r) for r in rows], n


def test_rowstats_refuse_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"2-D array \(of >= 2 columns for stdev\)"):
        stdev_rows(np.ones((3, 1)))
    with pytest.raises(ValueError, match="2-D array"):
        fsum_rows(np.ones(3))
