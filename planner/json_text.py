"""Plan JSON text fast: the bytes of ``json.dumps``, written by json's C encoder.

``json.dumps(obj, indent=2)`` runs CPython's pure-Python encoder (the C one has no indent), a
few microseconds a value: the plan's thousands of rows are mostly that. ``dumps_indented``
writes the same text, byte for byte, with the C encoder doing each container whose values are
all scalars in one call (its item separator carries the newline and the indentation) and Python
only the few containers around them. ``json_lines`` is a fleet plan's layout: the rows as a JSON
list, one compact row a line (docs/planner.md, the output formats).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring_ascii

# the C encoder (ensure_ascii, allow_nan, ", " and ": "): no indent, so no pure-Python path;
# check_circular off: plan rows are trees built per call, and the text is the same
_encode: Callable[[object], str] = json.JSONEncoder(check_circular=False).encode
_SCALARS = (str, int, float, type(None))  # bool is an int
_SCALAR_TYPES = frozenset((str, int, float, bool, type(None)))  # exactly these: checked fast
_flat_encoders: dict[str, Callable[[object], str]] = {}


def _flat_encoder(inner: str) -> Callable[[object], str]:
    """The C encoder whose item separator is a newline and ``inner`` (the items' indentation)."""
    enc = _flat_encoders.get(inner)
    if enc is None:
        enc = json.JSONEncoder(check_circular=False, separators=("," + inner, ": ")).encode
        _flat_encoders[inner] = enc
    return enc


def _key_text(key: object) -> str:
    """A dict key as json.dumps writes it: strings as they are; numbers, bools and None as JSON."""
    if isinstance(key, str):
        return encode_basestring_ascii(key)
    if isinstance(key, float) or key is None or isinstance(key, int):  # bool is an int
        return encode_basestring_ascii(_encode(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _write(obj: object, out: list[str], outer: str, step: str) -> None:
    """Append ``obj``'s indented text; ``outer`` is a newline and the enclosing indentation."""
    if isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        inner = outer + step
        if all(isinstance(v, _SCALARS) for v in obj.values()):
            text = _flat_encoder(inner)(obj)  # "{" items joined by ",\n<inner>" "}"
            out.append("{" + inner + text[1:-1] + outer + "}")
            return
        out.append("{")
        sep = inner
        for key, value in obj.items():
            out.append(sep + _key_text(key) + ": ")
            _write(value, out, inner, step)
            sep = "," + inner
        out.append(outer + "}")
    elif isinstance(obj, list | tuple):
        if not obj:
            out.append("[]")
            return
        inner = outer + step
        if all(isinstance(v, _SCALARS) for v in obj):
            text = _flat_encoder(inner)(obj)
            out.append("[" + inner + text[1:-1] + outer + "]")
            return
        if _flat_dicts(obj):  # a plan's rows: one C call for them all
            out.append(_rows_text(obj, outer, inner, inner + step))
            return
        out.append("[")
        sep = inner
        for value in obj:
            out.append(sep)
            _write(value, out, inner, step)
            sep = "," + inner
        out.append(outer + "]")
    else:
        out.append(_encode(obj))


def _flat_dicts(items: list[object] | tuple[object, ...]) -> bool:
    """Whether every item is a non-empty dict whose values are JSON scalars."""
    return all(
        type(d) is dict and d and _SCALAR_TYPES.issuperset(map(type, d.values())) for d in items
    )


def _rows_text(rows: list[object] | tuple[object, ...], outer: str, inner: str, deeper: str) -> str:
    """A non-empty list of flat dicts, indented, from one compact C-encoded text.

    With the item separator "," + ``deeper`` the C encoder writes ``[{a,<deeper>b},<deeper>{c}]``.
    A raw newline never occurs inside a JSON string, and inside a row the separator is followed
    by a key's quote, so "}," + ``deeper`` + "{" occurs only between two rows: there the rows'
    own lines go in.
    """
    text = _flat_encoder(deeper)(rows)
    between = text[2:-2].replace("}," + deeper + "{", inner + "}," + inner + "{" + deeper)
    return "[" + inner + "{" + deeper + between + inner + "}" + outer + "]"


def dumps_indented(obj: object, indent: int = 2) -> str:
    """``json.dumps(obj, indent=indent)``, byte for byte (its other arguments at their defaults),
    for the JSON types (dict, list, tuple, str, int, float, bool, None), several times faster."""
    out: list[str] = []
    _write(obj, out, "\n", " " * indent)
    return "".join(out)


def json_lines(rows: Iterable[object]) -> str:
    """The rows as a JSON list, one compact row (``json.dumps(row)``) a line, and a newline."""
    return "[\n" + ",\n".join(map(_encode, rows)) + "\n]\n"
