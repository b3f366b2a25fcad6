"""planner.fleet: fleet files, links drawn once, policies, and fleet rounds priced by hand."""

from __future__ import annotations

import math
from itertools import islice
from pathlib import Path

import pytest

from planner.afford import dense_reference_round
from planner.encoding import resolve_encoding
from planner.fleet import (
    DEFAULT_GRID,
    ClientLink,
    Fleet,
    FleetError,
    FleetSetup,
    Tier,
    assign_links,
    check_deadline_reachable,
    check_fleet_method,
    client_densities,
    client_seconds,
    dense_reference_seconds,
    fleet_round,
    format_tier_densities,
    load_fleet,
    parse_grid,
    parse_tier_densities,
    price_fleet_rounds,
    settle_round,
)
from planner.method_spec import MethodSpec
from planner.network import NetworkProfile
from planner.sampling import round_draws, sample_clients
from planner.schedule import price_rounds

ONE = Fleet(
    name="one", tiers=(Tier(name="x", weight=1.0, down_mbps=100.0, up_mbps=10.0, rtt_ms=20.0),)
)
NET = NetworkProfile(name="x", down_mbps=100.0, up_mbps=10.0, rtt_ms=20.0)
TWO = Fleet(
    name="two",
    tiers=(
        Tier(name="slow", weight=0.5, down_mbps=2.0, up_mbps=0.25),
        Tier(name="fast", weight=0.5, down_mbps=1000.0, up_mbps=100.0),
    ),
)


# ---------------------------------------------------------------------------- files


def test_builtin_fleets() -> None:
    mobile = load_fleet("mixed-mobile")
    assert mobile.tier_names == ("lte", "wifi", "5g")
    assert [t.weight for t in mobile.tiers] == [0.6, 0.3, 0.1]
    assert all(t.source for t in mobile.tiers) and mobile.source
    home = load_fleet("home-broadband")
    assert math.isclose(sum(t.weight for t in home.tiers), 1.0)
    sample = load_fleet("sample-measured")
    assert len(sample.measured) == 20 and sample.tier_names == ("lte", "wifi", "5g")
    assert [t.weight for t in sample.tiers] == [12 / 20, 6 / 20, 2 / 20]
    assert load_fleet(str(Path("profiles/fleets/mixed-mobile.toml").resolve())) == mobile


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


TOML_OK = """
name = "t"
[[tiers]]
name = "a"
weight = 0.5
down_mbps = 10
up_mbps = 1
[[tiers]]
name = "b"
weight = 0.5
down_mbps = 100
up_mbps = 10
rtt_ms = 5
spread_sigma = 0.2
"""


def test_toml_and_csv_files(tmp_path: Path) -> None:
    fleet = load_fleet(_write(tmp_path, "t.toml", TOML_OK))
    assert fleet.tiers[1] == Tier(
        name="b", weight=0.5, down_mbps=100, up_mbps=10, rtt_ms=5, spread_sigma=0.2
    )
    csv_path = _write(tmp_path, "m.csv", "# note\ndown_mbps,up_mbps\n10,1\n20,2\n30,3\n")
    measured = load_fleet(csv_path)
    assert measured.tier_names == ("measured",) and measured.name == "m"
    assert measured.tiers[0].down_mbps == 20 and measured.tiers[0].rtt_ms == 0
    assert measured.measured[2] == ClientLink(tier="measured", down_mbps=30, up_mbps=3, rtt_ms=0)


