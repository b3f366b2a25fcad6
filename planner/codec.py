"""Real encoders and decoders for sparse messages (numpy; still no torch).

Every payload ``encode`` returns has exactly ``encoding.message_bytes(n, k, ...)`` bytes: the
planner and the trainer count bytes with the same function, and ``encode`` checks the payload
against it before returning. The trainer sends vectors through ``encode``/``decode`` so that
precision loss (fp16/bf16, b-bit codes) is real too.

The value section of a b-bit precision (``planner.encoding`` states each scheme and its error
bound): ``q*``/``sr*`` write lo and hi (float32, little-endian) then the k codes j in [0, 2**b - 1],
b bits each, most significant bit first, packed into ceil(k * b / 8) bytes (zero-padded); a value
decodes to lo + j * (hi - lo) / (2**b - 1), computed in float64 and rounded to float32.
``rh*`` writes the unbiasing scale (float32) and the 32-bit rotation seed (uint32), then the
k Lloyd-Max codes packed the same way (``planner.rotation`` has the scheme); the seed is derived
from ``seed`` (required) and carried in the header, so decoding needs no seed.
``stc1`` writes the mean magnitude mu (float32) then one sign bit per value (1: negative), and a
value decodes to -mu or +mu. ``sr*`` draws its rounding from ``seed`` (``numpy.random.
default_rng(seed)``), so a sender that derives the seed from (seed, round, client) sends the
same payload every time; decoding needs no seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from planner.encoding import (
    GRID_HEADER_BYTES,
    ROTATION,
    STC_HEADER_BYTES,
    check_precision,
    resolve_encoding,
    rice_parameter,
    rice_position_bits,
    value_bits,
    values_bytes,
)
from planner.rotation import rotation_codes, rotation_seed, rotation_values

if TYPE_CHECKING:
    from numpy.typing import NDArray

Seed = int | Sequence[int] | None


def _pack_codes(codes: NDArray[np.integer], bits: int) -> bytes:
    c = np.asarray(codes, dtype=np.uint8)
    if bits == 8:
        return c.tobytes()
    planes = (c[:, None] >> np.arange(bits - 1, -1, -1, dtype=np.uint8)) & np.uint8(1)
    return np.packbits(planes.reshape(-1)).tobytes()


def _unpack_codes(buf: bytes, count: int, bits: int) -> NDArray[np.int64]:
    raw = np.frombuffer(buf, dtype=np.uint8)
    if bits == 8:
        return raw[:count].astype(np.int64)
    planes = np.unpackbits(raw, count=count * bits).reshape(count, bits).astype(np.int64)
    return (planes << np.arange(bits - 1, -1, -1)).sum(axis=1)


def grid_codes(
    values: NDArray[np.floating], bits: int, *, stochastic: bool, seed: Seed = None
) -> tuple[float, float, NDArray[np.int64]]:
    """(lo, hi, codes) of the uniform b-bit grid over ``values`` (lo, hi rounded to float32).

    Deterministic: the nearest grid point. Stochastic: the grid point below, or the one above
    with probability equal to the fractional position, so E[decoded] = value (unbiased).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return 0.0, 0.0, np.zeros(0, np.int64)
    lo = float(np.float32(v.min()))
    hi = float(np.float32(v.max()))
    levels = (1 << bits) - 1
    step = (hi - lo) / levels
    if not step > 0:  # one value, all equal, or not finite: every code 0 decodes to lo
        return lo, hi, np.zeros(v.size, np.int64)
    t = np.clip((v - lo) / step, 0.0, float(levels))
    if stochastic:
        if seed is None:
            raise ValueError(
                "stochastic rounding needs a seed (derive it from seed, round, client)."
            )
        floor = np.floor(t)
        up = np.random.default_rng(seed).random(v.size) < (t - floor)
        codes = floor.astype(np.int64) + up
    else:
        codes = np.floor(t + 0.5).astype(np.int64)
    return lo, hi, np.minimum(codes, levels)


def grid_values(lo: float, hi: float, codes: NDArray[np.integer], bits: int) -> NDArray[np.float32]:
    """What grid codes decode to: lo + j * (hi - lo) / (2**b - 1), float64 then float32."""
    step = (hi - lo) / ((1 << bits) - 1)
    return (lo + np.asarray(codes, dtype=np.float64) * step).astype(np.float32)


