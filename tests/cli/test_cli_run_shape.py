"""A run as the HTTP API sends it (``RunRecord.to_dict``) and as the CLI prints it:
the same fields, the CLI's times formatted and named for people."""

from __future__ import annotations

from datetime import UTC, datetime

from tether.cli.workflow import _run_dict
from tether.store import RunRecord, RunStatus

PLAIN = {"customer": "acme", "tags": ["a", "b"], "amount": 12.5, "count": 3, "vip": True}
RUN = RunRecord(
    namespace="default",
    workflow_id="order-1",
    run_id="r1",
    workflow_type="order",
    task_queue="main",
    status=RunStatus.COMPLETED,
    created_at=1_700_000_000.5,
    closed_at=None,
    result={"total": 3},
    failure=None,
    history_length=7,
    search_attributes={**PLAIN, "due": datetime(2024, 5, 1, 12, 0, 0, 250, tzinfo=UTC)},
)
# As JSON: a datetime becomes an ISO 8601 string, the rest stays as it is.
ATTRIBUTES = {**PLAIN, "due": "2024-05-01T12:00:00.000250+00:00"}


def test_http_shape() -> None:
    assert RUN.to_dict() == {
        "namespace": "default",
        "workflow_id": "order-1",
        "run_id": "r1",
        "type": "order",
        "task_queue": "main",
        "status": "completed",
        "created_at": 1_700_000_000.5,
        "closed_at": None,
        "history_length": 7,
        "result": {"total": 3},
        "failure": None,
        "stuck": None,
        "search_attributes": ATTRIBUTES,
    }


def test_cli_shape_keeps_the_order_and_formats_the_times() -> None:
    shown = _run_dict(RUN)
    assert list(shown) == [
        "namespace", "workflow_id", "run_id", "type", "task_queue", "status", "started",
        "closed", "history_length", "result", "failure", "stuck", "search_attributes",
    ]  # fmt: skip
    assert shown["started"] == "2023-11-14 22:13:20.500"
    assert shown["closed"] == "-"
    assert shown["search_attributes"] == ATTRIBUTES
