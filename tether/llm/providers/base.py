"""What every provider adapter provides, and the errors they raise.

A provider translates one wire format through its official SDK (built with the SDK's
own retries off: the engine owns retries). It raises :class:`ProviderError` with a
``kind`` the router acts on: ``rate_limited``, ``server_error``, ``timeout`` and
``connection_error`` move on to the next model of the chain (fallback) and are
retried later; ``bad_output`` is retried; ``bad_request`` and ``auth`` are not.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from ...chat import ChatRequest, ToolCall, Usage
from ...errors import InvalidArgument

__all__ = [
    "RETRYABLE",
    "Provider",
    "ProviderError",
    "Reply",
    "classify",
    "missing_extra",
    "parse_arguments",
    "parse_output",
    "retry_after",
]

RETRYABLE = frozenset({"rate_limited", "server_error", "timeout", "connection_error", "bad_output"})


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    parsed: Any = None
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None


class ProviderError(Exception):
    """A provider call failed; ``kind`` says how (see the module docstring)."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


class Provider(Protocol):
    async def chat(self, request: ChatRequest, model: str) -> Reply:
        """One call, no retries; raises :class:`ProviderError`."""
        ...

    async def close(self) -> None: ...


def missing_extra(package: str) -> InvalidArgument:
    return InvalidArgument(
        f"the {package!r} package is needed for this provider: pip install 'tether[llm]'"
    )


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a ``retry-after-ms`` or ``Retry-After`` header (seconds or a date)."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def classify(status: int, message: str, headers: Mapping[str, str] | None = None) -> ProviderError:
    """The error for an HTTP status a provider answered with."""
    wait = retry_after(headers)
    if status == 429:
        kind = "rate_limited"
    elif status >= 500 or status in (408, 409):
        kind = "server_error"
    elif status in (401, 403):
        kind = "auth"
    else:
        kind = "bad_request"
    return ProviderError(kind, f"HTTP {status}: {message}", status=status, retry_after=wait)


def parse_arguments(raw: str | None) -> dict[str, Any]:
    """A tool call's JSON arguments; what does not parse is kept under ``_raw``."""
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_value": value}


def parse_output(request: ChatRequest, text: str) -> Any:
    """The structured output in ``text``, when the request asked for one."""
    if request.output_schema is None:
        return None
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProviderError(
            "bad_output", f"the model did not return JSON: {text[:200]!r}"
        ) from None
