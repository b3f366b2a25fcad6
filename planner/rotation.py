"""Rotation-based b-bit codes for the kept values (``rh8 rh4 rh2 rh1``), in the spirit of EDEN.

EDEN (Vargaftik et al., ICML 2022) rotates the vector with a random rotation R, quantizes every
rotated coordinate to the nearest Lloyd-Max centroid of the standard normal (after scaling by
sqrt(d) / ||x||), and sends one scale chosen so that the estimate is unbiased:

    y = R x,   q = centroids[nearest(y * sqrt(d) / ||y||)],   S = ||y||^2 / <y, q>,
    decode:   x_hat = R^T (S * q).

Why it matters here: top-k keeps the heaviest tail of a LoRA update, so a uniform grid over
[min, max] (``q*``/``sr*``) spends its levels on a few outliers and rounds everything else coarsely.
After a random rotation every coordinate is close to N(0, ||x||^2 / d), which is exactly what the
Lloyd-Max centroids are optimal for: the relative squared error is about D_b / (1 - D_b) with
D_b = 0.3634, 0.1175, 0.0095 for b = 1, 2, 4 (Max 1960), whatever the tail of x.

Our rotation, for any k with 2^a <= k < 2^(a+1): R = H_tail D2 H_head D1, with D1, D2 diagonals
of random signs (drawn from a 32-bit seed), H_head the normalised Walsh-Hadamard matrix on the
first 2^a entries and H_tail the same on the last 2^a (the two windows overlap, so every entry is
mixed with every other). It is orthonormal for every k, so no padding is sent: the payload is
8 header bytes (S as float32, then the 32-bit rotation seed, little-endian) plus
ceil(k * b / 8) bytes of codes, the same bytes as ``q*``/``sr*``. The seed travels in the
header, so decoding needs nothing but the payload. Unbiasedness: exact in expectation for a
uniformly random rotation (EDEN, Theorem 1); for this randomized Hadamard it is approximate
(tests measure the mean over many seeds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

ROTATION_BITS = (8, 4, 2, 1)


def _phi(t: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)


def _cdf(t: NDArray[np.float64]) -> NDArray[np.float64]:
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * (1.0 + erf(t / math.sqrt(2.0)))


@cache
def lloyd_max(bits: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(centroids, inner boundaries) of the 2**bits-level Lloyd-Max quantizer of N(0, 1),
    by Lloyd's iteration (symmetric, ascending). It starts from the asymptotically optimal
    point density, proportional to p(x)^(1/3) (Panter and Dite 1951): for N(0, 1) the quantiles of
    N(0, 3), from which the iteration converges in a few hundred steps even at 256 levels."""
    if bits not in ROTATION_BITS:
        raise ValueError(f"rotation codes have {ROTATION_BITS} bits, not {bits}.")
    levels = 1 << bits
    probs = (np.arange(levels) + 0.5) / levels
    c = np.array([math.sqrt(3.0) * _inv_cdf(float(p)) for p in probs])
    for _ in range(5000):
        t = (c[:-1] + c[1:]) / 2
        lo = np.concatenate(([-np.inf], t))
        hi = np.concatenate((t, [np.inf]))
        mass = _cdf(hi) - _cdf(lo)
        new = (_phi(lo) - _phi(hi)) / np.maximum(mass, 1e-300)
        if np.max(np.abs(new - c)) < 1e-12:
            c = new
            break
        c = new
    c = (c - c[::-1]) / 2  # exact symmetry
    return c, (c[:-1] + c[1:]) / 2


def _inv_cdf(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def _window(k: int) -> int:
    """2^a, the largest power of two <= k."""
    return 1 << (k.bit_length() - 1)


def _hadamard(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Normalised Walsh-Hadamard transform of a length-2^j vector (its own inverse)."""
    h = v.copy()
    size = h.size
    step = 1
    while step < size:
        h = h.reshape(-1, 2, step)
        a = h[:, 0, :].copy()
        b = h[:, 1, :]
        h = np.stack((a + b, a - b), axis=1).reshape(-1)
        step *= 2
    return h / math.sqrt(size)


def _signs(k: int, seed32: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r = np.random.default_rng(seed32).random((2, k))
    s = np.where(r < 0.5, -1.0, 1.0)
    return s[0], s[1]


def _rotate(x: NDArray[np.float64], seed32: int) -> NDArray[np.float64]:
    """R x = H_tail D2 H_head D1 x: Hadamards on the first and on the last 2^a entries."""
    k = x.size
    w = _window(k)
    d1, d2 = _signs(k, seed32)
    y = x * d1
    y[:w] = _hadamard(y[:w])
    y *= d2
    y[k - w :] = _hadamard(y[k - w :])
    return y


def _unrotate(y: NDArray[np.float64], seed32: int) -> NDArray[np.float64]:
    """R^T y (each factor is symmetric and orthonormal, applied in reverse order)."""
    k = y.size
    w = _window(k)
    d1, d2 = _signs(k, seed32)
    x = y.copy()
    x[k - w :] = _hadamard(x[k - w :])
    x *= d2
    x[:w] = _hadamard(x[:w])
    return x * d1


def rotation_seed(seed: int | Sequence[int] | None) -> int:
    """The 32-bit rotation seed written in the header, derived from the message seed."""
    if seed is None:
        raise ValueError("rotation codes need a seed (derive it from seed, round, client).")
    return int(np.random.default_rng(seed).integers(0, 2**32))


def rotation_codes(
    values: NDArray[np.floating], bits: int, seed32: int
) -> tuple[float, NDArray[np.int64]]:
    """(scale S as float32, codes) of the kept values; S = 0 for an all-zero message."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return 0.0, np.zeros(0, np.int64)
    y = _rotate(x, seed32)
    norm = float(np.sqrt(np.dot(y, y)))
    centroids, bounds = lloyd_max(bits)
    if not norm > 0 or not math.isfinite(norm):
        return 0.0, np.full(x.size, (1 << bits) // 2, np.int64)
    codes = np.searchsorted(bounds, y * (math.sqrt(x.size) / norm)).astype(np.int64)
    q = centroids[codes]
    inner = float(np.dot(y, q))
    scale = float(np.float32(norm * norm / inner)) if inner > 0 else 0.0
    return scale, codes


def rotation_values(
    scale: float, seed32: int, codes: NDArray[np.integer], bits: int
) -> NDArray[np.float32]:
    """What the codes decode to: R^T (S * centroids[codes]), float64 then float32."""
    centroids, _ = lloyd_max(bits)
    idx = np.asarray(codes, dtype=np.int64)
    if idx.size == 0:
        return np.zeros(0, np.float32)
    return _unrotate(scale * centroids[idx], seed32).astype(np.float32)
