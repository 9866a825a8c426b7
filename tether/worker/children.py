"""Turning child-run and continue-as-new commands into the runs a commit creates.

The engine is pure, so the ids and seeds of the new runs are drawn here and written
into the command's attrs before they are stored: replay reads them from history.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from ..store import ContinueAsNew, NewChild, NewRun

__all__ = ["continued_run", "new_child"]


def _new_run(namespace: str, workflow_id: str, a: dict[str, Any], workflow_type: str) -> NewRun:
    run_id = uuid.uuid4().hex
    started: dict[str, Any] = {
        "workflow_type": workflow_type,
        "workflow_id": workflow_id,
        "task_queue": a["task_queue"],
        "args": a["args"],
        "seed": random.getrandbits(63),
    }
    for inherited in ("limits", "fairness", "search_attributes"):
        if a.get(inherited):
            started[inherited] = a[inherited]
    return NewRun(
        namespace=namespace,
        workflow_id=workflow_id,
        run_id=run_id,
        workflow_type=workflow_type,
        task_queue=a["task_queue"],
        started=started,
    )


def new_child(namespace: str, a: dict[str, Any]) -> NewChild:
    """The child run of a ``ChildWorkflowStarted`` command; records its run id in ``a``."""
    run = _new_run(namespace, a["workflow_id"], a, a["name"])
    a["run_id"] = run.run_id
    return NewChild(run, a["step"], a.get("parent_close_policy", "terminate"))


def continued_run(namespace: str, a: dict[str, Any]) -> ContinueAsNew:
    """The new run of a ``WorkflowContinuedAsNew`` command; records its id in ``a``."""
    run = _new_run(namespace, a["workflow_id"], a, a["workflow_type"])
    a["new_run_id"] = run.run_id
    signals = [(name, payload) for name, payload in a.get("signals", [])]
    return ContinueAsNew(run, signals, after_seq=a.get("wt", 0))
