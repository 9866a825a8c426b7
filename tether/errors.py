"""The one error tree of Tether.

Every error carries a stable ``code`` and the ids it concerns. Usage errors are the
caller's to fix (HTTP 4xx, CLI exit code 2); failures happen while running work::

    TetherError
    ├── UsageError                      the request is wrong; nothing was changed
    │   ├── InvalidArgument             wrong type, malformed value, bad setting
    │   │   └── PayloadTooLarge         an encoded payload exceeds the limit
    │   ├── NotFound
    │   │   ├── UnknownWorkflowType
    │   │   ├── UnknownActivityType
    │   │   ├── WorkflowNotFound
    │   │   ├── UpdateNotFound
    │   │   └── NamespaceNotFound
    │   ├── WorkflowAlreadyStarted      an open run already has this workflow id
    │   ├── UpdateRejected              an update's validator (or name) refused it
    │   ├── NamespaceAlreadyExists      a namespace of this name exists
    │   ├── Unauthenticated             no credential, or one nobody issued
    │   ├── PermissionDenied            the credential does not cover this namespace
    │   └── IncompatibleStore           a store that is not Tether's, or from a newer version
    └── Failure                         something failed while running work
        ├── ApplicationError            raised by user code, with a type and optional details
        ├── ActivityError               an activity failed for good; ``cause`` says why
        ├── ChildWorkflowError          a child run ended without a result; ``cause`` says why
        ├── TimeoutFailure              a timeout elapsed (``kind`` says which)
        ├── CancelledFailure            the work was cancelled
        ├── TerminatedFailure           the run was terminated
        ├── WorkflowFailed              (client side) the run ended without a result
        ├── UpdateFailed                (client side) an accepted update ended without a result
        ├── NonDeterminismError         the code asks for other steps than history holds
        ├── StoreUnavailable            the store could not be reached or failed mid-flight
        ├── LeaseLost                   a task's lease expired or moved to another worker
        ├── ModelError                  a model provider refused or failed an LLM call
        └── BudgetExceeded              a namespace's LLM budget is spent
"""

from __future__ import annotations

import traceback
from typing import Any

__all__ = [
    "ActivityError",
    "ApplicationError",
    "BudgetExceeded",
    "CancelledFailure",
    "ChildWorkflowError",
    "Failure",
    "IncompatibleStore",
    "InvalidArgument",
    "LeaseLost",
    "NamespaceAlreadyExists",
    "NamespaceNotFound",
    "NonDeterminismError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "StoreUnavailable",
    "TerminatedFailure",
    "TetherError",
    "TimeoutFailure",
    "Unauthenticated",
    "UnknownActivityType",
    "UnknownWorkflowType",
    "UpdateFailed",
    "UpdateNotFound",
    "UpdateRejected",
    "UsageError",
    "WorkflowAlreadyStarted",
    "WorkflowFailed",
    "WorkflowNotFound",
    "failure_from_dict",
    "failure_to_dict",
]


class TetherError(Exception):
    """Tether failed."""

    code = "tether_error"

    def __init__(self, message: str | None = None, **ids: Any) -> None:
        self.message = message or (type(self).__doc__ or self.code).strip().splitlines()[0]
        self.ids = {k: v for k, v in ids.items() if v is not None}
        super().__init__(self.message)

    def __str__(self) -> str:
        if not self.ids:
            return self.message
        where = ", ".join(f"{k}={v}" for k, v in self.ids.items())
        return f"{self.message} ({where})"


class UsageError(TetherError):
    """The request is not valid; nothing was changed."""

    code = "usage_error"


class InvalidArgument(UsageError):
    """An argument is not valid."""

    code = "invalid_argument"


class PayloadTooLarge(InvalidArgument):
    """A payload is larger than the configured limit."""

    code = "payload_too_large"


class NotFound(UsageError):
    """The thing asked for does not exist."""

    code = "not_found"


class UnknownWorkflowType(NotFound):
    """No workflow of this type is registered."""

    code = "unknown_workflow_type"


