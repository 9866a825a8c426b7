"""The simulator's replies: deterministic, provider-neutral, good enough to drive an
agent loop offline.

Given the conversation, it calls a tool when tools are offered and no tool result has
come back yet (the tool named in the prompt, else the first), answers from the tool
results once they have, fills a JSON object when an output schema is asked for, and
otherwise writes a short text (``N`` lines when asked to "list N" things). Every text
it writes starts with ``[simulated]``. Token counts are words, roughly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ...chat import Message, Tool

__all__ = ["SimReply", "reply", "tokens"]


@dataclass
class SimReply:
    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    parsed: Any = None
    input_tokens: int = 0
    output_tokens: int = 0


def tokens(text: str) -> int:
    return max(1, len(re.findall(r"\w+|[^\w\s]", text)) * 3 // 4)


def reply(
    model: str,
    messages: list[Message],
    tools: list[Tool],
    schema: dict[str, Any] | None,
) -> SimReply:
    prompt = next((m.content or "" for m in reversed(messages) if m.role == "user"), "")
    results = _trailing_tool_results(messages)
    out = SimReply()
    if schema is not None:
        out.parsed = fill(schema, prompt, schema.get("$defs", {}))
    elif results:
        facts = "; ".join(
            f"{m.name or 'tool'} said {(m.content or '').strip()[:160]}" for m in results
        )
        out.text = f"[simulated {model}] Answer to {_quote(prompt)}: {facts}."
    elif tools:
        chosen = next((t for t in tools if t.name.lower() in prompt.lower()), tools[0])
        out.tool_calls = [(chosen.name, fill(chosen.parameters, prompt, {}))]
    else:
        out.text = _text(model, prompt)
    seen = " ".join((m.content or "") for m in messages) + " ".join(t.name for t in tools)
    out.input_tokens = tokens(seen) + 8 * len(messages)
    written = out.text + str(out.tool_calls) + (str(out.parsed) if out.parsed is not None else "")
    out.output_tokens = tokens(written)
    return out


def _trailing_tool_results(messages: list[Message]) -> list[Message]:
    results: list[Message] = []
    for m in reversed(messages):
        if m.role != "tool":
            break
        results.insert(0, m)
    return results


def _quote(prompt: str) -> str:
    short = " ".join(prompt.split())
    return repr(short if len(short) <= 80 else short[:77] + "...")


def _text(model: str, prompt: str) -> str:
    asked = re.search(r"\blist\s+(\d+)\b", prompt, re.IGNORECASE)
    if asked:
        topic = re.sub(r"^.*?\babout\b\s*", "", prompt, flags=re.IGNORECASE).strip(" .?!")
        count = min(int(asked.group(1)), 20)
        return "\n".join(f"{i}. {topic or 'item'} ({i}) [simulated]" for i in range(1, count + 1))
    return f"[simulated {model}] A reply to {_quote(prompt)}."


def fill(schema: dict[str, Any], prompt: str, defs: dict[str, Any], name: str = "") -> Any:
    """A value that fits ``schema``, drawn from the prompt's words where it can."""
    if "$ref" in schema:
        ref = schema["$ref"].rsplit("/", 1)[-1]
        return fill(defs.get(ref, {}), prompt, defs, name)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return fill(options[0], prompt, defs, name)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    words = re.findall(r"[A-Za-z0-9']+", prompt)
    match kind:
        case "object":
            props = schema.get("properties", {})
            return {k: fill(v, prompt, defs, k) for k, v in props.items()}
        case "array":
            return [fill(schema.get("items", {}), prompt, defs, name)]
        case "integer":
            return len(words)
        case "number":
            return float(len(words)) / 2
        case "boolean":
            return True
        case "null":
            return None
        case _:
            return " ".join(words[:8]) or name or "simulated"
