"""The sticky cache: live workflow instances kept in memory between their events."""

from __future__ import annotations

from collections import OrderedDict

from ..engine import WorkflowInstance

__all__ = ["StickyCache"]


class StickyCache:
    """Least-recently-used instances by run id; an evicted instance is torn down."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, WorkflowInstance] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, run_id: str) -> WorkflowInstance | None:
        instance = self._items.get(run_id)
        if instance is not None:
            self._items.move_to_end(run_id)
        return instance

    def put(self, run_id: str, instance: WorkflowInstance) -> None:
        self._items[run_id] = instance
        self._items.move_to_end(run_id)
        while len(self._items) > self.capacity:
            _, old = self._items.popitem(last=False)
            old.teardown()

    def evict(self, run_id: str) -> None:
        instance = self._items.pop(run_id, None)
        if instance is not None:
            instance.teardown()

    def clear(self) -> None:
        for instance in self._items.values():
            instance.teardown()
        self._items.clear()
