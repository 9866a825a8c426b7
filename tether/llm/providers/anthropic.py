"""Anthropic messages, through the official ``anthropic`` SDK.

Structured output is asked for as a forced tool whose input schema is the output
schema; its input is the parsed output.
"""

from __future__ import annotations

from typing import Any

from ...chat import ChatRequest, Message, ToolCall, Usage
from .base import ProviderError, Reply, classify, missing_extra, parse_output

__all__ = ["AnthropicProvider", "to_anthropic_messages"]

DEFAULT_MAX_TOKENS = 4096


def to_anthropic_messages(messages: list[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """The system prompt and the turns; tool results go in a user turn."""
    system = "\n\n".join(m.content or "" for m in messages if m.role == "system") or None
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        blocks: list[dict[str, Any]] = []
        if m.content:
            blocks.append({"type": "text", "text": m.content})
        for c in m.tool_calls or []:
            blocks.append({"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments})
        out.append({"role": m.role, "content": blocks})
    return system, out


class AnthropicProvider:
    def __init__(self, *, api_key: str, base_url: str | None, timeout: float) -> None:
        try:
            import anthropic
        except ImportError:
            raise missing_extra("anthropic") from None
        self._anthropic = anthropic
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )

    async def chat(self, request: ChatRequest, model: str) -> Reply:
        anthropic = self._anthropic
        system, messages = to_anthropic_messages(request.messages)
        kwargs: dict[str, Any] = {}
        if system:
            kwargs["system"] = system
        tools = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
        forced = None
        if request.output_schema is not None and not tools:
            forced = request.output_name or "output"
            tools = [
                {
                    "name": forced,
                    "description": "Give the answer in this shape.",
                    "input_schema": request.output_schema,
                }
            ]
            kwargs["tool_choice"] = {"type": "tool", "name": forced}
        if tools:
            kwargs["tools"] = tools
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        try:
            response = await self._client.messages.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
                **kwargs,
            )
        except anthropic.APITimeoutError as exc:
            raise ProviderError("timeout", str(exc)) from exc
        except anthropic.APIConnectionError as exc:
            raise ProviderError("connection_error", str(exc)) from exc
        except anthropic.APIStatusError as exc:
            raise classify(exc.status_code, exc.message, exc.response.headers) from exc
        texts, calls, parsed = [], [], None
        for block in response.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                arguments = dict(block.input) if isinstance(block.input, dict) else {}
                if forced is not None and block.name == forced:
                    parsed = arguments
                else:
                    calls.append(ToolCall(id=block.id, name=block.name, arguments=arguments))
        if forced is not None and parsed is None:
            raise ProviderError("bad_output", "the model did not give the structured output")
        text = "".join(texts)
        if forced is None and not calls:
            parsed = parse_output(request, text)
        return Reply(
            text=text,
            tool_calls=calls,
            parsed=parsed,
            usage=Usage(
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
            ),
            finish_reason=response.stop_reason,
        )

    async def close(self) -> None:
        await self._client.close()