class UnknownActivityType(NotFound):
    """No activity of this type is registered."""

    code = "unknown_activity_type"


class WorkflowNotFound(NotFound):
    """No such workflow run in this namespace."""

    code = "workflow_not_found"


class UpdateNotFound(NotFound):
    """No update request of this id on the run."""

    code = "update_not_found"


class NamespaceNotFound(NotFound):
    """No such namespace."""

    code = "namespace_not_found"


class WorkflowAlreadyStarted(UsageError):
    """An open run already uses this workflow id."""

    code = "workflow_already_started"


class UpdateRejected(UsageError):
    """The workflow refused the update before recording it (``__cause__`` says why)."""

    code = "update_rejected"


class NamespaceAlreadyExists(UsageError):
    """A namespace of this name already exists."""

    code = "namespace_already_exists"


class Unauthenticated(UsageError):
    """A valid credential is needed (an ``Authorization: Bearer`` token)."""

    code = "unauthenticated"


class PermissionDenied(UsageError):
    """This credential does not give access to the namespace or operation."""

    code = "permission_denied"


class IncompatibleStore(UsageError):
    """The store is not a Tether store, or was written by a newer Tether."""

    code = "incompatible_store"


class Failure(TetherError):
    """Work failed while running."""

    code = "failure"


class ApplicationError(Failure):
    """User code failed.

    Raise it from an activity or a workflow to fail with a chosen ``type`` and
    ``details``; ``non_retryable=True`` stops activity retries at once. Failures of
    other exception types reach workflows as an ``ApplicationError`` whose ``type`` is
    the original class name and whose ``stack`` is the original traceback.
    """

    code = "application_error"

    def __init__(
        self,
        message: str,
        *details: Any,
        type: str | None = None,
        non_retryable: bool = False,
        stack: str = "",
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.type = type or "ApplicationError"
        self.details = list(details)
        self.non_retryable = non_retryable
        self.stack = stack
        self.__cause__ = cause


class ActivityError(Failure):
    """An activity failed for good; ``__cause__`` holds why."""

    code = "activity_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        activity: str = "",
        activity_id: int = 0,
        attempt: int = 0,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message, activity=activity, activity_id=activity_id, attempt=attempt)
        self.activity = activity
        self.activity_id = activity_id
        self.attempt = attempt
        self.__cause__ = cause


class ChildWorkflowError(Failure):
    """A child workflow run ended without a result; ``__cause__`` holds why."""

    code = "child_workflow_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        workflow_type: str = "",
        workflow_id: str = "",
        run_id: str = "",
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message, workflow_id=workflow_id or None, run_id=run_id or None)
        self.workflow_type = workflow_type
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.__cause__ = cause


class TimeoutFailure(Failure):
    """A timeout elapsed."""

    code = "timeout"

    def __init__(self, message: str | None = None, *, kind: str = "", **ids: Any) -> None:
        super().__init__(message or f"{kind} timeout elapsed", **ids)
        self.kind = kind


class CancelledFailure(Failure):
    """The work was cancelled."""

    code = "cancelled"


class TerminatedFailure(Failure):
    """The run was terminated."""

    code = "terminated"


class WorkflowFailed(Failure):
    """The workflow run ended without a result; ``__cause__`` holds why."""

    code = "workflow_failed"


class UpdateFailed(Failure):
    """The update was accepted but ended without a result; ``__cause__`` holds why."""

    code = "update_failed"


class NonDeterminismError(Failure):
    """The workflow code asked for other steps than its history holds."""

    code = "non_determinism"


class StoreUnavailable(Failure):
    """The store could not be reached or failed mid-operation."""

    code = "store_unavailable"


class LeaseLost(Failure):
    """The task's lease expired or was taken by another worker; the result was refused."""

    code = "lease_lost"


class ModelError(Failure):
    """A model provider refused or failed an LLM call.

    ``retry_after`` (seconds), when set, is when to try again: the worker schedules the
    next attempt then, as a durable wait that holds no worker slot. A refusal that a
    retry cannot fix (a bad request, bad credentials) is ``non_retryable``.
    """

    code = "model_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        non_retryable: bool = False,
        **ids: Any,
    ) -> None:
        super().__init__(message, **ids)
        self.retry_after = retry_after
        self.non_retryable = non_retryable


