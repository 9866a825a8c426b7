"""The data of an LLM step: what crosses the durable boundary, and nothing else.

A ``ChatRequest`` (messages, tool schemas, an output schema, a model or alias) is the
step's argument and a ``ChatResult`` (text, tool calls, parsed output, token usage,
the model actually used and the calls tried on the way) is its recorded result.
Credentials, clients and provider wire formats stay in ``tether.llm``; workflow code
and history only ever see these plain models.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

import pydantic

from .errors import InvalidArgument

__all__ = [
    "LLM_STEP",
    "CallAttempt",
    "ChatRequest",
    "ChatResult",
    "Message",
    "Tool",
    "ToolCall",
    "Usage",
    "tool",
]

# The name of the built-in activity that serves ``ctx.llm``.
LLM_STEP = "tether.llm"

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(pydantic.BaseModel):
    """A function call asked for by the model."""

    id: str
    name: str
    arguments: dict[str, Any] = pydantic.Field(default_factory=dict)


class Message(pydantic.BaseModel):
    """One turn of a conversation, in a provider-neutral shape.

    ``role="tool"`` carries the result of the tool call ``tool_call_id`` (named
    ``name``); an assistant message may carry ``tool_calls`` instead of, or besides,
    ``content``.
    """

    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    @classmethod
    def system(cls, content: str) -> Message:
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls(role="user", content=content)

    @classmethod
    def tool_result(cls, call: ToolCall, content: str) -> Message:
        return cls(role="tool", content=content, tool_call_id=call.id, name=call.name)


class Tool(pydantic.BaseModel):
    """A function the model may call: a name, a description, a JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = pydantic.Field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


def tool(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> Tool:
    """The ``Tool`` for a function (typically an activity): its registered name, its
    docstring and a JSON schema built from its type hints."""
    defn = getattr(fn, "__tether_definition__", None)
    schema = pydantic.TypeAdapter(fn).json_schema()
    schema.pop("additionalProperties", None)
    return Tool(
        name=name or getattr(defn, "name", None) or fn.__name__,
        description=description or inspect.getdoc(fn) or "",
        parameters=schema,
    )


class Usage(pydantic.BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class CallAttempt(pydantic.BaseModel):
    """One call made (or refused by a rate limit) while serving a step's attempt."""

    model: str
    outcome: str  # ok, rate_limited, throttled, server_error, timeout, connection_error
    status: int | None = None
    retry_after: float | None = None
    error: str | None = None
    latency_ms: float | None = None


class ChatRequest(pydantic.BaseModel):
    """The argument of the LLM step: all a provider needs except its credentials."""

    model: str
    messages: list[Message]
    tools: list[Tool] = pydantic.Field(default_factory=list)
    output_schema: dict[str, Any] | None = None
    output_name: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None

    @classmethod
    def build(
        cls,
        model: str,
        prompt: str | Sequence[Message | dict[str, Any]],
        *,
        system: str | None = None,
        tools: Sequence[Tool | dict[str, Any] | Callable[..., Any]] | None = None,
        output: type[pydantic.BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> ChatRequest:
        if not isinstance(model, str) or not model:
            raise InvalidArgument(f"an LLM step needs a model or alias name, got {model!r}")
        if isinstance(prompt, str):
            messages = [Message.user(prompt)]
        else:
            try:
                messages = [Message.model_validate(m) for m in prompt]
            except pydantic.ValidationError as exc:
                raise InvalidArgument(f"messages of an LLM step are not valid: {exc}") from None
        if system is not None:
            messages.insert(0, Message.system(system))
        if not messages:
            raise InvalidArgument("an LLM step needs at least one message")
        specs: list[Tool] = []
        for t in tools or ():
            if isinstance(t, Tool):
                specs.append(t)
            elif isinstance(t, dict):
                specs.append(Tool.model_validate(t))
            elif callable(t):
                specs.append(tool(t))
            else:
                raise InvalidArgument(f"not a tool: {t!r}")
        schema = name = None
        if output is not None:
            if not (isinstance(output, type) and issubclass(output, pydantic.BaseModel)):
                raise InvalidArgument(f"output must be a pydantic model class, got {output!r}")
            schema, name = output.model_json_schema(), output.__name__
        return cls(
            model=model,
            messages=messages,
            tools=specs,
            output_schema=schema,
            output_name=name,
            temperature=temperature,
            max_tokens=max_tokens,
        )


class ChatResult(pydantic.BaseModel):
    """What an LLM step returned, as recorded in history.

    ``model`` is the ``provider:model`` that answered (after any fallback);
    ``attempts`` lists every call of the attempt that answered, failed ones first.
    ``parsed`` is the structured output, an instance of the ``output`` model when one
    was asked for.
    """

    text: str = ""
    tool_calls: list[ToolCall] = pydantic.Field(default_factory=list)
    parsed: Any = None
    usage: Usage = pydantic.Field(default_factory=Usage)
    model: str = ""
    attempts: list[CallAttempt] = pydantic.Field(default_factory=list)
    finish_reason: str | None = None
    simulated: bool = False

    def message(self) -> Message:
        """This reply as the assistant turn to append to a conversation."""
        return Message(
            role="assistant", content=self.text or None, tool_calls=self.tool_calls or None
        )

    def lines(self) -> list[str]:
        """The text's non-empty lines, list markers ("1.", "-") stripped."""
        out = []
        for line in self.text.splitlines():
            line = re.sub(r"^\s*(?:\d+[.)]|[-*•])\s*", "", line).strip()
            if line:
                out.append(line)
        return out

    @property
    def fell_back(self) -> bool:
        return any(a.outcome != "ok" for a in self.attempts)
