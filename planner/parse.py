"""Values typed as text (a flag, a form field, a config string) turned into values, and back.

One place for the small grammar every front door shares: comma lists of ranks, densities
(``1/16``, ``0.0625``, ``1``), methods, value precisions, names and numbers; how a density is
written back (``1/16``). ``floss-plan``, ``floss-tune``, ``floss-train``, the service's request
models and the tuner all parse through these, so a flag and a form field say the same thing about
the same mistake. (Whether a value is a number at all: ``planner.limits.is_int``/``is_number``.)
Pure Python: no torch, nothing above the planner.
"""

from __future__ import annotations

from fractions import Fraction

from planner.encoding import parse_precision
from planner.method_spec import METHODS
from planner.model import MAX_RANK


def parse_ints(text: str, *, name: str) -> tuple[int, ...]:
    """'1,2,4,8' -> (1, 2, 4, 8): LoRA ranks, each in 1 .. 2**31 - 1."""
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = int(part)
        except ValueError:
            raise ValueError(
                f"{name}: {part!r} is not an integer (expected e.g. 1,2,4,8)."
            ) from None
        if value < 1:
            raise ValueError(f"{name}: rank must be >= 1, but got {value}.")
        if value > MAX_RANK:  # a tensor dimension; 10**400 overflowed the float pricing
            raise ValueError(f"{name}: rank must be at most 2**31 - 1, but got {value}.")
        out.append(value)
    return tuple(out)


def fraction_value(text: str) -> float | None:
    """'1/16', '0.0625' or '1' -> its float; None when it is not one ('x', '1/0', '9' * 400)."""
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def parse_density(text: str, *, name: str) -> float:
    """'1/16', '0.0625' or '1' -> a float in (0, 1]."""
    part = text.strip()
    value = fraction_value(part)
    if value is None:
        raise ValueError(f"{name}: {part!r} is not a density (expected e.g. 1, 1/4, 0.0625).")
    if not 0 < value <= 1:
        raise ValueError(f"{name}: density must be in (0, 1], but got {part!r}.")
    return value


def parse_densities(text: str, *, name: str) -> tuple[float, ...]:
    """'1,1/4,0.0625' -> (1.0, 0.25, 0.0625); an empty list is refused as one bad density."""
    return tuple(parse_density(p, name=name) for p in text.split(",") if p.strip()) or (
        parse_density(text, name=name),
    )


def parse_plan_grid(
    *, ranks: str, d_down: str, d_up: str
) -> tuple[tuple[int, ...], tuple[float, ...], tuple[float, ...]]:
    """The (rank, d_down, d_up) grid of ``--ranks``, ``--d-down`` and ``--d-up``, in that order."""
    return (
        parse_ints(ranks, name="--ranks"),
        parse_densities(d_down, name="--d-down"),
        parse_densities(d_up, name="--d-up"),
    )


def parse_methods(text: str) -> tuple[str, ...]:
    """'floss', 'floss,ffa' or 'all' -> methods in the planner's order, each once."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise ValueError(f"--method: expected one of {', '.join(METHODS)}, all, got {text!r}.")
    if "all" in names:
        return METHODS
    for name in names:
        if name not in METHODS:
            raise ValueError(
                f"--method must be one of {', '.join(METHODS)}, all (or a comma list), "
                f"but got {name!r}."
            )
    return tuple(m for m in METHODS if m in names)


def parse_precisions(text: str | None, *, name: str) -> tuple[str, ...]:
    """'fp32,q8,4' -> ('fp32', 'q8', 'rh4'); None -> () (the plan's --precision)."""
    if text is None:
        return ()
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise ValueError(f"{name} must be a comma list like fp32,8,4, but got {text!r}.")
    out = tuple(parse_precision(t, name=name) for t in items)
    if len(set(out)) != len(out):
        raise ValueError(f"{name} has a repeated value: {text!r}.")
    return out


def parse_names(text: str) -> tuple[str, ...]:
    """'floss, dense' -> ('floss', 'dense')."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_floats(text: str, *, name: str) -> list[float]:
    """'0.98, 0.95' -> [0.98, 0.95]."""
    out = []
    for part in parse_names(text):
        try:
            out.append(float(part))
        except ValueError:
            raise ValueError(f"{name}: {part!r} is not a number.") from None
    return out


def fmt_density(d: float) -> str:
    """1/16 for simple fractions, else a short decimal."""
    f = Fraction(d).limit_denominator(1 << 20)
    if float(f) == d and f.numerator == 1:
        return "1" if f.denominator == 1 else f"1/{f.denominator}"
    return f"{d:.4g}"


def fmt_densities(ds: tuple[float, ...] | list[float]) -> str:
    """(1.0, 0.25) -> '1,1/4': a density list as a flag's text."""
    return ",".join(fmt_density(d) for d in ds)


def fmt_fractions(ds: tuple[float, ...] | list[float]) -> str:
    """(1.0, 0.25, 0.3) -> '1,1/4,5404319552844595/18014398509481984': exact, as a flag's text."""
    return ",".join(str(Fraction(d)) for d in ds)


def density_key(d: float) -> Fraction:
    """A density as a dictionary key: its nearest simple fraction, so 1/3 and 0.333...3 meet."""
    return Fraction(d).limit_denominator(1 << 40)


__all__ = [
    "density_key",
    "fmt_densities",
    "fmt_density",
    "fmt_fractions",
    "fraction_value",
    "parse_densities",
    "parse_density",
    "parse_floats",
    "parse_ints",
    "parse_methods",
    "parse_names",
    "parse_plan_grid",
    "parse_precisions",
]