def _quantized_to_bytes(values: NDArray[np.float32], precision: str, seed: Seed) -> bytes:
    bits = value_bits(precision)
    if precision == "stc1":
        mu = np.float32(np.abs(values.astype(np.float64)).mean()) if values.size else np.float32(0)
        signs = (values < 0).astype(np.uint8)
        return np.array([mu], dtype="<f4").tobytes() + _pack_codes(signs, 1)
    if precision in ROTATION:
        seed32 = rotation_seed(seed)
        scale, codes = rotation_codes(values, bits, seed32)
        header = np.array([scale], dtype="<f4").tobytes() + np.array([seed32], "<u4").tobytes()
        return header + _pack_codes(codes, bits)
    lo, hi, codes = grid_codes(values, bits, stochastic=precision.startswith("sr"), seed=seed)
    header = np.array([lo, hi], dtype="<f4").tobytes()
    return header + _pack_codes(codes, bits)


def _bytes_to_quantized(buf: bytes, count: int, precision: str) -> NDArray[np.float32]:
    bits = value_bits(precision)
    if precision == "stc1":
        mu = float(np.frombuffer(buf[:STC_HEADER_BYTES], dtype="<f4")[0])
        signs = _unpack_codes(buf[STC_HEADER_BYTES:], count, 1)
        return np.where(signs == 1, -mu, mu).astype(np.float32)
    if precision in ROTATION:
        scale = float(np.frombuffer(buf[:4], dtype="<f4")[0])
        seed32 = int(np.frombuffer(buf[4:GRID_HEADER_BYTES], dtype="<u4")[0])
        codes = _unpack_codes(buf[GRID_HEADER_BYTES:], count, bits)
        return rotation_values(scale, seed32, codes, bits)
    lo, hi = (float(x) for x in np.frombuffer(buf[:GRID_HEADER_BYTES], dtype="<f4"))
    codes = _unpack_codes(buf[GRID_HEADER_BYTES:], count, bits)
    return grid_values(lo, hi, codes, bits)


def _values_to_bytes(values: NDArray[np.float32], precision: str, seed: Seed = None) -> bytes:
    v = np.ascontiguousarray(values, dtype=np.float32)
    check_precision(precision)
    if precision not in ("fp32", "fp16", "bf16"):
        return _quantized_to_bytes(v, precision, seed)
    if precision == "fp32":
        return v.astype("<f4").tobytes()
    if precision == "fp16":
        return v.astype("<f2").tobytes()
    if precision == "bf16":
        u = v.view(np.uint32)
        # round to nearest, ties to even, on the upper 16 bits
        rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
        rounded = np.where(np.isnan(v), (u >> np.uint32(16)) | np.uint32(0x40), rounded)
        return rounded.astype("<u2").tobytes()
    raise AssertionError("unreachable")


def _bytes_to_values(buf: bytes, count: int, precision: str) -> NDArray[np.float32]:
    check_precision(precision)
    if precision not in ("fp32", "fp16", "bf16"):
        return _bytes_to_quantized(buf, count, precision)
    if precision == "fp32":
        return np.frombuffer(buf, dtype="<f4", count=count).astype(np.float32)
    if precision == "fp16":
        return np.frombuffer(buf, dtype="<f2", count=count).astype(np.float32)
    if precision == "bf16":
        u = np.frombuffer(buf, dtype="<u2", count=count).astype(np.uint32) << np.uint32(16)
        return u.view(np.float32).copy()
    raise AssertionError("unreachable")


def _rice_encode(positions: NDArray[np.int64], n: int) -> bytes:
    k = int(positions.size)
    b = rice_parameter(n, k)
    gaps = np.diff(positions, prepend=-1) - 1
    q = gaps >> b
    r = gaps & ((1 << b) - 1)
    # Two streams: k fixed-width remainders, then the unary quotients (q ones, a zero each).
    # Separate streams make decoding a vectorised search for the k terminating zeros.
    rem_bits = ((r[:, None] >> np.arange(b - 1, -1, -1)) & 1).astype(np.uint8).reshape(-1)
    unary_len = int(q.sum()) + k
    unary = np.ones(unary_len, dtype=np.uint8)
    unary[np.cumsum(q + 1) - 1] = 0
    total_bits = rice_position_bits(n, k)
    bits = np.zeros(total_bits, dtype=np.uint8)
    bits[: rem_bits.size] = rem_bits
    bits[rem_bits.size : rem_bits.size + unary_len] = unary
    return np.packbits(bits).tobytes()


