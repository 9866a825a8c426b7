"""Bearer tokens mapped to namespaces: who may address which tenant.

A token is issued for namespaces (``token:acme``) or as an admin (``token:*``), who
may address every namespace and create, change and delete namespaces. With no token
configured the server is open, and ``tether server`` binds it to loopback only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidArgument, PermissionDenied, Unauthenticated

__all__ = ["ADMIN", "TOKENS_ENV", "Grant", "Tokens"]

ADMIN = "*"
TOKENS_ENV = "TETHER_SERVER_TOKENS"


def _digest(token: str) -> bytes:
    # Tokens are kept and compared as digests: a lookup's timing tells nothing
    # useful about a token, and a memory dump holds no usable one.
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Grant:
    """What one request may address: ``None`` namespaces means every one (admin)."""

    namespaces: frozenset[str] | None

    @property
    def admin(self) -> bool:
        return self.namespaces is None

    def check(self, namespace: str) -> None:
        if self.namespaces is not None and namespace not in self.namespaces:
            raise PermissionDenied(
                f"this token does not give access to namespace {namespace!r}",
                namespace=namespace,
            )

    def check_admin(self, what: str) -> None:
        if not self.admin:
            raise PermissionDenied(f"{what} needs an admin token")


OPEN = Grant(None)


@dataclass(frozen=True)
class Tokens:
    """The tokens a server accepts, each with the namespaces it may address."""

    grants: Mapping[bytes, frozenset[str]] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        """No token configured: every request may address every namespace."""
        return not self.grants

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Tokens:
        """Entries ``TOKEN:NAMESPACE`` (``TOKEN:*`` for an admin); a token may be
        listed once per namespace. Blank entries and ``#`` comments are skipped."""
        grants: dict[bytes, set[str]] = {}
        for raw in entries:
            entry = raw.strip()
            if not entry or entry.startswith("#"):
                continue
            token, sep, namespace = entry.rpartition(":")
            token, namespace = token.strip(), namespace.strip()
            if not sep or not token or not namespace:
                raise InvalidArgument(
                    f"expected TOKEN:NAMESPACE (or TOKEN:* for an admin), got {entry[:8]!r}..."
                )
            grants.setdefault(_digest(token), set()).add(namespace)
        return cls({k: frozenset(v) for k, v in grants.items()})

    @classmethod
    def load(cls, path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Tokens:
        """Tokens from a file (one entry a line) and from ``$TETHER_SERVER_TOKENS``
        (comma-separated entries)."""
        entries: list[str] = []
        if path is not None:
            try:
                entries += Path(path).read_text().splitlines()
            except OSError as exc:
                raise InvalidArgument(f"cannot read the tokens file {str(path)!r}: {exc}") from None
        environ = os.environ if env is None else env
        entries += environ.get(TOKENS_ENV, "").split(",")
        return cls.parse(entries)

    def grant(self, authorization: str | None) -> Grant:
        """The grant of an ``Authorization`` header's bearer token."""
        if self.open:
            return OPEN
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send a token: Authorization: Bearer <token>")
        namespaces = self.grants.get(_digest(token.strip()))
        if namespaces is None:
            raise Unauthenticated("this token is not valid on this server")
        return Grant(None if ADMIN in namespaces else namespaces)
