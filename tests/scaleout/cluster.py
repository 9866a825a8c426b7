"""Worker processes for the scale-out tests, and the audit of what they did.

``Cluster`` starts ``tests.scaleout.workerapp`` workers as real processes (optionally
inside a network namespace), reads the files they write and kills or stops them.
``audit`` reads every run's history back and checks it against the side effects the
workers recorded. ``open_runs`` says what holds up the runs still open, for a test that
timed out waiting for them.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from tests.support.netns import Namespace
from tether import EventType, RunStatus, Store, StoreUnavailable

from .workerapp import GATE, chain_result

__all__ = [
    "Audit",
    "Cluster",
    "WorkerProcess",
    "audit",
    "eventually",
    "open_runs",
    "wait_all_closed",
]

ROOT = Path(__file__).resolve().parents[2]
NS = "default"


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    diagnostics: Callable[[], str | Awaitable[str]] | None = None,
    retry_on: tuple[type[Exception], ...] = (),
) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds naming ``what``,
    with what ``diagnostics()`` says then.

    A check raising one of ``retry_on`` counts as not holding yet.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            outcome = check()
            if not isinstance(outcome, bool):
                outcome = await outcome
        except retry_on:
            outcome = False
        if outcome:
            return
        if time.monotonic() > deadline:
            extra = ""
            if diagnostics is not None:
                said = diagnostics()
                extra = "\n" + (await said if inspect.isawaitable(said) else said)
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        await asyncio.sleep(interval)


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    folder: Path
    netns: Namespace | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def identity(self) -> str:
        return f"{self.name}:{self.pid}"

    @property
    def ready(self) -> bool:
        return (self.folder / f"ready-{self.name}.json").exists()

    def alive(self) -> bool:
        return self.process.poll() is None


class Cluster:
    """Worker processes sharing ``folder`` for their records."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.workers: list[WorkerProcess] = []

    def spawn(
        self,
        name: str,
        db: str,
        *,
        netns: Namespace | None = None,
        workflow_lease: float = 1.5,
        activity_lease: float = 1.5,
        max_activities: int = 8,
        max_workflow_tasks: int = 16,
    ) -> WorkerProcess:
        options = {
            "--db": db,
            "--dir": str(self.folder),
            "--name": name,
            "--workflow-lease": str(workflow_lease),
            "--activity-lease": str(activity_lease),
            "--max-activities": str(max_activities),
            "--max-workflow-tasks": str(max_workflow_tasks),
        }
        argv = [sys.executable, "-m", "tests.scaleout.workerapp"]
        argv.extend(itertools.chain.from_iterable(options.items()))
        if netns is not None:
            argv = netns.argv(argv)  # `ip netns exec` execs: the pid stays the worker's
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        log = self.folder / f"worker-{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        worker = WorkerProcess(name, process, log, self.folder, netns)
        self.workers.append(worker)
        return worker

    async def wait_ready(self, *workers: WorkerProcess, timeout: float = 20.0) -> None:
        def ready() -> bool:
            for w in workers:
                if not w.alive():
                    raise AssertionError(f"worker {w.name} exited early\n{self.diagnostics()}")
            return all(w.ready for w in workers)

        await eventually(
            ready, timeout=timeout, what="workers to serve", diagnostics=self.diagnostics
        )

    # -- what the workers recorded ------------------------------------------------------

    def effects(self, kind: str = "effect") -> list[dict[str, Any]]:
        """Side-effect records of every worker (``kind`` "effect" or "begin")."""
        records: list[dict[str, Any]] = []
        for path in sorted(self.folder.glob("effects-*.jsonl")):
            records.extend(r for r in _read_lines(path) if r["kind"] == kind)
        return records

    def journal(self, worker: WorkerProcess) -> list[dict[str, Any]]:
        return _read_lines(self.folder / f"journal-{worker.name}.jsonl")

    def acknowledged(self) -> list[dict[str, Any]]:
        """The activity completions the store told a worker it recorded (a
        ``finish_activity``, or an ``advance_after_activity`` that applied), each a
        journal entry with the worker's identity as ``by``."""
        return [
            {**entry, "by": w.identity}
            for w in self.workers
            for entry in self.journal(w)
            if entry["outcome"] == "ok"
            and (
                entry["op"] == "finish_activity"
                or (entry["op"] == "advance_after_activity" and entry["applied"])
            )
        ]

    def open_gate(self) -> None:
        (self.folder / GATE).touch()

    def diagnostics(self, lines: int = 40) -> str:
        parts = []
        for w in self.workers:
            text = w.log.read_text(errors="replace").splitlines() if w.log.exists() else []
            state = "running" if w.alive() else f"exited {w.process.returncode}"
            parts.append(f"--- worker {w.name} (pid {w.pid}, {state}) ---")
            parts.extend(text[-lines:])
        return "\n".join(parts)

    # -- ending processes ---------------------------------------------------------------

    def kill(self, worker: WorkerProcess) -> None:
        """SIGKILL, as a crash: no cleanup runs in the worker."""
        os.kill(worker.pid, signal.SIGKILL)
        worker.process.wait(10)

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGTERM every live worker (graceful stop), SIGKILL those still up after ``grace``."""
        live = [w for w in self.workers if w.alive()]
        for w in live:
            w.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for w in live:
            try:
                w.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                w.process.kill()
                w.process.wait(10)


async def wait_all_closed(
    store: Store, count: int, *, timeout: float, diagnostics: Callable[[], str] | None = None
) -> None:
    """Wait until ``count`` runs exist and none is still running."""

    async def closed() -> bool:
        running = await store.list_runs(NS, status=RunStatus.RUNNING, limit=1)
        if running.runs:
            return False
        return len(await _all_runs(store)) >= count

    # The store may be briefly unavailable (a test restarts the server).
    await eventually(
        closed,
        timeout=timeout,
        what=f"all {count} runs to close",
        interval=0.1,
        diagnostics=diagnostics,
        retry_on=(StoreUnavailable,),
    )


async def _all_runs(store: Store) -> list[Any]:
    runs: list[Any] = []
    cursor: str | None = None
    while True:
        page = await store.list_runs(NS, limit=500, cursor=cursor)
        runs.extend(page.runs)
        if page.next_cursor is None:
            return runs
        cursor = page.next_cursor


Key = tuple[str, int]  # (run id, activity step)


@dataclass
class Audit:
    """What the histories and the side-effect records say, once every run closed."""

    runs: int = 0
    problems: list[str] = field(default_factory=list)
    # (run, step) -> the recorded ActivityCompleted result: {"value", "by", "attempt"}
    completions: dict[Key, dict[str, Any]] = field(default_factory=dict)
    # (run, step) -> the side-effect records of every attempt that ran to its end
    effects: dict[Key, list[dict[str, Any]]] = field(default_factory=dict)
    # worker identity -> side effects whose completion history holds
    recorded_by: Counter[str] = field(default_factory=Counter)

    def repeated(self) -> dict[Key, list[dict[str, Any]]]:
        """Steps whose side effect happened more than once."""
        return {k: v for k, v in self.effects.items() if len(v) > 1}

    def unrecorded(self, acknowledged: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The ``acknowledged`` completions (``Cluster.acknowledged``) that history
        does not hold: the store said it recorded them, and then lost them."""
        return [
            entry
            for entry in acknowledged
            if (
                (done := self.completions.get((entry["run"], entry["step"]))) is None
                or (done["by"], done["attempt"]) != (entry["by"], entry["attempt"])
            )
        ]


