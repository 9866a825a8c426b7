"""Visibility: listing a namespace's runs by type, status, time and search attributes.

Schema (``migrations/0006_visibility.sql`` of each store). Search attributes live in
one entity-attribute-value table, a row per value (a keyword list has a row per
element, ``idx`` its place)::

    search_attributes(namespace, run_id, name, idx, type,
                      str_value, int_value, float_value, created_at)

Each type uses one value column: keywords ``str_value``; ints, bools and datetimes
(Unix microseconds) ``int_value``; floats ``float_value``. A partial index per value
column, ``(namespace, name[, type], value, created_at, run_id)``, serves a filter on
one attribute *and* the listing order: ``created_at`` is the run's start time, copied
into the row (it never changes), so an equality filter reads its page straight from
the index, newest first, however many runs the namespace holds. Why EAV and not a
column per attribute: attributes are chosen by users at run time, and a new column
(and index) per name would be a schema change per tenant.

The rows are written by a trigger on ``events``: the search attributes of a
``WorkflowStarted`` or ``SearchAttributesUpserted`` event are applied in the
transaction that appends the event, whichever path appends it (start, signal-with-start,
a child, continue-as-new, a workflow task's commit). Deleting runs or a namespace
deletes the rows with everything else of the run (every table with ``namespace`` and
``run_id`` columns is swept).

Runs are listed newest first by ``(created_at, run_id)``, paged by keyset: the page
token is the last row's key, so a page costs the same at any depth and runs started
meanwhile (newer) never shift later pages. Indexes on ``runs`` cover the filters
without search attributes: ``(namespace, status, created_at, run_id)``,
``(namespace, workflow_type, created_at, run_id)``,
``(namespace, workflow_type, status, created_at, run_id)``; a close-time range uses
``runs_closed (namespace, closed_at)``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import InvalidArgument
from ..search_attributes import Encoded, Range, check_name, decode_value, encode_value

__all__ = [
    "AttributeFilter",
    "RunFilter",
    "attribute_filter",
    "decode_page_token",
    "encode_page_token",
    "list_runs_sql",
    "search_attribute_rows",
]

_COLUMN = {
    "keyword": "str_value",
    "int": "int_value",
    "bool": "int_value",
    "datetime": "int_value",
    "float": "float_value",
}


@dataclass(frozen=True, slots=True)
class AttributeFilter:
    """``name`` of ``type`` (keyword, int, float, bool or datetime) equal to ``low``
    when ``equals``, else within ``[low, high]`` (``None`` leaves an end open). Values
    are encoded as in history (datetimes in Unix microseconds, bools 0/1)."""

    name: str
    type: str
    low: Any = None
    high: Any = None
    equals: bool = True


@dataclass(frozen=True, slots=True)
class RunFilter:
    """What to list beyond namespace, status and type. Times are Unix seconds:
    ``started_after <= created_at < started_before``, likewise for ``closed_at``."""

    started_after: float | None = None
    started_before: float | None = None
    closed_after: float | None = None
    closed_before: float | None = None
    attributes: Sequence[AttributeFilter] = field(default_factory=tuple)


def encode_page_token(created_at: float, run_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at, run_id])).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[float, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        created_at, run_id = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        if isinstance(created_at, int | float) and isinstance(run_id, str):
            return float(created_at), run_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        pass
    raise InvalidArgument(f"not a page token of a run list: {token!r}")


def _value_terms(alias: str, f: AttributeFilter, param: Callable[[Any], str]) -> list[str]:
    column = f"{alias}.{_COLUMN[f.type]}"
    terms = [f"{alias}.name = {param(f.name)}"]
    if f.type != "keyword" and f.type != "float":
        terms.append(f"{alias}.type = {param(f.type)}")
    if f.equals:
        terms.append(f"{column} = {param(f.low)}")
    else:
        # Stated so the partial index's predicate is implied even with both ends open.
        terms.append(f"{column} IS NOT NULL")
        if f.low is not None:
            terms.append(f"{column} >= {param(f.low)}")
        if f.high is not None:
            terms.append(f"{column} <= {param(f.high)}")
    return terms


def list_runs_sql(
    *,
    schema: str,
    placeholder: Callable[[int], str],
    run_columns: str,
    namespace: str,
    status: str | None,
    workflow_type: str | None,
    where: RunFilter,
    cursor: tuple[float, str] | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """The query for one page (``limit`` rows) and its parameters.

    ``schema`` prefixes table names (``"tether."`` or ``""``); ``placeholder(n)``
    writes the n-th parameter (``$n`` or ``?``). With attribute filters the query is
    driven by the first equality filter's index (the first filter if none is an
    equality), the others checked per row.
    """
    params: list[Any] = []

    def param(value: Any) -> str:
        params.append(value)
        return placeholder(len(params))

    filters = list(where.attributes)
    drive = next((f for f in filters if f.equals), filters[0] if filters else None)
    # The columns of the listing key: the driving attribute row's copy of it, so that
    # its index both filters and orders.
    key = "d" if drive is not None else "r"
    if drive is not None:
        source = (
            f"{schema}search_attributes d JOIN {schema}runs r"
            " ON r.namespace = d.namespace AND r.run_id = d.run_id"
        )
        terms = [f"d.namespace = {param(namespace)}", *_value_terms("d", drive, param)]
        filters.remove(drive)
    else:
        source = f"{schema}runs r"
        terms = [f"r.namespace = {param(namespace)}"]
    if status is not None:
        terms.append(f"r.status = {param(status)}")
    if workflow_type is not None:
        terms.append(f"r.workflow_type = {param(workflow_type)}")
    if where.started_after is not None:
        terms.append(f"{key}.created_at >= {param(where.started_after)}")
    if where.started_before is not None:
        terms.append(f"{key}.created_at < {param(where.started_before)}")
    if where.closed_after is not None:
        terms.append(f"r.closed_at >= {param(where.closed_after)}")
    if where.closed_before is not None:
        terms.append(f"r.closed_at < {param(where.closed_before)}")
    for f in filters:
        inner = " AND ".join(_value_terms("s", f, param))
        terms.append(
            f"EXISTS (SELECT 1 FROM {schema}search_attributes s WHERE s.namespace = r.namespace"
            f" AND s.run_id = r.run_id AND {inner})"
        )
    if cursor is not None:
        created, run_id = cursor
        terms.append(f"({key}.created_at, {key}.run_id) < ({param(created)}, {param(run_id)})")
    sql = (
        f"SELECT {run_columns} FROM {source} WHERE {' AND '.join(terms)}"
        f" ORDER BY {key}.created_at DESC, {key}.run_id DESC LIMIT {param(limit)}"
    )
    return sql, params


def search_attribute_rows(
    rows: Iterable[Sequence[Any]],
) -> dict[str, dict[str, Any]]:
    """Python values per run from rows of ``(run_id, name, idx, type, str_value,
    int_value, float_value)`` ordered by run, name and idx."""
    encoded: dict[str, dict[str, Encoded]] = {}
    for run_id, name, _, kind, str_value, int_value, float_value in rows:
        value = str_value if kind in ("keyword", "keyword_list") else int_value
        if kind == "float":
            value = float_value
        attr = encoded.setdefault(run_id, {}).setdefault(name, {"type": kind, "values": []})
        attr["values"].append(value)
    return {
        run_id: {name: decode_value(e) for name, e in attrs.items()}
        for run_id, attrs in encoded.items()
    }


def attribute_filter(name: str, value: Any) -> AttributeFilter:
    """The filter ``name == value``, or ``name`` within a :class:`Range`; its type is
    the value's (see ``tether/search_attributes.py``)."""
    check_name(name)
    if isinstance(value, Range):
        ends = [encode_value(name, v) for v in (value.min, value.max) if v is not None]
        kinds = {e["type"] for e in ends}
        if not ends or len(kinds) != 1 or not kinds <= {"int", "float", "datetime"}:
            raise InvalidArgument(
                f"search attribute filter {name!r}: a Range needs at least one end, and"
                f" its ends one type of int, float or datetime, got {value!r}"
            )
        low = None if value.min is None else encode_value(name, value.min)["values"][0]
        high = None if value.max is None else encode_value(name, value.max)["values"][0]
        return AttributeFilter(name, kinds.pop(), low, high, equals=False)
    if isinstance(value, list | tuple):
        raise InvalidArgument(
            f"search attribute filter {name!r}: give one keyword to match a keyword list"
            f" that contains it, got {value!r}"
        )
    encoded = encode_value(name, value)
    return AttributeFilter(name, encoded["type"], encoded["values"][0])
