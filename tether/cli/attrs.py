"""Search attributes and times as command-line options.

``--attr NAME=VALUE`` sets (``workflow start``) or filters by (``workflow list``) a
search attribute. VALUE is read as JSON when it parses (``3``, ``2.5``, ``true``,
``["a","b"]``), else as a string; ``NAME:TYPE=VALUE`` says the type (``keyword``,
``keyword_list`` (comma-separated), ``int``, ``float``, ``bool``, ``datetime``
(ISO 8601 with a zone)). In a filter ``LOW..HIGH`` is an inclusive range (an end may
be empty).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from ..search_attributes import Range
from .output import fail

__all__ = ["parse_attrs", "parse_filters", "parse_time"]


def _value(text: str, kind: str) -> Any:
    try:
        match kind:
            case "":
                try:
                    return orjson.loads(text)
                except orjson.JSONDecodeError:
                    return text
            case "keyword" | "str":
                return text
            case "keyword_list" | "list":
                return [v for v in text.split(",") if v]
            case "int":
                return int(text)
            case "float":
                return float(text)
            case "bool":
                if text.lower() not in ("true", "false"):
                    raise ValueError("expected true or false")
                return text.lower() == "true"
            case "datetime":
                return datetime.fromisoformat(text)
    except ValueError as exc:
        fail(f"--attr: {text!r} is not of type {kind}: {exc}", 2)
    fail(f"--attr: unknown type {kind!r} (keyword, keyword_list, int, float, bool, datetime)", 2)
    raise AssertionError("unreachable")


def _split(raw: str) -> tuple[str, str, str]:
    spec, sep, text = raw.partition("=")
    if not sep or not spec:
        fail(f"--attr takes NAME=VALUE or NAME:TYPE=VALUE, got {raw!r}", 2)
    name, _, kind = spec.partition(":")
    return name, kind, text


def parse_attrs(raws: list[str]) -> dict[str, Any] | None:
    """Search attributes to start a run with (None when there are none)."""
    if not raws:
        return None
    return {name: _value(text, kind) for name, kind, text in map(_split, raws)}


def parse_filters(raws: list[str]) -> dict[str, Any] | None:
    """Search attribute filters: equality, or ``LOW..HIGH`` ranges."""
    if not raws:
        return None
    out: dict[str, Any] = {}
    for name, kind, text in map(_split, raws):
        low, sep, high = text.partition("..")
        if sep and kind not in ("keyword", "str"):
            out[name] = Range(
                _value(low, kind) if low else None, _value(high, kind) if high else None
            )
        else:
            out[name] = _value(text, kind)
    return out


def parse_time(text: str | None, option: str) -> float | datetime | None:
    """A time option: Unix seconds, or ISO 8601 with a zone."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} takes Unix seconds or an ISO 8601 time, got {text!r}", 2)
    raise AssertionError("unreachable")
