"""``Namespaces``: the lifecycle of namespaces and the checks a start passes, over the Store.

Reached as ``client.namespaces``; the CLI and every other surface go through it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import InvalidArgument, PayloadTooLarge
from ..store import DELETE_BATCH, NamespaceRecord, NamespaceStats, NewRun, Store
from .settings import NamespaceSettings, check_name, parse_settings

__all__ = ["NamespaceDescription", "NamespaceInfo", "Namespaces"]


@dataclass(frozen=True, slots=True)
class NamespaceInfo:
    name: str
    created_at: float
    settings: NamespaceSettings

    @classmethod
    def from_record(cls, record: NamespaceRecord) -> NamespaceInfo:
        return cls(record.name, record.created_at, parse_settings(record.settings))


@dataclass(frozen=True, slots=True)
class NamespaceDescription:
    """A namespace, its settings and its figures now."""

    info: NamespaceInfo
    stats: NamespaceStats

    def to_dict(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "name": self.info.name,
            "created_at": self.info.created_at,
            "settings": self.info.settings.model_dump(mode="json"),
            "runs": {
                "running": stats.runs.get("running", 0),
                "closed": sum(n for s, n in stats.runs.items() if s != "running"),
                "by_status": stats.runs,
            },
            "queues": [
                {
                    "task_queue": q.task_queue,
                    "workflow_ready": q.workflow_ready,
                    "activity_ready": q.activity_ready,
                    "leased": q.leased,
                    "delayed": q.delayed,
                }
                for q in stats.queues
            ],
            "limit_waits": stats.limit_waits,
        }


class Namespaces:
    """Create, describe, update, list and delete namespaces; admit starts.

    Settings read for admission are cached for ``max_age`` seconds, so a change takes
    effect everywhere within that time, without restarting anything.
    """

    def __init__(self, store: Store, *, max_age: float = 1.0) -> None:
        self.store = store
        self.max_age = max_age
        self._cache: dict[str, tuple[float, NamespaceSettings]] = {}
        # Callers that miss the cache together share one read (a burst of starts).
        self._reading: dict[str, asyncio.Task[NamespaceSettings]] = {}

    async def create(
        self,
        name: str,
        settings: NamespaceSettings | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> NamespaceInfo:
        """Create a namespace; raises ``NamespaceAlreadyExists`` if it exists."""
        check_name(name)
        checked = parse_settings(settings).merged(fields) if fields else parse_settings(settings)
        record = await self.store.create_namespace(name, checked.to_json())
        return NamespaceInfo.from_record(record)

    async def get(self, name: str) -> NamespaceInfo:
        """A namespace and its settings; raises ``NamespaceNotFound``."""
        return NamespaceInfo.from_record(await self.store.get_namespace(name))

    async def describe(self, name: str) -> NamespaceDescription:
        """A namespace, its settings, and its figures: runs by status, backlog per task
        queue, and how often its limits held work back."""
        info = await self.get(name)
        return NamespaceDescription(info, await self.store.namespace_stats(name))

    async def update(
        self, name: str, settings: Mapping[str, Any] | None = None, **fields: Any
    ) -> NamespaceInfo:
        """Change some settings (the others are kept); the result is validated whole."""
        changes = {**(settings or {}), **fields}

        def change(current: dict[str, Any]) -> dict[str, Any]:
            return parse_settings(current).merged(changes).to_json()

        record = await self.store.update_namespace(name, change)
        self._forget(name)
        return NamespaceInfo.from_record(record)

    async def list(self) -> list[NamespaceInfo]:
        return [NamespaceInfo.from_record(r) for r in await self.store.list_namespace_records()]

    async def delete(self, name: str, *, batch: int = DELETE_BATCH) -> None:
        """Delete a namespace and every byte of its data: runs, histories, payloads,
        tasks, timers, limits and settings. Workers holding its tasks lose their leases.

        It is first marked as being deleted, in one short transaction: from then on it
        is invisible, refuses starts, signals and other input (``NamespaceNotFound``),
        and workers claim none of its tasks. Its rows then go ``batch`` at a time, each
        batch its own transaction, so other namespaces' work goes on meanwhile. If this
        process dies midway, deleting the namespace again, or the retention sweeper of
        any worker, finishes the job."""
        self._forget(name)
        try:
            await self.store.delete_namespace(name, batch=batch)
        finally:
            self._forget(name)

    def _forget(self, name: str) -> None:
        self._cache.pop(name, None)
        self._reading.pop(name, None)

    async def settings(self, name: str) -> NamespaceSettings:
        """The namespace's settings, read at most ``max_age`` seconds ago."""
        cached = self._cache.get(name)
        if cached is not None and time.monotonic() - cached[0] < self.max_age:
            return cached[1]
        reading = self._reading.get(name)
        if reading is None:
            reading = self._reading[name] = asyncio.create_task(self._read(name))
            reading.add_done_callback(lambda done: self._forget_read(name, done))
        return await asyncio.shield(reading)

    async def _read(self, name: str) -> NamespaceSettings:
        asked = time.monotonic()
        settings = (await self.get(name)).settings
        if self._reading.get(name) is asyncio.current_task():  # not changed meanwhile
            self._cache[name] = (asked, settings)
        return settings

    def _forget_read(self, name: str, done: asyncio.Task[NamespaceSettings]) -> None:
        if self._reading.get(name) is done:
            del self._reading[name]
        if not done.cancelled():
            done.exception()  # retrieved: every caller got it already

    async def check_payload(self, namespace: str, value: Any, what: str) -> None:
        """Refuse ``value`` (already plain JSON) if over the namespace's payload limit."""
        limit = (await self.settings(namespace)).max_payload
        if limit is not None and (size := len(orjson.dumps(value))) > limit:
            raise PayloadTooLarge(
                f"{what} is {size} bytes, over the namespace's limit of {limit} bytes",
                namespace=namespace,
            )

    async def admit(self, run: NewRun) -> None:
        """Check a start against its namespace's settings, and wait for its start rate.

        Raises ``NamespaceNotFound``, ``InvalidArgument`` (a task queue the namespace may
        not use) or ``PayloadTooLarge``. A start over the rate waits its turn, reserved
        in the store so that every process shares one rate.
        """
        settings = await self.settings(run.namespace)
        if settings.task_queues is not None and run.task_queue not in settings.task_queues:
            raise InvalidArgument(
                f"namespace {run.namespace!r} may not use task queue {run.task_queue!r}"
                f" (allowed: {', '.join(settings.task_queues) or 'none'})",
                namespace=run.namespace,
            )
        what = f"arguments of workflow {run.workflow_type}"
        await self.check_payload(run.namespace, run.started.get("args"), what)
        limits = run_limits(settings)
        if limits:
            run.started["limits"] = limits
        queue_rate = settings.queue_start_rates.get(run.task_queue)
        if settings.start_rate is not None or queue_rate is not None:
            delay = await self.store.reserve_start(
                run.namespace, run.task_queue, settings.start_rate, queue_rate
            )
            if delay > 0:
                await asyncio.sleep(delay)


def run_limits(settings: NamespaceSettings) -> dict[str, Any]:
    """The limits a run keeps for its whole life (in its WorkflowStarted event), so that
    the checks its code meets replay the same after the settings change."""
    limits: dict[str, Any] = {}
    if settings.max_payload is not None:
        limits["max_payload"] = settings.max_payload
    if settings.task_queues is not None:
        limits["task_queues"] = list(settings.task_queues)
    return limits