BAD_FILES = [
    ("missing.csv", "down_mbps,rtt_ms\n10,5\n", "missing the column 'up_mbps'"),
    ("neg.csv", "down_mbps,up_mbps\n10,-1\n", "line 2: up_mbps: -1 is out of range"),
    ("zero.csv", "down_mbps,up_mbps\n0,1\n", "line 2: down_mbps: 0 is out of range"),
    ("nan.csv", "down_mbps,up_mbps\nfast,1\n", "line 2: down_mbps 'fast' is not a number"),
    ("inf.csv", "down_mbps,up_mbps\ninf,1\n", "down_mbps: inf is not finite"),
    ("rtt.csv", "down_mbps,up_mbps,rtt_ms\n1,1,-3\n", "rtt_ms: -3 is out of range"),
    ("empty.csv", "", "no header and no clients (an empty fleet)"),
    ("header.csv", "# x\ndown_mbps,up_mbps\n", "a header but no clients (an empty fleet)"),
    ("dup.csv", "client,down_mbps,up_mbps\na,1,1\na,2,2\n", "line 3: client 'a' is given twice"),
    ("under.csv", "down_mbps,up_mbps\n1_000,1\n", "line 2: down_mbps '1_000' is not a plain number"),
    ("huge.csv", "down_mbps,up_mbps\n1e308,1\n", "line 2: down_mbps: 1e+308 is out of range"),
    ("tiny.csv", "down_mbps,up_mbps\n1,1e-300\n", "line 2: up_mbps: 1e-300 is out of range"),
    ("nan2.csv", "down_mbps,up_mbps\nNaN,1\n", "line 2: down_mbps: nan is not finite"),
    ("big.csv", "down_mbps,up_mbps\n1e400,1\n", "line 2: down_mbps: inf is not finite"),
    ("ragged.csv", "down_mbps,up_mbps\n1\n", "line 2: 1 values for 2 columns"),
    ("weights.toml", TOML_OK.replace("weight = 0.5\ndown_mbps = 100", "weight = 0.4\ndown_mbps = 100"),
     "tier weights must sum to 1, but they sum to 0.9"),
    ("empty.toml", 'name = "e"\n', "needs a non-empty [[tiers]] list (an empty fleet)"),
    ("neg.toml", TOML_OK.replace("down_mbps = 10\n", "down_mbps = -10\n"),
     "tier 'a' down_mbps: -10 is out of range"),
    ("zero.toml", TOML_OK.replace("up_mbps = 1\n", "up_mbps = 0\n"), "tier 'a' up_mbps: 0 is out of range"),
    ("str.toml", TOML_OK.replace("up_mbps = 1\n", 'up_mbps = "1"\n'),
     "tier 'a' up_mbps: '1' is not a number"),
    ("miss.toml", TOML_OK.replace("up_mbps = 1\n", ""), "tier 1 is missing up_mbps"),
    ("key.toml", TOML_OK.replace("up_mbps = 1\n", "up_mbps = 1\nupload = 2\n"),
     "tier 1: unknown key 'upload'"),
    ("twice.toml", TOML_OK.replace('name = "b"', 'name = "a"'), "tier 'a' is given twice"),
    ("syntax.toml", "tiers = [", "cannot parse profile file"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "message"), BAD_FILES)
def test_bad_fleet_files_one_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(FleetError) as info:
        load_fleet(path)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert name in str(info.value)


def test_unknown_fleet_names() -> None:
    with pytest.raises(FleetError, match=r"unknown fleet profile 'mars'; known: .*mixed-mobile"):
        load_fleet("mars")
    with pytest.raises(FleetError, match="does not exist"):
        load_fleet("nowhere/f.csv")


# ---------------------------------------------------------------------------- links


