"""Quantized values: exact bytes (hand table), each scheme's error bound, unbiasedness of the
stochastic rounding, bit-width parsing, and the planner's precision axis (plan and CLI)."""

from __future__ import annotations

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from planner.cli import plan_command
from planner.codec import decode, encode
from planner.encoding import (
    QUANTIZED,
    ROTATION,
    UNBIASED,
    cheapest_encoding,
    message_bytes,
    parse_precision,
    value_bits,
    values_bytes,
)
from planner.method_spec import MethodSpec
from planner.profiles import load_network
from planner.schedule import price_rounds

runner = CliRunner()
single = typer.Typer()
single.command()(plan_command)

# (n, k, precision, {encoding: bytes}, cheapest), by hand:
#   values(q*/sr*) = 8 + ceil(k*b/8); values(stc1) = 4 + ceil(k/8);
#   rice positions of 10 of 1000 = 85 bits = 11 B (tests/planner/test_encoding.py).
HAND = [
    (1000, 10, "q8", {"coo": 58, "bitmap": 143, "rice": 29}, "rice"),
    (1000, 10, "q4", {"coo": 53, "bitmap": 138, "rice": 24}, "rice"),
    (1000, 10, "sr2", {"coo": 51, "bitmap": 136, "rice": 22}, "rice"),
    (1000, 10, "sr1", {"coo": 50, "bitmap": 135, "rice": 21}, "rice"),
    (1000, 10, "stc1", {"coo": 46, "bitmap": 131, "rice": 17}, "rice"),
    (1000, 10, "rh4", {"coo": 53, "bitmap": 138, "rice": 24}, "rice"),  # same bytes as q4
    # every entry kept: dense exists (8 + 500); bitmap and rice add 125 B of positions
    (1000, 1000, "q4", {"dense": 508, "bitmap": 633, "rice": 633}, "dense"),
    # half kept at 1 bit: 8 + ceil(500/8) = 71 value bytes; rice ties the bitmap (simpler wins)
    (1000, 500, "q1", {"coo": 2071, "bitmap": 196, "rice": 196}, "bitmap"),
]


@pytest.mark.parametrize(("n", "k", "precision", "expected", "cheapest"), HAND)
def test_quantized_bytes_hand_table(
    n: int, k: int, precision: str, expected: dict[str, int], cheapest: str
) -> None:
    for encoding, nbytes in expected.items():
        assert message_bytes(n, k, encoding=encoding, precision=precision) == nbytes, encoding
    assert cheapest_encoding(n, k, precision=precision) == (cheapest, expected[cheapest])


