"""Group commit: the writes that many workflows make in one turn of the event loop
reach PostgreSQL as one statement, in one round trip and one transaction.

A worker running hundreds of workflows completes hundreds of tasks a second. One
transaction each costs a round trip, a parse of twenty parameters and a WAL flush
apiece, on both sides of the socket. Here each kind of write (a start, a workflow task
completion, an activity outcome) waits for the end of the loop's turn; then everything
gathered goes as one array to the migration's batch function, which returns one row
per operation: the operations of the common shape are written together by a few set
statements (``0017_set_based_commits.sql``), any other one alone in a subtransaction
(``0011_group_commit.sql``).

Alone, an operation is sent at once, by its caller: an idle worker's latency does not
change. Under load, while ``max_in_flight`` batches are out, new operations gather
for the next one, in one lane per namespace: a batch takes one operation from each
lane in turn, so a tenant with hundreds of writes waiting does not put another
tenant's next step behind all of them (within a lane, order is kept).

While several lanes wait, the longest goes in a batch of its own, after the others':
a tenant's one write does not ride in a flood's batch and wait for all of it.

A namespace's operations ride in at most ``lane_in_flight`` batches at once, fewer
than ``max_in_flight``: a tenant flooding the store fills its own share of the
connections, and another tenant's next write leaves at once on a spare one, in a
small batch, instead of waiting for one of the flood's batches to come back and then
riding in the next one (sixty operations long) with the flood.

A refused operation gets its own error back (as the ``asyncpg.PostgresError`` a single
statement would have raised); a batch that fails as a whole (the connection dropped)
fails each of its operations with that error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from operator import length_hint
from typing import Any, cast

import asyncpg

from ..lanes import take_in_turn

__all__ = ["ADVANCE", "COMPLETE", "FINISH", "START", "GroupCommit", "Kind", "refusal"]

# Under PostgreSQL's 64 cached subtransaction ids per backend (see the migration).
MAX_OPS = 60
#: The callers of a batch resumed in one turn of the event loop.
RESUME_AT_ONCE = 8


#: Arrays of up to this many items go to a write's own function as scalars (below).
INLINE_ITEMS = 4

#: Makes a write's parameters from its operation's fields (see ``Single``).
Build = Callable[[tuple[Any, ...]], tuple[Any, ...]]


class Single:
    """The call of a write's own function with one operation's fields as parameters.

    The arrays among them (an operation's events, activities, timers) mostly hold one
    to three items, and the driver checks each array and each of its items against
    ``collections.abc`` before encoding it: W2's client ran 7% fewer instructions when
    one activity's six arrays went as scalars instead. So an array of up to
    ``INLINE_ITEMS`` items goes as that many scalars, made into the array again by the
    statement (``ARRAY[$8::text, $9::text]``). The statement's text depends on the
    arrays' lengths, and is built once for each such shape: a handful in practice (the
    events' two arrays have one length, the activities' six another, the timers' two a
    third), each prepared once per connection by the driver."""

    def __init__(self, function: str, arity: int, arrays: dict[int, str]) -> None:
        self.function = function
        self.arity = arity
        #: Position (from 0) of each array parameter, and its element type: one run of
        #: consecutive positions, so that one slice of an operation holds its arrays.
        #: Each is a list or None (NULL): a string there would be taken for an array of
        #: its characters (its ``length_hint`` is its length).
        self.arrays = arrays
        self._first, self._end = min(arrays), max(arrays) + 1
        if list(arrays) != list(range(self._first, self._end)):
            raise ValueError(f"{function}: array parameters must be consecutive, got {arrays}")
        #: Per shape (the inline arrays' lengths, 0 for the others): the statement's
        #: text and the function making its parameters.
        self._plans: dict[tuple[int, ...], tuple[str, Build | None]] = {}

    def statement(self, op: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
        # This runs for every write, so the shape is read in C (``length_hint`` is an
        # array's length, and 0 for NULL) and the parameters are made by a function built
        # once per shape: a Python loop over the eleven arrays was the store's costliest
        # function (470 bytecodes a write; now about 60).
        shape = tuple(map(length_hint, op[self._first : self._end]))
        if max(shape) > INLINE_ITEMS:
            shape = tuple(n if n <= INLINE_ITEMS else 0 for n in shape)
        plan = self._plans.get(shape)
        if plan is None:
            plan = self._plans[shape] = (self._text(shape), self._builder(shape))
        sql, build = plan
        return sql, op if build is None else build(op)

    def _builder(self, shape: tuple[int, ...]) -> Build | None:
        """The function making an operation's parameters for ``shape``: the inline
        arrays' items in their arrays' places. None when no array goes inline. Its text
        holds only positions (integers), never a value."""
        if not any(shape):
            return None
        first, end = self._first, self._end
        fields = [
            f"*op[{first + k}]" if inline else f"op[{first + k}]" for k, inline in enumerate(shape)
        ]
        source = f"lambda op: (*op[:{first}], {', '.join(fields)}, *op[{end}:])"
        return cast(Build, eval(source))

    def _text(self, shape: tuple[int, ...]) -> str:
        inline = dict(zip(self.arrays, shape, strict=True))
        args, n = [], 0
        for i in range(self.arity):
            if items := inline.get(i, 0):
                element = self.arrays[i]
                args.append(
                    "ARRAY[" + ", ".join(f"${n + k}::{element}" for k in range(1, items + 1)) + "]"
                )
                n += items
            else:
                n += 1
                args.append(f"${n}")
        return (
            f"SELECT NULL::text, NULL::text, NULL::text, f.* FROM {self.function}"
            f"({', '.join(args)}) f"
        )


@dataclass(frozen=True)
class Kind:
    """One batched statement: the batch function's, whose first three columns are the
    SQLSTATE, message and constraint of a refused operation; and, for every write, the
    statement of one operation alone: a call of the operation's own function with the
    operation's fields as parameters, whose row has the same columns (the three
    refusal columns null: a refusal is the statement's error)."""

    sql: str
    single: Single | None = field(default=None, compare=False)
    #: How many of an operation's fields the batch function's type has, when the
    #: operation's own function takes more (trailing ones a batch does without).
    batch_fields: int | None = None

    def statement(self, ops: list[tuple[Any, ...]]) -> tuple[str, tuple[Any, ...]]:
        """The statement that writes these operations, and its parameters."""
        if len(ops) == 1 and self.single is not None:
            return self.single.statement(ops[0])
        if self.batch_fields is not None:
            ops = [op[: self.batch_fields] for op in ops]
        return self.sql, (ops,)


