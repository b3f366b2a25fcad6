"""What travels in a Flower message: the planner codec's payload, unchanged, and a little meta.

A payload is one ``Array`` of dtype uint8 whose ``data`` is exactly the bytes ``planner.codec``
produced (stype ``floss/codec``; no header inside the array), in an ``ArrayRecord``. Beside it a
``ConfigRecord`` carries what the receiver needs to decode and check it: the round, the client,
k, the message kind (``full``, ``mask``, ``values``: see ``trainer.methods.Method.messages``),
the mask version, a CRC-32 of the payload and the run-config digest (fleets add the client's
own upload density ``d-up`` and ``late``, ``federation.server``). Every check failure is a
``FederationError`` naming the round, the client and what is wrong.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from planner import codec
from planner.encoding import resolve_encoding

DOWNLOAD = "download"  # ArrayRecord of a server -> client message
UPLOAD = "upload"  # ArrayRecord of a client -> server reply
META = "floss"  # ConfigRecord beside it
PAYLOAD = "payload"  # the Array's key
STYPE = "floss/codec"
KINDS = ("full", "mask", "values")


class FederationError(ValueError):
    """A bad node, message or payload; the message names it (round, client, node)."""


def payload_record(payload: bytes) -> ArrayRecord:
    array = Array(dtype="uint8", shape=(len(payload),), stype=STYPE, data=bytes(payload))
    return ArrayRecord({PAYLOAD: array})


def crc32(payload: bytes) -> int:
    return zlib.crc32(payload) & 0xFFFFFFFF


def message_content(record: str, payload: bytes, meta: dict[str, Any]) -> RecordDict:
    return RecordDict(
        {
            record: payload_record(payload),
            META: ConfigRecord({**meta, "crc32": crc32(payload)}),
        }
    )


def read_message(content: RecordDict, record: str, what: str) -> tuple[bytes, dict[str, Any]]:
    """(payload, meta) of a message, after checking its records, array and CRC-32."""
    try:
        arrays = content.array_records[record]
        meta = dict(content.config_records[META])
    except KeyError:
        raise FederationError(f"{what}: the message has no {record!r} payload or meta.") from None
    array = arrays.get(PAYLOAD)
    if array is None or array.stype != STYPE or array.dtype != "uint8":
        raise FederationError(f"{what}: the {record!r} record holds no floss/codec uint8 payload.")
    payload = array.data
    if len(array.shape) != 1 or array.shape[0] != len(payload):
        raise FederationError(
            f"{what}: payload of {len(payload)} bytes, but its array says shape {array.shape}."
        )
    if crc32(payload) != meta.get("crc32"):
        raise FederationError(f"{what}: corrupted payload (CRC-32 does not match).")
    return payload, meta


def meta_int(meta: dict[str, Any], key: str, what: str, *, low: int = 0) -> int:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise FederationError(f"{what}: meta {key!r} must be an integer >= {low}, got {value!r}.")
    return value


def decode_entries(
    payload: bytes, *, n: int, k: int, encoding: str, precision: str, what: str
) -> np.ndarray:
    """The dense n-vector of a payload holding k of n entries (``encoding`` as configured:
    ``auto`` resolves to the encoding the sender's codec picked for the same n and k)."""
    if not 1 <= k <= n:
        raise FederationError(f"{what}: k={k} kept entries of n={n} is out of range.")
    used, expected = resolve_encoding(n, k, encoding=encoding, precision=precision)
    if len(payload) != expected:
        raise FederationError(
            f"{what}: payload of {len(payload)} bytes, but {used} of k={k} of n={n} entries at "
            f"{precision} is {expected} bytes (wrong length)."
        )
    try:
        return codec.decode(payload, n=n, k=k, encoding=used, precision=precision)
    except (ValueError, IndexError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise FederationError(f"{what}: corrupted payload ({first}).") from None


def decode_vector(
    payload: bytes,
    *,
    kind: str,
    n: int,
    k: int,
    encoding: str,
    precision: str,
    positions: torch.Tensor | None,
    device: torch.device,
    what: str,
) -> torch.Tensor:
    """The vector a message decodes to, exactly as ``trainer.sparse`` decodes it: a message
    with positions (``full``/``mask``) through the codec, a ``values`` message (k values, no
    positions) scattered into the mask both ends hold."""
    if kind not in KINDS:
        raise FederationError(f"{what}: unknown message kind {kind!r}.")
    if kind != "values":
        dense = decode_entries(payload, n=n, k=k, encoding=encoding, precision=precision, what=what)
        return torch.from_numpy(dense).to(device)
    if positions is None or int(positions.numel()) != k:
        held = "no mask" if positions is None else f"a mask of {int(positions.numel())} entries"
        raise FederationError(
            f"{what}: {k} values for a fixed mask, but the receiver holds {held}."
        )
    values = decode_entries(payload, n=k, k=k, encoding="dense", precision=precision, what=what)
    out = torch.zeros(n, dtype=torch.float32, device=device)
    out[positions] = torch.from_numpy(values).to(device)
    return out


def mask_positions(vector: torch.Tensor, k: int, what: str) -> torch.Tensor:
    """The positions a ``mask`` message carried: its k nonzero entries (the kept entries of a
    fixed mask are the largest |P|, never exactly zero unless P is)."""
    positions = torch.nonzero(vector, as_tuple=False).reshape(-1)
    if int(positions.numel()) != k:
        raise FederationError(
            f"{what}: a mask message of k={k} entries decodes to {int(positions.numel())} "
            "nonzero values; the mask cannot be recovered."
        )
    return positions
