"""planner.sampling and planner.schedule: seeded draws, every method's rounds, budgets."""

from __future__ import annotations

import random
from itertools import islice

import pytest

from planner.afford import afford, dense_reference_round, rounds_within_budget
from planner.budget import parse_budget
from planner.encoding import message_bytes, resolve_encoding
from planner.method_spec import METHODS, MethodSpec
from planner.network import NetworkProfile, client_bandwidth_factors
from planner.plan_rows import dense_round_cost
from planner.plan_types import PlanSettings
from planner.profiles import load_model, load_network
from planner.sampling import round_draws, round_seed
from planner.schedule import price_rounds

FLAT = NetworkProfile(name="flat", down_mbps=100.0, up_mbps=10.0, rtt_ms=20.0)
SPREAD = NetworkProfile(name="spread", down_mbps=100.0, up_mbps=10.0, spread_sigma=0.5)


def test_round_draws_are_the_trainers_formula() -> None:
    for r in range(1, 6):
        rng = random.Random(round_seed(7, r))
        sampled = sorted(rng.sample(range(20), 5))
        factors = client_bandwidth_factors(SPREAD, 5, rng)
        assert round_draws(
            seed=7, round_=r, num_clients=20, clients_per_round=5, network=SPREAD
        ) == (sampled, factors)
    assert round_seed(0, 1) == random.Random("floss/0/1/-1").getrandbits(63)


def _walk(spec: MethodSpec, net: NetworkProfile, k: int) -> list:  # type: ignore[type-arg]
    return list(islice(price_rounds(spec, network=net, seed=0, num_clients=8,
                                    clients_per_round=3), k))  # fmt: skip


def test_sparseadapter_rounds_by_hand() -> None:
    n, v = 10_000, 4
    spec = MethodSpec(method="sparseadapter", n=n, d_up=0.1)
    prices = _walk(spec, FLAT, 30)
    assert prices[0].bytes_down == [n * v] * 3 and prices[0].bytes_up == [n * v] * 3
    full = resolve_encoding(n, 1000, encoding="auto", precision="fp32")[1]
    holders: set[int] = set()
    for p in prices[1:]:
        assert p.bytes_up == [1000 * v] * 3  # values only
        assert p.bytes_down == [1000 * v if c in holders else full for c in p.clients]
        holders |= set(p.clients)
        assert p.d_down == p.d_up == 0.1
    assert len(holders) == 8  # everyone got the mask once; later rounds are values only


def test_uniform_methods_every_round_alike() -> None:
    for method, n_bytes in (("dense", 4000), ("ffa", 4000)):
        p = _walk(MethodSpec(method=method, n=1000, d_down=0.25), FLAT, 3)
        assert all(x.bytes_down == [n_bytes] * 3 == x.bytes_up for x in p)
    floss = _walk(MethodSpec(method="floss", n=1000, d_down=0.25, d_up=0.5), FLAT, 2)
    assert floss[0].bytes_down[0] == resolve_encoding(1000, 250, encoding="auto",
                                                      precision="fp32")[1]  # fmt: skip
    per_tensor = MethodSpec(method="floss", n=1000, d_down=0.25, tensor_sizes=(3, 997))
    assert per_tensor.topk_entries(0.25) == 1 + 249 and per_tensor.topk_entries(1.0) == 1000


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("net", [FLAT, SPREAD])
def test_afford_equals_the_walk(method: str, net: NetworkProfile) -> None:
    """The closed-form steady tail buys what walking every round buys (exact without spread;
    bytes exact always)."""
    spec = MethodSpec(method=method, n=5000, d_down=0.25, d_up=0.125, keep_rate=0.9, floor=0.05)
    kw = {"network": net, "seed": 3, "num_clients": 12, "clients_per_round": 4}
    for budget_bytes in (10**6, 3 * 10**6 + 7):
        walked = rounds_within_budget(price_rounds(spec, **kw), budget_seconds=None,
                                      budget_bytes=budget_bytes)  # fmt: skip
        got = afford(spec, **kw, budget_seconds=None, budget_bytes=budget_bytes)
        assert got.rounds == len(walked)
        assert got.total_bytes == sum(p.bytes_total for p in walked)
    if net is FLAT:
        walked = rounds_within_budget(price_rounds(spec, **kw), budget_seconds=30.0,
                                      budget_bytes=None)  # fmt: skip
        got = afford(spec, **kw, budget_seconds=30.0, budget_bytes=None)
        assert got.rounds == len(walked)
        assert got.total_seconds == pytest.approx(sum(p.seconds for p in walked))
    capped = afford(spec, **kw, budget_seconds=None, budget_bytes=10**9, max_rounds=17)
    assert capped.rounds == 17


def test_rounds_within_budget_stops_within_one_round() -> None:
    spec = MethodSpec(method="adapterlth", n=2000)
    prices = _walk(spec, FLAT, 50)
    budget = sum(p.bytes_total for p in prices[:10]) + 5
    fit = rounds_within_budget(iter(prices), budget_seconds=None, budget_bytes=budget)
    assert len(fit) == 10 and sum(p.bytes_total for p in fit) <= budget
    with pytest.raises(ValueError, match="give exactly one of budget_seconds and budget_bytes"):
        rounds_within_budget(iter(prices), budget_seconds=1.0, budget_bytes=1)
    with pytest.raises(ValueError, match="a budget must be positive, but got -1"):
        rounds_within_budget(iter(prices), budget_seconds=None, budget_bytes=-1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "lora"}, "method must be one of floss, dense, sparseadapter"),
        ({"n": 0}, "adapter size n must be an integer >= 1, but got 0"),
        ({"keep_rate": 0.0}, r"keep_rate must be in \(0, 1\], but got 0.0"),
        ({"keep_rate": 1.01}, r"keep_rate must be in \(0, 1\], but got 1.01"),
        ({"floor": 0.0}, r"lth_floor must be in \(0, 1\], but got 0.0"),
        ({"encoding": "zip"}, "encoding must be one of auto"),
        ({"tensor_sizes": (1, 2)}, "tensor sizes sum to 3, but the adapter has n=10"),
    ],
)
def test_bad_specs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MethodSpec(**{"n": 10, **kwargs})  # type: ignore[arg-type]


def test_dense_reference_round_is_dense_fp32() -> None:
    model, net = load_model(), load_network()
    n = model.adapter_params(16, num_labels=24)
    ref = dense_reference_round(n=n, network=net, clients_per_round=10)
    assert ref.bytes_per_client == message_bytes(n, n, encoding="dense") == 4 * n
    for encoding, precision in (("auto", "fp32"), ("coo", "fp16"), ("rice", "bf16")):
        settings = PlanSettings(model=model, network=net, budget=parse_budget("1h"),
                                num_labels=24, encoding=encoding, precision=precision)  # fmt: skip
        plan_ref = dense_round_cost(settings)
        assert plan_ref.seconds_per_round == ref.seconds
        assert plan_ref.bytes_per_round == ref.bytes_per_round


def test_ffa_size_is_b_and_head() -> None:
    model = load_model()  # MiniLM: query and value, 384 -> 384, 6 layers
    assert model.adapter_params(16, freeze_a=True) == 16 * 2 * 6 * 384
    assert (
        model.adapter_params(16, num_labels=24, freeze_a=True) == 16 * 2 * 6 * 384 + 384 * 24 + 24
    )
    assert model.num_labels == 24  # fortunes categories with >= 200 texts
