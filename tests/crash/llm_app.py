"""The app the LLM crash tests run in worker processes they SIGKILL.

Its provider is the test's simulator server ($TETHER_SIM_URL), spoken to through the
OpenAI SDK. With $TETHER_DIE_AFTER_BILLING set, the process kills itself right after
the first attempt of an LLM step was billed in the ledger and before its result is
reported: a call made and paid, whose result was never recorded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import tether
from tether.llm import Limits, LLMConfig, Price, ProviderConfig

# $TETHER_LLM_CONCURRENCY caps the calls in flight (for all worker processes).
cap = os.environ.get("TETHER_LLM_CONCURRENCY")
settings = LLMConfig(
    providers={
        "oa": ProviderConfig(
            kind="openai",
            api_key="test",
            base_url=f"{os.environ.get('TETHER_SIM_URL')}/v1",
            limits=Limits(concurrency=int(cap)) if cap else Limits(),
        )
    },
    aliases={"fast": ["oa:m"]},
    prices={"oa:m": Price(input=1.0, output=1.0)},
    task_queue="llm",
)
app = tether.App(llm=settings)


@app.workflow
async def ask(ctx: tether.Context, question: str) -> dict[str, object]:
    reply = await ctx.llm("fast", question)
    await ctx.sleep(0.2)
    return {"text": reply.text, "model": reply.model}


def _die_after_billing() -> None:
    assert app.llm is not None
    call = app.llm.call

    async def call_then_die(*args: object) -> object:
        result = await call(*args)  # type: ignore[arg-type]
        if args[2].attempt == 1:  # type: ignore[attr-defined]
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    app.llm.call = call_then_die  # type: ignore[method-assign, assignment]


async def serve(url: str, queues: list[str]) -> None:
    app.use_store(url)
    if os.environ.get("TETHER_DIE_AFTER_BILLING"):
        _die_after_billing()
    async with app:
        await app.worker(task_queues=queues, workflow_lease=1.0, activity_lease=1.5).run()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2].split(",")))