def test_links_drawn_once_by_share_and_cached() -> None:
    mobile = load_fleet("mixed-mobile")
    links = assign_links(mobile, 10, 3)
    assert assign_links(mobile, 10, 3) is links  # cached: the same tuple every round
    assert sorted(link.tier for link in links).count("lte") == 6
    assert [link.tier for link in links].count("5g") == 1
    many = assign_links(mobile, 10_000, 0)
    assert [link.tier for link in many].count("wifi") == 3000
    lte = sorted(link.up_mbps for link in many if link.tier == "lte")
    assert lte[len(lte) // 2] == pytest.approx(8.0, rel=0.05)  # the tier's median
    assert all(link.down_mbps / link.up_mbps == pytest.approx(30 / 8) for link in many
               if link.tier == "lte")  # fmt: skip
    assert assign_links(mobile, 10, 4) != links


def test_measured_links_in_passes() -> None:
    sample = load_fleet("sample-measured")
    links = assign_links(sample, 20, 0)
    assert sorted(links, key=repr) == sorted(sample.measured, key=repr)  # each row once
    forty = assign_links(sample, 45, 0)
    assert all(2 <= forty.count(row) <= 3 for row in sample.measured)


def test_assign_links_rejects_a_bad_population() -> None:
    with pytest.raises(FleetError, match="num_clients must be an integer >= 1"):
        assign_links(ONE, 0, 0)


# ---------------------------------------------------------------------------- settings


def test_parse_tier_densities_and_grid() -> None:
    parsed = parse_tier_densities("lte=1/4:1/16, wifi=1:0.25,5g=1:1")
    assert parsed == (("lte", 0.25, 0.0625), ("wifi", 1.0, 0.25), ("5g", 1.0, 1.0))
    assert format_tier_densities(parsed) == "lte=1/4:1/16,wifi=1:1/4,5g=1:1"
    assert parse_grid("1/4,1,1/2,1/4") == (1.0, 0.5, 0.25)
    assert tuple(1 / 2**i for i in range(9)) == DEFAULT_GRID


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lte", "'lte' is not tier=d_down:d_up"),
        ("lte=1/4", "'lte=1/4' is not tier=d_down:d_up"),
        ("lte=1/4:2", "tier densities lte: density must be in (0, 1], but got '2'"),
        ("lte=x:1", "'x' is not a density"),
        ("lte=1:1,lte=1:1", "tier 'lte' is given twice"),
        ("", "must look like"),
        ("lte=1:1,", "must look like"),
    ],
)
def test_parse_tier_densities_errors(text: str, message: str) -> None:
    with pytest.raises(FleetError) as info:
        parse_tier_densities(text)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "comma list"), ("1,0", "(0, 1]"), ("1,1/0", "not a density"), ("2", "(0, 1]")],
)
def test_parse_grid_errors(text: str, message: str) -> None:
    with pytest.raises(FleetError, match=message.replace("(", r"\(").replace("]", r"\]")):
        parse_grid(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"round_policy": "async"}, "round policy must be one of sync, deadline"),
        ({"density_policy": "random"}, "density policy must be one of uniform, tiered, bandwidth"),
        ({"round_policy": "deadline"}, "deadline rounds need a deadline in seconds"),
        ({"density_policy": "bandwidth"}, "bandwidth densities need a deadline in seconds"),
        ({"deadline_seconds": 0.0}, "deadline (seconds): 0 is out of range"),
        ({"deadline_seconds": math.inf}, "deadline (seconds): inf is not finite"),
        ({"over_selection": 0.9}, "over-selection: 0.9 is out of range"),
        ({"over_selection": math.nan}, "over-selection: nan is not finite"),
        ({"density_policy": "tiered", "tier_densities": (("slow", 1.0, 0.5),)},
         "no density for tier 'fast'"),
        ({"tier_densities": (("mid", 1.0, 0.5),)}, "name tier 'mid', which fleet 'two' lacks"),
        ({"tier_densities": (("slow", 1.0, 0.0),)}, "density must be in (0, 1]"),
        ({"grid": ()}, "the density grid is empty"),
        ({"grid": (1.0, 1.5)}, "density grid values must be in (0, 1], but got 1.5"),
    ],
)  # fmt: skip
def test_fleet_setup_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(FleetError) as info:
        FleetSetup(fleet=TWO, **kwargs)  # type: ignore[arg-type]
    assert message in str(info.value) and "\n" not in str(info.value)


def test_sampled_per_round() -> None:
    sync = FleetSetup(fleet=TWO)
    deadline = FleetSetup(fleet=TWO, round_policy="deadline", deadline_seconds=1.0)
    assert sync.sampled_per_round(10, 100) == 10
    assert deadline.sampled_per_round(10, 100) == 13  # 10 * 1.3 is 13.000000000000002
    assert deadline.sampled_per_round(10, 11) == 11
    assert FleetSetup(fleet=TWO, round_policy="deadline", deadline_seconds=1.0,
                      over_selection=1.25).sampled_per_round(10, 100) == 13  # fmt: skip


def test_check_fleet_method() -> None:
    check_fleet_method("floss", "bandwidth")
    check_fleet_method("ffa", "uniform")
    with pytest.raises(
        FleetError, match="fleets support floss, dense and ffa; sparseadapter keeps"
    ):
        check_fleet_method("sparseadapter", "uniform")
    with pytest.raises(FleetError, match="tiered needs per-client densities, which only floss"):
        check_fleet_method("dense", "tiered")
    with pytest.raises(ValueError, match="method must be one of"):
        check_fleet_method("fedavg", "uniform")


# ---------------------------------------------------------------------------- one client


def test_client_seconds_by_hand() -> None:
    link = ClientLink(tier="x", down_mbps=8.0, up_mbps=1.0, rtt_ms=100.0)
    # 0.1 + 1e6*8/8e6 + 2 + 0.1 + 1e5*8/1e6 = 0.1 + 1 + 2 + 0.1 + 0.8
    assert client_seconds(link, bytes_down=10**6, bytes_up=10**5, compute_seconds=2.0) == (
        pytest.approx(4.0)
    )


