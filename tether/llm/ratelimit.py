"""Rate limits that respect providers: requests and tokens per minute, and a cap on
calls in flight, per (namespace, provider), **shared by every worker process** of the
store (and every machine, on PostgreSQL).

The levels live in the store (``Store.begin_llm_call``, see
``tether/store/llm_limits.py``): a call is admitted, with its request, its estimated
tokens and a concurrency slot taken, in the same transaction that writes its ledger
row, so a call costs one store round trip before it and one after. A provider's 429
with Retry-After blocks every call of that (namespace, provider) in every process
until then.

A refusal whose wait fits in ``Limits.max_inline_wait`` is waited out in place (and
asked again); a longer one raises :class:`Throttled`, which the router turns into a
fallback or a durable wait (the attempt is retried at now + wait and frees its
worker slot meanwhile).
"""

from __future__ import annotations

import asyncio
import random
import time

from ..store import Store
from ..store.llm_limits import Admission, CallStart

__all__ = ["Throttled", "admit"]

# Between two looks at a full concurrency cap, in place: the first, doubled each time.
_POLL = 0.02


class Throttled(Exception):
    """Our own limit (or a provider's recent 429) says: not before ``retry_after`` s."""

    def __init__(self, retry_after: float, why: str) -> None:
        super().__init__(f"{why}; retry in {retry_after:.2f}s")
        self.retry_after = retry_after
        self.why = why


def _why(admission: Admission, start: CallStart) -> str:
    if admission.kind == "concurrency":
        return f"{start.limits.concurrency} call(s) in flight"
    return {
        "blocked": "the provider asked us to wait (429)",
        "requests": "requests per minute",
        "tokens": "tokens per minute",
    }[admission.kind]


async def admit(store: Store, start: CallStart, max_inline_wait: float) -> Admission:
    """Admit the call under its shared limits, waiting in place up to
    ``max_inline_wait`` seconds; raise :class:`Throttled` past that. A refusal for
    the budget is returned as it is."""
    deadline = time.monotonic() + max_inline_wait
    poll = _POLL
    while True:
        admission = await store.begin_llm_call(start)
        if admission.admitted or admission.kind == "budget":
            return admission
        now = time.monotonic()
        if admission.kind == "concurrency":
            # Nobody can say when a call in flight ends: look again, more and more
            # rarely, until the inline wait is over; then come back after a spread-out
            # while, so that the waiting steps do not all return at once.
            if now + poll > deadline:
                wait = admission.wait * random.uniform(0.5, 1.5)
                raise Throttled(wait, _why(admission, start))
            await asyncio.sleep(poll)
            poll = min(poll * 2, admission.wait)
            continue
        if now + admission.wait > deadline:
            raise Throttled(admission.wait, _why(admission, start))
        await asyncio.sleep(admission.wait)
