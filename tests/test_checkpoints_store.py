"""trio hygiene of every store: each public async call is a checkpoint on every path, and a read
that is abandoned (left early or cancelled) leaves no task behind in trio."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
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


CALLS: dict[str, Callable[[EventStore], Awaitable[Any]]] = {
    "append": lambda store: store.append("t", events(1)),
    "append to a new stream": lambda store: store.append("new", events(2)),
    "read, first item": lambda store: first(store.read("s")),
    "read of a missing stream": lambda store: first(store.read("missing")),
    "read past the end": lambda store: first(store.read("s", from_version=9)),
    "read with limit 0": lambda store: first(store.read("s", limit=0)),
    "read of an empty range": lambda store: first(store.read("s", from_version=3,
                                                             to_version=2)),
    "read_all, first item": lambda store: first(store.read_all()),
    "read_all of a missing type": lambda store: first(store.read_all(types=["Nothing"])),
    "read_all with limit 0": lambda store: first(store.read_all(limit=0)),
    "read_all past the end": lambda store: first(store.read_all(after_position=99)),
    "subscribe, first item": lambda store: first(store.subscribe()),
    "last_version": lambda store: store.last_version("s"),
    "last_version of a missing stream": lambda store: store.last_version("missing"),
    "delete_up_to": lambda store: store.delete_up_to("s", 1),
    "delete_up_to of a missing stream": lambda store: store.delete_up_to("missing", 1),
    "save_snapshot": lambda store: store.save_snapshot("s", 4, {"n": 4}),
    "load_snapshot, found": lambda store: store.load_snapshot("s"),
    "load_snapshot, missing": lambda store: store.load_snapshot("missing"),
    "save_offset": lambda store: store.save_offset("p", 3, expected=0),
    "load_offset of a missing consumer": lambda store: store.load_offset("missing"),
    "offsets": lambda store: store.offsets(),
    "head_position": lambda store: store.head_position(),
    "__aenter__": lambda store: store.__aenter__(),
    "aclose": lambda store: store.aclose(),
}


@pytest.mark.parametrize("call", CALLS)
async def test_every_public_async_call_is_a_checkpoint(any_store: EventStore, call: str) -> None:
    await filled(any_store)
    with trio.testing.assert_checkpoints():
        await CALLS[call](any_store)


async def test_aclose_of_a_closed_store_is_a_checkpoint(any_store: EventStore) -> None:
    await any_store.aclose()
    with trio.testing.assert_checkpoints():
        await any_store.aclose()


async def test_a_page_read_ahead_is_a_checkpoint(any_store: EventStore) -> None:
    await filled(any_store)
    async with contextlib.aclosing(any_store.read("s")) as stream:
        for _ in range(2):  # the first page
            await stream.__anext__()
        with trio.testing.assert_checkpoints():
            await stream.__anext__()  # the second page


async def test_a_cancelled_aclose_still_closes(any_store: EventStore) -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        await any_store.aclose()
    assert scope.cancelled_caught
    assert any_store.closed


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
