"""``LLMRouter``: serves one attempt of an LLM step.

It resolves the model or alias to a fallback chain of ``provider:model`` for the
step's namespace and tries the chain in order. Before each call the store admits it
under the provider's shared limits and the namespace's budget and writes its ledger
row as ``started``; after it, the row gets the call's real usage and cost (see
``ratelimit.py`` and ``ledger.py``). A rate limit of ours, a 429, a 5xx, a timeout or
a connection error moves on to the next model; a spent budget ends the attempt. The
first answer is the step's result, naming the model that gave it and every call tried
before it. When every model failed, the attempt fails with a retryable
:class:`tether.ModelError` whose ``retry_after`` is the soonest time any of them said
it would take calls again: the worker then schedules the next attempt for that time,
a durable wait that holds no worker slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ..chat import CallAttempt, ChatRequest, ChatResult
from ..errors import ModelError
from ..store import Store, UsageRecord
from ..store.llm_limits import CallLimits, CallStart
from .config import LLMConfig, ProviderConfig
from .ledger import StepInfo, call_budget, over_budget
from .pricing import cost
from .providers import Provider, ProviderError, build
from .ratelimit import Throttled, admit
from .sim import SimServer

__all__ = ["LLMRouter"]

log = logging.getLogger("tether.llm")


# A concurrency slot outlives the provider's timeout by this much before it expires.
_SLOT_MARGIN = 30.0
# How long a cancelled call may take to close its ledger row.
_GIVE_UP_WAIT = 2.0


def _estimate(request: ChatRequest) -> tuple[int, int]:
    """Input and output tokens a call may use, reserved before the call (tokens per
    minute and budget) and corrected with the real count after it."""
    chars = sum(len(m.content or "") for m in request.messages)
    chars += sum(len(str(t.parameters)) for t in request.tools)
    return chars // 4, request.max_tokens or 512


class LLMRouter:
    """The app's LLM settings and provider clients (one per process); the rate limits
    and budgets are kept in the store, shared by every process."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self._clients: dict[tuple[str, str], tuple[ProviderConfig, Provider]] = {}
        self._sim: SimServer | None = None

    def queue_for(self, namespace: str, model: str) -> str | None:
        return self.config.queue_for(namespace, model)

    @property
    def sim(self) -> SimServer:
        """The offline simulator behind the ``sim`` provider (started on first use)."""
        if self._sim is None:
            self._sim = SimServer().start()
        return self._sim

    async def _provider(self, namespace: str, name: str, config: ProviderConfig) -> Provider:
        key = (namespace, name)
        cached = self._clients.get(key)
        if cached is not None and cached[0] == config:
            return cached[1]
        sim_url = self.sim.url if config.kind == "sim" else None
        # The first use imports the provider's SDK, which takes a while: off the loop,
        # so that leases and heartbeats of other work go on meanwhile.
        provider = await asyncio.to_thread(
            build, name, config, namespace=namespace, sim_url=sim_url
        )
        self._clients[key] = (config, provider)
        return provider

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for _, provider in clients:
            with contextlib.suppress(Exception):  # closing is best effort
                await provider.close()
        if self._sim is not None:
            sim, self._sim = self._sim, None
            await asyncio.to_thread(sim.stop)

    async def call(self, store: Store, request: ChatRequest, step: StepInfo) -> ChatResult:
        """Serve one attempt of an LLM step (see the module docstring)."""
        settings = self.config.resolve(step.namespace)
        chain = self.config.chain(step.namespace, request.model)
        budget = call_budget(settings.budget, time.time())
        attempts: list[CallAttempt] = []
        waits: list[float] = []
        input_estimate, output_estimate = _estimate(request)
        estimate = input_estimate + output_estimate
        for index, (name, provider_config, model) in enumerate(chain):
            target = f"{name}:{model}"
            limits = provider_config.limits
            reserve = cost(settings.prices, name, model, input_estimate, output_estimate)
            start = CallStart(
                record=step.record(index, name, target),
                estimate=estimate,
                reserve_usd=reserve,
                limits=CallLimits(
                    requests_per_minute=limits.requests_per_minute,
                    tokens_per_minute=limits.tokens_per_minute,
                    concurrency=limits.concurrency,
                    burst=limits.burst,
                    slot_lease=provider_config.timeout + _SLOT_MARGIN,
                ),
                budget=budget,
            )
            try:
                admission = await admit(store, start, limits.max_inline_wait)
            except Throttled as exc:
                attempts.append(
                    CallAttempt(
                        model=target,
                        outcome="throttled",
                        retry_after=exc.retry_after,
                        error=exc.why,
                    )
                )
                waits.append(exc.retry_after)
                continue
            if admission.kind == "budget":
                assert settings.budget is not None
                refused = over_budget(step.namespace, settings.budget, admission.spent_usd, reserve)
                log.info("%s (run %s, step %s)", refused, step.run_id, step.step)
                raise refused
            started = time.monotonic()
            try:
                provider = await self._provider(step.namespace, name, provider_config)
                reply = await provider.chat(request, model)
            except ProviderError as exc:
                latency = (time.monotonic() - started) * 1000
                limited = exc.kind == "rate_limited" and exc.retry_after
                await store.finish_llm_call(
                    step.record(index, name, target, latency_ms=latency, outcome=exc.kind),
                    estimate=estimate,
                    block_for=exc.retry_after if limited else None,
                )
                attempts.append(
                    CallAttempt(
                        model=target,
                        outcome=exc.kind,
                        status=exc.status,
                        retry_after=exc.retry_after,
                        error=str(exc)[:500],
                        latency_ms=round(latency, 1),
                    )
                )
                if not exc.retryable:
                    raise ModelError(
                        f"{target} refused the call: {exc}",
                        non_retryable=True,
                        model=target,
                    ) from None
                if exc.retry_after is not None:
                    waits.append(exc.retry_after)
                continue
            except BaseException as exc:
                await _give_up(
                    store, step.record(index, name, target, outcome=_outcome(exc)), estimate
                )
                raise
            latency = (time.monotonic() - started) * 1000
            price = cost(
                settings.prices,
                name,
                model,
                reply.usage.input_tokens,
                reply.usage.output_tokens,
            )
            await store.finish_llm_call(
                step.record(index, name, target, reply.usage, price, latency, "ok"),
                estimate=estimate,
            )
            attempts.append(CallAttempt(model=target, outcome="ok", latency_ms=round(latency, 1)))
            return ChatResult(
                text=reply.text,
                tool_calls=reply.tool_calls,
                parsed=reply.parsed,
                usage=reply.usage,
                model=target,
                attempts=attempts,
                finish_reason=reply.finish_reason,
                simulated=provider_config.kind == "sim",
            )
        tried = "; ".join(_describe(a) for a in attempts)
        raise ModelError(
            f"no model could answer {request.model!r} ({tried})",
            retry_after=min(waits) if waits else None,
            model=request.model,
        )


def _outcome(exc: BaseException) -> str:
    return "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"


async def _give_up(store: Store, record: UsageRecord, estimate: int) -> None:
    """Close the ledger row and free the slot of a call cut short (cancelled by a
    timeout or a shutdown, or a bug): best effort, as the slot expires anyway."""
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(
            asyncio.shield(store.finish_llm_call(record, estimate=estimate)), _GIVE_UP_WAIT
        )


def _describe(attempt: CallAttempt) -> str:
    out = f"{attempt.model}: {attempt.outcome}"
    details = [attempt.error] if attempt.outcome == "throttled" and attempt.error else []
    if attempt.status is not None:
        details.append(f"HTTP {attempt.status}")
    if attempt.retry_after is not None:
        details.append(f"retry after {attempt.retry_after:.3g}s")
    return f"{out} ({', '.join(details)})" if details else out