def _linear(density: float) -> int:
    return round(density * 1_000_000)  # 1 MB at density 1


def test_bandwidth_densities_by_hand() -> None:
    # 1 Mbps up, 8 Mbps down, no rtt: download at 1/4 is 0.25 s; upload 1 MB*d*8/1e6 = 8d s
    link = ClientLink(tier="x", down_mbps=8.0, up_mbps=1.0)
    setup = FleetSetup(fleet=ONE, density_policy="bandwidth", deadline_seconds=1.3)
    got = client_densities(
        setup, link, d_down=0.25, d_up=1.0, bytes_down=_linear, bytes_up=_linear,
        compute_seconds=0.0,
    )  # fmt: skip
    assert got == (0.25, 0.125)  # 0.25 + 8/8 = 1.25 <= 1.3; 1/4 would take 2.25
    capped = client_densities(
        setup, link, d_down=0.25, d_up=1 / 16, bytes_down=_linear, bytes_up=_linear,
        compute_seconds=0.0,
    )  # fmt: skip
    assert capped == (0.25, 1 / 16)  # the config's d_up is the cap
    tight = FleetSetup(fleet=ONE, density_policy="bandwidth", deadline_seconds=0.2)
    late = client_densities(
        tight, link, d_down=0.25, d_up=1.0, bytes_down=_linear, bytes_up=_linear,
        compute_seconds=0.0,
    )  # fmt: skip
    assert late == (0.25, 1 / 256)  # nothing fits: the smallest, late
    adapt = FleetSetup(fleet=ONE, density_policy="bandwidth", deadline_seconds=0.2, adapt_down=True)
    both = client_densities(
        adapt, link, d_down=1.0, d_up=1.0, bytes_down=_linear, bytes_up=_linear,
        compute_seconds=0.0,
    )  # fmt: skip
    # d_down 1/8: 0.125 s + 1/256 up (0.03125 s) fits; 1/4 (0.25 s) does not; then d_up 1/128
    assert both == (0.125, 1 / 128)
    hopeless = client_densities(
        adapt, link, d_down=1.0, d_up=1.0, bytes_down=_linear, bytes_up=_linear,
        compute_seconds=5.0,
    )  # fmt: skip
    assert hopeless == (1 / 256, 1 / 256)


