"""FedSRD's message sizes (pure Python): the pruning rule, and what the planner expects it to keep.

FedSRD (Sparsify-Reconstruct-Decompose, WWW 2026; the authors' code: Youth-49/FedSRD_2025):

* upload: each client scores every entry of its LoRA update (|dA| times the norm of B's matching
  column, |dB| times the norm of A's matching row), and per matrix drops the scores below their
  q-quantile, q = ``pruning_ratio(kurtosis of the scores)`` = base + min(upper, coeff * ln k)
  (Pearson kurtosis, ln of max(k, 1)); the authors' defaults base 0.85, upper 0.11, coeff 0.1.
  How many entries survive depends on the scores, so an upload's size is data-dependent.
* download: the server's update of one factor (A on even 0-based rounds, B on odd) plus the head,
  masked at random to a share 1 - ``mask_rate`` of those entries (their default 0.9).

The planner cannot see the scores, so it prices an upload at a stated kurtosis
(``EXPECTED_KURTOSIS``: the Pearson kurtosis of |Gaussian| scores, 3.869). At the defaults any
kurtosis above e^(upper / coeff) = 3.004 gives the same ratio, 0.96 (the rule saturates), so the
estimate is exact whenever the scores are at least that heavy-tailed (docs/trainer.md, "FedSRD",
measures it on a real run); the trainer's records keep every real size and ``--budget`` stops on
them.
"""

from __future__ import annotations

import math

from planner.encoding import kept_entries
from planner.limits import is_number, not_finite

DEFAULT_BASE = 0.85
DEFAULT_UPPER = 0.11
DEFAULT_COEFF = 0.1
DEFAULT_MASK_RATE = 0.9
# Pearson kurtosis of |X|, X ~ N(0, 1): E|X|^4 / Var(|X|)^2 with the half-normal's moments
_M1 = math.sqrt(2 / math.pi)
_VAR = 1 - 2 / math.pi


def _half_normal_kurtosis() -> float:
    """E(|X| - mu)^4 / Var^2 for X ~ N(0, 1): raw moments E|X| = m, E X^2 = 1, E|X|^3 = 2m,
    E X^4 = 3."""
    m = _M1
    fourth = 3 - 4 * m * (2 * m) + 6 * m**2 * 1 - 3 * m**4
    return fourth / _VAR**2


EXPECTED_KURTOSIS = _half_normal_kurtosis()


def pruning_ratio(kurtosis: float, *, base: float, upper: float, coeff: float) -> float:
    """The share of one matrix's scores FedSRD drops: base + min(upper, coeff * ln max(k, 1)).
    A nan kurtosis (constant scores) counts as 1: the ratio is ``base``."""
    k = 1.0 if math.isnan(kurtosis) else max(kurtosis, 1.0)
    return base + min(upper, coeff * math.log(k))


def quantile_kept(size: int, ratio: float) -> int:
    """Entries of ``size`` distinct scores at or above their ``ratio``-quantile (linear
    interpolation, as torch.quantile): size - ceil(ratio * (size - 1)), at least 1."""
    if size < 1:
        raise ValueError(f"a matrix must have at least 1 entry, but got {size}.")
    if ratio <= 0:
        return size
    return max(1, size - math.ceil(ratio * (size - 1) - 1e-9))


def expected_upload_entries(
    sizes: tuple[int, ...],
    *,
    base: float,
    upper: float,
    coeff: float,
    kurtosis: float = EXPECTED_KURTOSIS,
) -> int:
    """k of one upload as the planner expects it: every matrix (and head tensor) of ``sizes``
    pruned at the ratio of the stated kurtosis."""
    ratio = pruning_ratio(kurtosis, base=base, upper=upper, coeff=coeff)
    return sum(quantile_kept(s, ratio) for s in sizes)


def download_entries(size: int, mask_rate: float) -> int:
    """k of a download: the random mask keeps k(size, 1 - mask_rate) of the updated entries."""
    return kept_entries(size, 1.0 - mask_rate)


def check_srd(*, base: float, upper: float, coeff: float, mask_rate: float) -> None:
    """The rule's parameters: base in [0, 1), upper and coeff >= 0 with base + upper < 1 (at
    least one entry survives), mask_rate in [0, 1)."""
    for name, value in (("srd_base", base), ("srd_upper", upper), ("srd_coeff", coeff),
                        ("srd_mask_rate", mask_rate)):  # fmt: skip
        if not is_number(value):
            raise ValueError(f"{name} must be a number, but got {value!r}.")
        if not_finite(value) or value < 0:  # not_finite: a 400-digit integer is not finite
            raise ValueError(f"{name} must be a finite number >= 0, but got {value!r}.")
    if base + upper >= 1:
        raise ValueError(
            f"srd_base + srd_upper must be below 1 (the share dropped), but got {base + upper!r}."
        )
    if mask_rate >= 1:
        raise ValueError(f"srd_mask_rate must be below 1, but got {mask_rate!r}.")
