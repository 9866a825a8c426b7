"""Typed search attributes: values a run is listed and filtered by.

A search attribute's type is the type of its Python value, checked when it is written
(``client.start(..., search_attributes=...)``, ``ctx.upsert_search_attributes``):

=============  ===================  ==========================================
type           Python value         filter
=============  ===================  ==========================================
keyword        ``str``              equality
keyword_list   ``list[str]``        equality with one element (contains)
int            ``int`` (64-bit)     equality, :class:`Range`
float          ``float`` (finite)   equality, :class:`Range`
bool           ``bool``             equality
datetime       aware ``datetime``   equality, :class:`Range` (microseconds)
=============  ===================  ==========================================

Why inferred, not registered per namespace (as Temporal does): the check must give
the same answer on replay as when the code first ran, so it may depend only on the
code and the run's history, never on namespace settings that can change in between.
An attribute keeps its type for the life of a run (and across continue-as-new):
upserting another type raises :class:`InvalidArgument` in the workflow code. A filter
matches values of its own type only (``priority=3`` does not match ``3.0``).

In history (``WorkflowStarted``/``SearchAttributesUpserted`` attrs) and in the store
an attribute is encoded as ``{"type": t, "values": [...]}`` (scalars are one-element
lists; datetimes are Unix microseconds; bools 0/1); ``None`` removes it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import InvalidArgument, PayloadTooLarge

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_KEYWORD",
    "MAX_LIST",
    "TYPES",
    "Encoded",
    "Range",
    "check_name",
    "check_type_change",
    "decode",
    "decode_value",
    "encode",
    "encode_value",
    "merge",
]

TYPES = ("keyword", "keyword_list", "int", "float", "bool", "datetime")
MAX_ATTRIBUTES = 64  # per run
MAX_KEYWORD = 1024  # UTF-8 bytes of one keyword: PostgreSQL indexes it (2,700 at most)
MAX_LIST = 64  # elements of one keyword list
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_INT64 = (-(2**63), 2**63 - 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Encoded = dict[str, Any]  # {"type": ..., "values": [...]}


@dataclass(frozen=True, slots=True)
class Range:
    """A filter on a numeric or datetime attribute: ``min <= value <= max`` (either end
    may be left open with ``None``)."""

    min: int | float | datetime | None = None
    max: int | float | datetime | None = None


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"a search attribute name must be a string of 1 to 64 letters, digits, '_',"
            f" '.' or '-' not starting with a digit, got {name!r}"
        )
    return name


def _keyword(name: str, value: str) -> str:
    if "\x00" in value:
        raise InvalidArgument(
            f"search attribute {name!r}: a keyword must not contain the NUL character"
            f" (\\x00), got {value!r}"
        )
    if len(value) > MAX_KEYWORD // 4 and (size := len(value.encode())) > MAX_KEYWORD:
        raise PayloadTooLarge(
            f"search attribute {name!r}: a keyword holds at most {MAX_KEYWORD} bytes (UTF-8),"
            f" got {size}"
        )
    return value


def encode_value(name: str, value: Any) -> Encoded:
    """Check one value and encode it (its type inferred from the Python type)."""
    if isinstance(value, bool):  # before int: bool is an int subclass
        return {"type": "bool", "values": [int(value)]}
    if isinstance(value, str):
        return {"type": "keyword", "values": [_keyword(name, value)]}
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise InvalidArgument(f"search attribute {name!r}: {value} does not fit in 64 bits")
        return {"type": "int", "values": [value]}
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(f"search attribute {name!r}: {value} is not a finite number")
        return {"type": "float", "values": [value]}
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidArgument(
                f"search attribute {name!r}: a datetime must be timezone-aware"
                " (e.g. datetime.now(UTC))"
            )
        return {"type": "datetime", "values": [(value - _EPOCH) // timedelta(microseconds=1)]}
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        if len(value) > MAX_LIST:
            raise PayloadTooLarge(
                f"search attribute {name!r}: a keyword list holds at most {MAX_LIST}"
                f" elements, got {len(value)}"
            )
        # A list is a set for filtering; duplicates would only be stored twice.
        unique = list(dict.fromkeys(_keyword(name, v) for v in value))
        return {"type": "keyword_list", "values": unique}
    raise InvalidArgument(
        f"search attribute {name!r}: unsupported value {value!r} of type"
        f" {type(value).__name__} (use str, list[str], int, float, bool or an aware datetime)"
    )


def encode(attributes: Any, *, removals: bool = False) -> dict[str, Encoded | None]:
    """Check a mapping of search attributes and encode it for history.

    With ``removals`` a value of ``None`` is kept, as a removal (upserts); otherwise
    it is an error.
    """
    if not isinstance(attributes, Mapping):
        raise InvalidArgument(
            f"search attributes must be a mapping of names to values, got {attributes!r}"
        )
    if len(attributes) > MAX_ATTRIBUTES:
        raise PayloadTooLarge(
            f"at most {MAX_ATTRIBUTES} search attributes per run, got {len(attributes)}"
        )
    out: dict[str, Encoded | None] = {}
    for name, value in attributes.items():
        check_name(name)
        if value is None:
            if not removals:
                raise InvalidArgument(f"search attribute {name!r} has no value (None)")
            out[name] = None
        else:
            out[name] = encode_value(name, value)
    return out


def decode_value(encoded: Encoded) -> Any:
    kind, values = encoded["type"], encoded["values"]
    match kind:
        case "keyword_list":
            return list(values)
        case "bool":
            return bool(values[0])
        case "datetime":
            return _EPOCH + timedelta(microseconds=values[0])
        case "float":
            return float(values[0])
    return values[0]


def decode(encoded: Mapping[str, Encoded | None]) -> dict[str, Any]:
    """Python values of encoded attributes (removals left out)."""
    return {name: decode_value(e) for name, e in encoded.items() if e is not None}


def check_type_change(current: Mapping[str, Encoded], update: Mapping[str, Encoded | None]) -> None:
    """Refuse an update that gives an attribute of the run another type."""
    for name, new in update.items():
        old = current.get(name)
        if new is not None and old is not None and old["type"] != new["type"]:
            raise InvalidArgument(
                f"search attribute {name!r} has type {old['type']} in this run;"
                f" it cannot become {new['type']}"
            )


def merge(
    current: Mapping[str, Encoded], update: Mapping[str, Encoded | None]
) -> dict[str, Encoded]:
    """The attributes after an upsert (``None`` removes one)."""
    merged = dict(current)
    for name, new in update.items():
        if new is None:
            merged.pop(name, None)
        else:
            merged[name] = new
    if len(merged) > MAX_ATTRIBUTES:
        raise PayloadTooLarge(f"at most {MAX_ATTRIBUTES} search attributes per run")
    return merged
