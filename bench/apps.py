"""The Tether app the benchmark runs: the peers' workflows, in Tether.

Importable by worker subprocesses (``tether worker bench.apps:app --db URL``, run from
the repository root). The store is chosen by whoever runs it: ``--db`` /
``$TETHER_DATABASE_URL`` for the CLI, ``app.use_store(url)`` in ``tether_bench.py``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import tether

__all__ = ["app", "effect_step", "fan_out", "sleep_recovery", "step", "three_steps"]

#: W5 durable sleep between step1 and step2 (the peers' ``W5_SLEEP_S``).
W5_SLEEP_S = 2.0

app = tether.App()


@app.activity
async def step(x: int) -> int:
    return x + 1


@app.activity
async def effect_step(effects_path: str, tag: str, x: int) -> int:
    """A trivial activity that also appends one line to a side-effect log (one
    ``O_APPEND`` write, as the peers' ``record_effect``)."""
    fd = os.open(effects_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{tag}\n".encode())
    finally:
        os.close(fd)
    return x + 1


@app.workflow
async def three_steps(ctx: tether.Context, x: int) -> int:
    """W1/W2: three sequential trivial activities."""
    for _ in range(3):
        x = await ctx.activity(step, x)
    return x


@app.workflow
async def fan_out(ctx: tether.Context, n: int) -> int:
    """W3: N trivial activities in parallel."""
    results = await ctx.gather(*(ctx.activity(step, i) for i in range(n)))
    return sum(results)


@app.workflow
async def sleep_recovery(ctx: tether.Context, effects_path: str, x: int) -> int:
    """W5: step1 -> durable sleep -> step2 -> step3 (each activity logs an effect)."""
    x = await ctx.activity(effect_step, effects_path, "step1", x)
    await ctx.sleep(timedelta(seconds=W5_SLEEP_S))
    x = await ctx.activity(effect_step, effects_path, "step2", x)
    return await ctx.activity(effect_step, effects_path, "step3", x)


@app.workflow
async def wait_for_go(ctx: tether.Context, x: int) -> int:
    """W4: wait for the signal "go", then finish."""
    await ctx.wait_signal("go")
    return 1
