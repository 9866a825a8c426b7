"""Provider adapters, one module per wire format; each SDK is an optional extra
(``pip install 'tether[llm]'``) imported only when its provider is first used."""

from __future__ import annotations

from ...errors import InvalidArgument
from ..config import ProviderConfig
from .base import RETRYABLE, Provider, ProviderError, Reply

__all__ = ["RETRYABLE", "Provider", "ProviderError", "Reply", "build"]


def build(name: str, config: ProviderConfig, *, namespace: str, sim_url: str | None) -> Provider:
    """The adapter for one provider account, with its credentials resolved now."""
    base_url = config.base_url
    key = config.key()
    if config.kind == "sim":
        assert sim_url is not None
        base_url, key = base_url or f"{sim_url}/v1", key or "sim"
    elif key is None and base_url is not None and config.kind == "openai":
        key = "none"  # a local OpenAI-compatible server that asks for no key
    if key is None:
        raise InvalidArgument(
            f"no API key for provider {name!r} in namespace {namespace!r}:"
            " set api_key or api_key_env in the LLM settings",
            namespace=namespace,
        )
    if config.kind in ("openai", "sim"):
        from .openai import OpenAIProvider

        return OpenAIProvider(api_key=key, base_url=base_url, timeout=config.timeout)
    if config.kind == "anthropic":
        from .anthropic import AnthropicProvider

        return AnthropicProvider(api_key=key, base_url=base_url, timeout=config.timeout)
    from .gemini import GeminiProvider

    return GeminiProvider(api_key=key, base_url=base_url, timeout=config.timeout)
