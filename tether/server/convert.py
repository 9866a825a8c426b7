"""Records as JSON-ready dicts: times as Unix seconds, nothing formatted for people."""

from __future__ import annotations

from typing import Any

import orjson

from ..store import RunRecord
from ..tenancy import NamespaceInfo

__all__ = ["namespace_dict", "run_dict"]


def run_dict(run: RunRecord) -> dict[str, Any]:
    return {
        "namespace": run.namespace,
        "workflow_id": run.workflow_id,
        "run_id": run.run_id,
        "type": run.workflow_type,
        "task_queue": run.task_queue,
        "status": str(run.status),
        "created_at": run.created_at,
        "closed_at": run.closed_at,
        "history_length": run.history_length,
        "result": run.result,
        "failure": run.failure,
        "stuck": run.stuck,
        # Datetimes as ISO 8601 strings: JSON has no time type.
        "search_attributes": orjson.loads(orjson.dumps(run.search_attributes)),
    }


def namespace_dict(info: NamespaceInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "created_at": info.created_at,
        "settings": info.settings.model_dump(mode="json"),
    }
