"""Namespaces as tenants: settings, lifecycle, fair scheduling, limits and retention.

Between the worker/client and the store: it uses only the ``Store`` protocol.
"""

from __future__ import annotations

from .retention import RetentionSweeper
from .scheduler import NO_POLICIES, NamespacePolicies, Scheduler
from .service import NamespaceDescription, NamespaceInfo, Namespaces
from .settings import NamespaceSettings, RetrySettings, check_name, parse_settings

__all__ = [
    "NO_POLICIES",
    "NamespaceDescription",
    "NamespaceInfo",
    "NamespacePolicies",
    "NamespaceSettings",
    "Namespaces",
    "RetentionSweeper",
    "RetrySettings",
    "Scheduler",
    "check_name",
    "parse_settings",
]
