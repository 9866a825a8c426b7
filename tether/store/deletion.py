"""Deleting a namespace: the batch loop every store's ``delete_namespace`` shares.

The deletion is not one transaction: the namespace is marked first, then removed in
batches, each its own transaction, so other namespaces' work goes on between them.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["delete_namespace"]


class _Deletes(Protocol):
    async def begin_namespace_deletion(self, namespace: str) -> None: ...

    async def delete_namespace_batch(self, namespace: str, limit: int) -> bool: ...


async def delete_namespace(store: _Deletes, namespace: str, batch: int) -> None:
    """Mark ``namespace`` as being deleted, then remove ``batch`` rows of it at a time
    until it is gone (see ``Store.delete_namespace``)."""
    await store.begin_namespace_deletion(namespace)
    done = False
    while not done:
        done = await store.delete_namespace_batch(namespace, batch)
