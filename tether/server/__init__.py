"""The HTTP API (``tether server``): a thin, typed layer over ``Client``.

Routes live one module per resource under ``routes/``; errors of the ``tether.errors``
tree become HTTP statuses with a JSON body (``errors.py``); bearer tokens scope each
request to its namespaces (``auth.py``). It imports ``tether.app`` and below, never the
CLI. See docs/http.md.
"""

from __future__ import annotations

from .asgi import create_app
from .auth import Grant, Tokens
from .errors import QueryUnavailable

__all__ = ["Grant", "QueryUnavailable", "Tokens", "create_app"]
