"""LLM settings: providers and their credentials, aliases, limits, prices, budgets.

Everything here is configuration of the app (or its worker process), never of
workflow code: swapping a provider, adding a fallback or changing a price is a change
here, and history keeps only the alias or model name the code asked for.

The top-level settings apply to every namespace; ``namespaces`` overrides them per
namespace (providers, aliases and prices are merged key by key, a budget replaces the
default one), so each tenant can have its own credentials, routes and budget.
"""

from __future__ import annotations

import os
from typing import Literal

import pydantic

from ..codec import check_text
from ..errors import InvalidArgument

__all__ = [
    "Budget",
    "LLMConfig",
    "Limits",
    "NamespaceLLM",
    "Price",
    "ProviderConfig",
    "ResolvedLLM",
]

ProviderKind = Literal["openai", "anthropic", "gemini", "sim"]


class Limits(pydantic.BaseModel):
    """What a provider allows one namespace, for all worker processes together:
    requests and tokens per minute, and calls in flight. ``None`` is "no limit of
    ours" (the provider's own 429s still apply)."""

    model_config = pydantic.ConfigDict(frozen=True)

    requests_per_minute: float | None = pydantic.Field(default=None, gt=0)
    tokens_per_minute: float | None = pydantic.Field(default=None, gt=0)
    concurrency: int | None = pydantic.Field(default=None, ge=1)
    # Requests that may go at once after a quiet spell (default: a minute's worth).
    burst: float | None = pydantic.Field(default=None, ge=1)
    # A wait for the limiter up to this long happens in place; a longer one becomes a
    # durable wait (the attempt is retried later and frees its worker slot).
    max_inline_wait: float = pydantic.Field(default=1.0, ge=0)