async def audit(
    store: Store, effects: list[dict[str, Any]], expected: dict[str, tuple[int, int]]
) -> Audit:
    """Check every run against ``expected`` (workflow id -> (n, steps)) and the records.

    Problems found are listed in ``Audit.problems`` (empty when all is well): a run not
    completed or completed twice, a wrong result, a scheduled step without exactly one
    completion, a recorded completion that no attempt produced, a step with no effect.
    """
    report = Audit()
    by_step: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for record in effects:
        by_step[(record["run"], record["step"])].append(record)
    report.effects = dict(by_step)
    runs = await _all_runs(store)
    report.runs = len(runs)
    ids = Counter(r.workflow_id for r in runs)
    problems = report.problems
    problems.extend(f"workflow id {wf} has {n} runs" for wf, n in ids.items() if n > 1)
    if set(ids) != set(expected):
        problems.append(f"runs {sorted(set(ids) ^ set(expected))} missing or unexpected")
    for run in runs:
        history = await store.read_history(NS, run.run_id)
        types = Counter(e.type for e in history)
        if run.status != RunStatus.COMPLETED or types[EventType.WORKFLOW_COMPLETED] != 1:
            problems.append(
                f"{run.workflow_id}: status {run.status}, "
                f"{types[EventType.WORKFLOW_COMPLETED]} WorkflowCompleted"
            )
            continue
        if run.workflow_id in expected and run.result != chain_result(*expected[run.workflow_id]):
            problems.append(f"{run.workflow_id}: result {run.result}, expected differs")
        scheduled = [e.attrs["step"] for e in history if e.type == EventType.ACTIVITY_SCHEDULED]
        done = [e for e in history if e.type == EventType.ACTIVITY_COMPLETED]
        if sorted(scheduled) != sorted(e.attrs["step"] for e in done) or len(set(scheduled)) != len(
            scheduled
        ):
            problems.append(
                f"{run.workflow_id}: scheduled {scheduled}, completed "
                f"{[e.attrs['step'] for e in done]}"
            )
        for event in done:
            key = (run.run_id, event.attrs["step"])
            result = event.attrs["result"]
            report.completions[key] = result
            report.recorded_by[result["by"]] += 1
            ran = by_step.get(key, [])
            if not any(r["by"] == result["by"] and r["attempt"] == result["attempt"] for r in ran):
                problems.append(
                    f"{run.workflow_id} step {key[1]}: recorded {result} but no "
                    f"such attempt ran (effects {ran})"
                )
    for key in by_step.keys() - report.completions.keys():
        problems.append(f"side effect of {key} but no completion recorded")
    return report


