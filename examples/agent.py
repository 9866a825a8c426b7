"""A durable agent loop: the model asks for tools, tools run as activities, repeat.

    python examples/agent.py            # offline: the built-in simulated provider
    tether worker examples.agent:app    # or serve it from a worker process...
    tether workflow start research --arg '"durable execution"' --wait
    tether usage --by model             # tokens and cost, from the usage ledger

Every model call and every tool call is a step recorded in history: kill the process
at any moment and the run resumes where it was, without calling the model again for
a reply already recorded. Replies here come from the simulator (no key, no network)
and say so ("[simulated ...]"). To use a real provider, change the settings, not the
workflow: e.g. ``TETHER_EXAMPLE_PROVIDER=openai`` with ``OPENAI_API_KEY`` set.
"""

from __future__ import annotations

import ast
import operator
import os
from datetime import timedelta

import pydantic

import tether
from tether.llm import LLMConfig, Message, ProviderConfig

if os.environ.get("TETHER_EXAMPLE_PROVIDER") == "openai":
    settings = LLMConfig(
        providers={"openai": ProviderConfig(kind="openai", api_key_env="OPENAI_API_KEY")},
        aliases={"fast": ["openai:gpt-4o-mini"], "reasoning": ["openai:gpt-4o"]},
    )
else:
    settings = LLMConfig.simulated()

app = tether.App(llm=settings)  # ./tether.db, or $TETHER_DATABASE_URL

CORPUS = {
    "durable": "Durable execution records each step's result so a crash resumes, not restarts.",
    "agent": "An agent alternates model calls and tool calls until it can answer.",
    "tether": "Tether keeps an append-only event history per workflow run.",
}


@app.activity(retry=tether.Retry(max_attempts=3), start_to_close=timedelta(seconds=10))
async def search_notes(query: str) -> list[str]:
    """Search the team's notes; returns matching passages."""
    words = query.lower().split()
    return [text for key, text in CORPUS.items() if any(key in w for w in words)] or [
        "No notes match."
    ]


_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


@app.activity
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as '2 * (3 + 4)'."""

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))  # type: ignore[no-any-return]
        raise ValueError(f"not arithmetic: {expression!r}")

    try:
        return str(walk(ast.parse(expression, mode="eval").body))
    except (SyntaxError, ValueError) as exc:
        return f"error: {exc}"


class Report(pydantic.BaseModel):
    title: str
    findings: list[str]


TOOLS = [search_notes, calculator]


@app.workflow
async def research(ctx: tether.Context, question: str, max_turns: int = 4) -> dict[str, object]:
    messages = [
        Message.system("Answer with the tools; cite the notes you used."),
        Message.user(f"search_notes: {question}"),
    ]
    for _ in range(max_turns):
        reply = await ctx.llm("fast", messages, tools=TOOLS)  # a durable step
        messages.append(reply.message())
        if not reply.tool_calls:
            break
        # Each tool call runs as an activity; their results go back to the model.
        messages += await ctx.gather(*(ctx.run_tool(call, TOOLS) for call in reply.tool_calls))
    answer = messages[-1].content or ""
    report = await ctx.llm("extract", f"Summarise as a report: {answer}", output=Report)
    return {
        "answer": answer,
        "report": report.parsed.model_dump(),
        "model": reply.model,
        "simulated": reply.simulated,
        "turns": sum(1 for m in messages if m.role == "assistant"),
    }


if __name__ == "__main__":
    result = app.run(research, "How does durable execution help an agent?")
    for key, value in result.items():
        print(f"{key}: {value}")
