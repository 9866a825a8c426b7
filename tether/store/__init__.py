"""Stores: the one ``Store`` protocol and its implementations (the only place with SQL)."""

from __future__ import annotations

import os

from ..errors import InvalidArgument
from .llm_limits import LimitState
from .protocol import (
    DELETE_BATCH,
    ActivityOutcome,
    ActivityTask,
    ClaimLimit,
    CommitResult,
    ContinueAsNew,
    NamespaceRecord,
    NamespaceStats,
    NewActivity,
    NewChild,
    NewRun,
    QueueBacklog,
    RunClose,
    RunPage,
    RunRecord,
    RunStatus,
    SchemaStatus,
    SettingsChange,
    Store,
    TaskRead,
    WorkflowCommit,
    WorkflowTask,
    outcome_events,
)
from .reset import NAMED_POINTS, ResetRun, plan_reset, reset_point
from .updates import UpdateOutcome, UpdateRecord, UpdateStatus
from .usage import USAGE_GROUPS, UsageRecord, UsageRow
from .visibility import AttributeFilter, RunFilter

__all__ = [
    "DELETE_BATCH",
    "NAMED_POINTS",
    "USAGE_GROUPS",
    "ActivityOutcome",
    "ActivityTask",
    "AttributeFilter",
    "ClaimLimit",
    "CommitResult",
    "ContinueAsNew",
    "LimitState",
    "NamespaceRecord",
    "NamespaceStats",
    "NewActivity",
    "NewChild",
    "NewRun",
    "QueueBacklog",
    "ResetRun",
    "RunClose",
    "RunFilter",
    "RunPage",
    "RunRecord",
    "RunStatus",
    "SchemaStatus",
    "SettingsChange",
    "Store",
    "TaskRead",
    "UpdateOutcome",
    "UpdateRecord",
    "UpdateStatus",
    "UsageRecord",
    "UsageRow",
    "WorkflowCommit",
    "WorkflowTask",
    "open_store",
    "outcome_events",
    "plan_reset",
    "reset_point",
]

DEFAULT_URL = "tether.db"


def open_store(url: str | None = None, **options: object) -> Store:
    """Build the store named by ``url`` (or ``TETHER_DATABASE_URL``, or ``./tether.db``).

    ``postgresql://...`` selects PostgreSQL; ``sqlite:///path`` or a plain path selects
    the embedded SQLite store.
    """
    url = url or os.environ.get("TETHER_DATABASE_URL") or DEFAULT_URL
    scheme, sep, _ = url.partition("://")
    if sep and scheme not in ("postgresql", "postgres", "sqlite"):
        raise InvalidArgument(
            f"unsupported store URL scheme {scheme!r}: use postgresql://..., sqlite:///PATH"
            " or a file path"
        )
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url, **options)  # type: ignore[arg-type]
    # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy spells them.
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    from .sqlite import SqliteStore

    return SqliteStore(path, **options)  # type: ignore[arg-type]
