"""The three wire formats the simulator speaks, to and from the neutral shape.

Each ``*_request`` turns a provider's JSON request into (messages, tools, schema,
forced tool); each ``*_response`` turns a :class:`SimReply` into the provider's JSON
reply, and each ``*_error`` into its error body. Only what the official SDKs send and
read is covered: chat completions with tools and usage (OpenAI), messages
(Anthropic), generateContent (Gemini).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import orjson

from ...chat import Message, Role, Tool, ToolCall
from .brain import SimReply

__all__ = [
    "anthropic_error",
    "anthropic_request",
    "anthropic_response",
    "gemini_error",
    "gemini_request",
    "gemini_response",
    "openai_error",
    "openai_request",
    "openai_response",
]

Neutral = tuple[list[Message], list[Tool], dict[str, Any] | None, str | None]
_ids = itertools.count(1)


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, dict):
            parts.append(str(block.get("text") or block.get("content") or ""))
        else:
            parts.append(str(block))
    return "\n".join(p for p in parts if p)


# -- OpenAI chat completions ---------------------------------------------------------


def openai_request(body: dict[str, Any]) -> Neutral:
    messages = []
    for m in body.get("messages", []):
        role = m.get("role")
        if role == "developer":
            role = "system"
        calls = [
            ToolCall(
                id=c["id"],
                name=c["function"]["name"],
                arguments=orjson.loads(c["function"].get("arguments") or "{}"),
            )
            for c in m.get("tool_calls") or []
        ]
        messages.append(
            Message(
                role=role,
                content=_text_of(m.get("content")),
                tool_calls=calls or None,
                tool_call_id=m.get("tool_call_id"),
                name=m.get("name"),
            )
        )
    tools = [
        Tool(
            name=t["function"]["name"],
            description=t["function"].get("description", ""),
            parameters=t["function"].get("parameters", {}),
        )
        for t in body.get("tools", [])
        if t.get("type") == "function"
    ]
    # A tool result names no tool on this wire: take it from the assistant's call.
    names = {c.id: c.name for m in messages for c in m.tool_calls or []}
    for m in messages:
        if m.role == "tool" and m.name is None and m.tool_call_id in names:
            m.name = names[m.tool_call_id]
    fmt = body.get("response_format") or {}
    schema = None
    if fmt.get("type") == "json_schema":
        schema = fmt["json_schema"].get("schema", {})
    elif fmt.get("type") == "json_object":
        schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    return messages, tools, schema, None


def openai_response(model: str, reply: SimReply) -> dict[str, Any]:
    n = next(_ids)
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if reply.parsed is not None:
        message["content"] = orjson.dumps(reply.parsed).decode()
    elif reply.text:
        message["content"] = reply.text
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_sim_{n}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": orjson.dumps(args).decode()},
            }
            for i, (name, args) in enumerate(reply.tool_calls)
        ]
    return {
        "id": f"chatcmpl-sim-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        },
    }


def openai_error(status: int, message: str) -> dict[str, Any]:
    kind = "rate_limit_exceeded" if status == 429 else "server_error"
    return {"error": {"message": message, "type": kind, "code": kind, "param": None}}


# -- Anthropic messages ----------------------------------------------------------------


def anthropic_request(body: dict[str, Any]) -> Neutral:
    messages: list[Message] = []
    system = body.get("system")
    if system:
        messages.append(Message(role="system", content=_text_of(system)))
    for m in body.get("messages", []):
        content = m.get("content")
        if isinstance(content, str):
            messages.append(Message(role=m["role"], content=content))
            continue
        texts, calls = [], []
        for block in content or []:
            kind = block.get("type")
            if kind == "text":
                texts.append(block.get("text", ""))
            elif kind == "tool_use":
                calls.append(
                    ToolCall(id=block["id"], name=block["name"], arguments=block.get("input", {}))
                )
            elif kind == "tool_result":
                messages.append(
                    Message(
                        role="tool",
                        content=_text_of(block.get("content")),
                        tool_call_id=block.get("tool_use_id"),
                    )
                )
        if texts or calls:
            messages.append(
                Message(role=m["role"], content="\n".join(texts), tool_calls=calls or None)
            )
    names = {c.id: c.name for m in messages for c in m.tool_calls or []}
    for m in messages:
        if m.role == "tool" and m.tool_call_id in names:
            m.name = names[m.tool_call_id]
    tools = [
        Tool(
            name=t["name"],
            description=t.get("description", ""),
            parameters=t.get("input_schema", {}),
        )
        for t in body.get("tools", [])
    ]
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool":
        forced = next((t for t in tools if t.name == choice.get("name")), None)
        if forced is not None:
            return messages, [], forced.parameters, forced.name
    return messages, tools, None, None


def anthropic_response(model: str, reply: SimReply, forced: str | None) -> dict[str, Any]:
    n = next(_ids)
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    calls = list(reply.tool_calls)
    if forced is not None:
        calls.append((forced, reply.parsed or {}))
    for i, (name, args) in enumerate(calls):
        content.append(
            {"type": "tool_use", "id": f"toolu_sim_{n}_{i}", "name": name, "input": args}
        )
    return {
        "id": f"msg_sim_{n}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if calls else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
    }


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


# -- Gemini generateContent ------------------------------------------------------------


def _camel(body: dict[str, Any], snake: str) -> Any:
    head, *rest = snake.split("_")
    camel = head + "".join(w.title() for w in rest)
    return body.get(camel, body.get(snake))


def gemini_request(body: dict[str, Any]) -> Neutral:
    messages: list[Message] = []
    system = _camel(body, "system_instruction")
    if system:
        messages.append(Message(role="system", content=_text_of(system.get("parts"))))
    calls_seen = 0
    for c in body.get("contents", []):
        role: Role = "assistant" if c.get("role") == "model" else "user"
        texts, calls = [], []
        for part in c.get("parts", []):
            call = _camel(part, "function_call")
            answer = _camel(part, "function_response")
            if "text" in part:
                texts.append(part["text"])
            elif call is not None:
                calls_seen += 1
                calls.append(
                    ToolCall(
                        id=call.get("id") or f"call_{calls_seen}",
                        name=call["name"],
                        arguments=call.get("args", {}),
                    )
                )
            elif answer is not None:
                response = answer.get("response", {})
                text = response.get("result", response) if isinstance(response, dict) else response
                messages.append(
                    Message(
                        role="tool",
                        content=text if isinstance(text, str) else orjson.dumps(text).decode(),
                        name=answer.get("name"),
                    )
                )
        if texts or calls:
            messages.append(Message(role=role, content="\n".join(texts), tool_calls=calls or None))
    tools = []
    for t in body.get("tools", []):
        for d in _camel(t, "function_declarations") or []:
            params = _camel(d, "parameters_json_schema") or d.get("parameters") or {}
            tools.append(
                Tool(name=d["name"], description=d.get("description", ""), parameters=params)
            )
    config = _camel(body, "generation_config") or {}
    schema = _camel(config, "response_json_schema") or _camel(config, "response_schema")
    if schema is None and _camel(config, "response_mime_type") == "application/json":
        schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    return messages, tools, schema, None


def gemini_response(model: str, reply: SimReply) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if reply.parsed is not None:
        parts.append({"text": orjson.dumps(reply.parsed).decode()})
    elif reply.text:
        parts.append({"text": reply.text})
    for name, args in reply.tool_calls:
        parts.append({"functionCall": {"name": name, "args": args}})
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": reply.input_tokens,
            "candidatesTokenCount": reply.output_tokens,
            "totalTokenCount": reply.input_tokens + reply.output_tokens,
        },
        "modelVersion": model,
    }


def gemini_error(status: int, message: str) -> dict[str, Any]:
    kind = {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}.get(status, "INTERNAL")
    return {"error": {"code": status, "message": message, "status": kind}}
