"""What one method sends, as the planner prices it: the method names and their checks
(``METHODS``, ``check_method``, the keep rate, the floor), AdapterLTH's density rule, and
``MethodSpec``, a method's messages for an n-entry adapter (densities, encoding, precisions,
per-tensor top-k, FedSRD's pairs and rule) with the k and bytes of a top-k message (pure Python).

The methods (docs/trainer.md, "Baselines in the same harness"): ``floss`` (top-k at d_down /
d_up), ``dense`` and ``ffa`` (d = 1 both ways; ffa's n is the B matrices and the head), the mask
methods ``sparseadapter`` and ``adapterlth`` (a mask both ends keep after a dense round 1) and
``fedsrd`` / ``fedsrd-e`` (``planner.srd``). ``planner.schedule`` walks their rounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from planner.encoding import (
    QUANTIZED,
    check_density,
    check_encoding_choice,
    check_precision,
    kept_entries,
    resolve_encoding,
)
from planner.limits import is_int, is_number, not_finite
from planner.srd import (
    DEFAULT_BASE,
    DEFAULT_COEFF,
    DEFAULT_MASK_RATE,
    DEFAULT_UPPER,
    EXPECTED_KURTOSIS,
    check_srd,
    download_entries,
    expected_upload_entries,
)

METHODS: tuple[str, ...] = (
    "floss", "dense", "sparseadapter", "adapterlth", "ffa", "fedsrd", "fedsrd-e",
)  # fmt: skip
MASK_METHODS: tuple[str, ...] = ("sparseadapter", "adapterlth")
SRD_METHODS: tuple[str, ...] = ("fedsrd", "fedsrd-e")  # planner.srd: data-dependent uploads
DEFAULT_KEEP_RATE = 0.98  # the thesis's AdapterLTH keeps 98 % of the survivors per round


def check_method(method: str, *, name: str = "method") -> str:
    if method not in METHODS:
        raise ValueError(f"{name} must be one of {', '.join(METHODS)}, but got {method!r}.")
    return method


def check_keep_rate(value: float, *, name: str = "keep_rate") -> float:
    """A keep rate is the share of mask entries kept per round, in (0, 1]."""
    if not is_number(value) or not_finite(value):
        raise ValueError(f"{name} must be a number in (0, 1], but got {value!r}.")
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1], but got {value!r}.")
    return float(value)


def check_floor(value: float | None, *, name: str = "lth_floor") -> float | None:
    """None (no floor: k shrinks down to 1) or a density in (0, 1]."""
    if value is None:
        return None
    return check_density(value, name=name)


def lth_next_density(density: float, *, keep_rate: float, floor: float | None) -> float:
    """AdapterLTH's density after one more round: density * keep_rate, not below the floor."""
    d = density * keep_rate
    return d if floor is None else max(d, floor)


def mask_entries(n: int, density: float) -> int:
    """k of a mask at ``density``: max(1, round(d * n)) (halves up), capped at n; any d >= 0."""
    return min(n, max(1, math.floor(density * n + 0.5)))


