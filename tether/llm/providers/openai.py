"""OpenAI chat completions, through the official ``openai`` SDK: OpenAI itself and
every OpenAI-compatible server (vLLM, Ollama, OpenRouter, ... and the simulator),
chosen by ``base_url``."""

from __future__ import annotations

from typing import Any

import orjson

from ...chat import ChatRequest, Message, ToolCall, Usage
from .base import ProviderError, Reply, classify, missing_extra, parse_arguments, parse_output

__all__ = ["OpenAIProvider", "to_openai_messages"]


def to_openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content or ""})
        elif m.role == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": m.content}
            if m.tool_calls:
                item["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {
                            "name": c.name,
                            "arguments": orjson.dumps(c.arguments).decode(),
                        },
                    }
                    for c in m.tool_calls
                ]
            out.append(item)
        else:
            out.append({"role": m.role, "content": m.content or ""})
    return out


class OpenAIProvider:
    def __init__(self, *, api_key: str, base_url: str | None, timeout: float) -> None:
        try:
            import openai
        except ImportError:
            raise missing_extra("openai") from None
        self._openai = openai
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )

    async def chat(self, request: ChatRequest, model: str) -> Reply:
        openai = self._openai
        kwargs: dict[str, Any] = {}
        if request.tools:
            kwargs["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
        if request.output_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.output_name or "output",
                    "schema": request.output_schema,
                },
            }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        try:
            response = await self._client.chat.completions.create(
                model=model,
                messages=to_openai_messages(request.messages),  # type: ignore[arg-type]
                **kwargs,
            )
        except openai.APITimeoutError as exc:
            raise ProviderError("timeout", str(exc)) from exc
        except openai.APIConnectionError as exc:
            raise ProviderError("connection_error", str(exc)) from exc
        except openai.APIStatusError as exc:
            raise classify(exc.status_code, exc.message, exc.response.headers) from exc
        if not response.choices:
            raise ProviderError("bad_output", "the response has no choices")
        choice = response.choices[0]
        message = choice.message
        text = message.content or ""
        calls = []
        for c in message.tool_calls or []:
            function: Any = getattr(c, "function", None)  # custom tool calls have none
            if function is not None:
                calls.append(
                    ToolCall(
                        id=c.id, name=function.name, arguments=parse_arguments(function.arguments)
                    )
                )
        usage = response.usage
        return Reply(
            text=text,
            tool_calls=calls,
            parsed=parse_output(request, text) if not calls else None,
            usage=Usage(
                input_tokens=usage.prompt_tokens if usage else 0,
                output_tokens=usage.completion_tokens if usage else 0,
            ),
            finish_reason=choice.finish_reason,
        )

    async def close(self) -> None:
        await self._client.close()
