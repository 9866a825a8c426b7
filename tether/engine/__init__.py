"""The deterministic core: runs workflow code against history and emits commands.

Pure: no I/O, no clock, no store. Imports only the shared value modules of ``tether``.
"""

from .context import Context
from .instance import Activation, Command, RunInfo, Signal, WorkflowInstance
from .query import answer_query

__all__ = [
    "Activation",
    "Command",
    "Context",
    "RunInfo",
    "Signal",
    "WorkflowInstance",
    "answer_query",
]