class BudgetExceeded(Failure):
    """The namespace's LLM budget is spent; no new model call is made."""

    code = "budget_exceeded"
    non_retryable = True


# -- failures as data --------------------------------------------------------------
# A failure crosses the durable boundary (history, the client) as a plain dict so
# that it can be stored, shown and rebuilt without pickling arbitrary classes.

_KNOWN: dict[str, type[Failure]] = {
    cls.code: cls
    for cls in (
        ApplicationError,
        ActivityError,
        ChildWorkflowError,
        TimeoutFailure,
        CancelledFailure,
        TerminatedFailure,
        WorkflowFailed,
        NonDeterminismError,
        ModelError,
        BudgetExceeded,
    )
}


def failure_to_dict(exc: BaseException, *, depth: int = 0) -> dict[str, Any]:
    """Encode an exception and its cause chain as JSON-compatible data."""
    out: dict[str, Any] = {"message": str(getattr(exc, "message", None) or exc)}
    if isinstance(exc, ApplicationError):
        out.update(
            code=exc.code,
            type=exc.type,
            non_retryable=exc.non_retryable,
            details=exc.details,
            stack=exc.stack,
        )
    elif isinstance(exc, ActivityError):
        out.update(
            code=exc.code, activity=exc.activity, activity_id=exc.activity_id, attempt=exc.attempt
        )
    elif isinstance(exc, ChildWorkflowError):
        out.update(
            code=exc.code,
            workflow_type=exc.workflow_type,
            workflow_id=exc.workflow_id,
            run_id=exc.run_id,
        )
    elif isinstance(exc, TimeoutFailure):
        out.update(code=exc.code, kind=exc.kind)
    elif isinstance(exc, Failure):
        out.update(code=exc.code)
    elif isinstance(exc, TetherError):
        # A usage error inside user code (bad arguments, oversized payload): retrying
        # cannot fix it, and the workflow sees it as an ApplicationError of its type.
        out.update(
            code=ApplicationError.code,
            type=type(exc).__name__,
            non_retryable=True,
            details=[],
            stack="".join(traceback.format_exception(exc)),
        )
    else:
        out.update(
            code=ApplicationError.code,
            type=type(exc).__name__,
            non_retryable=False,
            details=[],
            stack="".join(traceback.format_exception(exc)),
        )
    cause = exc.__cause__ or exc.__context__
    if cause is not None and depth < 8:
        out["cause"] = failure_to_dict(cause, depth=depth + 1)
    return out


def failure_from_dict(data: dict[str, Any]) -> Failure:
    """Rebuild a failure (and its cause chain) encoded by :func:`failure_to_dict`."""
    cause = failure_from_dict(data["cause"]) if data.get("cause") else None
    code = data.get("code", ApplicationError.code)
    message = data.get("message", "")
    exc: Failure
    if code == ApplicationError.code:
        exc = ApplicationError(
            message,
            *data.get("details", []),
            type=data.get("type"),
            non_retryable=data.get("non_retryable", False),
            stack=data.get("stack", ""),
        )
    elif code == ActivityError.code:
        exc = ActivityError(
            message,
            activity=data.get("activity", ""),
            activity_id=data.get("activity_id", 0),
            attempt=data.get("attempt", 0),
        )
        # ActivityError builds its message from ids; keep the stored one verbatim.
        exc.message = message
        exc.ids = {}
    elif code == ChildWorkflowError.code:
        exc = ChildWorkflowError(
            message,
            workflow_type=data.get("workflow_type", ""),
            workflow_id=data.get("workflow_id", ""),
            run_id=data.get("run_id", ""),
        )
        exc.message = message
    elif code == TimeoutFailure.code:
        exc = TimeoutFailure(message, kind=data.get("kind", ""))
    else:
        exc = _KNOWN.get(code, Failure)(message)
    exc.__cause__ = cause
    return exc
