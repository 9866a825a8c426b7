"""One module per resource, each with its ``routes``; a new resource (updates, reset,
search attributes) is a new module listed here."""

from __future__ import annotations

from starlette.routing import BaseRoute

from . import health, metrics, namespaces, runs, ui, workflows

__all__ = ["ROUTES"]

ROUTES: list[BaseRoute] = [
    *health.routes,
    *metrics.routes,
    *namespaces.routes,
    *workflows.routes,
    *runs.routes,
    *ui.routes,
]
