"""Real encoders and decoders for sparse messages (numpy; still no torch).

Every payload ``encode`` returns has exactly ``encoding.message_bytes(n, k, ...)`` bytes: the
planner and the trainer count bytes with the same function, and ``encode`` checks the payload
against it before returning. The trainer sends vectors through ``encode``/``decode`` so that
precision loss (fp16/bf16) is real too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from planner.encoding import (
    resolve_encoding,
    rice_parameter,
    rice_position_bits,
    value_bytes,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray


def _values_to_bytes(values: NDArray[np.float32], precision: str) -> bytes:
    v = np.ascontiguousarray(values, dtype=np.float32)
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
    value_bytes(precision)  # raises the one-line error
    raise AssertionError("unreachable")


def _bytes_to_values(buf: bytes, count: int, precision: str) -> NDArray[np.float32]:
    if precision == "fp32":
        return np.frombuffer(buf, dtype="<f4", count=count).astype(np.float32)
    if precision == "fp16":
        return np.frombuffer(buf, dtype="<f2", count=count).astype(np.float32)
    if precision == "bf16":
        u = np.frombuffer(buf, dtype="<u2", count=count).astype(np.uint32) << np.uint32(16)
        return u.view(np.float32).copy()
    value_bytes(precision)
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
) -> tuple[bytes, str]:
    """Encode k kept entries (positions strictly increasing) of an n-vector.

    Returns (payload, encoding used). ``len(payload) == message_bytes(n, k, ...)`` always.
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
        payload = _values_to_bytes(full, precision)
    elif used == "coo":
        payload = pos.astype("<i4").tobytes() + _values_to_bytes(vals, precision)
    elif used == "bitmap":
        mask = np.zeros(n, dtype=np.uint8)
        mask[pos] = 1
        payload = np.packbits(mask).tobytes() + _values_to_bytes(vals, precision)
    else:
        payload = _rice_encode(pos, n) + _values_to_bytes(vals, precision)
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
    v = value_bytes(precision)
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
    nb = len(payload) - k * v
    pos = _rice_decode(payload[:nb], n, k)
    out[pos] = _bytes_to_values(payload[nb:], k, precision)
    return out
