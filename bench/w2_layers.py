"""W2 on PostgreSQL by layer: what Tether's Python adds to the four statements it sends.

Usage: python3 bench/w2_layers.py [--n N] [--rounds R] [--db postgresql://USER@HOST:PORT/DB]

Runs W2's writes (a run started with its first activity leased to the caller, then three
advances, the last closing the run) three ways, on one fresh database of that server
(dropped afterwards), in alternating rounds so that the machine's drift falls on each
alike:

- ``sql``: the four statements the store sends for a W2 run (the same functions, the same
  statement text from ``commits.Kind``, the same kinds of parameters), from a loop with no
  other work: the floor of the design for this client, with no engine, worker or store.
- ``store``: the store's own calls (``start_run_executed``, then
  ``advance_after_activity`` three times), with the commits built in advance as the worker
  would build them: the store's Python on top of the statements.
- ``tether``: ``client.execute(three_steps)`` with a worker in this process, as
  ``tether_bench.py W2`` runs it: the client, the engine and the worker on top.

Per layer and round it prints the p50 of a run, this process's CPU per run and the CPU of
the database's backends per run (from ``/proc``: the server must be on this machine),
then the medians over the rounds. The server's work is the same in the three layers; a
difference in p50 is the Python of the layers above.

With ``--dbos``, each round also runs DBOS's W2 on the same server (``peers/dbos_peer.py
W2 --pg``, as ``run.py`` does) and prints each layer's ratio to it: what ratio the issue's
W2 target would see with no Python above the statements, in the same minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson

BENCH = Path(__file__).resolve().parent
sys.path += [str(BENCH.parent), str(BENCH)]

from apps import app, three_steps  # noqa: E402
from tether_bench import backends_cpu, with_database  # noqa: E402

import tether.runtime  # noqa: E402
from tether.history import EventType  # noqa: E402
from tether.store import (  # noqa: E402
    ActivityOutcome,
    NewActivity,
    NewRun,
    RunClose,
    RunStatus,
    WorkflowCommit,
)
from tether.store.postgres.commits import ADVANCE, START  # noqa: E402
from tether.store.postgres.store import PostgresStore  # noqa: E402

LAYERS = ("sql", "store", "tether")
WARMUP = 50
NAMESPACE = "default"
QUEUE = "default"
LEASE = 30.0
#: An activity's options as the engine writes them for ``ctx.activity(step, x)``.
OPTIONS: dict[str, Any] = {
    "task_queue": QUEUE,
    "retry": None,
    "schedule_to_close": None,
    "start_to_close": None,
    "heartbeat": None,
}
ME = f"w2-layers:{os.getpid()}"

Run = Callable[[int], Awaitable[None]]


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _scheduled(step: int, x: int, wt: int) -> dict[str, Any]:
    return {"step": step, "name": "step", "args": [x], "options": OPTIONS, "wt": wt}


def _started(workflow_id: str, x: int) -> dict[str, Any]:
    return {
        "workflow_type": "three_steps",
        "workflow_id": workflow_id,
        "task_queue": QUEUE,
        "args": [x],
        "seed": 1,
    }


def sql_layer(conn: asyncpg.Connection, tag: str) -> Run:
    """The four statements, parameters built inline."""
    options = _dumps(OPTIONS)

    async def one(i: int) -> None:
        run_id, workflow_id, x = uuid.uuid4().hex, f"w2-{tag}-{i}", i
        scheduled = _dumps(_scheduled(1, x, 1))
        op = (
            NAMESPACE, run_id, workflow_id, "three_steps", QUEUE,
            _dumps(_started(workflow_id, x)), ME, LEASE, time.time(), True,
            [EventType.ACTIVITY_SCHEDULED.value], [scheduled],
            [1], ["step"], [QUEUE], [_dumps([x])], [options], [ME],
            None, None, None, None, None, None,
        )  # fmt: skip
        sql, params = START.statement([op])
        row = (await conn.fetch(sql, *params))[0]
        seq, task_id = row["o_last_seq"], row["o_activity_ids"][0]
        for step in (1, 2, 3):
            x += 1
            done = [
                EventType.ACTIVITY_STARTED.value,
                EventType.ACTIVITY_COMPLETED.value,
                EventType.WORKFLOW_COMPLETED.value if step == 3
                else EventType.ACTIVITY_SCHEDULED.value,
            ]  # fmt: skip
            attrs = [
                _dumps({"step": step, "attempt": 1}),
                _dumps({"step": step, "result": x}),
                _dumps({"result": x, "wt": 10} if step == 3 else _scheduled(step + 1, x, 4)),
            ]
            if step < 3:
                activities: tuple[Any, ...] = (
                    [step + 1], ["step"], [QUEUE], [_dumps([x])], [options], [ME],
                )  # fmt: skip
                close: tuple[Any, ...] = (None, None, None)
            else:
                activities = (None,) * 6
                close = ("completed", _dumps(x), None)
            op = (
                NAMESPACE, run_id, task_id, 1, seq, time.time(), LEASE, done, attrs,
                *activities, None, None, None, *close, step == 3,
            )  # fmt: skip
            sql, params = ADVANCE.statement([op])
            row = (await conn.fetch(sql, *params))[0]
            assert row["o_applied"], "an advance was not applied"
            seq = row["o_last_seq"]
            if step < 3:
                task_id = row["o_activity_ids"][0]

    return one


def store_layer(store: PostgresStore, tag: str) -> Run:
    """The store's calls, commits built as the worker builds them."""

    def commit(events: list[tuple[str, dict[str, Any]]], step: int | None, x: int) -> Any:
        c = WorkflowCommit(events=events)
        if step is not None:
            c.activities.append(NewActivity(step, "step", QUEUE, [x], OPTIONS))
            c.claim_activities_for, c.local_queues = ME, (QUEUE,)
        return c

    async def one(i: int) -> None:
        workflow_id, x = f"w2-{tag}-{i}", i
        run = NewRun(
            NAMESPACE, workflow_id, uuid.uuid4().hex, "three_steps", QUEUE,
            _started(workflow_id, x),
        )  # fmt: skip
        first = commit([(EventType.ACTIVITY_SCHEDULED, _scheduled(1, x, 1))], 1, x)
        _, result = await store.start_run_executed(run, time.time(), ME, LEASE, first)
        seq, (task,) = result.last_seq, result.activities
        for step in (1, 2, 3):
            x += 1
            if step < 3:
                event = (EventType.ACTIVITY_SCHEDULED, _scheduled(step + 1, x, 4))
                nxt = commit([event], step + 1, x)
            else:
                nxt = commit([(EventType.WORKFLOW_COMPLETED, {"result": x, "wt": 10})], None, x)
                nxt.close = RunClose(RunStatus.COMPLETED, x)
            done = await store.advance_after_activity(
                task,
                ActivityOutcome(EventType.ACTIVITY_COMPLETED, result=x),
                expected_seq=seq,
                ts=time.time(),
                commit=nxt,
                lease=LEASE,
            )
            assert done is not None, "an advance was not applied"
            seq = done.last_seq
            if step < 3:
                (task,) = done.activities

    return one


