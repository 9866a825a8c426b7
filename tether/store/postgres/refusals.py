"""What a refused PostgreSQL statement means, as the Tether error its caller raises.

Each builder returns the ``on_error`` mapper of one call: the error, or None for a
failure that is not a refusal (it is then reported as the store being unavailable).
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from ...errors import (
    InvalidArgument,
    LeaseLost,
    NamespaceNotFound,
    TetherError,
    WorkflowAlreadyStarted,
    WorkflowNotFound,
)
from ..protocol import NewRun
from . import queries as q

__all__ = ["Refusal", "being_deleted", "input_refused", "lease_lost", "start_refused"]

Refusal = Callable[[asyncpg.PostgresError], TetherError | None]


def lease_lost(task_id: int) -> Refusal:
    """The task's lease is no longer the caller's."""

    def refused(exc: asyncpg.PostgresError) -> TetherError | None:
        return LeaseLost(task_id=task_id) if exc.sqlstate == q.LEASE_LOST else None

    return refused


def being_deleted(namespace: str) -> Refusal:
    """The namespace is being deleted (SQLSTATE TT004): as if it did not exist."""

    def refused(exc: asyncpg.PostgresError) -> TetherError | None:
        if exc.sqlstate == q.NAMESPACE_DELETING:
            return NamespaceNotFound(
                f"namespace {namespace!r} is being deleted", namespace=namespace
            )
        return None

    return refused


def input_refused(namespace: str, run_id: str) -> Refusal:
    """Input to a run (a signal, a cancel, an update...): no such run, or it is closed,
    or its namespace is being deleted."""
    deleting = being_deleted(namespace)

    def refused(exc: asyncpg.PostgresError) -> TetherError | None:
        if exc.sqlstate == q.NAMESPACE_DELETING:
            return deleting(exc)
        if exc.sqlstate == q.RUN_NOT_FOUND:
            return WorkflowNotFound(namespace=namespace, run_id=run_id)
        if exc.sqlstate == q.RUN_CLOSED:
            return InvalidArgument(exc.message, namespace=namespace, run_id=run_id)
        return None

    return refused


def start_refused(run: NewRun, *, then: Refusal | None = None) -> Refusal:
    """A start: no such namespace (or it is being deleted), or an open run has the id;
    else ``then``'s verdict."""

    def refused(exc: asyncpg.PostgresError) -> TetherError | None:
        if isinstance(exc, asyncpg.ForeignKeyViolationError):
            return NamespaceNotFound(namespace=run.namespace)
        if exc.sqlstate == q.NAMESPACE_DELETING:
            return being_deleted(run.namespace)(exc)
        if isinstance(exc, asyncpg.UniqueViolationError):
            return WorkflowAlreadyStarted(namespace=run.namespace, workflow_id=run.workflow_id)
        return then(exc) if then is not None else None

    return refused
