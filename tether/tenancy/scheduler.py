"""Fair scheduling across namespaces: which tasks a worker claims, and how many of each.

Deficit round robin. Every claim, each namespace a worker serves earns credit in
proportion to its weight (``weight`` among the namespaces of its ``priority`` tier)
and may claim as many tasks as its whole credit; the namespace owed most goes first.
A namespace that had fewer ready tasks than it was offered loses its credit (DRR's
empty queue), so an idle tenant cannot hoard credit, and one with a deep backlog
cannot take another's turn: a tenant flooding the store delays others by about one
claim, not by its backlog. Capacity left over goes to namespaces that had more work
(work-conserving). A lower tier is offered the free slots first.

Caps and rates are enforced by the store inside the claim transaction (counting
leased tasks, and token buckets kept per namespace), so they hold across every
worker process; the scheduler only passes them on. Work over a limit waits; nothing
is dropped. Settings are re-read every ``refresh`` seconds, so changes take effect
without restarting workers.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import TetherError
from ..policy import Retry
from ..store import ActivityTask, ClaimLimit, Store, WorkflowTask
from .settings import NamespaceSettings, parse_settings

__all__ = ["NO_POLICIES", "NamespacePolicies", "Scheduler"]

log = logging.getLogger("tether.tenancy")


@dataclass(frozen=True, slots=True)
class NamespacePolicies:
    """What a namespace's settings say about one activity attempt: the retry policy of
    activities that set none, and the largest result."""

    retry: Retry
    max_payload: int | None = None


NO_POLICIES = NamespacePolicies(Retry())

Kind = Literal["workflow", "activity"]


class Scheduler:
    """Plans one worker's claims over the namespaces it serves.

    ``fair=False`` claims in plain FIFO order over all namespaces (no weights, tiers,
    caps or rates): the behaviour to compare fairness against.
    """

    def __init__(
        self,
        store: Store,
        namespaces: Sequence[str],
        queues: Sequence[str],
        identity: str,
        *,
        fair: bool = True,
        refresh: float = 1.0,
    ) -> None:
        self.store = store
        self.namespaces = list(namespaces)
        self.queues = list(queues)
        self.identity = identity
        self.fair = fair
        self.refresh_interval = refresh
        self.settings: dict[str, NamespaceSettings] = {}
        self._loaded_at = -math.inf
        self._deficit: dict[tuple[Kind, str], float] = {}
        self._policies: dict[str, tuple[NamespaceSettings, NamespacePolicies]] = {}

    # -- settings ---------------------------------------------------------------------

    async def refresh(self, *, force: bool = False) -> None:
        """Re-read the namespaces' settings if they are older than ``refresh`` seconds."""
        now = time.monotonic()
        if not force and now - self._loaded_at < self.refresh_interval:
            return
        self._loaded_at = now
        try:
            records = await self.store.list_namespace_records()
        except TetherError as exc:
            log.warning("cannot read namespace settings, keeping the last: %s", exc)
            return
        found: dict[str, NamespaceSettings] = {}
        for record in records:
            if record.name in self.namespaces:
                try:
                    found[record.name] = parse_settings(record.settings)
                except TetherError as exc:
                    log.error("namespace %s: bad settings, using defaults: %s", record.name, exc)
                    found[record.name] = NamespaceSettings()
        self.settings = found

    def _settings(self, namespace: str) -> NamespaceSettings | None:
        if self._loaded_at == -math.inf:
            return NamespaceSettings()  # not read yet: serve with defaults
        return self.settings.get(namespace)

    def policies(self, namespace: str) -> NamespacePolicies:
        """What the namespace's settings say about its activities' attempts."""
        s = self._settings(namespace)
        if s is None or (s.default_retry is None and s.max_payload is None):
            return NO_POLICIES
        cached = self._policies.get(namespace)
        if cached is None or cached[0] is not s:
            retry = s.default_retry.to_retry() if s.default_retry else Retry()
            cached = (s, NamespacePolicies(retry, s.max_payload))
            self._policies[namespace] = cached
        return cached[1]

    def local_activities(self, namespace: str) -> bool:
        """May this worker lease a run's new activities to itself in the same commit
        (the local fast path)? Not when a cap or rate must count them in a claim."""
        s = self._settings(namespace)
        return not (
            self.fair
            and s is not None
            and (s.max_running_activities or s.activity_rate or s.queue_activity_rates)
        )

    def local_workflow_tasks(self, namespace: str) -> bool:
        """May a finished activity hand its run's next workflow task straight back?"""
        s = self._settings(namespace)
        return not (self.fair and s is not None and s.max_running_workflows)

    @property
    def _plain(self) -> bool:
        """FIFO claims suffice: fairness is off, or one namespace without limits."""
        if not self.fair:
            return True
        if len(self.namespaces) > 1:
            return False
        s = self._settings(self.namespaces[0])
        return s is None or not s.limited

    # -- planning ---------------------------------------------------------------------

    def plan(self, kind: Kind, free: int) -> list[ClaimLimit]:
        """Each served namespace's share of ``free`` slots and its limits, in the order
        the claim should offer them."""
        served = [(ns, s) for ns in self.namespaces if (s := self._settings(ns)) is not None]
        tiers: dict[int, list[tuple[str, NamespaceSettings]]] = {}
        for ns, s in served:
            tiers.setdefault(s.priority, []).append((ns, s))
        out: list[ClaimLimit] = []
        for tier in sorted(tiers):
            members = tiers[tier]
            weights = sum(s.weight for _, s in members)
            ranked = []
            for ns, s in members:
                key = (kind, ns)
                credit = min(self._deficit.get(key, 0.0) + free * s.weight / weights, 2.0 * free)
                self._deficit[key] = credit
                ranked.append((credit, ns, s))
            ranked.sort(key=lambda r: -r[0])
            for credit, ns, s in ranked:
                share = min(max(1, math.floor(credit)), free)
                if kind == "workflow":
                    limit = ClaimLimit(ns, share, s.max_running_workflows)
                else:
                    limit = ClaimLimit(
                        ns, share, s.max_running_activities, s.activity_rate,
                        dict(s.queue_activity_rates),
                    )  # fmt: skip
                out.append(limit)
        return out

    def record(self, kind: Kind, plan: Sequence[ClaimLimit], free: int, got: Counter[str]) -> None:
        """Charge each namespace for what it claimed; one offered more than it took
        had no more ready work and loses its credit."""
        left = free
        for limit in plan:
            key = (kind, limit.namespace)
            offered = min(limit.share, left)
            taken = got.get(limit.namespace, 0)
            if taken < offered:
                self._deficit[key] = 0.0
            else:
                self._deficit[key] = max(self._deficit.get(key, 0.0) - taken, -2.0 * free)
            left = max(left - taken, 0)

    # -- claiming ---------------------------------------------------------------------

    async def claim_workflow_tasks(self, free: int, lease: float) -> list[WorkflowTask]:
        await self.refresh()
        if self._plain:
            return await self.store.claim_workflow_tasks(
                self.identity, self.namespaces, self.queues, free, lease
            )
        plan = self.plan("workflow", free)
        tasks = await self.store.claim_workflow_tasks_fair(
            self.identity, plan, self.queues, free, lease
        )
        self.record("workflow", plan, free, Counter(t.namespace for t in tasks))
        return tasks

    async def claim_activity_tasks(self, free: int, lease: float) -> list[ActivityTask]:
        await self.refresh()
        if self._plain:
            return await self.store.claim_activity_tasks(
                self.identity, self.namespaces, self.queues, free, lease
            )
        plan = self.plan("activity", free)
        tasks = await self.store.claim_activity_tasks_fair(
            self.identity, plan, self.queues, free, lease
        )
        self.record("activity", plan, free, Counter(t.namespace for t in tasks))
        return tasks
