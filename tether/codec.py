"""One codec for every payload: JSON-compatible values and pydantic models.

Payloads are encoded with ``orjson`` into bytes that are stored as they are. Decoding
against a type hint (a parameter or return annotation) goes through pydantic, so a
pydantic model comes back as that model and a wrong type is a clear error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, get_type_hints

import orjson
import pydantic

from .errors import InvalidArgument, PayloadTooLarge

__all__ = ["DEFAULT_MAX_PAYLOAD", "Codec", "Signature", "check_text", "utf8_size_over"]

DEFAULT_MAX_PAYLOAD = 2 * 1024 * 1024


def _default(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-compatible")


def _non_finite(value: Any) -> bool:
    """Whether ``value`` holds a float that is NaN or infinite, at any depth."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_non_finite(v) for v in value)
    if isinstance(value, pydantic.BaseModel):
        return _non_finite(value.model_dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _non_finite(dataclasses.asdict(value))
    return False


#: The longest id, name or task queue, in UTF-8 bytes (Temporal's default limit too).
#: PostgreSQL indexes them, and an index entry holds at most about 2,700 bytes.
MAX_TEXT_BYTES = 1000


def utf8_size_over(value: str, limit: int) -> int | None:
    """The UTF-8 size of ``value`` if over ``limit`` bytes, else None (encoded only when
    it could be: a character is four bytes at most)."""
    if len(value) <= limit // 4:
        return None
    size = len(value.encode())
    return size if size > limit else None


def check_text(value: Any, what: str) -> str:
    """``value`` as an id, name or key every store can hold: a non-empty string of at
    most ``MAX_TEXT_BYTES``, without the NUL character, which PostgreSQL's text refuses
    (so SQLite refuses both too)."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise InvalidArgument(f"{what} must not contain the NUL character (\\x00), got {value!r}")
    if (size := utf8_size_over(value, MAX_TEXT_BYTES)) is not None:
        raise InvalidArgument(
            f"{what} must be at most {MAX_TEXT_BYTES} bytes (UTF-8), got {size}: {value[:40]!r}..."
        )
    return value


class Codec:
    """Encodes values to bytes and back, enforcing a size limit."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.max_payload = max_payload

    def encode(self, value: Any, *, what: str = "payload", limit: int | None = None) -> bytes:
        """``value`` as JSON bytes; ``limit`` (a namespace's) may only lower the codec's."""
        try:
            data = orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:
            raise InvalidArgument(f"{what} cannot be encoded: {exc}") from None
        # orjson writes NaN and infinity as null: the value would come back changed.
        # Only an encoding with a null can hide one, so the walk is rarely needed.
        if b"null" in data and _non_finite(value):
            raise InvalidArgument(
                f"{what} holds a number that is not finite (NaN or infinity), which JSON"
                " cannot carry: it would come back as null"
            )
        most = self.max_payload if limit is None else min(limit, self.max_payload)
        if len(data) > most:
            raise PayloadTooLarge(f"{what} is {len(data)} bytes, over the limit of {most} bytes")
        return data

    def plain(self, value: Any, *, what: str = "payload", limit: int | None = None) -> Any:
        """The JSON-compatible form of ``value`` (pydantic models dumped), size-checked."""
        return orjson.loads(self.encode(value, what=what, limit=limit))

    @staticmethod
    def decode(data: bytes | None) -> Any:
        return None if data is None else orjson.loads(data)


#: Types whose exact instances pydantic's validation returns unchanged.
_AS_IS = (int, float, str, bool)


@functools.cache
def _adapter(hint: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(hint)


def _subject(fn: str, param: str | None) -> str:
    return f"result of {fn}" if param is None else f"argument {param!r} of {fn}"


def _not_finite(value: float, fn: str, param: str | None) -> InvalidArgument:
    return InvalidArgument(
        f"{_subject(fn, param)}: {value} is not a finite number (JSON has no NaN or infinity)"
    )


class Signature:
    """The typed parameters and result of a workflow or activity function.

    ``skip_first`` drops the workflow's ``ctx`` parameter.
    """

    def __init__(
        self, fn: Callable[..., Any], *, name: str | None = None, skip_first: bool = False
    ) -> None:
        sig = inspect.signature(fn)
        try:
            hints = get_type_hints(fn)
        except Exception:  # unresolvable annotations: accept values as they are
            hints = {}
        params = list(sig.parameters.values())[1 if skip_first else 0 :]
        self.name: str = name or str(getattr(fn, "__qualname__", repr(fn)))
        self.params = [(p.name, hints.get(p.name, Any), p.default) for p in params]
        self.variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
        self._required = sum(1 for p in self.params if p[2] is inspect.Parameter.empty)
        self.result_hint: Any = hints.get("return", Any)
        # Build the validators now, at registration, not on the first call.
        for hint in [*(p[1] for p in self.params), self.result_hint]:
            self._prepare(hint)
        # One check a parameter, chosen here: they run for every argument of every step.
        self._checks = [_checker(hint, self.name, p) for p, hint, _ in self.params]
        self._check_result = _checker(self.result_hint, self.name, None)

    def check_args(self, args: Sequence[Any]) -> list[Any]:
        """Validate and convert positional arguments; raise InvalidArgument if they don't fit."""
        if self.variadic:
            return list(args)
        required = self._required
        if not required <= len(args) <= len(self.params):
            raise InvalidArgument(
                f"{self.name} takes {required}"
                + (f" to {len(self.params)}" if len(self.params) != required else "")
                + f" argument(s), got {len(args)}"
            )
        return [check(value) for check, value in zip(self._checks, args, strict=False)]

    def convert_result(self, value: Any) -> Any:
        return self._check_result(value)

    @staticmethod
    def _prepare(hint: Any) -> None:
        if hint is not Any and hint is not inspect.Parameter.empty:
            with contextlib.suppress(pydantic.PydanticSchemaGenerationError, TypeError):
                _adapter(hint)


def _same(value: Any) -> Any:
    return value


def _checker(hint: Any, fn: str, param: str | None) -> Callable[[Any], Any]:
    """The check of one parameter (or the result) against ``hint``, its case decided once:
    these run for every argument of every step."""
    if hint is Any or hint is inspect.Parameter.empty:
        return _same
    if hint in _AS_IS:

        def exact(value: Any) -> Any:
            if type(value) is not hint:
                return _validated(hint, value, fn, param)
            # What validation would return, without a call into pydantic.
            if hint is float and not math.isfinite(value):
                raise _not_finite(value, fn, param)
            return value

        return exact
    return functools.partial(_validated, hint, fn=fn, param=param)


def _validated(hint: Any, value: Any, fn: str, param: str | None) -> Any:
    """``value`` through pydantic's validation of ``hint``; finite if it is a float."""
    try:
        out = _adapter(hint).validate_python(value)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidArgument(
            f"{_subject(fn, param)}: {first['msg']} (got {value!r:.80})"
        ) from None
    except pydantic.PydanticSchemaGenerationError:
        return value
    if isinstance(out, float) and not math.isfinite(out):
        raise _not_finite(out, fn, param)
    return out
