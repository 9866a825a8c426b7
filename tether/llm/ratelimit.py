"""Rate limits that respect providers: requests and tokens per minute, and a cap on
calls in flight, per (namespace, provider).

Scope: **per process**. Each worker process keeps its own buckets, so N worker
processes may together send up to N times a limit; set limits per process
accordingly (a limit shared through the store is future work). A provider's own 429
is respected across the process: its Retry-After blocks every call of that
(namespace, provider) until then.

A wait up to ``Limits.max_inline_wait`` happens in place; a longer one raises
:class:`Throttled`, which the router turns into a fallback or a durable wait (the
attempt is retried at now + wait and frees its worker slot meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from .config import Limits

__all__ = ["Limiter", "Permit", "RateLimits", "Throttled"]


class Throttled(Exception):
    """Our own limit (or a provider's recent 429) says: not before ``retry_after`` s."""

    def __init__(self, retry_after: float, why: str) -> None:
        super().__init__(f"{why}; retry in {retry_after:.2f}s")
        self.retry_after = retry_after
        self.why = why


@dataclass
class _Bucket:
    """A token bucket refilled at ``per_minute / 60`` per second, holding ``size``
    (a minute's worth unless given)."""

    per_minute: float
    size: float = 0.0
    level: float = -1.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.size = self.size or self.per_minute

    def _refill(self, now: float) -> None:
        if self.level < 0:
            self.level = self.size
        self.level = min(self.size, self.level + (now - self.at) * self.per_minute / 60)
        self.at = now

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` is available (0 if it is now)."""
        self._refill(now)
        amount = min(amount, self.size)  # a request larger than the bucket
        if self.level >= amount:
            return 0.0
        return (amount - self.level) * 60 / self.per_minute

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= amount  # may go negative: a correction after the fact


@dataclass
class Permit:
    limiter: Limiter
    estimate: int
    released: bool = False

    def settle(self, tokens: int) -> None:
        """Charge the real token count instead of the estimate; free the slot."""
        if self.limiter.tokens is not None:
            self.limiter.tokens.take(tokens - self.estimate, time.monotonic())
        self.release()

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.limiter.in_flight -= 1
            self.limiter.freed.set()


class Limiter:
    """The limits of one (namespace, provider) in this process."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        rpm, burst = limits.requests_per_minute, limits.burst
        self.requests = _Bucket(rpm, burst or 0.0) if rpm else None
        self.tokens = _Bucket(limits.tokens_per_minute) if limits.tokens_per_minute else None
        self.in_flight = 0
        self.freed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.blocked_until = 0.0  # a provider's Retry-After, as time.monotonic()

    def _wait(self, estimate: int, now: float) -> tuple[float, str]:
        waits = [(self.blocked_until - now, "the provider asked us to wait (429)")]
        if self.requests is not None:
            waits.append((self.requests.wait_for(1, now), "requests per minute"))
        if self.tokens is not None:
            waits.append((self.tokens.wait_for(estimate, now), "tokens per minute"))
        return max(waits)

    async def acquire(self, estimate: int) -> Permit:
        cap, inline = self.limits.concurrency, self.limits.max_inline_wait
        deadline = time.monotonic() + inline
        while True:
            now = time.monotonic()
            wait, why = self._wait(estimate, now)
            if wait > 0:
                if now + wait > deadline:
                    raise Throttled(wait, why)
                await asyncio.sleep(wait)
                continue
            if cap is not None and self.in_flight >= cap:
                if now >= deadline:
                    raise Throttled(inline, f"{cap} call(s) in flight")
                loop = asyncio.get_running_loop()
                if self._loop is not loop:  # an Event binds to the loop that first waits
                    self.freed, self._loop = asyncio.Event(), loop
                self.freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.freed.wait(), deadline - now)
                continue
            break
        if self.requests is not None:
            self.requests.take(1, now)
        if self.tokens is not None:
            self.tokens.take(estimate, now)
        self.in_flight += 1
        return Permit(self, estimate)

    def block(self, seconds: float) -> None:
        """The provider said 429 with Retry-After: hold every call until then."""
        self.blocked_until = max(self.blocked_until, time.monotonic() + seconds)


class RateLimits:
    """The limiters of this process, by (namespace, provider); rebuilt when the
    configured limits change."""

    def __init__(self) -> None:
        self._limiters: dict[tuple[str, str], Limiter] = {}

    def get(self, namespace: str, provider: str, limits: Limits) -> Limiter:
        key = (namespace, provider)
        limiter = self._limiters.get(key)
        if limiter is None or limiter.limits != limits:
            limiter = self._limiters[key] = Limiter(limits)
        return limiter
