"""Row-wise ``math.fsum`` and ``statistics.stdev`` of a float matrix, exactly, with numpy.

The fleet planner reports, per configuration, the mean of its walked round seconds
(``math.fsum(seconds) / R``) and their standard error (``statistics.stdev``). Both Python
functions are exactly rounded: fsum is the float nearest the exact sum, stdev (Python >= 3.11)
the float nearest the square root of the exact sample variance. Called per row they cost ~10 us
and ~300 us for 500 values, too slow for thousands of configurations; here every row is done at
once in double-double arithmetic (error-free transformations, Dekker 1971; Ogita, Rump, Oishi
2005: "Accurate sum and dot product"), with a rigorous error bound per row. Where the bound
cannot decide the rounding (the value sits within the bound of a midpoint between two floats,
or nearly all values are equal) the row is handed to the Python function itself, so the result
is always the Python function's, bit for bit.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]

_SPLIT = 134217729.0  # 2**27 + 1: Veltkamp's splitter for float64
# Relative error bounds, generous by orders of magnitude over the analysis (u = 2**-53): a
# pairwise double-double sum of n <= 2**20 non-negative terms errs by < 2 * 20 * u**2 = 2**-100.
_SUM_REL = 2.0**-90
_ROUND_REL = 2.0**-95  # one double-double operation


def _two_sum(a: Floats, b: Floats) -> tuple[Floats, Floats]:
    """s + e == a + b exactly, s = fl(a + b) (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _fast_two_sum(a: Floats, b: Floats) -> tuple[Floats, Floats]:
    """s + e == a + b exactly where |a| >= |b| (Dekker)."""
    s = a + b
    return s, b - (s - a)


def _split(a: Floats) -> tuple[Floats, Floats]:
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a: Floats, b: Floats) -> tuple[Floats, Floats]:
    """p + e == a * b exactly, p = fl(a * b) (Dekker; no overflow for our magnitudes)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _dd_div(hi: Floats, lo: Floats, b: float) -> tuple[Floats, Floats]:
    """(hi + lo) / b in double-double (relative error a few u**2)."""
    q = hi / b
    p, e = _two_prod(q, np.full_like(q, b))
    return _fast_two_sum(q, ((hi - p) - e + lo) / b)


def _dd_sum_nonnegative(x: Floats) -> tuple[Floats, Floats]:
    """Pairwise double-double sum along the first axis of non-negative floats [n, rows]: the
    first half of the rows plus the second, level by level (contiguous blocks), an odd row out
    carried to the next level (depth ceil(log2 n), as a balanced tree)."""
    hi, lo = x, None
    while hi.shape[0] > 1:
        half = hi.shape[0] // 2
        s, e = _two_sum(hi[:half], hi[half : 2 * half])
        if lo is not None:
            e += lo[:half]
            e += lo[half : 2 * half]
        s, e = _fast_two_sum(s, e)
        if hi.shape[0] % 2:
            s = np.concatenate([s, hi[2 * half :]])
            e = np.concatenate([e, np.zeros_like(hi[2 * half :]) if lo is None else lo[2 * half :]])
        hi, lo = s, e
    return hi[0], (np.zeros_like(hi[0]) if lo is None else lo[0])


def _round_checked(hi: Floats, lo: Floats, bound: Floats) -> tuple[Floats, NDArray[np.bool_]]:
    """(the float nearest hi + lo, whether it is also the float nearest every value within
    ``bound`` of hi + lo) for values >= 0."""
    r, e = _two_sum(hi, lo)
    up = np.nextafter(r, np.inf) - r
    down = r - np.nextafter(r, -np.inf)
    ok = (e + bound < up / 2) & (e - bound > -down / 2) & np.isfinite(r) & (r >= 0)
    return r, ok


def fsum_rows(x: Floats) -> Floats:
    """``[math.fsum(row) for row in x]`` for a 2-D array of finite values >= 0."""
    return fsum_stdev_rows(x, stdev=False)[0]


def stdev_rows(x: Floats) -> Floats:
    """``[statistics.stdev(row) for row in x]`` for a 2-D array of finite values >= 0 with at
    least two columns (Python >= 3.11: the correctly rounded square root of the exact variance)."""
    return fsum_stdev_rows(x)[1]


def fsum_stdev_rows(x: Floats, *, stdev: bool = True) -> tuple[Floats, Floats]:
    """(``math.fsum`` of each row, ``statistics.stdev`` of each row: zeros unless ``stdev``) for a
    2-D array of values >= 0 (others, and rows the error bound cannot settle, go to Python)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 2 or (stdev and x.shape[1] < 2):
        raise ValueError(f"needs a 2-D array (of >= 2 columns for stdev), but got {x.shape}.")
    with np.errstate(all="ignore"):  # overflow near 1e308: the bound check sends it to Python
        return _fsum_stdev_rows(x, stdev=stdev)


