"""Temporal workflow and activity definitions for the peer benchmark.

Kept in their own module (not in the script run as ``__main__``) so the
temporalio workflow sandbox can re-import them, as the Temporal docs advise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from _common import W5_SLEEP_S, record_effect

#: Activities must have a start-to-close (or schedule-to-close) timeout;
#: the retry policy is Temporal's default (retry forever, 1 s initial backoff).
ACTIVITY_TIMEOUT = timedelta(seconds=10)


@activity.defn
async def step(x: int) -> int:
    return x + 1


@dataclass
class EffectInput:
    effects_path: str
    tag: str
    x: int


@activity.defn
async def effect_step(arg: EffectInput) -> int:
    """A trivial step that also appends one line to a side-effect log."""
    record_effect(arg.effects_path, arg.tag)
    return arg.x + 1


@workflow.defn
class ThreeSteps:
    """W1/W2: three sequential trivial activities."""

    @workflow.run
    async def run(self, x: int) -> int:
        for _ in range(3):
            x = await workflow.execute_activity(step, x, start_to_close_timeout=ACTIVITY_TIMEOUT)
        return x


@workflow.defn
class FanOut:
    """W3: N trivial activities in parallel."""

    @workflow.run
    async def run(self, n: int) -> int:
        results = await asyncio.gather(
            *(
                workflow.execute_activity(step, i, start_to_close_timeout=ACTIVITY_TIMEOUT)
                for i in range(n)
            )
        )
        return sum(results)


@dataclass
class EffectsArg:
    effects_path: str
    x: int


@workflow.defn
class SleepRecovery:
    """W5: step1 -> durable sleep -> step2 -> step3 (each step logs an effect)."""

    @workflow.run
    async def run(self, arg: EffectsArg) -> int:
        x = arg.x
        for i, tag in enumerate(("step1", "step2", "step3")):
            if i == 1:
                await workflow.sleep(timedelta(seconds=W5_SLEEP_S))
            x = await workflow.execute_activity(
                effect_step,
                EffectInput(arg.effects_path, tag, x),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
            )
        return x


@workflow.defn
class WaitForGo:
    """W4: log 'ready' in a step, then wait for the signal "go"."""

    def __init__(self) -> None:
        self._go: int | None = None

    @workflow.signal(name="go")
    def go(self, value: int) -> None:
        self._go = value

    @workflow.run
    async def run(self, arg: EffectsArg) -> int:
        await workflow.execute_activity(
            effect_step,
            EffectInput(arg.effects_path, "ready", arg.x),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
        )
        await workflow.wait_condition(lambda: self._go is not None)
        assert self._go is not None
        return self._go


WORKFLOWS = [ThreeSteps, FanOut, SleepRecovery, WaitForGo]
ACTIVITIES: list[Callable[..., Any]] = [step, effect_step]