#: The element types of a commit's array fields (0017 and after), in order: the events'
#: types and attributes; the activities' steps, names, queues, arguments, options and
#: owners; the timers' steps and times; the timers cancelled.
_COMMIT_ARRAYS = (
    *("text", "text"),
    *("integer", "text", "text", "text", "text", "text"),
    *("integer", "float8"),
    "integer",
)


def _commit_arrays(events_at: int) -> dict[int, str]:
    """The positions and element types of a commit's arrays, its events at ``events_at``."""
    return {events_at + k: element for k, element in enumerate(_COMMIT_ARRAYS)}


START = Kind(
    "SELECT * FROM tether.start_runs($1::tether.start_op[])",
    Single("tether.start_run_one", 24, _commit_arrays(10)),
)
COMPLETE = Kind(
    "SELECT * FROM tether.complete_workflow_tasks($1::tether.complete_op[])",
    Single("tether.complete_workflow_task", 19, _commit_arrays(5)),
)
# The last field, whether the writer's process waits for the run's close itself, only
# the single call takes (0027): a batch's closes are always notified.
ADVANCE = Kind(
    "SELECT * FROM tether.advance_after_activities($1::tether.advance_op[])",
    Single("tether.advance_after_activity", 22, _commit_arrays(7)),
    batch_fields=21,
)
FINISH = Kind(
    "SELECT * FROM tether.finish_activities($1::tether.finish_op[])",
    Single("tether.finish_activity", 10, {8: "text"}),
)

Op = tuple[tuple[Any, ...], "asyncio.Future[asyncpg.Record]"]
#: ``send(kind, ops)`` writes a batch (see ``Kind.statement``) on a pooled connection.
Send = Callable[[Kind, list[tuple[Any, ...]]], Awaitable[Sequence[asyncpg.Record]]]


def refusal(row: asyncpg.Record) -> asyncpg.PostgresError:
    """The error a single statement would have raised for this operation."""
    fields = {"C": row[0], "M": row[1] or ""}
    if row[2]:
        fields["n"] = row[2]
    return asyncpg.PostgresError.new(fields)


def _resume(ops: Sequence[Op], rows: Sequence[asyncpg.Record]) -> None:
    for (_, future), row in zip(ops, rows, strict=True):
        if future.done():
            continue  # its caller was cancelled meanwhile; the write stands
        if row[0] is not None:
            future.set_exception(refusal(row))
        else:
            future.set_result(row)


