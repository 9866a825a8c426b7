"""``tether workflow ...``: start runs, look at them, signal, query, cancel and end them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, cast

import typer

from ..app import App
from ..client import IdConflict, IdReuse
from ..history import describe_event
from ..store import RunRecord
from .attrs import parse_attrs, parse_filters, parse_time
from .common import AppOpt, DbOpt, JsonOpt, NsOpt, make_app, parse_json_args, run
from .output import emit, fail, when

cli = typer.Typer(
    help="Start, inspect, signal, query, cancel and end workflow runs.", no_args_is_help=True
)

RunIdOpt = Annotated[str | None, typer.Option("--run-id", help="A specific run (default: newest).")]
AttrOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--attr",
        help="A search attribute NAME=VALUE (VALUE as JSON, else a string) or"
        " NAME:TYPE=VALUE; repeatable. See docs/visibility.md.",
    ),
]


def _run_dict(run: RunRecord) -> dict[str, Any]:
    return {
        "namespace": run.namespace,
        "workflow_id": run.workflow_id,
        "run_id": run.run_id,
        "type": run.workflow_type,
        "task_queue": run.task_queue,
        "status": str(run.status),
        "started": when(run.created_at),
        "closed": when(run.closed_at),
        "history_length": run.history_length,
        "result": run.result,
        "failure": run.failure,
        "stuck": run.stuck,
        "search_attributes": {
            k: v.isoformat() if isinstance(v, datetime) else v
            for k, v in run.search_attributes.items()
        },
    }


@cli.command()
def start(
    workflow_type: Annotated[str, typer.Argument(help="The workflow's registered name.")],
    arg: Annotated[
        list[str] | None, typer.Option("--arg", "-a", help="An argument as JSON (repeatable).")
    ] = None,
    workflow_id: Annotated[str | None, typer.Option("--id", help="Workflow id.")] = None,
    task_queue: Annotated[str | None, typer.Option("--task-queue", "-q")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result.")] = False,
    signal: Annotated[
        str | None,
        typer.Option(
            "--signal",
            help="Signal-with-start: send this signal to the open run of --id, starting"
            " the run first if none is open (one atomic step).",
        ),
    ] = None,
    signal_arg: Annotated[
        str | None, typer.Option("--signal-arg", help="The signal's payload as JSON.")
    ] = None,
    id_reuse: Annotated[
        str, typer.Option(help="A closed run's id: allow, allow_failed_only or reject.")
    ] = "allow",
    id_conflict: Annotated[
        str, typer.Option(help="An open run has the id: fail, or use_existing.")
    ] = "fail",
    attr: AttrOpt = None,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    app_spec: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a run of WORKFLOW_TYPE (with --signal: signal-with-start)."""
    args = parse_json_args(arg or [])
    attributes = parse_attrs(attr or [])
    if signal is not None and not workflow_id:
        fail("--signal needs --id: the workflow id to signal or start", 2)
    payload = parse_json_args([signal_arg])[0] if signal_arg is not None else None

    async def body(app: App) -> dict[str, Any]:
        if signal is not None:
            assert workflow_id is not None
            handle = await app.client.signal_with_start(
                workflow_type, *args, id=workflow_id, signal=signal, payload=payload,
                task_queue=task_queue, search_attributes=attributes,
            )  # fmt: skip
        else:
            handle = await app.client.start(
                workflow_type, *args, id=workflow_id, task_queue=task_queue,
                # Checked by Client.start, which names the allowed values.
                id_reuse=cast(IdReuse, id_reuse), id_conflict=cast(IdConflict, id_conflict),
                search_attributes=attributes,
            )  # fmt: skip
        out: dict[str, Any] = {"workflow_id": handle.workflow_id, "run_id": handle.run_id}
        if wait:
            out["result"] = await handle.result()
        return out

    emit(run(make_app(db, namespace, app_spec), body), as_json=as_json)


