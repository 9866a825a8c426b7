"""``tether usage``: LLM tokens and cost from the ledger, per tenant, model, workflow
type or day; ``tether llm-limits``: the shared provider limits as the store holds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from ..app import App
from ..store import USAGE_GROUPS
from .common import DbOpt, JsonOpt, NsOpt, make_app, run
from .output import emit, fail

__all__ = ["llm_limits", "usage"]


def _when(value: str | None, what: str) -> float | None:
    """A date (``2026-01-31``, UTC), an ISO time, or ``7d``/``24h`` ago."""
    if not value:
        return None
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if value[-1] in units and value[:-1].isdigit():
        ago = timedelta(**{units[value[-1]]: int(value[:-1])})
        return (datetime.now(UTC) - ago).timestamp()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--{what} expects a date like 2026-01-31, an ISO time, or 7d/24h; got {value!r}")
        raise
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def usage(
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            "-b",
            help=f"Group by (repeatable): {', '.join(USAGE_GROUPS)}. Default: model.",
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this date/time (UTC), or 7d, 24h ago.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Up to (not including) this date/time.")] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", help="Every namespace (operators).")
    ] = False,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """LLM calls, tokens and cost from the usage ledger, summed per group (calls in
    flight, and calls abandoned by a worker that died, are counted apart)."""
    groups = by or ["model"]
    start, end = _when(since, "since"), _when(until, "until")

    async def body(app: App) -> list[dict[str, Any]]:
        rows = await app.client.usage(
            namespace=namespace,
            all_namespaces=all_namespaces,
            group_by=groups,
            since=start,
            until=end,
        )
        return [r.to_dict() for r in rows]

    rows = run(make_app(db, namespace), body)
    # Calls in flight or abandoned are rare: their columns are shown when there are some.
    unfinished = [c for c in ("in_flight", "abandoned") if any(r[c] for r in rows)]
    columns = [*groups, "calls", "failed", *unfinished, "input_tokens", "output_tokens"]
    columns.append("cost_usd")
    emit(rows, as_json=as_json, columns=columns, title="LLM usage")


def llm_limits(
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", help="Every namespace (operators).")
    ] = False,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """LLM provider limits shared by all workers: calls in flight, 429 blocks, and the
    request and token buckets left at the last call, per namespace and provider."""

    async def body(app: App) -> list[dict[str, Any]]:
        states = await app.client.llm_limits(namespace=namespace, all_namespaces=all_namespaces)
        return [s.to_dict() for s in states]

    emit(run(make_app(db, namespace), body), as_json=as_json, title="LLM limits")
