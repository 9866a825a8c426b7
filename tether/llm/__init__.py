"""LLM steps: model routing, provider adapters, rate limits, usage ledger, budgets.

Workflow code calls ``ctx.llm(model_or_alias, prompt, ...)``; the app's
:class:`LLMConfig` (``tether.App(llm=...)`` or ``app.configure_llm(...)``) decides
which provider answers, with which credentials, under which limits and budget. See
``docs/llm.md``.

Layer: below ``tether.worker``/``tether.app``, above ``tether.engine``/``tether.store``;
imports ``chat``, ``store``, ``errors`` and the provider SDKs (optional extras).
"""

from ..chat import (
    CallAttempt,
    ChatRequest,
    ChatResult,
    Message,
    Tool,
    ToolCall,
    Usage,
    tool,
)
from .config import Budget, Limits, LLMConfig, NamespaceLLM, Price, ProviderConfig
from .ledger import StepInfo
from .router import LLMRouter
from .sim import SimServer

__all__ = [
    "Budget",
    "CallAttempt",
    "ChatRequest",
    "ChatResult",
    "LLMConfig",
    "LLMRouter",
    "Limits",
    "Message",
    "NamespaceLLM",
    "Price",
    "ProviderConfig",
    "SimServer",
    "StepInfo",
    "Tool",
    "ToolCall",
    "Usage",
    "tool",
]
