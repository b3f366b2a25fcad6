"""Exact byte counts of sparse messages (pure Python, no numpy, no torch).

A message carries k of the n entries of a vector. What it costs on the wire is the values plus
whatever tells the receiver where they go. Both ends know n, k, the precision and the encoding
from the run configuration (``auto`` is a deterministic function of (n, k, precision)), so no
per-message header is sent and none is counted.

Encodings (v = bytes per value, i = 4 bytes per int32 index):

* ``dense``   n * v                        all entries, the dropped ones as zeros
* ``coo``     k * (i + v)                  int32 position + value per kept entry
* ``bitmap``  ceil(n / 8) + k * v          one bit per entry, then the kept values
* ``rice``    ceil(B / 8) + k * v          Golomb-Rice code of the gaps between sorted positions

For ``rice`` the bit count depends on where the kept entries are. B is the exact worst case,
``k * (b + 1) + floor((n - k) / 2**b)`` with the Rice parameter b chosen to minimise it, and the
encoder pads every message to that size, so the bytes are a function of (n, k, v) alone and the
planner's prediction equals the payload (tests pin this). The information bound
``log2(C(n, k)) / 8 + k * v`` is what no position code can beat; it is reported beside.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

Encoding = Literal["dense", "coo", "bitmap", "rice"]
EncodingChoice = Literal["auto", "dense", "coo", "bitmap", "rice"]
Precision = Literal["fp32", "fp16", "bf16"]

ENCODINGS: tuple[Encoding, ...] = get_args(Encoding)
ENCODING_CHOICES: tuple[EncodingChoice, ...] = get_args(EncodingChoice)
PRECISIONS: tuple[Precision, ...] = get_args(Precision)

INDEX_BYTES = 4  # int32 positions in COO messages
MAX_COO_N = 2**31  # int32 positions address entries 0 .. 2**31 - 1
VALUE_BYTES: dict[Precision, int] = {"fp32": 4, "fp16": 2, "bf16": 2}


def value_bytes(precision: str) -> int:
    """Bytes per transmitted value for a precision name."""
    try:
        return VALUE_BYTES[precision]  # type: ignore[index]
    except KeyError:
        raise ValueError(
            f"precision must be one of {', '.join(PRECISIONS)}, but got {precision!r}."
        ) from None


def check_encoding_choice(encoding: str) -> EncodingChoice:
    if encoding not in ENCODING_CHOICES:
        raise ValueError(
            f"encoding must be one of {', '.join(ENCODING_CHOICES)}, but got {encoding!r}."
        )
    return encoding


def check_density(density: float, *, name: str = "density") -> float:
    """A density is a fraction of entries in (0, 1]."""
    if isinstance(density, bool) or not isinstance(density, (int, float)):
        raise ValueError(f"{name} must be a number in (0, 1], but got {density!r}.")
    if not math.isfinite(density) or not 0.0 < density <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], but got {density!r}.")
    return float(density)


def kept_entries(n: int, density: float) -> int:
    """k = max(1, round(d * n)), rounding halves up, capped at n."""
    if n < 1:
        raise ValueError(f"vector length must be at least 1, but got n={n}.")
    check_density(density)
    return min(n, max(1, math.floor(density * n + 0.5)))


def _check_nk(n: int, k: int) -> None:
    if n < 1:
        raise ValueError(f"vector length must be at least 1, but got n={n}.")
    if not 1 <= k <= n:
        raise ValueError(f"kept entries must be in [1, n={n}], but got k={k}.")


def rice_parameter(n: int, k: int) -> int:
    """The Rice parameter b that minimises the worst-case bit count for k of n positions."""
    _check_nk(n, k)
    spare = n - k
    best_b, best_bits = 0, k + spare
    for b in range(1, max(1, spare.bit_length()) + 1):
        bits = k * (b + 1) + (spare >> b)
        if bits < best_bits:
            best_b, best_bits = b, bits
    return best_b


def rice_position_bits(n: int, k: int) -> int:
    """Worst-case bits of the Rice-coded gaps of k sorted positions among n.

    Gaps are g_0 = p_0 and g_j = p_j - p_(j-1) - 1, so sum(g) = p_(k-1) - (k - 1) <= n - k.
    Each gap costs floor(g / 2**b) + 1 + b bits, and sum(floor(g / 2**b)) <= floor((n - k) / 2**b).
    """
    b = rice_parameter(n, k)
    return k * (b + 1) + ((n - k) >> b)


def message_bytes(n: int, k: int, *, encoding: str, precision: str = "fp32") -> int:
    """Exact bytes on the wire for k kept entries of an n-vector under one encoding."""
    _check_nk(n, k)
    v = value_bytes(precision)
    if encoding == "dense":
        return n * v
    if encoding == "coo":
        if n > MAX_COO_N:
            raise ValueError(
                f"coo uses int32 positions, so n must be at most 2**31, but got n={n}."
            )
        return k * (INDEX_BYTES + v)
    if encoding == "bitmap":
        return -(-n // 8) + k * v
    if encoding == "rice":
        return -(-rice_position_bits(n, k) // 8) + k * v
    raise ValueError(
        f"encoding must be one of {', '.join(ENCODINGS)} (or auto), but got {encoding!r}."
    )


def cheapest_encoding(n: int, k: int, *, precision: str = "fp32") -> tuple[Encoding, int]:
    """The encoding ``auto`` picks: fewest bytes, ties broken in the order dense, bitmap, coo, rice
    (the simpler code wins a tie)."""
    order: tuple[Encoding, ...] = ("dense", "bitmap", "coo", "rice")
    if n > MAX_COO_N:
        order = ("dense", "bitmap", "rice")
    costs = [
        (message_bytes(n, k, encoding=e, precision=precision), i, e) for i, e in enumerate(order)
    ]
    nbytes, _, enc = min(costs)
    return enc, nbytes


def resolve_encoding(n: int, k: int, *, encoding: str, precision: str) -> tuple[Encoding, int]:
    """(encoding actually used, bytes) for a choice that may be ``auto``."""
    check_encoding_choice(encoding)
    if encoding == "auto":
        return cheapest_encoding(n, k, precision=precision)
    return encoding, message_bytes(n, k, encoding=encoding, precision=precision)  # type: ignore[return-value]


def log2_binomial(n: int, k: int) -> float:
    """log2 C(n, k), via lgamma (exact enough for a bound printed to the byte)."""
    _check_nk(n, k)
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)


def information_bound_bytes(n: int, k: int, *, precision: str = "fp32") -> float:
    """log2(C(n, k)) / 8 + k * v: the least any code of the positions can cost, plus the values."""
    return log2_binomial(n, k) / 8 + k * value_bytes(precision)
