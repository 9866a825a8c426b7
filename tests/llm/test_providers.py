"""Each provider adapter, through its official SDK, against the simulator's wire
formats on a real loopback socket: text, system prompts, tools and tool results,
structured output, usage, 429 with Retry-After, 5xx and slow responses."""

from __future__ import annotations

import pydantic
import pytest

from tether.llm import ChatRequest, Message, ProviderConfig, SimServer
from tether.llm.providers import ProviderError, build
from tether.llm.providers.base import classify, retry_after

KINDS = ["openai", "anthropic", "gemini"]


class City(pydantic.BaseModel):
    name: str
    population: int


def weather(city: str, days: int = 1) -> str:
    """The forecast for a city."""
    return ""


def _provider(sim: SimServer, kind: str, timeout: float = 5.0) -> object:
    base = f"{sim.url}/v1" if kind == "openai" else sim.url
    config = ProviderConfig(kind=kind, api_key="k", base_url=base, timeout=timeout)  # type: ignore[arg-type]
    return build(kind, config, namespace="t", sim_url=None)


@pytest.mark.parametrize("kind", KINDS)
async def test_text_tools_and_structured_output(sim: SimServer, kind: str) -> None:
    provider = _provider(sim, kind)
    try:
        text = await provider.chat(  # type: ignore[attr-defined]
            ChatRequest.build("x", "Say hi", system="Be terse."), "model-a"
        )
        assert text.text.startswith("[simulated model-a]")
        assert text.usage.input_tokens > 0 and text.usage.output_tokens > 0
        shaped = await provider.chat(  # type: ignore[attr-defined]
            ChatRequest.build("x", "Paris", output=City), "model-a"
        )
        assert City.model_validate(shaped.parsed).name == "Paris"
        asked = ChatRequest.build("x", "weather in Oslo", tools=[weather])
        called = await provider.chat(asked, "model-a")  # type: ignore[attr-defined]
        (call,) = called.tool_calls
        assert call.name == "weather" and set(call.arguments) == {"city", "days"}
        turns = [*asked.messages, called_message(called), Message.tool_result(call, "rain")]
        answered = await provider.chat(  # type: ignore[attr-defined]
            ChatRequest(model="x", messages=turns, tools=asked.tools), "model-a"
        )
        assert "weather said rain" in answered.text and not answered.tool_calls
    finally:
        await provider.close()  # type: ignore[attr-defined]
    assert {c.wire for c in sim.calls} == {kind} and sim.served() == 4


def called_message(reply: object) -> Message:
    return Message(role="assistant", tool_calls=reply.tool_calls)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
async def test_errors_are_classified_with_the_sdk_retries_off(sim: SimServer, kind: str) -> None:
    provider = _provider(sim, kind, timeout=0.5)
    request = ChatRequest.build("x", "hi")
    sim.fail("m", status=429, retry_after=7)
    sim.fail("m", status=503)
    sim.fail("m", status=400)
    sim.slow("m", delay=2.0)
    try:
        outcomes = []
        for _ in range(4):
            with pytest.raises(ProviderError) as caught:
                await provider.chat(request, "m")  # type: ignore[attr-defined]
            outcomes.append((caught.value.kind, caught.value.status, caught.value.retry_after))
    finally:
        await provider.close()  # type: ignore[attr-defined]
    assert outcomes == [
        ("rate_limited", 429, 7.0),
        ("server_error", 503, None),
        ("bad_request", 400, None),
        ("timeout", None, None),
    ]
    assert sim.served("m") == 3, "one request per call: the SDK did not retry"


def test_retry_after_headers() -> None:
    assert retry_after({"retry-after": "2.5"}) == 2.5
    assert retry_after({"retry-after-ms": "1500"}) == 1.5
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({}) is None and retry_after({"retry-after": "soon"}) is None
    assert classify(401, "no").kind == "auth" and classify(502, "x").retryable


def test_a_missing_key_or_extra_says_how_to_fix_it() -> None:
    from tether.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="no API key"):
        build("an", ProviderConfig(kind="anthropic"), namespace="acme", sim_url=None)
    from tether.llm.providers.base import missing_extra

    assert "pip install 'tether[llm]'" in str(missing_extra("openai"))
