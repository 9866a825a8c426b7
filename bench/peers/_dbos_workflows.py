"""DBOS workflow and step definitions for the peer benchmark.

Decorated at import time (DBOS keeps them in its global registry until
``DBOS(config=...)`` is created), in their own module so the W5 phase-1 child
and the recovering parent register identical code (same application version).
"""

from __future__ import annotations

import asyncio

from _common import W5_SLEEP_S, record_effect
from dbos import DBOS

#: DBOS.recv timeout for W4 (its default is 60 s; the wait must outlast the run).
RECV_TIMEOUT_S = 3600.0


@DBOS.step()
async def step(x: int) -> int:
    return x + 1


@DBOS.step()
async def effect_step(effects_path: str, tag: str, x: int) -> int:
    """A trivial step that also appends one line to a side-effect log."""
    record_effect(effects_path, tag)
    return x + 1


@DBOS.workflow()
async def three_steps(x: int) -> int:
    """W1/W2: three sequential trivial steps."""
    for _ in range(3):
        x = await step(x)
    return x


@DBOS.workflow()
async def fan_out(n: int) -> int:
    """W3: N trivial steps in parallel."""
    results = await asyncio.gather(*(step(i) for i in range(n)))
    return sum(results)


@DBOS.workflow()
async def sleep_recovery(effects_path: str, x: int) -> int:
    """W5: step1 -> durable sleep -> step2 -> step3 (each step logs an effect)."""
    x = await effect_step(effects_path, "step1", x)
    await DBOS.sleep_async(W5_SLEEP_S)
    x = await effect_step(effects_path, "step2", x)
    return await effect_step(effects_path, "step3", x)


@DBOS.workflow()
async def wait_for_go(effects_path: str, x: int) -> int:
    """W4: log 'ready' in a step, then wait for a message on topic "go"."""
    await effect_step(effects_path, "ready", x)
    value: int = await DBOS.recv_async("go", timeout_seconds=RECV_TIMEOUT_S)
    return value
