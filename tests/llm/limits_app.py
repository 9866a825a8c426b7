"""The app that tests/llm/test_shared_limits.py runs in several worker processes.

Its one provider is the test's simulator ($TETHER_SIM_URL), through the OpenAI SDK,
with an API key naming the process, so that the simulator can tell who called. Its
limits are low: two calls in flight and three requests a second (two at once), for
the namespace as a whole, however many processes serve it. The process writes
``$TETHER_READY_DIR/<pid>`` once it serves.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import tether
from tether.llm import Limits, LLMConfig, ProviderConfig

LIMITS = Limits(concurrency=2, requests_per_minute=180, burst=2, max_inline_wait=0.5)

settings = LLMConfig(
    providers={
        "oa": ProviderConfig(
            kind="openai",
            api_key=f"process-{os.getpid()}",
            base_url=f"{os.environ.get('TETHER_SIM_URL')}/v1",
            limits=LIMITS,
        )
    },
    aliases={"fast": ["oa:m"]},
)
app = tether.App()
# Waiting for a limit counts as an attempt: allow many.
app.configure_llm(settings, retry=tether.Retry(initial_interval=0.1, max_attempts=100))


@app.workflow
async def ask(ctx: tether.Context, n: int) -> str:
    return (await ctx.llm("fast", f"question {n}")).model


async def serve(url: str) -> None:
    app.use_store(url)
    async with app:
        worker = app.worker()
        ready = Path(os.environ["TETHER_READY_DIR"]) / str(os.getpid())
        ready.write_text("serving")
        await worker.run()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
