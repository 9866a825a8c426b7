"""Tether: durable, tenant-isolated orchestration for AI agents.

The public surface is this module's ``__all__``; everything else is internal.
"""

from .app import App
from .client import Client, WorkflowHandle
from .engine import Context, RunInfo
from .errors import (
    ActivityError,
    ApplicationError,
    BudgetExceeded,
    CancelledFailure,
    ChildWorkflowError,
    Failure,
    IncompatibleStore,
    InvalidArgument,
    LeaseLost,
    ModelError,
    NamespaceNotFound,
    NonDeterminismError,
    NotFound,
    PayloadTooLarge,
    StoreUnavailable,
    TerminatedFailure,
    TetherError,
    TimeoutFailure,
    UnknownActivityType,
    UnknownWorkflowType,
    UpdateFailed,
    UpdateNotFound,
    UpdateRejected,
    UsageError,
    WorkflowAlreadyStarted,
    WorkflowFailed,
    WorkflowNotFound,
)
from .history import Event, EventType
from .policy import Priority, Retry
from .search_attributes import Range
from .store import RunRecord, RunStatus, Store, open_store
from .worker import ActivityInfo, Worker, heartbeat
from .worker import info as activity_info

__all__ = [
    "ActivityError",
    "ActivityInfo",
    "App",
    "ApplicationError",
    "BudgetExceeded",
    "CancelledFailure",
    "ChildWorkflowError",
    "Client",
    "Context",
    "Event",
    "EventType",
    "Failure",
    "IncompatibleStore",
    "InvalidArgument",
    "LeaseLost",
    "ModelError",
    "NamespaceNotFound",
    "NonDeterminismError",
    "NotFound",
    "PayloadTooLarge",
    "Priority",
    "Range",
    "Retry",
    "RunInfo",
    "RunRecord",
    "RunStatus",
    "Store",
    "StoreUnavailable",
    "TerminatedFailure",
    "TetherError",
    "TimeoutFailure",
    "UnknownActivityType",
    "UnknownWorkflowType",
    "UpdateFailed",
    "UpdateNotFound",
    "UpdateRejected",
    "UsageError",
    "Worker",
    "WorkflowAlreadyStarted",
    "WorkflowFailed",
    "WorkflowHandle",
    "WorkflowNotFound",
    "activity_info",
    "heartbeat",
    "open_store",
]

__version__ = "0.1.0"
