"""Updates: request-response calls into a running workflow.

An update request waits in the store, outside history, until a worker holds the run.
The worker asks :meth:`Updates.validate` on the live state: an unknown name, arguments
that do not fit the handler, or a validator that raises reject the request and nothing
is recorded. An accepted request becomes the input event ``UpdateAccepted {name,
update_id, args}``; applying it starts the handler as a task of the workflow (it may
await steps like the main code), and its end is the command ``UpdateCompleted {step,
name, update_id, result | failure}``. Replay re-applies ``UpdateAccepted`` at its place
and matches ``UpdateCompleted`` like any command, so a crash between the two finishes
the update exactly once. Validators never run on replay: they decide, once, whether a
request enters history.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from ..codec import Signature
from ..errors import InvalidArgument, NonDeterminismError, failure_to_dict
from .instance import ContinueAsNewRequested, WorkflowInstance

__all__ = ["Updates"]


class Updates:
    """The update handlers one run registered, and its handlers in flight."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self._handlers: dict[str, tuple[Callable[..., Any], Callable[..., Any] | None]] = {}
        self._signatures: dict[str, Signature] = {}
        self._running: set[asyncio.Task[None]] = set()

    def register(
        self, name: str, handler: Callable[..., Any], validator: Callable[..., Any] | None
    ) -> None:
        self._handlers[name] = (handler, validator)
        self._signatures.pop(name, None)

    def _check_args(self, name: str, args: Sequence[Any]) -> list[Any]:
        signature = self._signatures.get(name)
        if signature is None:
            handler = self._handlers[name][0]
            signature = self._signatures[name] = Signature(handler, name=f"update {name!r}")
        return signature.check_args(args)

    def validate(self, name: str, args: Sequence[Any]) -> dict[str, Any] | None:
        """Decide on a request: None to accept it, or the failure (as data) that
        rejects it. Runs the validator read-only, like a query handler."""
        instance = self._instance
        entry = self._handlers.get(name)
        try:
            if entry is None:
                known = ", ".join(sorted(self._handlers)) or "none"
                raise InvalidArgument(
                    f"workflow {instance.info.workflow_type} has no update handler {name!r}"
                    f" (known: {known}); handlers must be registered before the first await",
                    workflow_id=instance.info.workflow_id,
                )
            checked = self._check_args(name, args)
            validator = entry[1]
            if validator is not None:
                verdict = instance.read_only(f"update validator {name!r}", validator, checked)
                if inspect.isawaitable(verdict):
                    if inspect.iscoroutine(verdict):
                        verdict.close()
                    raise InvalidArgument(
                        f"update validator {name!r} must be a plain function, not async"
                    )
        except Exception as exc:
            return failure_to_dict(exc)
        return None

    def accept(self, name: str, update_id: str, args: Sequence[Any]) -> None:
        """Apply ``UpdateAccepted``: run the handler as a task of the workflow."""
        task = self._instance.loop.create_task(
            self._run(name, update_id, list(args)), name=f"update {name} {update_id}"
        )
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, name: str, update_id: str, args: list[Any]) -> None:
        instance = self._instance
        attrs: dict[str, Any] = {"name": name, "update_id": update_id}
        try:
            if name not in self._handlers:
                # Only when the code changed since the update was accepted.
                raise InvalidArgument(f"no update handler {name!r} on replay")
            value = self._handlers[name][0](*self._check_args(name, args))
            if inspect.isawaitable(value):
                value = await value
            attrs["result"] = instance.codec.plain(value, what=f"result of update {name!r}")
        except NonDeterminismError:
            return
        except (Exception, asyncio.CancelledError) as exc:
            attrs["failure"] = failure_to_dict(exc)
        except ContinueAsNewRequested:
            wrong = InvalidArgument(
                f"update handler {name!r} called continue_as_new: only the workflow's own"
                " code may end the run"
            )
            attrs["failure"] = failure_to_dict(wrong)
        if instance.closed or instance.nondeterministic:
            return  # the run ended first: the caller learns it from the run's status
        instance.complete_update({"step": instance.next_step(), **attrs})

    def cancel_all(self) -> bool:
        """Cancel the handlers in flight (the run is being discarded); True if any."""
        for task in list(self._running):
            task.cancel()
        return bool(self._running)

    @property
    def in_flight(self) -> int:
        """How many accepted updates have not completed yet."""
        return len(self._running)
