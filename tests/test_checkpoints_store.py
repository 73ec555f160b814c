"""trio hygiene of every store: a read that is abandoned (left early or cancelled) leaves no task
behind in trio."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import Any

import pytest
import trio
import trio.testing

from eventstore import EventStore, NewEvent


def events(count: int) -> list[NewEvent]:
    return [NewEvent("E", {"n": n}) for n in range(count)]


async def first(iterator: AsyncGenerator[Any, None]) -> Any:
    """The first item of ``iterator`` (None if there is none), closing it."""
    async with contextlib.aclosing(iterator) as items:
        async for item in items:
            return item
    return None


async def filled(store: EventStore) -> EventStore:
    store.page_size = 2
    await store.append("s", events(5))
    await store.save_snapshot("s", 3, {"n": 3})
    return store


# -- reads that are abandoned ----------------------------------------------------------------------

def system_tasks() -> set[trio.lowlevel.Task]:
    root = trio.lowlevel.current_root_task()
    assert root is not None
    return {task for nursery in root.child_nurseries for task in nursery.child_tasks}


READS: dict[str, Callable[[EventStore], AsyncGenerator[Any, None]]] = {
    "read": lambda store: store.read("s"),
    "read_all": lambda store: store.read_all(),
    "subscribe": lambda store: store.subscribe(),
}


@pytest.mark.parametrize("read", READS)
async def test_a_reader_that_stops_early_leaves_no_task(any_store: EventStore,
                                                        read: str) -> None:
    await filled(any_store)
    before = system_tasks()
    async with contextlib.aclosing(READS[read](any_store)) as stream:
        async for event in stream:
            if event.version == 2:  # mid-log: the next page may be on its way
                break
    assert system_tasks() == before
    assert [e.version async for e in any_store.read("s")] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("read", READS)
async def test_a_reader_cancelled_mid_page_leaves_no_task(any_store: EventStore,
                                                          read: str) -> None:
    await filled(any_store)
    before = system_tasks()
    seen = []
    with trio.CancelScope() as scope:
        async with contextlib.aclosing(READS[read](any_store)) as stream:
            async for event in stream:
                seen.append(event.version)
                if len(seen) == 2:
                    scope.cancel()  # the next page's checkpoint raises Cancelled
    assert scope.cancelled_caught and seen == [1, 2]
    assert system_tasks() == before
    assert [e.version async for e in any_store.read("s")] == [1, 2, 3, 4, 5]
