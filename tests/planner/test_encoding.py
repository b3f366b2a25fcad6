"""Byte counts against hand-computed tables; the real codec's payloads against the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from planner.codec import decode, encode
from planner.encoding import (
    PRECISIONS,
    QUANTIZED,
    cheapest_encoding,
    information_bound_bytes,
    kept_entries,
    message_bytes,
    rice_parameter,
    rice_position_bits,
)

# (n, k, precision, {encoding: bytes}, cheapest). Worked by hand:
#  dense = n*v; coo = k*(4+v); bitmap = ceil(n/8) + k*v;
#  rice  = ceil(min_b[k*(b+1) + floor((n-k)/2^b)] / 8) + k*v.
HAND = [
    # d = 1: rice b=0 -> 1000 bits = 125 B, same as the bitmap; dense wins.
    (1000, 1000, "fp32", {"dense": 4000, "coo": 8000, "bitmap": 4125, "rice": 4125}, "dense"),
    (1000, 1000, "fp16", {"dense": 2000, "coo": 6000, "bitmap": 2125, "rice": 2125}, "dense"),
    # half kept: b=0 -> 500 + 500 = 1000 bits = 125 B: rice ties the bitmap, the simpler bitmap wins.
    (1000, 500, "fp32", {"dense": 4000, "coo": 4000, "bitmap": 2125, "rice": 2125}, "bitmap"),
    (1000, 500, "bf16", {"dense": 2000, "coo": 3000, "bitmap": 1125, "rice": 1125}, "bitmap"),
    # 1%: b=6 -> 10*7 + floor(990/64)=15 -> 85 bits = 11 B.
    (1000, 10, "fp32", {"dense": 4000, "coo": 80, "bitmap": 165, "rice": 51}, "rice"),
    (1000, 10, "fp16", {"dense": 2000, "coo": 60, "bitmap": 145, "rice": 31}, "rice"),
    # one entry of 2^31: b=30 -> 31 + floor((2^31-1)/2^30)=1 -> 32 bits = 4 B, a tie with the
    # int32 index; the simpler COO wins. Only this close to the int32 limit can COO win.
    (2**31, 1, "fp32", {"dense": 2**33, "coo": 8, "bitmap": 2**28 + 4, "rice": 8}, "coo"),
    (2**31, 1, "fp16", {"dense": 2**32, "coo": 6, "bitmap": 2**28 + 2, "rice": 6}, "coo"),
]


@pytest.mark.parametrize(("n", "k", "precision", "expected", "cheapest"), HAND)
def test_message_bytes_hand_table(
    n: int, k: int, precision: str, expected: dict[str, int], cheapest: str
) -> None:
    for encoding, nbytes in expected.items():
        assert message_bytes(n, k, encoding=encoding, precision=precision) == nbytes, encoding
    assert cheapest_encoding(n, k, precision=precision) == (cheapest, expected[cheapest])


def test_rice_parameter_minimises_bound() -> None:
    assert rice_parameter(1000, 10) == 6
    assert rice_position_bits(1000, 10) == 85
    for n, k in [(7, 1), (100, 3), (147456, 9216), (10**6, 1)]:
        b = rice_parameter(n, k)
        best = min(k * (c + 1) + ((n - k) >> c) for c in range(0, 40))
        assert k * (b + 1) + ((n - k) >> b) == best


def test_coo_refuses_positions_beyond_int32() -> None:
    with pytest.raises(ValueError, match="int32"):
        message_bytes(2**31 + 1, 1, encoding="coo")
    assert cheapest_encoding(2**31 + 1, 1)[0] == "rice"


@pytest.mark.parametrize(
    ("n", "d", "k"),
    [
        (100, 1.0, 100),
        (100, 0.25, 25),
        (100, 0.005, 1),
        (100, 0.015, 2),
        (147456, 1 / 16, 9216),
        (3, 0.5, 2),
    ],
)
def test_kept_entries(n: int, d: float, k: int) -> None:
    assert kept_entries(n, d) == k


@pytest.mark.parametrize("d", [0, -0.1, 1.5, float("nan"), float("inf")])
def test_bad_density(d: float) -> None:
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        kept_entries(100, d)


def test_bad_encoding_and_precision() -> None:
    with pytest.raises(ValueError, match="encoding must be one of"):
        message_bytes(10, 1, encoding="zip")
    with pytest.raises(ValueError, match="precision must be one of"):
        message_bytes(10, 1, encoding="dense", precision="fp8")
    with pytest.raises(ValueError, match="k=11"):
        message_bytes(10, 11, encoding="dense")


def test_information_bound_is_a_lower_bound() -> None:
    for n, k in [(1000, 10), (1000, 500), (147456, 9216)]:
        bound = information_bound_bytes(n, k)
        assert bound == pytest.approx(math.log2(math.comb(n, k)) / 8 + 4 * k, rel=1e-9)
        assert bound <= cheapest_encoding(n, k)[1]
    # rice comes within 10% of the bound at d = 1/16 of a real adapter
    assert cheapest_encoding(147456, 9216)[1] / information_bound_bytes(147456, 9216) < 1.02


@pytest.mark.parametrize("encoding", ["dense", "coo", "bitmap", "rice", "auto"])
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(("n", "k"), [(1, 1), (9, 3), (1000, 10), (4099, 4099), (50000, 777)])
def test_codec_payload_equals_planner_bytes(encoding: str, precision: str, n: int, k: int) -> None:
    rng = np.random.default_rng(n * 7 + k)
    pos = np.sort(rng.choice(n, size=k, replace=False))
    vals = rng.standard_normal(k).astype(np.float32)
    if encoding == "dense" and precision in QUANTIZED and k < n:  # no such combination
        with pytest.raises(ValueError, match="does not exist"):
            encode(pos, vals, n=n, encoding=encoding, precision=precision, seed=0)
        return
    payload, used = encode(pos, vals, n=n, encoding=encoding, precision=precision, seed=(n, k))
    expected = message_bytes(n, k, encoding=used, precision=precision)
    assert len(payload) == expected
    if encoding == "auto":
        assert (used, expected) == cheapest_encoding(n, k, precision=precision)
    out = decode(payload, n=n, k=k, encoding=encoding, precision=precision)
    ref = np.zeros(n, np.float32)
    ref[pos] = vals
    dropped = np.ones(n, bool)
    dropped[pos] = False
    assert not out[dropped].any()  # dropped entries decode to exact zeros, every precision
    if precision in QUANTIZED:  # each scheme's own bound: tests/planner/test_quant_codec.py
        return
    tol = {"fp32": 0.0, "fp16": 1e-3, "bf16": 8e-3}[precision]
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)


def test_rice_worst_case_positions_fit() -> None:
    """Positions packed at the end make the unary part as long as the bound allows."""
    n, k = 10_000, 37
    pos = np.arange(n - k, n)
    payload, _ = encode(pos, np.ones(k, np.float32), n=n, encoding="rice")
    assert len(payload) == message_bytes(n, k, encoding="rice")
    assert np.flatnonzero(decode(payload, n=n, k=k, encoding="rice")).tolist() == pos.tolist()


def test_codec_rejects_unsorted_positions() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        encode(np.array([3, 1]), np.ones(2, np.float32), n=10, encoding="coo")
    with pytest.raises(ValueError, match="must be 40 bytes"):
        decode(b"\0" * 3, n=10, k=10, encoding="dense")
