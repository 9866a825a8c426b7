"""Google Gemini generateContent, through the official ``google-genai`` SDK.

Gemini's function calls carry no id on every model: calls without one get
``call_N`` ids, and a tool result is sent back by the tool's name.
"""

from __future__ import annotations

from typing import Any

from ...chat import ChatRequest, Message, ToolCall, Usage
from .base import ProviderError, Reply, classify, missing_extra, parse_output

__all__ = ["GeminiProvider"]


class GeminiProvider:
    def __init__(self, *, api_key: str, base_url: str | None, timeout: float) -> None:
        try:
            from google import genai
            from google.genai import errors, types
        except ImportError:
            raise missing_extra("google-genai") from None
        self._errors, self._types = errors, types
        options = types.HttpOptions(
            base_url=base_url,
            timeout=int(timeout * 1000),  # milliseconds
            retry_options=types.HttpRetryOptions(attempts=1),  # the SDK's retries off
        )
        self._client = genai.Client(api_key=api_key, http_options=options)

    def _contents(self, messages: list[Message]) -> tuple[str | None, list[Any]]:
        types = self._types
        system = "\n\n".join(m.content or "" for m in messages if m.role == "system") or None
        contents: list[Any] = []
        for m in messages:
            if m.role == "system":
                continue
            if m.role == "tool":
                part = types.Part.from_function_response(
                    name=m.name or "tool", response={"result": m.content or ""}
                )
                if contents and contents[-1].role == "user" and _is_answers(contents[-1]):
                    contents[-1].parts.append(part)
                else:
                    contents.append(types.Content(role="user", parts=[part]))
                continue
            parts = []
            if m.content:
                parts.append(types.Part(text=m.content))
            for c in m.tool_calls or []:
                parts.append(
                    types.Part(function_call=types.FunctionCall(name=c.name, args=c.arguments))
                )
            role = "model" if m.role == "assistant" else "user"
            contents.append(types.Content(role=role, parts=parts))
        return system, contents

    async def chat(self, request: ChatRequest, model: str) -> Reply:
        types, errors = self._types, self._errors
        system, contents = self._contents(request.messages)
        config: dict[str, Any] = {}
        if system:
            config["system_instruction"] = system
        if request.tools:
            config["tools"] = [
                types.Tool(
                    function_declarations=[
                        types.FunctionDeclaration(
                            name=t.name,
                            description=t.description,
                            parameters_json_schema=t.parameters,
                        )
                        for t in request.tools
                    ]
                )
            ]
            config["automatic_function_calling"] = types.AutomaticFunctionCallingConfig(
                disable=True
            )
        if request.output_schema is not None:
            config["response_mime_type"] = "application/json"
            config["response_json_schema"] = request.output_schema
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.max_tokens is not None:
            config["max_output_tokens"] = request.max_tokens
        try:
            response = await self._client.aio.models.generate_content(
                model=model,
                contents=contents,
                config=types.GenerateContentConfig(**config),
            )
        except errors.APIError as exc:
            headers = getattr(getattr(exc, "response", None), "headers", None)
            raise classify(int(exc.code or 500), str(exc.message), headers) from exc
        except TimeoutError as exc:
            raise ProviderError("timeout", str(exc) or "timed out") from exc
        except Exception as exc:  # the transport's own errors (httpx)
            name = type(exc).__name__
            kind = "timeout" if "Timeout" in name else "connection_error"
            raise ProviderError(kind, f"{name}: {exc}") from exc
        texts, calls = [], []
        candidate = response.candidates[0] if response.candidates else None
        parts = candidate.content.parts if candidate and candidate.content else None
        for i, part in enumerate(parts or []):
            if part.text and not part.thought:
                texts.append(part.text)
            elif part.function_call is not None:
                call = part.function_call
                calls.append(
                    ToolCall(
                        id=call.id or f"call_{i}",
                        name=call.name or "",
                        arguments=dict(call.args or {}),
                    )
                )
        text = "".join(texts)
        meta = response.usage_metadata
        finish = candidate.finish_reason if candidate else None
        return Reply(
            text=text,
            tool_calls=calls,
            parsed=parse_output(request, text) if not calls else None,
            usage=Usage(
                input_tokens=(meta.prompt_token_count or 0) if meta else 0,
                output_tokens=(meta.candidates_token_count or 0) if meta else 0,
            ),
            finish_reason=str(finish.value if hasattr(finish, "value") else finish)
            if finish
            else None,
        )

    async def close(self) -> None:
        aclose = getattr(self._client.aio, "aclose", None)
        if aclose is not None:
            await aclose()


def _is_answers(content: Any) -> bool:
    return all(p.function_response is not None for p in content.parts or [])