@dataclass(frozen=True, kw_only=True)
class MethodSpec:
    """What one method sends for an n-entry adapter (n as trained: for ffa, B + head only)."""

    method: str = field(default="floss", metadata={"help": "one of METHODS"})
    n: int = field(metadata={"help": "entries of the adapter vector P as trained"})
    d_down: float = field(default=1.0, metadata={"help": "floss: download density"})
    d_up: float = field(
        default=1.0, metadata={"help": "floss: upload density; sparseadapter: mask density"}
    )
    keep_rate: float = field(
        default=DEFAULT_KEEP_RATE, metadata={"help": "adapterlth: share kept per round"}
    )
    floor: float | None = field(
        default=None, metadata={"help": "adapterlth: density floor (None: k down to 1)"}
    )
    encoding: str = field(default="auto", metadata={"help": "auto | dense | coo | bitmap | rice"})
    precision: str = field(
        default="fp32", metadata={"help": "value precision both ways (planner.encoding)"}
    )
    precision_down: str | None = field(
        default=None, metadata={"help": "download value precision; None: precision"}
    )
    precision_up: str | None = field(
        default=None, metadata={"help": "upload value precision; None: precision"}
    )
    tensor_sizes: tuple[int, ...] = field(
        default=(), metadata={"help": "per-tensor top-k: sizes of P's tensors in order; () global"}
    )
    srd_pairs: tuple[tuple[int, int], ...] = field(
        default=(),
        metadata={
            "help": "fedsrd: (entries of A, of B) per LoRA pair; the rest of n is the head; "
            "(): P as one pair of halves"
        },
    )
    srd_base: float = field(default=DEFAULT_BASE, metadata={"help": "fedsrd: rule's base"})
    srd_upper: float = field(default=DEFAULT_UPPER, metadata={"help": "fedsrd: rule's upper"})
    srd_coeff: float = field(default=DEFAULT_COEFF, metadata={"help": "fedsrd: rule's coeff"})
    srd_mask_rate: float = field(
        default=DEFAULT_MASK_RATE, metadata={"help": "fedsrd: share a download drops"}
    )
    srd_kurtosis: float = field(
        default=EXPECTED_KURTOSIS,
        metadata={"help": "fedsrd: the score kurtosis uploads are priced at (planner.srd)"},
    )

    def __post_init__(self) -> None:
        check_method(self.method)
        if not is_int(self.n) or self.n < 1:
            raise ValueError(f"adapter size n must be an integer >= 1, but got {self.n!r}.")
        check_density(self.d_down, name="d_down")
        check_density(self.d_up, name="d_up")
        check_keep_rate(self.keep_rate)
        check_floor(self.floor)
        check_encoding_choice(self.encoding)
        check_precision(self.precision)
        for name in ("precision_down", "precision_up"):
            if getattr(self, name) is not None:
                check_precision(getattr(self, name), name=name)
        if self.tensor_sizes and sum(self.tensor_sizes) != self.n:
            raise ValueError(
                f"tensor sizes sum to {sum(self.tensor_sizes)}, but the adapter has n={self.n}."
            )
        check_srd(
            base=self.srd_base,
            upper=self.srd_upper,
            coeff=self.srd_coeff,
            mask_rate=self.srd_mask_rate,
        )
        if self.method in SRD_METHODS and sum(a + b for a, b in self.srd_pairs) > self.n:
            raise ValueError(f"fedsrd's LoRA pairs hold more than the adapter's n={self.n}.")
        check_wire(self)

    @property
    def wire_down(self) -> str:
        """The download's value precision."""
        return self.precision_down or self.precision

    @property
    def wire_up(self) -> str:
        """The upload's value precision."""
        return self.precision_up or self.precision

    @property
    def uniform(self) -> bool:
        """True when every round costs the same bytes (no mask to share, no catch-up)."""
        return self.method not in MASK_METHODS and self.method not in SRD_METHODS

    def srd_parts(self) -> tuple[tuple[int, ...], tuple[int, ...], int]:
        """fedsrd: (sizes of the A matrices, of the B matrices, entries of the rest)."""
        pairs = self.srd_pairs or ((self.n // 2, self.n - self.n // 2),)
        a = tuple(p[0] for p in pairs)
        b = tuple(p[1] for p in pairs)
        return a, b, self.n - sum(a) - sum(b)

    def srd_upload_entries(self) -> int:
        """k of one fedsrd upload as priced: every matrix and the head at the stated kurtosis."""
        a, b, rest = self.srd_parts()
        sizes = (*a, *b, *((rest,) if rest else ()))
        return expected_upload_entries(
            sizes,
            base=self.srd_base,
            upper=self.srd_upper,
            coeff=self.srd_coeff,
            kurtosis=self.srd_kurtosis,
        )

    def srd_delta_entries(self, round_: int) -> int:
        """k of the delta the server sends after 1-based round ``round_``: the masked share of
        A's entries (odd rounds: 0-based even) or B's (even rounds), and of the head's."""
        a, b, rest = self.srd_parts()
        updated = (sum(a) if round_ % 2 == 1 else sum(b)) + rest
        return download_entries(updated, self.srd_mask_rate)

    def topk_entries(self, density: float) -> int:
        """k of a top-k message: global k(n, d), or the sum of k(n_t, d) per tensor."""
        if density >= 1.0:
            return self.n
        if self.tensor_sizes:
            return sum(kept_entries(s, density) for s in self.tensor_sizes)
        return kept_entries(self.n, density)


def wire_spec(
    method: str,
    n: int,
    *,
    encoding: str,
    precision: str,
    precisions: tuple[str, str],
    d_down: float = 1.0,
    d_up: float = 1.0,
    **rest: Any,
) -> MethodSpec:
    """The ``MethodSpec`` of one configuration: (method, n, densities) sent in a wire format
    (``encoding``, primary ``precision``, the (download, upload) value ``precisions``); ``rest``:
    the method's own fields (keep rate, floor, tensor sizes, FedSRD's pairs and rule)."""
    p_down, p_up = precisions
    return MethodSpec(
        method=method,
        n=n,
        d_down=d_down,
        d_up=d_up,
        encoding=encoding,
        precision=precision,
        precision_down=p_down,
        precision_up=p_up,
        **rest,
    )


def uniform_densities(spec: MethodSpec) -> tuple[float, float]:
    """(d_down, d_up) a stateless method sends at: 1 both ways for dense and ffa."""
    return (1.0, 1.0) if spec.method in ("dense", "ffa") else (spec.d_down, spec.d_up)


def topk_message_bytes(spec: MethodSpec, k: int, precision: str) -> int:
    """Bytes of one top-k message of ``spec``: k of n entries, positions and values, in the
    run's encoding (``auto``: the cheapest), values at ``precision``: what the trainer sends."""
    return resolve_encoding(spec.n, k, encoding=spec.encoding, precision=precision)[1]


def check_wire(spec: MethodSpec) -> None:
    """Refuse a precision/encoding pair that does not exist for what ``spec`` sends: the forced
    ``dense`` encoding writes the dropped zeros, which b-bit codes cannot hold, so it needs
    every entry kept (floss at d = 1; the mask methods send k < n after round 1)."""
    if spec.encoding != "dense":
        return
    for direction, precision in (("download", spec.wire_down), ("upload", spec.wire_up)):
        if precision not in QUANTIZED:
            continue
        density = spec.d_down if direction == "download" else spec.d_up
        if spec.method in ("dense", "ffa"):
            continue
        partial = (
            spec.method in MASK_METHODS
            or spec.method in SRD_METHODS
            or spec.topk_entries(density) < spec.n
        )
        if partial:
            raise ValueError(
                f"encoding dense with {direction} precision {precision} does not exist for "
                f"{spec.method} below density 1: b-bit codes carry the kept values only; "
                "use encoding auto, bitmap, rice or coo."
            )