def tether_layer(tag: str) -> Run:
    async def one(i: int) -> None:
        assert await app.client.execute(three_steps, i, id=f"w2-{tag}-{i}") == i + 3

    return one


async def _timed(run: Run, n: int, database: str) -> dict[str, float]:
    for i in range(WARMUP):
        await run(-1 - i)
    backends, cpu = backends_cpu(database), time.process_time()
    latencies = []
    for i in range(n):
        t0 = time.perf_counter()
        await run(i)
        latencies.append(time.perf_counter() - t0)
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "cpu_ms": (time.process_time() - cpu) / n * 1000,
        "backends_ms": (backends_cpu(database) - backends) / n * 1000,
    }


@contextlib.asynccontextmanager
async def layer(url: str, name: str, tag: str) -> AsyncIterator[Run]:
    """W2's runs through the layer ``name`` (one of LAYERS) on the database at ``url``,
    whose schema is in place; what the layer holds open is closed afterwards."""
    if name == "sql":
        conn = await asyncpg.connect(url, server_settings={"plan_cache_mode": "force_generic_plan"})
        try:
            yield sql_layer(conn, tag)
        finally:
            await conn.close()
    elif name == "store":
        store = PostgresStore(url)
        await store.open()
        try:
            yield store_layer(store, tag)
        finally:
            await store.close()
    else:
        app.use_store(url)
        async with app, app.worker():
            yield tether_layer(tag)


async def _round(url: str, database: str, name: str, n: int, r: int) -> dict[str, float]:
    tag = f"{name}-{r}"
    async with layer(url, name, tag) as run:
        return await _timed(run, n, database)


def dbos_p50(server: str) -> float:
    """DBOS's W2 p50 on ``server``, from its peer script's JSON line."""
    out = subprocess.run(
        [sys.executable, str(BENCH / "peers" / "dbos_peer.py"), "W2", "--pg", server],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["p50_ms"])


async def layers(server: str, n: int, rounds: int, dbos: bool) -> None:
    name = f"tether_layers_{uuid.uuid4().hex[:10]}"
    url = with_database(server, name)
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    results: dict[str, list[dict[str, float]]] = {layer: [] for layer in LAYERS}
    peer: list[float] = []
    try:
        store = PostgresStore(url)
        await store.open()  # the schema, once
        await store.close()
        for r in range(rounds):
            for layer in LAYERS:
                got = await _round(url, name, layer, n, r)
                results[layer].append(got)
                print(
                    f"round {r + 1} {layer:6s}: p50 {got['p50_ms']:.2f} ms;"
                    f" this process {got['cpu_ms']:.3f} ms CPU a run;"
                    f" backends {got['backends_ms']:.3f} ms",
                    flush=True,
                )
            if dbos:
                peer.append(dbos_p50(server))
                ratios = " / ".join(
                    f"{layer} {peer[-1] / results[layer][-1]['p50_ms']:.2f}x" for layer in LAYERS
                )
                print(f"round {r + 1} dbos  : p50 {peer[-1]:.2f} ms; DBOS / layer: {ratios}")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(f"medians over {rounds} rounds of {n} runs:")
    for layer in LAYERS:
        med = {k: statistics.median(g[k] for g in results[layer]) for k in results[layer][0]}
        print(
            f"  {layer:6s}: p50 {med['p50_ms']:.2f} ms; this process {med['cpu_ms']:.3f} ms"
            f" CPU a run; backends {med['backends_ms']:.3f} ms"
        )
    if peer:
        for layer in LAYERS:
            ratios = [p / g["p50_ms"] for p, g in zip(peer, results[layer], strict=True)]
            print(
                f"  DBOS / {layer}: median {statistics.median(ratios):.2f}x"
                f" (rounds {' / '.join(f'{x:.2f}' for x in ratios)})"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--dbos", action="store_true", help="also run DBOS's W2 each round")
    args = p.parse_args()
    tether.runtime.run(layers(args.db, args.n, args.rounds, args.dbos))


if __name__ == "__main__":
    main()
