"""Workers: claim tasks, drive the engine, run activities, write results."""

from .activity_context import ActivityInfo, heartbeat, info
from .worker import Worker

__all__ = ["ActivityInfo", "Worker", "heartbeat", "info"]
