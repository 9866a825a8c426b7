"""Reading the SQLite store's JSON columns."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["loads_or_none"]


def loads_or_none(raw: bytes | str | None) -> Any:
    """The JSON value a nullable column holds; None for SQL NULL."""
    return None if raw is None else orjson.loads(raw)
