"""``tether workflow ...``: start runs, look at them, signal, query, update, cancel,
reset and end them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, cast

import typer

from ..app import App
from ..client import IdConflict, IdReuse, new_id
from ..history import describe_event
from ..policy import Priority
from ..store import RunRecord
from .attrs import parse_attrs, parse_filters, parse_time
from .common import (
    AppOpt,
    ArgsOpt,
    DbOpt,
    JsonOpt,
    NsOpt,
    YesOpt,
    confirm,
    make_app,
    parse_json_arg,
    parse_json_args,
    run,
)
from .output import emit, fail, when

cli = typer.Typer(
    help="Start, inspect, signal, query, update, cancel, reset and end workflow runs.",
    no_args_is_help=True,
)

RunIdOpt = Annotated[str | None, typer.Option("--run-id", help="A specific run (default: newest).")]
ReasonOpt = Annotated[str, typer.Option(help="Why; recorded in history.")]
AttrOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--attr",
        help="A search attribute NAME=VALUE (VALUE as JSON, else a string) or"
        " NAME:TYPE=VALUE; repeatable. See docs/visibility.md.",
    ),
]


# The CLI names a run's times for people: when it started and when it closed.
_TIMES = {"created_at": "started", "closed_at": "closed"}


def _run_dict(run: RunRecord) -> dict[str, Any]:
    """The run as ``RunRecord.to_dict`` has it, its times formatted and named for people."""
    return {
        _TIMES.get(key, key): when(value) if key in _TIMES else value
        for key, value in run.to_dict().items()
    }


def _show_run(
    db: str | None, namespace: str, body: Callable[[App], Awaitable[RunRecord]], *, as_json: bool
) -> None:
    """Run ``body`` on the store and print the run it returns."""
    emit(_run_dict(run(make_app(db, namespace), body)), as_json=as_json)


@cli.command()
def start(
    workflow_type: Annotated[str, typer.Argument(help="The workflow's registered name.")],
    arg: ArgsOpt = None,
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
    priority: Annotated[
        int, typer.Option(help="Priority level, 0 (first) to 9, among the namespace's runs.")
    ] = 2,
    fairness_key: Annotated[
        str | None,
        typer.Option(help="Share capacity fairly between keys (an end customer, say)."),
    ] = None,
    fairness_weight: Annotated[float, typer.Option(help="This key's share.")] = 1.0,
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
    payload = parse_json_arg(signal_arg)

    async def body(app: App) -> dict[str, Any]:
        place = Priority(priority, fairness_key, fairness_weight)
        if signal is not None:
            assert workflow_id is not None
            handle = await app.client.signal_with_start(
                workflow_type, *args, id=workflow_id, signal=signal, payload=payload,
                task_queue=task_queue, priority=place, search_attributes=attributes,
            )  # fmt: skip
        else:
            handle = await app.client.start(
                workflow_type, *args, id=workflow_id, task_queue=task_queue, priority=place,
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

    _show_run(db, namespace, body, as_json=as_json)


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
    reason: ReasonOpt = "",
    run_id: RunIdOpt = None,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """End a run at once, recording who and why."""

    async def body(app: App) -> RunRecord:
        return await app.client.get_handle(workflow_id, run_id).terminate(reason, identity="cli")

    _show_run(db, namespace, body, as_json=as_json)


@cli.command()
def reset(
    workflow_id: str,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="The point: an event seq (see `history`), last_completed_step,"
            " first_failed_activity or step:N.",
        ),
    ],
    reason: Annotated[str, typer.Option(help="Why; recorded in both runs' histories.")] = "",
    reapply_signals: Annotated[
        bool,
        typer.Option(
            "--reapply-signals/--no-reapply-signals",
            help="Send the signals the run got after the point to the new run again.",
        ),
    ] = True,
    run_id: RunIdOpt = None,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a new run from a point of a run's history; what came after runs again."""

    async def body(app: App) -> RunRecord:
        handle = app.client.get_handle(workflow_id, run_id)
        new_id = await handle.reset(
            to, reason=reason, reapply_signals=reapply_signals, identity="cli"
        )
        return await app.client.get_handle(workflow_id, new_id).describe()

    _show_run(db, namespace, body, as_json=as_json)


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
    payload = parse_json_arg(arg)

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
    arg: ArgsOpt = None,
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
def update(
    workflow_id: str,
    name: Annotated[str, typer.Argument(help="The update's name.")],
    args: Annotated[
        list[str] | None, typer.Argument(help="The update's arguments, each one JSON.")
    ] = None,
    update_id: Annotated[
        str | None,
        typer.Option("--update-id", help="Idempotency key: the same id returns the same outcome."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            metavar="WORKFLOW_TYPE",
            help="Update-with-start: start a run of this type with WORKFLOW_ID if none is"
            " open, in the same atomic step as the request.",
        ),
    ] = None,
    start_arg: Annotated[
        list[str] | None,
        typer.Option("--start-arg", help="With --start: a workflow argument as JSON (repeatable)."),
    ] = None,
    task_queue: Annotated[str | None, typer.Option("--task-queue", "-q")] = None,
    id_conflict: Annotated[
        str, typer.Option(help="With --start, an open run has the id: use_existing, or fail.")
    ] = "use_existing",
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait for the result.")] = None,
    run_id: RunIdOpt = None,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Call update NAME of a run and print its result (exit 2 if rejected, 1 if it failed)."""
    plain = parse_json_args(args or [])
    key = update_id or new_id()
    if start is None and (start_arg or task_queue):
        fail("--start-arg and --task-queue need --start: the workflow type to start", 2)

    async def body(app: App) -> dict[str, Any]:
        try:
            if start is not None:
                value, handle = await app.client.update_with_start(
                    start, *parse_json_args(start_arg or []), id=workflow_id, update=name,
                    update_args=plain, update_id=key, task_queue=task_queue,
                    id_conflict=cast(IdConflict, id_conflict), timeout=timeout,
                )  # fmt: skip
                updated = handle.run_id
            else:
                handle = app.client.get_handle(workflow_id, run_id)
                value = await handle.update(name, *plain, update_id=key, timeout=timeout)
                updated = (await handle.describe()).run_id
        except TimeoutError as exc:
            fail(f"{exc}; wait again with --update-id {key}", 1)
        return {
            "workflow_id": workflow_id, "run_id": updated, "update": name, "update_id": key,
            "result": value,
        }  # fmt: skip

    emit(run(make_app(db, namespace), body), as_json=as_json)


@cli.command()
def cancel(
    workflow_id: str,
    reason: ReasonOpt = "",
    run_id: RunIdOpt = None,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask a run to cancel: its code sees CancelledError and may clean up."""

    async def body(app: App) -> RunRecord:
        return await app.client.get_handle(workflow_id, run_id).cancel(reason, identity="cli")

    _show_run(db, namespace, body, as_json=as_json)


@cli.command()
def delete(
    workflow_id: str,
    run_id: RunIdOpt = None,
    yes: YesOpt = False,
    namespace: NsOpt = "default",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a run and every byte of it: history, payloads, tasks (a GDPR erasure)."""
    confirm(f"Delete run {workflow_id!r} and all of its data?", yes=yes)

    async def body(app: App) -> dict[str, Any]:
        await app.client.delete_run(workflow_id, run_id)
        return {"deleted": workflow_id, "namespace": namespace}

    emit(run(make_app(db, namespace), body), as_json=as_json)
