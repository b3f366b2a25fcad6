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

Value precisions (the value section of every encoding; ``values_bytes(k, precision)``):

* ``fp32``, ``fp16``, ``bf16``   k * 4, k * 2, k * 2 bytes (IEEE rounding to nearest; bf16 by
  rounding the upper 16 bits to nearest even)
* ``q8 q4 q2 q1``   b-bit codes on the uniform grid lo + j * (hi - lo) / (2**b - 1) over the
  message's kept values (lo = min, hi = max), deterministic round to nearest: 8 bytes (lo, hi as
  fp32) + ceil(k * b / 8). Biased; |error| <= (hi - lo) / (2 * (2**b - 1)).
* ``sr8 sr4 sr2 sr1``   the same grid and bytes, stochastic rounding (round up with probability
  equal to the fractional position; Suresh et al. 2017's stochastic b-bit quantizer, per message):
  unbiased, |error| < (hi - lo) / (2**b - 1). The random draws come from a seed both ends can
  derive from (seed, round, client); decoding needs no seed.
* ``rh8 rh4 rh2 rh1``   EDEN-style rotation codes (Vargaftik et al. 2022; ``planner.rotation``):
  a seeded randomized Hadamard rotation of the kept values, each rotated coordinate coded as the
  nearest Lloyd-Max centroid of N(0, 1) after scaling by sqrt(k) / norm, and one unbiasing scale.
  Same bytes as the grid codes: 8 (scale as fp32, 32-bit rotation seed) + ceil(k * b / 8).
  Unbiased over the rotation's randomness; relative squared error about D_b / (1 - D_b), D_b =
  0.3634, 0.1175, 0.0095, 0.00004 for b = 1, 2, 4, 8, whatever the tail of the values (a uniform
  grid spends its levels on the largest outlier).
* ``stc1``   STC (Sattler et al. 2019): sign(x) * mean(|x|) over the kept values: 4 bytes (the
  mean magnitude, fp32) + ceil(k / 8). Biased (meant to run with error feedback on uploads).

The b-bit precisions code kept values only, so the ``dense`` encoding (which writes the dropped
entries too) exists for them only when every entry is kept (k = n); ``auto`` skips it otherwise.
A bit width alone (``parse_precision``: 32, 16, 8, 4, 2, 1) names the default scheme of that width:
fp32, bf16, q8 (deterministic) and rh4, rh2, rh1 (rotation codes; bench/quantization.py measured
sr4 at 2 orders of magnitude more upload error than rh4 at the same bytes).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

from planner.limits import is_int, is_number

Encoding = Literal["dense", "coo", "bitmap", "rice"]
EncodingChoice = Literal["auto", "dense", "coo", "bitmap", "rice"]
FloatPrecision = Literal["fp32", "fp16", "bf16"]
Precision = Literal[
    "fp32", "fp16", "bf16", "q8", "q4", "q2", "q1", "sr8", "sr4", "sr2", "sr1",
    "rh8", "rh4", "rh2", "rh1", "stc1",
]  # fmt: skip

ENCODINGS: tuple[Encoding, ...] = get_args(Encoding)
ENCODING_CHOICES: tuple[EncodingChoice, ...] = get_args(EncodingChoice)
FLOAT_PRECISIONS: tuple[FloatPrecision, ...] = get_args(FloatPrecision)
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
QUANTIZED: tuple[str, ...] = tuple(p for p in PRECISIONS if p not in FLOAT_PRECISIONS)
UNBIASED: tuple[str, ...] = ("fp32", "sr8", "sr4", "sr2", "sr1")  # E[decode(encode(x))] = x
# unbiased in expectation over the random rotation (exactly for a uniform rotation; measured
# within sampling noise for floss's randomized Hadamard: tests/planner/test_quant_codec.py)
ROTATION: tuple[str, ...] = ("rh8", "rh4", "rh2", "rh1")
BIT_WIDTHS: tuple[int, ...] = (32, 16, 8, 4, 2, 1)
# a bit width alone names this scheme (8: deterministic grid; below 8: the rotation codes, which
# beat the uniform grid by orders of magnitude on the heavy-tailed values top-k keeps)
DEFAULT_SCHEME: dict[int, str] = {32: "fp32", 16: "bf16", 8: "q8", 4: "rh4", 2: "rh2", 1: "rh1"}

INDEX_BYTES = 4  # int32 positions in COO messages
MAX_COO_N = 2**31  # int32 positions address entries 0 .. 2**31 - 1
VALUE_BYTES: dict[FloatPrecision, int] = {"fp32": 4, "fp16": 2, "bf16": 2}
GRID_HEADER_BYTES = 8  # q*/sr*: the grid's lo and hi as float32; rh*: scale (f32) + seed (u32)
STC_HEADER_BYTES = 4  # stc1: the mean magnitude as float32


def check_precision(precision: str, *, name: str = "precision") -> Precision:
    """A precision name (see the module docstring); the error lists every one."""
    if precision not in PRECISIONS:
        widths = ", ".join(str(b) for b in BIT_WIDTHS)
        raise ValueError(
            f"{name} must be one of {', '.join(PRECISIONS)} (or a bit width: {widths}), "
            f"but got {precision!r}."
        )
    return precision


def parse_precision(value: object, *, name: str = "precision") -> Precision:
    """A precision name, or a bit width (int or digits) mapped to its default scheme."""
    if is_int(value) or (isinstance(value, str) and value.strip().isdigit()):
        bits = int(value)
        if bits not in DEFAULT_SCHEME:
            widths = ", ".join(str(b) for b in BIT_WIDTHS)
            raise ValueError(
                f"{name}: unsupported bit width {bits}; supported widths are {widths} "
                f"(or a scheme: {', '.join(PRECISIONS)})."
            )
        return DEFAULT_SCHEME[bits]  # type: ignore[return-value]
    if not isinstance(value, str):
        return check_precision(repr(value), name=name)
    return check_precision(value.strip().lower(), name=name)


def value_bits(precision: str) -> int:
    """Bits per transmitted value (the b of a b-bit code; 32 or 16 for floats)."""
    check_precision(precision)
    if precision in VALUE_BYTES:
        return 8 * VALUE_BYTES[precision]
    return int(precision.lstrip("qsrtch"))


def value_bytes(precision: str) -> int:
    """Bytes per transmitted value of a float precision (b-bit codes have no whole byte per
    value: use ``values_bytes``)."""
    check_precision(precision)
    if precision not in VALUE_BYTES:
        raise ValueError(
            f"{precision} packs {value_bits(precision)}-bit codes, not whole bytes per value; "
            "use values_bytes(k, precision)."
        )
    return VALUE_BYTES[precision]


def values_bytes(k: int, precision: str) -> int:
    """Exact bytes of the value section of a k-value message (header included)."""
    check_precision(precision)
    if precision in VALUE_BYTES:
        return k * VALUE_BYTES[precision]
    header = STC_HEADER_BYTES if precision == "stc1" else GRID_HEADER_BYTES
    return header + -(-k * value_bits(precision) // 8)


def check_encoding_choice(encoding: str) -> EncodingChoice:
    if encoding not in ENCODING_CHOICES:
        raise ValueError(
            f"encoding must be one of {', '.join(ENCODING_CHOICES)}, but got {encoding!r}."
        )
    return encoding


def check_density(density: float, *, name: str = "density") -> float:
    """A density is a fraction of entries in (0, 1]."""
    if not is_number(density):
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
    values = values_bytes(k, precision)
    if encoding == "dense":
        if precision in QUANTIZED and k < n:
            raise ValueError(
                f"the dense encoding at {precision} does not exist for k={k} < n={n}: b-bit "
                "codes carry the kept values only, not the dropped zeros; use bitmap, rice, "
                "coo or auto."
            )
        return values_bytes(n, precision)
    if encoding == "coo":
        if n > MAX_COO_N:
            raise ValueError(
                f"coo uses int32 positions, so n must be at most 2**31, but got n={n}."
            )
        return k * INDEX_BYTES + values
    if encoding == "bitmap":
        return -(-n // 8) + values
    if encoding == "rice":
        return -(-rice_position_bits(n, k) // 8) + values
    raise ValueError(
        f"encoding must be one of {', '.join(ENCODINGS)} (or auto), but got {encoding!r}."
    )


def cheapest_encoding(n: int, k: int, *, precision: str = "fp32") -> tuple[Encoding, int]:
    """The encoding ``auto`` picks: fewest bytes, ties broken in the order dense, bitmap, coo, rice
    (the simpler code wins a tie)."""
    order: tuple[Encoding, ...] = ("dense", "bitmap", "coo", "rice")
    if n > MAX_COO_N:
        order = ("dense", "bitmap", "rice")
    if precision in QUANTIZED and k < n:  # b-bit codes hold no zeros (module docstring)
        order = tuple(e for e in order if e != "dense")
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
    """log2(C(n, k)) / 8 + the value section: the least any code of the positions can cost,
    plus the values."""
    return log2_binomial(n, k) / 8 + values_bytes(k, precision)
