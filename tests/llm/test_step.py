"""``ctx.llm`` end to end on every store: recorded in history, never called again on
replay; structured output; tool calls run as activities (the example agent)."""

from __future__ import annotations

from pathlib import Path

import pydantic

import tether
import tether.testing
from examples import agent
from tests.conftest import AppFactory
from tether.history import EventType
from tether.llm import SimServer

from .conftest import llm_results, settings, until


class Verdict(pydantic.BaseModel):
    label: str
    confidence: float
    reasons: list[str]


async def test_reply_is_recorded_and_replay_never_calls_the_model(
    make_app: AppFactory, sim: SimServer
) -> None:
    app = make_app(llm=settings(sim, aliases={"fast": ["oa:m-fast"]}))

    @app.workflow
    async def ask(ctx: tether.Context, question: str) -> str:
        first = await ctx.llm("fast", question, system="Be brief.")
        await ctx.wait_signal("go on")  # the worker is replaced while the run waits
        second = await ctx.llm("oa:m-two", f"Go on from: {first.text}")
        return second.text

    async with app:
        async with app.worker():
            handle = await app.client.start(ask, "What is durable execution?", id="ask-1")

            async def first_recorded() -> bool:
                return len(llm_results(await handle.history())) == 1

            await until(first_recorded, "the first reply")
        # Only now may the run go on, and only a new worker is there to run it: it has
        # no cached state, so it replays the run, first reply included, from history.
        await handle.signal("go on")
        async with app.worker():
            text = await handle.result(timeout=30)
        history = await handle.history()

    assert text.startswith("[simulated m-two]")
    assert sim.served("m-fast") == 1 and sim.served("m-two") == 1
    first, second = llm_results(history)
    assert first["model"] == "oa:m-fast" and second["model"] == "oa:m-two"
    assert first["usage"]["input_tokens"] > 0 and first["usage"]["output_tokens"] > 0
    assert first["attempts"][0]["outcome"] == "ok"
    scheduled = [e for e in history if e.type == EventType.ACTIVITY_SCHEDULED]
    request = scheduled[0].attrs["args"][0]
    assert request["model"] == "fast" and request["messages"][0]["role"] == "system"
    # Credentials and endpoints are configuration: they never reach history.
    assert "test-key" not in str(history) and sim.url not in str(history)

    tether.testing.replay(ask, history)
    assert sim.served() == 2, "replay hands back recorded replies"


async def test_structured_output_is_parsed_into_the_model(
    make_app: AppFactory, sim: SimServer
) -> None:
    app = make_app(llm=settings(sim, aliases={"extract": ["oa:m-extract"]}))

    @app.workflow
    async def classify(ctx: tether.Context, text: str) -> dict[str, object]:
        reply = await ctx.llm("extract", f"Classify: {text}", output=Verdict)
        assert isinstance(reply.parsed, Verdict)
        return {"verdict": reply.parsed.model_dump(), "text": reply.text}

    async with app, app.worker():
        out = await app.client.execute(classify, "the build is green", timeout=30)
    verdict = Verdict.model_validate(out["verdict"])
    assert verdict.label and verdict.reasons
    body = sim.calls[-1].body
    assert body["response_format"]["json_schema"]["name"] == "Verdict"


async def test_example_agent_runs_its_tool_loop_durably(store_url: str, tmp_path: Path) -> None:
    app = agent.app
    app.use_store(store_url)
    try:
        async with app, app.worker():
            handle = await app.client.start(agent.research, "What helps an agent?", id="ag-1")
            result = await handle.result(timeout=60)
            history = await handle.history()
    finally:
        await app.close()
    assert result["simulated"] is True and result["turns"] == 2
    assert "An agent alternates" in str(result["answer"])
    names = [e.attrs["name"] for e in history if e.type == EventType.ACTIVITY_SCHEDULED]
    assert names == ["tether.llm", "search_notes", "tether.llm", "tether.llm"]
    first = llm_results(history)[0]
    assert first["tool_calls"][0]["name"] == "search_notes"


async def test_a_bad_tool_call_is_answered_with_the_error(
    make_app: AppFactory, sim: SimServer
) -> None:
    app = make_app(llm=settings(sim))

    @app.activity
    async def lookup(key: str) -> str:
        return key.upper()

    @app.workflow
    async def wf(ctx: tether.Context) -> list[str]:
        calls = [
            tether.llm.ToolCall(id="1", name="lookup", arguments={"key": "a"}),
            tether.llm.ToolCall(id="2", name="lookup", arguments={"nope": 1}),
            tether.llm.ToolCall(id="3", name="missing", arguments={}),
        ]
        answers = await ctx.gather(*(ctx.run_tool(c, [lookup]) for c in calls))
        return [m.content or "" for m in answers]

    async with app, app.worker():
        out = await app.client.execute(wf, timeout=30)
    assert out[0] == "A"
    assert out[1].startswith("error:") and "nope" in out[1]
    assert out[2].startswith("error:") and "missing" in out[2]


async def test_a_model_name_no_store_can_hold_fails_the_call(
    make_app: AppFactory, sim: SimServer
) -> None:
    """The ledger keys its rows by the model's name: NUL (which PostgreSQL's text
    refuses) or over 1,000 bytes is refused at the call, alike on both stores."""
    app = make_app(llm=settings(sim))

    @app.workflow
    async def odd(ctx: tether.Context, model: str) -> str:
        try:
            await ctx.llm(model, "hi")
        except tether.InvalidArgument as err:
            return str(err)
        return "called"

    async with app, app.worker():
        assert "NUL" in await app.client.execute(odd, "oa:m\x00", timeout=30)
        assert "1000 bytes" in await app.client.execute(odd, "oa:" + "m" * 1000, timeout=30)
        assert await app.client.execute(odd, "oa:m", timeout=30) == "called"
    assert sim.served() == 1, "only the valid name reached the provider"