def _fsum_stdev_rows(x: Floats, *, stdev: bool) -> tuple[Floats, Floats]:
    rows, n = x.shape
    sdev = np.zeros(rows)
    if n == 0:
        return np.zeros(rows), sdev
    xt = np.ascontiguousarray(x.T)  # [n, rows]: every step below runs over contiguous blocks
    sh, sl = _dd_sum_nonnegative(xt)
    total, ok = _round_checked(sh, sl, _SUM_REL * sh)
    usable: NDArray[np.bool_] = np.asarray((xt >= 0).all(axis=0) & np.isfinite(sh))
    for i in np.flatnonzero(~(ok & usable)):
        total[i] = math.fsum(x[i].tolist())
    if not stdev:
        return total, sdev
    equal = usable & (xt.max(axis=0) == xt.min(axis=0))  # stdev exactly 0.0
    todo = np.flatnonzero(~equal)
    if todo.size == rows:
        sdev = _stdev(xt, sh, sl, usable)
    elif todo.size:
        sdev[todo] = _stdev(xt[:, todo], sh[todo], sl[todo], usable[todo])
    return total, sdev


def _stdev(y: Floats, sh: Floats, sl: Floats, usable: NDArray[np.bool_]) -> Floats:
    """Each column's stdev of y [n, columns] (the columns are the rows asked about)."""
    n = y.shape[0]
    c = (sh + sl) / n  # within a few ulps of the mean
    # SS = sum (y - mean)^2 = sum (y - c)^2 - D^2 / n, D = sum (y - c) = S - n c
    dh, dl = _two_sum(y, -c)  # exact
    ph = dh * dh
    a, b = _split(dh)
    pl = ((a * a - ph) + 2.0 * a * b) + b * b  # dh^2 = ph + pl exactly
    qh, ql = _dd_sum_nonnegative(ph)
    # the small parts in plain floats: |error| <= n u * 4 u * sum ph
    ql = ql + (pl + (2.0 * dh * dl + dl * dl)).sum(axis=0)
    ch, cl = _two_prod(c, np.full_like(c, float(n)))  # n c exactly
    s, e = _two_sum(sh, -ch)
    d_h, d_l = _fast_two_sum(s, e + (sl - cl))
    err_d = _SUM_REL * sh + _ROUND_REL * np.abs(d_h)
    d2h, d2l = _two_prod(d_h, d_h)
    d2h, d2l = _dd_div(d2h, d2l + 2.0 * d_h * d_l, float(n))
    err_d2 = (2 * np.abs(d_h) * err_d + err_d * err_d) / n + _ROUND_REL * d2h
    s, e = _two_sum(qh, -d2h)
    ssh, ssl = _fast_two_sum(s, e + (ql - d2l))
    err_ss = _SUM_REL * qh + err_d2 + _ROUND_REL * (qh + d2h)
    # variance = SS / (n - 1), then its square root, both in double-double
    vh, vl = _dd_div(ssh, ssl, float(n - 1))
    err_v = err_ss / (n - 1) + _ROUND_REL * np.abs(vh)
    positive = vh > 4 * err_v
    vh_safe = np.where(positive, vh, 1.0)
    r0 = np.sqrt(vh_safe)
    p, q = _two_prod(r0, r0)
    r1 = ((vh_safe - p) - q + np.where(positive, vl, 0.0)) / (2 * r0)
    rh, rl = _fast_two_sum(r0, r1)
    bound = 2 * (np.where(positive, err_v, 0.0) / (2 * r0) + _ROUND_REL * r0)
    got, ok = _round_checked(rh, rl, bound)
    ok &= positive & usable
    for i in np.flatnonzero(~ok):
        got[i] = statistics.stdev(y[:, i].tolist())
    return got


__all__ = ["fsum_rows", "fsum_stdev_rows", "stdev_rows"]