async def open_runs(url: str, cluster: Cluster, *, limit: int = 20) -> str:
    """What holds up the runs of the database at ``url`` still open: for each (the
    oldest ``limit``), its task rows (kind, owner, token, attempt, when visible or
    when its lease ends), the last events of its history and the last entries of the
    workers' journals about it. Times are seconds from now."""
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"--- open runs: cannot connect: {exc!r} ---"
    try:
        now = await conn.fetchval("SELECT tether.epoch()")
        total = await conn.fetchval(
            "SELECT count(*) FROM tether.runs WHERE namespace = $1 AND status = 'running'", NS
        )
        runs = await conn.fetch(
            "SELECT run_id, workflow_id, last_seq, created_at FROM tether.runs"
            " WHERE namespace = $1 AND status = 'running' ORDER BY created_at LIMIT $2",
            NS,
            limit,
        )
        ids = [r["run_id"] for r in runs]
        tasks = await conn.fetch(
            "SELECT run_id, id, kind, step, owner, token, attempt, dirty, visible_at, error"
            " FROM tether.tasks WHERE namespace = $1 AND run_id = ANY($2::text[]) ORDER BY id",
            NS,
            ids,
        )
        events = await conn.fetch(
            "SELECT run_id, seq, type, ts, attrs->>'step' AS step FROM ("
            " SELECT *, row_number() OVER (PARTITION BY run_id ORDER BY seq DESC) AS back"
            " FROM tether.events WHERE namespace = $1 AND run_id = ANY($2::text[])) e"
            " WHERE back <= 4 ORDER BY run_id, seq",
            NS,
            ids,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        return f"--- open runs: query failed: {exc!r} ---"
    finally:
        await conn.close()
    journal: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for w in cluster.workers:
        for j in cluster.journal(w):
            if "run" in j:
                facts = " ".join(f"{k}={j[k]}" for k in ("step", "attempt", "token") if k in j)
                when = j["t"] - time.time()
                journal[j["run"]].append((when, f"{w.name} {j['op']} {facts} {j['outcome']}"))
    lines = [f"--- {total} runs still open (the oldest {len(runs)}; times from now) ---"]
    for run in runs:
        run_id = run["run_id"]
        lines.append(
            f"run {run['workflow_id']} ({run_id}): last_seq {run['last_seq']},"
            f" started {run['created_at'] - now:+.1f}s"
        )
        mine = [t for t in tasks if t["run_id"] == run_id]
        lines.extend(
            f"  task {t['id']} {t['kind']} step {t['step']}: owner {t['owner']}"
            f" token {t['token']} attempt {t['attempt']} dirty {t['dirty']}"
            f" {'lease ends' if t['owner'] else 'visible'} {t['visible_at'] - now:+.1f}s"
            + (f" error {t['error']!r}" if t["error"] else "")
            for t in mine
        )
        if not mine:
            lines.append("  no task: nothing will advance this run")
        lines.extend(
            f"  event {e['seq']} {e['type']}"
            + (f" step {e['step']}" if e["step"] is not None else "")
            + f" {e['ts'] - now:+.1f}s"
            for e in events
            if e["run_id"] == run_id
        )
        lines.extend(
            f"  journal {when:+.1f}s {text}" for when, text in sorted(journal[run_id])[-6:]
        )
    return "\n".join(lines)