@cli.command()
def describe(
    workflow_id: str,
    run_id: RunIdOpt = None,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a run's status, result or failure."""

    async def body(app: App) -> RunRecord:
        return await app.client.get_handle(workflow_id, run_id).describe()

    emit(_run_dict(run(make_app(db, namespace), body)), as_json=as_json)


@cli.command()
def result(
    workflow_id: str,
    run_id: RunIdOpt = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait.")] = None,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    app_spec: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait for a run to close and print its result (exit 1 if it failed)."""

    async def body(app: App) -> Any:
        return await app.client.get_handle(workflow_id, run_id).result(timeout)

    emit({"result": run(make_app(db, namespace, app_spec), body)}, as_json=as_json)


@cli.command()
def history(
    workflow_id: str,
    run_id: RunIdOpt = None,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a run's event history."""

    async def body(app: App) -> list[dict[str, Any]]:
        events = await app.client.get_handle(workflow_id, run_id).history()
        if as_json:
            return [e.to_dict() for e in events]
        return [
            {"seq": str(e.seq), "time": when(e.ts), "event": e.type, "details": describe_event(e)}
            for e in events
        ]

    emit(run(make_app(db, namespace), body), as_json=as_json, title=None)


TimeOpt = Annotated[str | None, typer.Option(help="Unix seconds or ISO 8601 with a zone.")]


@cli.command("list")
def list_runs(
    status: Annotated[str | None, typer.Option(help="running, completed, failed...")] = None,
    workflow_type: Annotated[str | None, typer.Option("--type", help="Workflow type.")] = None,
    started_after: TimeOpt = None,
    started_before: TimeOpt = None,
    closed_after: TimeOpt = None,
    closed_before: TimeOpt = None,
    attr: Annotated[
        list[str] | None,
        typer.Option(
            "--attr",
            help="Filter by a search attribute: NAME=VALUE, or NAME=LOW..HIGH for a range"
            " (NAME:TYPE=... to say the type); repeatable, combined with AND.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Runs per page.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="A previous page's page token.")] = None,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List runs of a namespace, newest first, filtered by type, status, start and
    close time, and search attributes."""
    filters = parse_filters(attr or [])
    after, before = (
        parse_time(started_after, "--started-after"),
        parse_time(started_before, "--started-before"),
    )
    closed_from, closed_to = (
        parse_time(closed_after, "--closed-after"),
        parse_time(closed_before, "--closed-before"),
    )

    async def body(app: App) -> dict[str, Any]:
        page = await app.client.list(
            status=status, workflow_type=workflow_type, search_attributes=filters,
            limit=limit, cursor=cursor, started_after=after, started_before=before,
            closed_after=closed_from, closed_before=closed_to,
        )  # fmt: skip
        return {"runs": [_run_dict(r) for r in page.runs], "next_cursor": page.next_cursor}

    data = run(make_app(db, namespace), body)
    if as_json:
        emit(data, as_json=True)
        return
    columns = ["workflow_id", "run_id", "type", "status", "started", "closed"]
    if any(r["search_attributes"] for r in data["runs"]):
        columns.append("attributes")
        for r in data["runs"]:
            r["attributes"] = " ".join(f"{k}={v}" for k, v in r["search_attributes"].items())
    emit(data["runs"], as_json=False, columns=columns)
    if data["next_cursor"]:
        typer.echo(f"more: --cursor {data['next_cursor']}")


@cli.command()
def terminate(
    workflow_id: str,
    reason: Annotated[str, typer.Option(help="Why; recorded in history.")] = "",
    run_id: RunIdOpt = None,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """End a run at once, recording who and why."""

    async def body(app: App) -> RunRecord:
        return await app.client.get_handle(workflow_id, run_id).terminate(reason, identity="cli")

    emit(_run_dict(run(make_app(db, namespace), body)), as_json=as_json)


@cli.command()
def signal(
    workflow_id: str,
    name: Annotated[str, typer.Argument(help="The signal's name.")],
    arg: Annotated[
        str | None, typer.Option("--arg", "-a", help="The payload as JSON (default null).")
    ] = None,
    run_id: RunIdOpt = None,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send signal NAME to a run; it is recorded at once and never lost."""
    payload = parse_json_args([arg])[0] if arg is not None else None

    async def body(app: App) -> dict[str, Any]:
        handle = app.client.get_handle(workflow_id, run_id)
        await handle.signal(name, payload)
        return {"workflow_id": workflow_id, "signal": name, "payload": payload}

    emit(run(make_app(db, namespace), body), as_json=as_json)


@cli.command()
def query(
    workflow_id: str,
    name: Annotated[str, typer.Argument(help="The query's name.")],
    app_spec: Annotated[
        str,
        typer.Option(
            "--app",
            envvar="TETHER_APP",
            help="MODULE:APP with the workflow's code: the run is replayed here to answer.",
        ),
    ],
    arg: Annotated[
        list[str] | None, typer.Option("--arg", "-a", help="An argument as JSON (repeatable).")
    ] = None,
    run_id: RunIdOpt = None,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask a run's query handler NAME; nothing is recorded."""
    args = parse_json_args(arg or [])

    async def body(app: App) -> Any:
        return await app.client.get_handle(workflow_id, run_id).query(name, *args)

    emit({"result": run(make_app(db, namespace, app_spec), body)}, as_json=as_json)


@cli.command()
def cancel(
    workflow_id: str,
    reason: Annotated[str, typer.Option(help="Why; recorded in history.")] = "",
    run_id: RunIdOpt = None,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask a run to cancel: its code sees CancelledError and may clean up."""

    async def body(app: App) -> RunRecord:
        return await app.client.get_handle(workflow_id, run_id).cancel(reason, identity="cli")

    emit(_run_dict(run(make_app(db, namespace), body)), as_json=as_json)


@cli.command()
def delete(
    workflow_id: str,
    run_id: RunIdOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a run and every byte of it: history, payloads, tasks (a GDPR erasure)."""
    if not yes:
        typer.confirm(f"Delete run {workflow_id!r} and all of its data?", abort=True)

    async def body(app: App) -> dict[str, Any]:
        await app.client.delete_run(workflow_id, run_id)
        return {"deleted": workflow_id, "namespace": namespace}

    emit(run(make_app(db, namespace), body), as_json=as_json)