class GroupCommit:
    """Gathers operations per kind and sends them in batches through ``send``."""

    def __init__(
        self,
        send: Send,
        *,
        max_in_flight: int,
        lane_in_flight: int | None = None,
        max_ops: int = MAX_OPS,
        refuse: Callable[[tuple[Any, ...]], Exception | None] | None = None,
    ) -> None:
        self._send = send
        # An operation the server would refuse as a statement (its error would fail
        # every operation of its batch) is refused here when it would join a batch; one
        # sent alone gets the server's own refusal, without this look at each write.
        self._refuse = refuse
        self.max_in_flight = max_in_flight
        self.lane_in_flight = max_in_flight if lane_in_flight is None else lane_in_flight
        self.max_ops = max_ops
        self._pending: dict[Kind, dict[str | None, deque[Op]]] = {}
        self._in_flight = 0
        # Batches out holding operations of each namespace.
        self._lane_batches: dict[str | None, int] = {}
        self._scheduled = False
        self._batches: set[asyncio.Task[None]] = set()

    async def submit(self, kind: Kind, args: tuple[Any, ...]) -> asyncpg.Record:
        """Write one operation; return its result row (the batch function's row: the
        operation's own columns follow the three refusal columns). ``args`` start with
        the namespace and run id: the batch's lock order."""
        name = args[0]
        lanes = self._pending.setdefault(kind, {})
        lane = lanes.get(name)
        if not lane and name not in self._lane_batches and self._in_flight < self.max_in_flight:
            lanes.pop(name, None)
            return await self._alone(kind, args)
        if self._refuse is not None and (refused := self._refuse(args)) is not None:
            raise refused
        loop = asyncio.get_running_loop()
        future: asyncio.Future[asyncpg.Record] = loop.create_future()
        if lane is None:
            lane = lanes[name] = deque()
        lane.append((args, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    async def _alone(self, kind: Kind, args: tuple[Any, ...]) -> asyncpg.Record:
        """A quiet lane's operation leaves now, from its caller's own turn: under
        another tenant's load, each turn it waited would be a turn of that load; and
        it needs no batch task nor future (two turns of the loop less per write; W2
        makes four a run). Cancelled once sent, its write may stand or not, as any
        statement's."""
        names = {args[0]}
        self._count_in(names)
        self._in_flight += 1
        try:
            rows = await self._send(kind, [args])
        finally:
            self._done(names)
        if len(rows) != 1:
            raise RuntimeError(f"{len(rows)} rows came back for 1 operation")
        if rows[0][0] is not None:
            raise refusal(rows[0])
        return rows[0]

    def _flush(self) -> None:
        self._scheduled = False
        for kind, lanes in self._pending.items():
            while lanes and self._in_flight < self.max_in_flight:
                ops = take_in_turn(lanes, self.max_ops, self._eligible(lanes))
                if not ops:
                    break  # every lane waiting has its share of batches out
                self._start(kind, ops, {args[0] for args, _ in ops})

    def _start(self, kind: Kind, ops: list[Op], names: set[str | None]) -> None:
        self._count_in(names)
        self._in_flight += 1
        batch = asyncio.create_task(self._run(kind, ops, names))
        self._batches.add(batch)
        batch.add_done_callback(self._batches.discard)

    def _lane_open(self, name: str | None) -> bool:
        return self._lane_batches.get(name, 0) < self.lane_in_flight

    def _eligible(self, lanes: dict[str | None, deque[Op]]) -> Callable[[str | None], bool]:
        """Which lanes the next batch takes from: the open ones, but not the longest
        while others wait too. The longest goes in the batch after, on its own, so a
        quiet tenant's write does not ride in a flood's batch of sixty and wait for
        all of it."""
        open_lanes = [name for name in lanes if self._lane_open(name)]
        if len(open_lanes) < 2:
            return self._lane_open
        longest = max(open_lanes, key=lambda name: len(lanes[name]))
        return lambda name: name != longest and self._lane_open(name)

    async def _run(self, kind: Kind, ops: list[Op], names: set[str | None]) -> None:
        # An operation whose caller gave up before it was sent is not written.
        ops = sorted((op for op in ops if not op[1].done()), key=lambda op: op[0][:2])
        try:
            rows = await self._send(kind, [args for args, _ in ops]) if ops else []
        except Exception as exc:
            for _, future in ops:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for _, future in ops:
                future.cancel()
            raise
        finally:
            self._done(names)
        if len(rows) != len(ops):
            broken = RuntimeError(f"{len(rows)} rows came back for {len(ops)} operations")
            for _, future in ops:
                if not future.done():
                    future.set_exception(broken)
            return
        # The callers resume a few at a time, a turn of the loop each: sixty resumed in
        # one turn make a turn of tens of milliseconds, which every other task of the
        # process (another tenant's next step) waits out at each of its awaits.
        start = 0
        try:
            while start < len(ops):
                if start:
                    await asyncio.sleep(0)
                _resume(ops[start : start + RESUME_AT_ONCE], rows[start : start + RESUME_AT_ONCE])
                start += RESUME_AT_ONCE
        except asyncio.CancelledError:
            _resume(ops[start:], rows[start:])  # written: their callers get the rows
            raise

    def _count_in(self, names: set[str | None]) -> None:
        # A plain dict: Counter's update and subtract check their argument against
        # abstract base classes at every call, on every write's path.
        batches = self._lane_batches
        for name in names:
            batches[name] = batches.get(name, 0) + 1

    def _done(self, names: set[str | None]) -> None:
        """A batch came back: its place (and its lanes' places) go to the next one."""
        self._in_flight -= 1
        batches = self._lane_batches
        for name in names:
            left = batches[name] - 1
            if left > 0:
                batches[name] = left
            else:
                del batches[name]
        if any(self._pending.values()) and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def close(self) -> None:
        """Wait for the batches in flight (their operations are on the wire)."""
        if self._batches:
            await asyncio.wait(set(self._batches))
