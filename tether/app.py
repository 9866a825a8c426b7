"""``App``: the registry of a program's workflows and activities, and its store.

An explicit object, never a global: tests and tenants may hold many.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar, overload

from . import runtime
from .chat import LLM_STEP, ChatRequest, ChatResult
from .client import Client
from .codec import DEFAULT_MAX_PAYLOAD, Codec
from .definitions import ActivityDefinition, Registry, WorkflowDefinition
from .engine.llm_step import DEFAULT_LLM_OPTIONS
from .errors import InvalidArgument
from .llm import LLMConfig, LLMRouter, StepInfo
from .policy import ActivityOptions, Retry, seconds
from .store import Store, open_store
from .worker import Worker
from .worker import info as activity_info

__all__ = ["App"]

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """Workflows, activities and the store they run on.

    ``store`` is a URL (``postgresql://...``, ``sqlite:///path``), a path, a ``Store``,
    or None for ``$TETHER_DATABASE_URL`` or else ``./tether.db``.
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        namespace: str = "default",
        task_queue: str = "default",
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        durable: bool = False,
        llm: LLMConfig | None = None,
    ) -> None:
        if isinstance(store, str) or store is None:
            options = {"durable": True} if durable else {}
            store = open_store(store, **options)
        self.store: Store = store
        self.namespace = namespace
        self.task_queue = task_queue
        self.codec = Codec(max_payload)
        self.registry = Registry()
        self.client = Client(
            store,
            codec=self.codec,
            registry=self.registry,
            namespace=namespace,
            task_queue=task_queue,
        )
        self._opened = False
        self.llm: LLMRouter | None = None
        if llm is not None:
            self.configure_llm(llm)

    def use_store(self, store: str | Store) -> None:
        """Point the app at another store (before it is opened): a URL, a path or a Store."""
        if self._opened:
            raise InvalidArgument("use_store() must be called before the app is opened")
        self.store = open_store(store) if isinstance(store, str) else store
        self.client.store = self.store

    # -- registration -------------------------------------------------------------------

    @overload
    def workflow(self, fn: F) -> F: ...

    @overload
    def workflow(
        self, *, name: str | None = None, task_queue: str | None = None
    ) -> Callable[[F], F]: ...

    def workflow(
        self, fn: F | None = None, *, name: str | None = None, task_queue: str | None = None
    ) -> F | Callable[[F], F]:
        """Register an ``async def workflow(ctx, ...)``."""

        def register(fn: F) -> F:
            self.registry.add_workflow(
                WorkflowDefinition.create(
                    fn, name, task_queue or self.task_queue, self.registry.activities
                )
            )
            return fn

        return register(fn) if fn is not None else register

    @overload
    def activity(self, fn: F) -> F: ...

    @overload
    def activity(
        self,
        *,
        name: str | None = None,
        task_queue: str | None = None,
        retry: Retry | None = None,
        schedule_to_close: timedelta | float | None = None,
        start_to_close: timedelta | float | None = None,
        heartbeat: timedelta | float | None = None,
    ) -> Callable[[F], F]: ...

    def activity(
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        task_queue: str | None = None,
        retry: Retry | None = None,
        schedule_to_close: timedelta | float | None = None,
        start_to_close: timedelta | float | None = None,
        heartbeat: timedelta | float | None = None,
    ) -> F | Callable[[F], F]:
        """Register an activity (sync or async) with its default options."""
        if retry is not None and not isinstance(retry, Retry):
            raise InvalidArgument(f"retry must be a tether.Retry, got {type(retry).__name__}")
        options = ActivityOptions(
            task_queue=task_queue,
            retry=retry,
            schedule_to_close=seconds(schedule_to_close),
            start_to_close=seconds(start_to_close),
            heartbeat=seconds(heartbeat),
        )

        def register(fn: F) -> F:
            self.registry.add_activity(ActivityDefinition.create(fn, name, options))
            return fn

        return register(fn) if fn is not None else register

    def configure_llm(
        self,
        config: LLMConfig,
        *,
        retry: Retry | None = None,
        start_to_close: timedelta | float | None = None,
    ) -> LLMRouter:
        """Set the LLM settings (providers, aliases, limits, prices, budgets) that serve
        ``ctx.llm``; calling it again swaps them, for the next calls. ``retry`` and
        ``start_to_close`` are the LLM step's defaults (``ctx.llm`` may override them).
        """
        if self.llm is None:
            self.llm = LLMRouter(config)
        else:
            self.llm.config = config
        router = self.llm

        async def llm_step(request: ChatRequest) -> ChatResult:
            info = activity_info()
            step = StepInfo(info.namespace, info.workflow_id, info.run_id, info.step, info.attempt)
            return await router.call(self.store, request, step)

        # Read by ctx.llm, when it schedules the step: the queue a provider is routed to.
        setattr(llm_step, "queue_for", router.queue_for)  # noqa: B010
        options = DEFAULT_LLM_OPTIONS.merged(
            task_queue=config.task_queue, retry=retry, start_to_close=start_to_close
        )
        self.registry.activities.pop(LLM_STEP, None)
        self.registry.add_activity(ActivityDefinition.create(llm_step, LLM_STEP, options))
        return router

    # -- running ------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the store, applying migrations.

        The ``default`` namespace always exists; others are created on purpose
        (``client.namespaces.create`` or ``tether namespace create``), never as a side
        effect of naming one, so a typo cannot create a tenant.
        """
        if not self._opened:
            await self.store.open()
            self._opened = True

    async def close(self) -> None:
        if self.llm is not None:
            await self.llm.close()
        if self._opened:
            await self.store.close()
            self._opened = False

    async def __aenter__(self) -> App:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def worker(
        self,
        *,
        namespaces: Sequence[str] | None = None,
        task_queues: Sequence[str] | None = None,
        **options: Any,
    ) -> Worker:
        """A worker for this app's registry; start it with ``async with`` or ``run()``.

        While it runs, runs this app's client starts on its namespaces and queues go to
        it in the start's own write (an eager start; see ``Worker.offer``).
        """
        worker = Worker(
            self.store,
            self.registry,
            self.codec,
            namespaces=namespaces or [self.namespace],
            task_queues=task_queues or self._queues(),
            **options,
        )
        self.client.local_workers.add(worker)
        return worker

    def _queues(self) -> list[str]:
        queues = {self.task_queue}
        queues.update(w.task_queue for w in self.registry.workflows.values())
        queues.update(
            a.options.task_queue for a in self.registry.activities.values() if a.options.task_queue
        )
        if self.llm is not None:
            queues.update(self.llm.config.task_queues())
        return sorted(queues)

    def run(self, workflow: Callable[..., Any] | str, *args: Any, id: str | None = None) -> Any:
        """Run one workflow to its result with an in-process worker: the sync edge.

        For scripts. Inside async code use ``app.client.execute`` with ``app.worker()``.
        """

        async def main() -> Any:
            async with self, self.worker():
                return await self.client.execute(workflow, *args, id=id)

        return runtime.run(main())
