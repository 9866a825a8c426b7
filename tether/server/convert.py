"""Records as JSON-ready dicts: times as Unix seconds, nothing formatted for people
(a run's is ``RunRecord.to_dict``)."""

from __future__ import annotations

from typing import Any

from ..tenancy import NamespaceInfo

__all__ = ["namespace_dict"]


def namespace_dict(info: NamespaceInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "created_at": info.created_at,
        "settings": info.settings.model_dump(mode="json"),
    }
