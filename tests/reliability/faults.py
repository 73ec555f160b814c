"""``FaultyStore``: an ``EventStore`` that delegates to a real store and injects faults.

A fault is armed per operation (``append``, ``read``, ``read_all``, ``last_version``,
``delete_up_to``, ``save_snapshot``, ``load_snapshot``) and hits the next calls of it: it raises
an error before the real store is called (nothing happens), raises after the real store did the
work (an ambiguous commit: written, but the caller sees an error), or hangs the call until
released. The wrapper validates arguments like any store, then calls the inner store's
primitives, so the inner store behaves exactly as it would on its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs
import trio

import actors
from eventstore import (
    AppendResult,
    EventStore,
    EventStoreError,
    Expected,
    RecordedEvent,
    WorkEntry,
)
from eventstore._validate import EncodedEvent
from eventstore._work import Side

OPERATIONS = frozenset({"append", "read", "read_all", "last_version", "delete_up_to",
                        "save_snapshot", "load_snapshot"})


def injected(operation: str) -> Callable[[], Exception]:
    """The default error of a fault: an ``EventStoreError`` naming the operation."""
    return lambda: EventStoreError(f"injected fault in {operation}")


@attrs.define(eq=False)
class Fault:
    """One armed fault: what it does and how many more calls it hits (None: until cleared)."""

    operation: str
    error: Callable[[], Exception] | None
    after: bool
    hang: bool
    times: int | None
    hits: int = 0
    entered: trio.Event = attrs.Factory(trio.Event)
    """Set when a call first meets the fault (for a hang: the call is now waiting)."""
    released: trio.Event = attrs.Factory(trio.Event)

    def release(self) -> None:
        """Let hanging calls go on (then raise ``error``, if any, or do the real work)."""
        self.released.set()

    @property
    def spent(self) -> bool:
        return self.times is not None and self.hits >= self.times


class FaultyStore(EventStore):
    """Wraps ``inner``; ``inject(operation, ...)`` arms a fault, ``clear()`` disarms them all.

    Closing the wrapper closes the inner store unless ``own_inner`` is False.
    """

    def __init__(self, inner: EventStore, *, own_inner: bool = True) -> None:
        super().__init__(codec=inner.codec, page_size=inner.page_size,
                         poll_interval=inner.poll_interval)
        self.inner = inner
        self.own_inner = own_inner
        self.calls: Counter[str] = Counter()
        self._faults: dict[str, Fault] = {}

    def inject(self, operation: str, *, error: Callable[[], Exception] | None = None,
               after: bool = False, hang: bool = False, times: int | None = 1) -> Fault:
        """Arm a fault on ``operation``; without ``error`` and ``hang`` it raises the default."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; one of {sorted(OPERATIONS)}")
        if error is None and not hang:
            error = injected(operation)
        fault = Fault(operation, error, after, hang, times)
        self._faults[operation] = fault
        return fault

    def clear(self) -> None:
        """Disarm every fault and release every hanging call."""
        for fault in self._faults.values():
            fault.release()
        self._faults.clear()

    async def _before(self, operation: str) -> Fault | None:
        """Meet the armed fault, if any: hang, raise, or return it to raise after the work."""
        self.calls[operation] += 1
        fault = self._faults.get(operation)
        if fault is None or fault.spent:
            return None
        fault.hits += 1
        fault.entered.set()
        if fault.hang:
            await fault.released.wait()
        if fault.error is not None and not fault.after:
            raise fault.error()
        return fault

    @staticmethod
    def _after(fault: Fault | None) -> None:
        if fault is not None and fault.after and fault.error is not None:
            raise fault.error()

    async def _append(self, stream: str, events: list[EncodedEvent], expected: Expected,
                      side: Side) -> AppendResult:
        fault = await self._before("append")
        result = await self.inner._append(stream, events, expected, side)
        self._notify_appended()
        self._after(fault)
        return result

    async def _read_inbox_page(self, stream: str, after: int,
                               size: int) -> list[RecordedEvent]:
        fault = await self._before("read_inbox")
        page = await self.inner._read_inbox_page(stream, after, size)
        self._after(fault)
        return page

    async def _set_wake(self, stream: str, wake_at: float | None) -> None:
        fault = await self._before("set_wake")
        await self.inner._set_wake(stream, wake_at)
        self._after(fault)

    async def _work(self) -> list[WorkEntry]:
        fault = await self._before("work")
        entries = await self.inner._work()
        self._after(fault)
        return entries

    async def _read_page(self, stream: str, first: int, last: int | None,
                         size: int) -> list[RecordedEvent]:
        fault = await self._before("read")
        page = await self.inner._read_page(stream, first, last, size)
        self._after(fault)
        return page

    async def _read_all_page(self, after: int, size: int,
                             types: frozenset[str] | None) -> list[RecordedEvent]:
        fault = await self._before("read_all")
        page = await self.inner._read_all_page(after, size, types)
        self._after(fault)
        return page

    async def _last_version(self, stream: str) -> int:
        fault = await self._before("last_version")
        version = await self.inner._last_version(stream)
        self._after(fault)
        return version

    async def _delete_up_to(self, stream: str, version: int) -> None:
        fault = await self._before("delete_up_to")
        await self.inner._delete_up_to(stream, version)
        self._after(fault)

    async def _save_snapshot(self, stream: str, version: int, state: str) -> None:
        fault = await self._before("save_snapshot")
        await self.inner._save_snapshot(stream, version, state)
        self._after(fault)

    async def _load_snapshot(self, stream: str,
                             max_version: int | None) -> tuple[int, str, datetime] | None:
        fault = await self._before("load_snapshot")
        row = await self.inner._load_snapshot(stream, max_version)
        self._after(fault)
        return row

    async def _aclose(self) -> None:
        self.clear()
        if self.own_inner:
            await self.inner.aclose()


async def recovered(inner: EventStore, cls: type[actors.Actor], actor_id: str,
                    question: Any = "state") -> Any:
    """Spawn a fresh ``cls(actor_id)`` on the log in ``inner`` and ask it ``question``.

    A separate wrapper around the same store, so the actor under test may still be running:
    this is what a restart would recover, with no fault armed.
    """
    failure: Exception | None = None
    async with trio.open_nursery() as nursery:
        try:
            ref = await actors.spawn(nursery, cls, actor_id,
                                     store=FaultyStore(inner, own_inner=False))
            answer = await ref.ask(question)
        except Exception as exc:  # raised below, outside the nursery's exception group
            failure = exc
        else:
            await ref.stop()
    if failure is not None:
        raise failure
    return answer


async def stream_log(store: EventStore, stream: str) -> list[RecordedEvent]:
    """Every event of ``stream``, checked: versions 1, 2, ... without a gap or a repeat."""
    events = [event async for event in store.read(stream)]
    assert [event.version for event in events] == list(range(1, len(events) + 1)), stream
    assert len({event.id for event in events}) == len(events), stream
    return events