def test_tiered_and_uniform_densities() -> None:
    tiered = FleetSetup(
        fleet=TWO, density_policy="tiered", tier_densities=(("slow", 0.25, 1 / 64), ("fast", 1, 1))
    )
    slow = ClientLink(tier="slow", down_mbps=10.0, up_mbps=1.0)
    kw = {"bytes_down": _linear, "bytes_up": _linear, "compute_seconds": 0.0}
    assert client_densities(tiered, slow, d_down=1.0, d_up=0.5, **kw) == (0.25, 1 / 64)  # type: ignore[arg-type]
    assert client_densities(FleetSetup(fleet=TWO), slow, d_down=1.0, d_up=0.5, **kw) == (1.0, 0.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- settling


def test_settle_sync() -> None:
    got = settle_round([4, 1, 7], [3.0, 1.0, 2.0], clients_per_round=3, setup=FleetSetup(fleet=ONE))
    assert got.kept == (1, 4, 7) and got.seconds == 3.0


@pytest.mark.parametrize(
    ("seconds", "m", "kept", "finish"),
    [
        ([1.0, 5.0, 2.0, 3.0], 2, (1, 3), 2.0),  # 2 arrive by D=4: the 2nd arrival's time
        ([2.0, 5.0, 2.0, 2.0], 2, (1, 3), 2.0),  # ties by client id: 1 and 3 before 4
        ([1.0, 5.0, 6.0, 7.0], 2, (1,), 4.0),  # fewer than m by D: the round lasts D
        ([1.0, 2.0, 3.0, 3.5], 5, (1, 2, 3, 4), 3.5),  # all arrived, fewer than m: max t_c
        ([5.0, 6.0, 7.0, 8.0], 2, (), 4.0),  # nobody: no step, D seconds
        ([1.0, 2.0, 4.0, 9.0], 3, (1, 2, 3), 4.0),  # t_c == D arrives
    ],
)
def test_settle_deadline(
    seconds: list[float], m: int, kept: tuple[int, ...], finish: float
) -> None:
    setup = FleetSetup(fleet=ONE, round_policy="deadline", deadline_seconds=4.0)
    got = settle_round([1, 2, 3, 4], seconds, clients_per_round=m, setup=setup)
    assert (got.kept, got.seconds) == (kept, finish)


# ---------------------------------------------------------------------------- rounds


@pytest.mark.parametrize(
    "spec",
    [
        MethodSpec(method="floss", n=156_696, d_down=0.25, d_up=1 / 16),
        MethodSpec(method="floss", n=10_001, d_down=1 / 3, d_up=0.1, precision_up="q4"),
        MethodSpec(method="dense", n=50_000),
        MethodSpec(method="ffa", n=7_000, precision="bf16"),
        MethodSpec(method="floss", n=1000, d_down=0.5, d_up=0.05, tensor_sizes=(600, 400)),
    ],
)
@pytest.mark.parametrize("seed", [0, 7])
def test_one_flat_tier_prices_like_price_rounds(spec: MethodSpec, seed: int) -> None:
    """sync + uniform on a one-tier zero-spread fleet is today's run on the equivalent network."""
    kw = {"seed": seed, "num_clients": 30, "clients_per_round": 4, "compute_seconds": 0.5}
    old = list(islice(price_rounds(spec, network=NET, **kw), 12))  # type: ignore[arg-type]
    new = list(islice(price_fleet_rounds(spec, FleetSetup(fleet=ONE), **kw), 12))  # type: ignore[arg-type]
    for a, b in zip(old, new, strict=True):
        assert (a.round, a.clients, a.bytes_down, a.bytes_up, a.d_down, a.d_up, a.seconds,
                a.bytes_total) == (b.round, b.clients, b.bytes_down, b.bytes_up, b.d_down,
                                   b.d_up, b.seconds, b.bytes_total)  # fmt: skip
        assert b.kept == b.clients and len(b.client_seconds) == len(b.clients)
        assert a.kept is None and a.client_seconds == []  # old rounds: the defaults


def test_fleet_sampling_is_the_trainers() -> None:
    for r in (1, 2, 9):
        sampled, _ = round_draws(seed=5, round_=r, num_clients=50, clients_per_round=6, network=NET)
        assert list(sample_clients(5, r, 50, 6)) == sampled


def test_deadline_round_drops_straggler_uploads_counts_downloads() -> None:
    spec = MethodSpec(method="floss", n=100_000, d_down=0.25, d_up=1 / 16)
    setup = FleetSetup(fleet=TWO, round_policy="deadline", deadline_seconds=0.5)
    kw = {"seed": 1, "num_clients": 40, "clients_per_round": 4, "compute_seconds": 0.0}
    links = assign_links(TWO, 40, 1)
    b_down = resolve_encoding(100_000, 25_000, encoding="auto", precision="fp32")[1]
    b_up = resolve_encoding(100_000, 6250, encoding="auto", precision="fp32")[1]
    saw_drop = False
    for p in islice(price_fleet_rounds(spec, setup, **kw), 20):  # type: ignore[arg-type]
        assert len(p.clients) == 6  # ceil(4 * 1.3)
        assert p.bytes_down == [b_down] * 6  # every sampled client downloaded
        assert p.kept is not None and len(p.kept) <= 4
        for c, up, t in zip(p.clients, p.bytes_up, p.client_seconds, strict=True):
            assert up == (b_up if c in p.kept else 0)  # a dropped upload is not counted
            assert t == client_seconds(links[c], bytes_down=b_down, bytes_up=b_up,
                                       compute_seconds=0.0)  # fmt: skip
            if links[c].tier == "slow":
                assert c not in p.kept and t > 0.5  # 2/0.25 Mbps never makes 0.5 s
                saw_drop = True
        assert p.bytes_total == 6 * b_down + len(p.kept) * b_up
        fast = sorted(t for t in p.client_seconds if t <= 0.5)
        expected = fast[3] if len(fast) >= 4 else (max(p.client_seconds) if len(fast) == 6 else 0.5)
        assert p.seconds == expected
        assert p.d_up == (0.0 if not p.kept else 6250 / 100_000)
    assert saw_drop


def test_fleet_round_is_pure() -> None:
    spec = MethodSpec(method="floss", n=20_000, d_down=0.5, d_up=0.25)
    setup = FleetSetup(fleet=load_fleet("mixed-mobile"), density_policy="bandwidth",
                       deadline_seconds=0.4, round_policy="deadline")  # fmt: skip
    kw = {"seed": 3, "num_clients": 200, "clients_per_round": 10, "compute_seconds": 0.1}
    walked = list(islice(price_fleet_rounds(spec, setup, **kw), 6))  # type: ignore[arg-type]
    assert fleet_round(spec, setup, round_=6, **kw) == walked[5]  # type: ignore[arg-type]
    assert fleet_round(spec, setup, round_=2, **kw) == walked[1]  # type: ignore[arg-type]


def test_bandwidth_round_prices_each_client_at_its_densities() -> None:
    n = 156_696
    spec = MethodSpec(method="floss", n=n, d_down=0.25, d_up=1.0)
    setup = FleetSetup(fleet=load_fleet("mixed-mobile"), density_policy="bandwidth",
                       deadline_seconds=0.3)  # fmt: skip
    p = fleet_round(spec, setup, seed=0, round_=1, num_clients=100, clients_per_round=10,
                    compute_seconds=0.0)  # fmt: skip
    links = assign_links(setup.fleet, 100, 0)
    assert len(set(p.client_d_up)) > 1  # clients differ
    for c, dd, du, bd, bu, t in zip(p.clients, p.client_d_down, p.client_d_up, p.bytes_down,
                                    p.bytes_up, p.client_seconds, strict=True):  # fmt: skip
        assert dd == 0.25 and du in DEFAULT_GRID
        assert bd == resolve_encoding(n, round(n * dd), encoding="auto", precision="fp32")[1]
        assert bu == resolve_encoding(n, max(1, round(n * du)), encoding="auto",
                                      precision="fp32")[1]  # fmt: skip
        assert t == client_seconds(links[c], bytes_down=bd, bytes_up=bu, compute_seconds=0.0)
        if du > 1 / 256:
            assert t <= 0.3  # fits; the next grid value up would not (or it is the cap)
    assert p.seconds == max(p.client_seconds) and p.kept == p.clients  # sync keeps everybody


def test_dense_reference_seconds() -> None:
    n = 156_696
    flat = dense_reference_seconds(FleetSetup(fleet=ONE), n=n, seed=0, num_clients=100,
                                   clients_per_round=10)  # fmt: skip
    assert flat == pytest.approx(
        dense_reference_round(n=n, network=NET, clients_per_round=10).seconds, rel=1e-12
    )
    mobile = FleetSetup(fleet=load_fleet("mixed-mobile"), round_policy="deadline",
                        deadline_seconds=0.1, density_policy="bandwidth")  # fmt: skip
    mixed = dense_reference_seconds(mobile, n=n, seed=0, num_clients=100, clients_per_round=10)
    spec = MethodSpec(method="dense", n=n, encoding="dense")
    sync = list(islice(price_fleet_rounds(spec, FleetSetup(fleet=mobile.fleet), seed=0,
                                          num_clients=100, clients_per_round=10), 100))  # fmt: skip
    assert mixed == pytest.approx(sum(p.seconds for p in sync) / 100, rel=1e-12)


def test_unreachable_deadline_is_one_line() -> None:
    spec = MethodSpec(method="floss", n=100_000, d_down=0.25, d_up=0.25)
    setup = FleetSetup(fleet=TWO, round_policy="deadline", deadline_seconds=0.001)
    with pytest.raises(FleetError, match=r"deadline 0.001 s: no client of fleet 'two' can meet it"):
        check_deadline_reachable(spec, setup, seed=0, num_clients=10)
    ok = FleetSetup(fleet=TWO, round_policy="deadline", deadline_seconds=1.0)
    check_deadline_reachable(spec, ok, seed=0, num_clients=10)


def test_fleet_round_rejects_mask_methods_and_bad_runs() -> None:
    setup = FleetSetup(fleet=ONE)
    with pytest.raises(FleetError, match="adapterlth keeps one shared mask"):
        fleet_round(MethodSpec(method="adapterlth", n=10), setup, seed=0, round_=1,
                    num_clients=5, clients_per_round=2, compute_seconds=0.0)  # fmt: skip
    with pytest.raises(FleetError, match="round must be an integer >= 1"):
        fleet_round(MethodSpec(n=10), setup, seed=0, round_=0, num_clients=5,
                    clients_per_round=2, compute_seconds=0.0)  # fmt: skip
    with pytest.raises(FleetError, match="compute seconds: -1 is out of range"):
        fleet_round(MethodSpec(n=10), setup, seed=0, round_=1, num_clients=5,
                    clients_per_round=2, compute_seconds=-1.0)  # fmt: skip
