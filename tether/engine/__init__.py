"""The deterministic core: runs workflow code against history and emits commands.

Pure: no I/O, no clock, no store. Imports only the shared value modules of ``tether``.
"""

from .context import Context
from .instance import Activation, Command, RunInfo, WorkflowInstance

__all__ = ["Activation", "Command", "Context", "RunInfo", "WorkflowInstance"]