class ProviderConfig(pydantic.BaseModel):
    """One provider account.

    ``kind`` picks the wire format: ``openai`` serves OpenAI and every
    OpenAI-compatible server (vLLM, Ollama, OpenRouter...) through ``base_url``;
    ``sim`` is the offline simulator. The key is ``api_key`` or read from the
    environment variable ``api_key_env`` when a call is made.
    """

    model_config = pydantic.ConfigDict(frozen=True)

    kind: ProviderKind
    api_key: pydantic.SecretStr | None = None
    api_key_env: str | None = None
    base_url: str | None = None
    timeout: float = 60.0
    task_queue: str | None = None
    limits: Limits = Limits()

    def key(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env:
            return os.environ.get(self.api_key_env)
        return None


class Price(pydantic.BaseModel):
    """US dollars per million tokens."""

    model_config = pydantic.ConfigDict(frozen=True)

    input: float = 0.0
    output: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


class Budget(pydantic.BaseModel):
    """A namespace's spending limit over a calendar period (UTC).

    When spent, a new call fails with :class:`tether.BudgetExceeded`
    (``on_exhausted="fail"``) or waits, durably, for the next period or a raise of the
    budget (``on_exhausted="wait"``, see ``recheck``).
    """

    model_config = pydantic.ConfigDict(frozen=True)

    usd: float = pydantic.Field(ge=0)
    period: Literal["day", "month", "total"] = "month"
    on_exhausted: Literal["fail", "wait"] = "fail"
    # With "wait": look again after this many seconds rather than only at the next
    # period, so that a raised budget is used soon (each look is an attempt of the
    # step's retry policy). Needed to wait on a "total" budget, which has no next period.
    recheck: float | None = pydantic.Field(default=None, gt=0)


class NamespaceLLM(pydantic.BaseModel):
    """Per-namespace overrides (see :class:`LLMConfig`)."""

    model_config = pydantic.ConfigDict(frozen=True)

    providers: dict[str, ProviderConfig] = {}
    aliases: dict[str, list[str]] = {}
    prices: dict[str, Price] = {}
    budget: Budget | None = None


class ResolvedLLM(pydantic.BaseModel):
    """The settings in force for one namespace."""

    providers: dict[str, ProviderConfig]
    aliases: dict[str, list[str]]
    prices: dict[str, Price]
    budget: Budget | None


def _text(value: str, what: str) -> None:
    """``check_text`` as a settings check: pydantic reports a ValueError with the field."""
    try:
        check_text(value, what)
    except InvalidArgument as exc:
        raise ValueError(str(exc)) from None


def _check_names(settings: NamespaceLLM) -> None:
    """Provider names, aliases, models and task queues are keys of the usage ledger and
    of task rows: text every store can hold. A provider's name cannot hold the ``:``
    that separates it from the model in an alias's chain."""
    for name, provider in settings.providers.items():
        _text(name, "a provider's name")
        if ":" in name:
            raise ValueError(f"provider name {name!r} must not contain ':'")
        if provider.task_queue is not None:
            _text(provider.task_queue, f"the task queue of provider {name!r}")
    for alias, chain in settings.aliases.items():
        _text(alias, "an alias")
        for target in chain:
            _text(target, f"a model of alias {alias!r}")
    for model in settings.prices:
        _text(model, "a priced model")


class LLMConfig(NamespaceLLM):
    """LLM settings of an app.

    ``aliases`` map a name used in workflow code (``fast``, ``reasoning``,
    ``extract``...) to a fallback chain of ``provider:model`` names: the first is
    tried first; a 429, a 5xx, a timeout or a connection error moves on to the next.
    ``prices`` are keyed by ``provider:model`` or by model name.
    """

    namespaces: dict[str, NamespaceLLM] = {}
    # Where LLM steps run unless a provider routes them elsewhere (default: the
    # workflow's own queue).
    task_queue: str | None = None

    @pydantic.model_validator(mode="after")
    def _check(self) -> LLMConfig:
        if self.task_queue is not None:
            _text(self.task_queue, "the LLM steps' task queue")
        for scope, settings in [("", self), *self.namespaces.items()]:
            _check_names(settings)
            merged = self.resolve(scope) if scope else settings
            for alias, chain in settings.aliases.items():
                if not chain:
                    raise ValueError(f"alias {alias!r} has no models")
                for target in chain:
                    provider, sep, model = target.partition(":")
                    if not sep or not model:
                        raise ValueError(f"alias {alias!r}: {target!r} is not 'provider:model'")
                    if provider not in merged.providers:
                        raise ValueError(f"alias {alias!r}: no provider named {provider!r}")
        return self

    def resolve(self, namespace: str) -> ResolvedLLM:
        """The settings in force for ``namespace``."""
        own = self.namespaces.get(namespace, NamespaceLLM())
        return ResolvedLLM(
            providers={**self.providers, **own.providers},
            aliases={**self.aliases, **own.aliases},
            prices={**self.prices, **own.prices},
            budget=own.budget if own.budget is not None else self.budget,
        )

    def chain(self, namespace: str, model: str) -> list[tuple[str, ProviderConfig, str]]:
        """The ``(provider name, provider, model)`` to try for an alias or a
        ``provider:model`` name, in order."""
        settings = self.resolve(namespace)
        targets = settings.aliases.get(model) or [model]
        out = []
        for target in targets:
            provider, sep, name = target.partition(":")
            config = settings.providers.get(provider) if sep else None
            if config is None or not name:
                known = ", ".join(sorted(settings.aliases)) or "none"
                raise InvalidArgument(
                    f"{model!r} is neither an alias (known: {known}) nor 'provider:model'"
                    " with a configured provider",
                    namespace=namespace,
                )
            out.append((provider, config, name))
        return out

    def queue_for(self, namespace: str, model: str) -> str | None:
        """The task queue an LLM step for ``model`` is routed to: its first provider's
        ``task_queue``, else the config's ``task_queue``."""
        try:
            first = self.chain(namespace, model)[0][1]
        except InvalidArgument:
            return self.task_queue
        return first.task_queue or self.task_queue

    def task_queues(self) -> set[str]:
        """Every queue these settings route LLM steps to."""
        scopes = [self, *self.namespaces.values()]
        queues = {p.task_queue for s in scopes for p in s.providers.values() if p.task_queue}
        if self.task_queue:
            queues.add(self.task_queue)
        return queues

    @classmethod
    def simulated(cls, **overrides: object) -> LLMConfig:
        """Settings that need no key and no network: every alias answered by the
        offline simulator (``sim:...`` models, replies labelled as simulated)."""
        settings: dict[str, object] = {
            "providers": {"sim": ProviderConfig(kind="sim")},
            "aliases": {
                "fast": ["sim:sim-fast"],
                "reasoning": ["sim:sim-reasoning"],
                "extract": ["sim:sim-extract"],
            },
            "prices": {
                "sim:sim-fast": Price(input=0.15, output=0.60),
                "sim:sim-reasoning": Price(input=3.0, output=15.0),
                "sim:sim-extract": Price(input=0.15, output=0.60),
            },
        }
        settings.update(overrides)
        return cls.model_validate(settings)
