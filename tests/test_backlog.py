"""A drained backlog commits once: queued message turns share one append.

The turns of a backlog run one after another; their events wait for one commit, and their
replies are released together after it. A failing turn drops only its own events; a failing
commit fails every turn it held, and writes nothing.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

import actors
import eventstore
from actors._mailbox import Reply
from eventstore.memory import MemoryEventStore


@eventstore.event_type("tests.backlog.Added")
@attrs.frozen
class Added:
    n: int


@attrs.define
class Sum(actors.Actor):
    kind = "Sum"
    total: int = 0

    def apply(self, event: Any) -> None:
        self.total += event.n

    async def receive(self, message: Any) -> Any:
        if message == "boom":
            self.emit(Added(1000))
            raise RuntimeError("boom")
        if message:
            self.emit(Added(message))
        return self.total


class CountingStore(MemoryEventStore):
    """Counts appends; fails the next ones while ``failing`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.appends: list[int] = []
        self.failing = False

    async def _append(self, stream: str, events: Any, expected: Any,
                      side: Any) -> eventstore.AppendResult:
        if self.failing:
            await trio.lowlevel.checkpoint()
            raise eventstore.EventStoreError("the disk is gone")
        self.appends.append(len(events))
        return await super()._append(stream, events, expected, side)


async def values(store: eventstore.EventStore) -> list[int]:
    return [store.codec.decode(r).n async for r in store.read("Sum-s")]


async def test_a_backlog_shares_one_commit_and_answers_after_it() -> None:
    store = CountingStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Sum, "s", store=store)
        for n in range(1, 11):
            ref.tell(n)
        assert await ref.ask(100) == 155  # queued behind the tells before the actor ran
        nursery.cancel_scope.cancel()
    assert store.appends == [11]  # ten tells and the ask: one append
    assert await values(store) == [*range(1, 11), 100]


async def test_a_failing_turn_in_a_backlog_drops_only_its_own_events() -> None:
    store = CountingStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Sum, "s", store=store)
        for message in (1, 2, "boom", 3):
            ref.tell(message)
        assert await ref.ask(0) == 6  # queued behind them: one backlog
        nursery.cancel_scope.cancel()
    assert await values(store) == [1, 2, 3]
    assert store.appends == [3]


async def test_a_failing_commit_fails_every_turn_it_held_and_writes_nothing() -> None:
    store = CountingStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Sum, "s", store=store)
        await ref.ask(5)
        store.failing = True
        results: list[Any] = []

        async def ask(n: int) -> None:
            try:
                results.append(await ref.ask(n))
            except eventstore.EventStoreError as exc:
                results.append(exc)

        async with trio.open_nursery() as askers:
            for n in (1, 2, 3):
                askers.start_soon(ask, n)
        assert len(results) == 3
        assert all(isinstance(r, eventstore.EventStoreError) for r in results)
        store.failing = False
        assert await ref.ask(0) == 5  # the state was rebuilt without the held turns' events
        nursery.cancel_scope.cancel()
    assert await values(store) == [5]


async def test_a_crash_before_the_backlogs_commit_answers_nobody() -> None:
    store = MemoryEventStore()
    async with actors.testing.ActorTestKit(store=store) as kit:
        ref = await kit.spawn(Sum, "s")
        answered: list[int] = []
        failed: list[BaseException] = []

        async def ask(n: int) -> None:
            try:
                answered.append(await ref.ask(n))
            except actors.ActorStopped as exc:
                failed.append(exc)

        async with trio.open_nursery() as askers:
            for n in (1, 2, 3):
                ref.tell(n)
            askers.start_soon(ask, 4)
            await kit.crash(ref)
        # Whatever was answered is in the log; what was not answered may or may not be.
        logged = await values(store)
        assert set(answered) <= {sum(logged[:k]) for k in range(len(logged) + 1)}
        assert len(answered) + len(failed) == 1


@pytest.mark.parametrize("n", [1, 63, 64, 65, 200])
async def test_backlogs_of_any_length_commit_everything_once(n: int) -> None:
    store = CountingStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Sum, "s", store=store)
        for k in range(1, n + 1):
            ref.tell(k)
        assert await ref.ask(0) == n * (n + 1) // 2
        nursery.cancel_scope.cancel()
    assert await values(store) == list(range(1, n + 1))
    assert len(store.appends) <= n // 64 + 2


async def test_a_mixed_backlog_runs_in_order_and_stops_where_the_stop_was_queued() -> None:
    # Plain messages run back to back in the loop; one with an id, an ask or a stop among them
    # goes the general way, in its place.
    store = CountingStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Sum, "s", store=store)
        cell = ref._resolve()
        asked = Reply()
        for k in range(1, 70):
            ref.tell(k, message_id=f"m{k}" if k % 10 == 0 else None)
            if k == 65:
                cell.tell(1000, None, asked)  # an ask, queued in its place
        ref.tell("boom")
        ref.tell(7)
        await ref.stop()
        with pytest.raises(actors.ActorStopped):
            await ref.ask(5)
    added = [store.codec.decode(r) async for r in store.read("Sum-s")]
    assert [e.n for e in added if isinstance(e, Added)] == [*range(1, 66), 1000, *range(66, 70), 7]
    assert asked.value == sum(range(1, 66)) + 1000
