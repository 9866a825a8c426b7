"""``LLMRouter``: serves one attempt of an LLM step.

It resolves the model or alias to a fallback chain of ``provider:model`` for the
step's namespace, checks the namespace's budget, and tries the chain in order: a
rate limit of ours, a 429, a 5xx, a timeout or a connection error moves on to the
next model. Every call made is written to the usage ledger. The first answer is the
step's result, naming the model that gave it and every call tried before it. When
every model failed, the attempt fails with a retryable :class:`tether.ModelError`
whose ``retry_after`` is the soonest time any of them said it would take calls again:
the worker then schedules the next attempt for that time, a durable wait that holds
no worker slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from ..chat import CallAttempt, ChatRequest, ChatResult, Usage
from ..errors import ModelError
from ..store import Store
from .config import LLMConfig, ProviderConfig
from .ledger import StepInfo, check_budget, record_call
from .pricing import cost
from .providers import Provider, ProviderError, build
from .ratelimit import RateLimits, Throttled
from .sim import SimServer

__all__ = ["LLMRouter"]


def _estimate(request: ChatRequest) -> int:
    """Tokens a call may use, for the tokens-per-minute limit before the call."""
    chars = sum(len(m.content or "") for m in request.messages)
    chars += sum(len(str(t.parameters)) for t in request.tools)
    return chars // 4 + (request.max_tokens or 512)


class LLMRouter:
    """The app's LLM settings, provider clients and rate limiters (one per process)."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self.limits = RateLimits()
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
        await check_budget(store, step.namespace, settings.budget)
        attempts: list[CallAttempt] = []
        waits: list[float] = []
        estimate = _estimate(request)
        for index, (name, provider_config, model) in enumerate(chain):
            target = f"{name}:{model}"
            limiter = self.limits.get(step.namespace, name, provider_config.limits)
            try:
                permit = await limiter.acquire(estimate)
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
            started = time.monotonic()
            try:
                provider = await self._provider(step.namespace, name, provider_config)
                reply = await provider.chat(request, model)
            except ProviderError as exc:
                permit.release()
                latency = (time.monotonic() - started) * 1000
                if exc.kind == "rate_limited" and exc.retry_after:
                    limiter.block(exc.retry_after)
                await record_call(store, step, index, name, target, Usage(), 0.0, latency, exc.kind)
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
            except BaseException:
                permit.release()
                raise
            permit.settle(reply.usage.total_tokens)
            latency = (time.monotonic() - started) * 1000
            price = cost(
                settings.prices,
                name,
                model,
                reply.usage.input_tokens,
                reply.usage.output_tokens,
            )
            await record_call(store, step, index, name, target, reply.usage, price, latency, "ok")
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


def _describe(attempt: CallAttempt) -> str:
    out = f"{attempt.model}: {attempt.outcome}"
    details = [attempt.error] if attempt.outcome == "throttled" and attempt.error else []
    if attempt.status is not None:
        details.append(f"HTTP {attempt.status}")
    if attempt.retry_after is not None:
        details.append(f"retry after {attempt.retry_after:.3g}s")
    return f"{out} ({', '.join(details)})" if details else out