def test_minilm_message_at_one_sixteenth() -> None:
    """d = 1/16 of the 147,456-entry MiniLM adapter: 6,768 B of rice positions + the values."""
    n, k = 147_456, 9_216
    assert cheapest_encoding(n, k, precision="fp32") == ("rice", 6_768 + 4 * k)
    assert cheapest_encoding(n, k, precision="q8") == ("rice", 6_768 + 8 + k)
    assert cheapest_encoding(n, k, precision="sr4") == ("rice", 6_768 + 8 + k // 2)
    assert cheapest_encoding(n, k, precision="stc1") == ("rice", 6_768 + 4 + k // 8)


def test_dense_encoding_does_not_exist_below_full_density() -> None:
    with pytest.raises(ValueError, match="dense encoding at sr4 does not exist"):
        message_bytes(100, 10, encoding="dense", precision="sr4")
    for p in QUANTIZED:  # auto never picks it, even where it would be smaller
        assert cheapest_encoding(100, 99, precision=p)[0] != "dense"
    with pytest.raises(ValueError, match="encoding dense with upload precision q4"):
        MethodSpec(n=100, d_down=1.0, d_up=0.5, encoding="dense", precision_up="q4")
    MethodSpec(n=100, d_down=1.0, d_up=1.0, encoding="dense", precision="q4")  # k = n: fine


@pytest.mark.parametrize(
    ("text", "expected"),
    [("32", "fp32"), (16, "bf16"), ("8", "q8"), (4, "rh4"), ("2", "rh2"), (1, "rh1"),
     ("STC1", "stc1"), (" q4 ", "q4"), ("fp16", "fp16")],
)  # fmt: skip
def test_parse_precision(text: object, expected: str) -> None:
    assert parse_precision(text) == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [(3, "unsupported bit width 3"), ("64", "unsupported bit width 64"), ("int8", "must be one"),
     (True, "must be one"), (None, "must be one")],
)  # fmt: skip
def test_parse_precision_refuses(value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_precision(value)


def _roundtrip(vals: np.ndarray, precision: str, seed: object = 0) -> tuple[np.ndarray, np.ndarray]:
    n = vals.size * 3
    pos = np.arange(0, n, 3)
    payload, used = encode(pos, vals, n=n, encoding="auto", precision=precision, seed=seed)  # type: ignore[arg-type]
    assert len(payload) == message_bytes(n, vals.size, encoding=used, precision=precision)
    out = decode(payload, n=n, k=vals.size, encoding="auto", precision=precision)
    return out[pos], out


@pytest.mark.parametrize("precision", QUANTIZED)
@pytest.mark.parametrize("scale", [1e-4, 1.0, 300.0])
def test_error_within_each_schemes_bound(precision: str, scale: float) -> None:
    rng = np.random.default_rng(7)
    vals = (rng.standard_normal(999) * scale).astype(np.float32)
    got, _ = _roundtrip(vals, precision, seed=123)
    x = vals.astype(np.float64)
    err = np.abs(got.astype(np.float64) - x)
    eps = 4 * np.finfo(np.float32).eps * np.abs(x).max()  # float32 rounding of lo, hi, output
    if precision in ROTATION:  # a statistical bound: tested below
        return
    if precision == "stc1":  # sign(x) * mean|x|, exactly
        mu = np.float32(np.abs(x).mean())
        np.testing.assert_array_equal(got, np.where(vals < 0, -mu, mu).astype(np.float32))
        return
    step = (x.max() - x.min()) / ((1 << value_bits(precision)) - 1)
    bound = step / 2 if precision.startswith("q") else step  # nearest vs stochastic rounding
    assert err.max() <= bound + eps
    assert got.min() >= x.min() - eps and got.max() <= x.max() + eps  # inside [lo, hi]


@pytest.mark.parametrize("precision", ["sr8", "sr4", "sr2", "sr1"])
def test_stochastic_rounding_is_unbiased(precision: str) -> None:
    """The mean of decode(encode(x)) over many seeds converges to x (within 5 standard errors
    of the worst case, variance <= step^2 / 4 per entry)."""
    assert precision in UNBIASED
    rng = np.random.default_rng(1)
    vals = rng.standard_normal(64).astype(np.float32)
    trials = 3000
    total = np.zeros(vals.size)
    for seed in range(trials):
        got, _ = _roundtrip(vals, precision, seed=(seed, 99))
        total += got
    mean = total / trials
    step = (float(vals.max()) - float(vals.min())) / ((1 << value_bits(precision)) - 1)
    assert np.abs(mean - vals).max() < 5 * (step / 2) / np.sqrt(trials)


def test_stochastic_rounding_is_a_function_of_its_seed() -> None:
    vals = np.random.default_rng(2).standard_normal(500).astype(np.float32)
    a, _ = _roundtrip(vals, "sr2", seed=(5, 1))
    b, _ = _roundtrip(vals, "sr2", seed=(5, 1))
    c, _ = _roundtrip(vals, "sr2", seed=(5, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="needs a seed"):
        encode(np.arange(3), vals[:3], n=3, encoding="dense", precision="sr4")


def test_constant_and_single_values_decode_exactly() -> None:
    for p in ("q8", "q1", "sr4", "sr1"):
        got, _ = _roundtrip(np.full(10, 0.25, np.float32), p)
        np.testing.assert_array_equal(got, np.full(10, 0.25, np.float32))
        got, _ = _roundtrip(np.array([-3.5], np.float32), p)
        assert got.tolist() == [-3.5]


def test_values_bytes_formula() -> None:
    assert values_bytes(10, "fp32") == 40 and values_bytes(10, "bf16") == 20
    assert values_bytes(10, "q8") == 18 and values_bytes(10, "sr4") == 13
    assert values_bytes(9, "q1") == 10 and values_bytes(9, "stc1") == 6


def test_schedule_prices_each_direction_at_its_precision() -> None:
    net = load_network("thesis")
    n = 10_000
    spec = MethodSpec(n=n, d_down=0.25, d_up=1 / 16, precision_down="q8", precision_up="sr2")
    first = next(price_rounds(spec, network=net, seed=0, num_clients=10, clients_per_round=3))
    down = cheapest_encoding(n, 2500, precision="q8")[1]
    up = cheapest_encoding(n, 625, precision="sr2")[1]
    assert first.bytes_down == [down] * 3 and first.bytes_up == [up] * 3
    # the mask methods: round 1 dense (k = n), then values at each direction's precision
    sa = MethodSpec(
        method="sparseadapter", n=n, d_up=0.25, precision_down="q4", precision_up="stc1"
    )
    prices = price_rounds(sa, network=net, seed=0, num_clients=3, clients_per_round=3)
    r1, r2, r3 = next(prices), next(prices), next(prices)
    assert r1.bytes_down[0] == values_bytes(n, "q4") and r1.bytes_up[0] == values_bytes(n, "stc1")
    assert r2.bytes_down[0] == cheapest_encoding(n, 2500, precision="q4")[1]
    assert r3.bytes_down == [values_bytes(2500, "q4")] * 3
    assert r3.bytes_up == [values_bytes(2500, "stc1")] * 3


def test_plan_prices_every_precision_pair() -> None:
    args = ["--budget", "50-dense-rounds", "--up-slowdown", "16", "--ranks", "16",
            "--bits-down", "32,8", "--bits-up", "32,4,stc1", "--format", "json"]  # fmt: skip
    result = runner.invoke(single, args)
    assert result.exit_code == 0, result.output
    import json

    rows = json.loads(result.output)
    pairs = {(r["precision_down"], r["precision_up"]) for r in rows}
    assert pairs == {(d, u) for d in ("fp32", "q8") for u in ("fp32", "rh4", "stc1")}
    for r in rows:
        assert r["bytes_down"] == cheapest_encoding(r["n"], r["k_down"],
                                                    precision=r["precision_down"])[1]  # fmt: skip
        assert r["bytes_up"] == cheapest_encoding(r["n"], r["k_up"], precision=r["precision_up"])[1]
    recommended = [r for r in rows if r["recommended"]]
    why = [r["why"] for r in recommended]
    assert why[0] == "dense LoRA baseline at the reference rank"
    assert (recommended[0]["precision_down"], recommended[0]["precision_up"]) == ("fp32", "fp32")
    assert sum(w.startswith("q8/rh4: densest") for w in why) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bits-up", "3"], "error: --precision-up: unsupported bit width 3; supported widths"),
        (["--precision-down", "fp8"], "error: --precision-down must be one of fp32,"),
        (["--bits-up", "4,4"], "error: --precision-up has a repeated value"),
        (["--bits-up", "4,"], "error: --precision-up must be a comma list"),
        (["--precision", "5"], "error: --precision: unsupported bit width 5"),
        (["--bits-up", "4", "--encoding", "dense"], "error: the dense encoding at rh4 does not"),
    ],
)
def test_bad_precisions_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(single, ["--budget", "50-dense-rounds", *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(message), result.output
    assert result.output.count("\n") == 1
    assert "Traceback" not in result.output


# Max (1960)'s Lloyd-Max distortion of N(0, 1) at b bits; EDEN's unbiased scale turns it into
# about D / (1 - D) relative squared error
LLOYD_MAX_DISTORTION = {1: 0.3634, 2: 0.1175, 4: 0.009497, 8: 0.0000415}


@pytest.mark.parametrize("precision", ROTATION)
@pytest.mark.parametrize("tail", ["normal", "student-t2"])
def test_rotation_error_is_the_lloyd_max_bound_whatever_the_tail(precision: str, tail: str) -> None:
    """rh*: relative squared error within 25 % of D_b / (1 - D_b) on Gaussian and on heavy-tailed
    values (Student t, 2 degrees of freedom), at every scale; a uniform grid (sr) at the same bits
    is far worse on the heavy tail."""
    rng = np.random.default_rng(11)
    bits = value_bits(precision)
    d = LLOYD_MAX_DISTORTION[bits]
    for scale in (1e-4, 1.0, 300.0):
        raw = rng.standard_normal(4093) if tail == "normal" else rng.standard_t(2, 4093)
        vals = (raw * scale).astype(np.float32)
        got, _ = _roundtrip(vals, precision, seed=(3, 4))
        x = vals.astype(np.float64)
        rel = float(np.sum((got - x) ** 2) / np.sum(x**2))
        assert rel <= 1.25 * d / (1 - d), (scale, rel)
        if tail == "student-t2" and bits < 8:
            grid, _ = _roundtrip(vals, f"sr{bits}", seed=(3, 4))
            assert float(np.sum((grid - x) ** 2) / np.sum(x**2)) > 3 * rel


@pytest.mark.parametrize("precision", ["rh4", "rh1"])
@pytest.mark.parametrize("k", [1, 37, 64])
def test_rotation_codes_are_unbiased_over_seeds(precision: str, k: int) -> None:
    """The mean of decode(encode(x)) over many rotation seeds converges to x: its distance to x
    is within 4x what the per-message error alone would leave after averaging (||e||^2 / trials),
    for k a power of two and not (the two overlapping Hadamard windows)."""
    rng = np.random.default_rng(5)
    vals = rng.standard_t(3, k).astype(np.float32)
    x = vals.astype(np.float64)
    trials = 2000
    total = np.zeros(k)
    sq = 0.0
    for seed in range(trials):
        got, _ = _roundtrip(vals, precision, seed=(seed, 7))
        total += got
        sq += float(np.sum((got - x) ** 2))
    mean = total / trials
    noise = sq / trials / trials  # E||mean - x||^2 if the estimate is unbiased
    assert float(np.sum((mean - x) ** 2)) <= 16 * noise + 1e-12


def test_rotation_payload_carries_its_seed() -> None:
    """Decoding needs only the payload (the rotation seed is in the header), the same seed gives
    the same payload, another seed another one; no seed is refused."""
    vals = np.random.default_rng(2).standard_normal(300).astype(np.float32)
    a, _ = _roundtrip(vals, "rh2", seed=(5, 1))
    b, _ = _roundtrip(vals, "rh2", seed=(5, 1))
    c, _ = _roundtrip(vals, "rh2", seed=(5, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="need a seed"):
        encode(np.arange(3), vals[:3], n=3, encoding="dense", precision="rh4")
    zeros, _ = _roundtrip(np.zeros(8, np.float32), "rh4", seed=1)
    np.testing.assert_array_equal(zeros, np.zeros(8, np.float32))