def _rice_decode(buf: bytes, n: int, k: int) -> NDArray[np.int64]:
    b = rice_parameter(n, k)
    total_bits = rice_position_bits(n, k)
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), count=total_bits)
    rem = bits[: k * b].reshape(k, b).astype(np.int64) if b else np.zeros((k, 0), np.int64)
    r = (rem << np.arange(b - 1, -1, -1)).sum(axis=1) if b else np.zeros(k, np.int64)
    zeros = np.flatnonzero(bits[k * b :] == 0)[:k]
    if zeros.size != k:
        raise ValueError("corrupt rice payload: fewer terminators than kept entries")
    q = np.diff(zeros, prepend=-1) - 1
    gaps = (q << b) + r
    return np.cumsum(gaps + 1) - 1


def encode(
    positions: NDArray[np.integer],
    values: NDArray[np.floating],
    *,
    n: int,
    encoding: str = "auto",
    precision: str = "fp32",
    seed: Seed = None,
) -> tuple[bytes, str]:
    """Encode k kept entries (positions strictly increasing) of an n-vector.

    Returns (payload, encoding used). ``len(payload) == message_bytes(n, k, ...)`` always.
    ``seed`` drives the stochastic rounding of ``sr*`` precisions (required for them).
    """
    pos = np.asarray(positions, dtype=np.int64)
    k = int(pos.size)
    used, expected = resolve_encoding(n, k, encoding=encoding, precision=precision)
    if k > 1 and not bool(np.all(np.diff(pos) > 0)):
        raise ValueError("positions must be strictly increasing")
    if k and (pos[0] < 0 or pos[-1] >= n):
        raise ValueError(f"positions must lie in [0, {n}), got {pos[0]}..{pos[-1]}")
    vals = np.asarray(values, dtype=np.float32).reshape(-1)
    if vals.size != k:
        raise ValueError(f"got {vals.size} values for {k} positions")
    if used == "dense":
        full = np.zeros(n, dtype=np.float32)
        full[pos] = vals
        payload = _values_to_bytes(full, precision, seed)
    elif used == "coo":
        payload = pos.astype("<i4").tobytes() + _values_to_bytes(vals, precision, seed)
    elif used == "bitmap":
        mask = np.zeros(n, dtype=np.uint8)
        mask[pos] = 1
        payload = np.packbits(mask).tobytes() + _values_to_bytes(vals, precision, seed)
    else:
        payload = _rice_encode(pos, n) + _values_to_bytes(vals, precision, seed)
    if len(payload) != expected:  # the one-source-of-truth invariant
        raise AssertionError(f"{used} payload is {len(payload)} bytes, model says {expected}")
    return payload, used


def decode(
    payload: bytes, *, n: int, k: int, encoding: str, precision: str = "fp32"
) -> NDArray[np.float32]:
    """Decode a payload back into the dense n-vector (dropped entries are zero)."""
    used, expected = resolve_encoding(n, k, encoding=encoding, precision=precision)
    if len(payload) != expected:
        raise ValueError(f"{used} payload must be {expected} bytes, got {len(payload)}")
    values = values_bytes(k, precision)
    out = np.zeros(n, dtype=np.float32)
    if used == "dense":
        return _bytes_to_values(payload, n, precision)
    if used == "coo":
        pos = np.frombuffer(payload, dtype="<i4", count=k).astype(np.int64)
        out[pos] = _bytes_to_values(payload[4 * k :], k, precision)
        return out
    if used == "bitmap":
        nb = -(-n // 8)
        mask = np.unpackbits(np.frombuffer(payload[:nb], dtype=np.uint8), count=n)
        out[np.flatnonzero(mask)] = _bytes_to_values(payload[nb:], k, precision)
        return out
    nb = len(payload) - values
    pos = _rice_decode(payload[:nb], n, k)
    out[pos] = _bytes_to_values(payload[nb:], k, precision)
    return out
