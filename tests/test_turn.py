"""Turns of plain messages served back to back (``Cell._serve_plain``, one context-variable
reset per backlog): each message still behaves as a turn of its own.

Every test queues a backlog of tells before the actor runs, so the lean path serves them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import pytest
import trio
import trio.testing

import actors
import eventstore
from actors import durable
from actors._events import TimeObserved
from actors._turn import ONCE, current_turn
from eventstore.memory import MemoryEventStore


@eventstore.event_type("tests.turn.Added")
@attrs.frozen
class Added:
    n: int


@attrs.define
class Worker(actors.Actor):
    """What each message asks for: a task in the nursery it carries, a task of its own, a
    durable call in a task of its own, or a reading of its turn."""

    kind = "TurnWorker"
    seen: ClassVar[list[Any]] = []
    total: int = 0

    def apply(self, event: Added) -> None:
        self.total += event.n

    async def receive(self, message: Any) -> Any:
        if isinstance(message, trio.Nursery):  # a task that outlives this turn
            message.start_soon(self._late)
        elif isinstance(message, tuple):  # one that reads durable time after the turn
            message[0].start_soon(self._late_time)
        elif message == "child":  # a task that ends within the turn
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.lowlevel.checkpoint)
        elif message == "timed child":
            async with trio.open_nursery() as nursery:
                nursery.start_soon(durable.time.aio)
        elif message == "keep":
            Worker.seen.append(current_turn.get())
        elif message == "scope":
            turn = current_turn.get()
            assert turn is not None
            Worker.seen.append((turn.scope, turn.calls, turn.children, turn.finished))
        elif isinstance(message, int):
            self.emit(Added(message))
        return self.total

    async def _late_time(self) -> None:
        await trio.sleep(1)
        try:
            await durable.time.aio()
        except actors.NotInTurn as exc:
            Worker.seen.append(exc)

    async def _late(self) -> None:
        await trio.sleep(1)
        try:
            self.emit(Added(100))
        except actors.NotInTurn as exc:
            Worker.seen.append(exc)


@pytest.fixture(autouse=True)
def _fresh() -> None:
    Worker.seen = []


async def _run(messages: list[Any], store: MemoryEventStore | None = None) -> list[Any]:
    store = store or MemoryEventStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Worker, "w", store=store)
        for message in messages:
            if message == "late time":
                message = (nursery,)
            ref.tell(nursery if message is None else message)
        await ref.ask("scope")
        await trio.sleep(2)  # the late tasks try to emit
        nursery.cancel_scope.cancel()
    return [store.codec.decode(r) async for r in store.read(ref.stream)]


async def test_a_task_that_outlives_a_plain_turn_cannot_emit_into_it(
        autojump_clock: trio.testing.MockClock) -> None:
    # Each told turn starts a task that emits after the turn ended: refused every time, while
    # the turns after it run as usual.
    log = await _run([None, "scope", None, 1, "late time", 2])
    refused = [s for s in Worker.seen if isinstance(s, actors.NotInTurn)]
    assert len(refused) == 3
    assert [e for e in log if isinstance(e, Added)] == [Added(1), Added(2)]
    assert not [e for e in log if isinstance(e, TimeObserved)]


async def test_a_kept_turn_is_finished_under_its_keeper() -> None:
    # A handler that keeps its turn (a caller holding it) finds it finished, never reused.
    await _run(["keep", "scope", "keep", "scope"])
    kept = [s for s in Worker.seen if not isinstance(s, tuple)]
    assert len(kept) == 2 and kept[0] is not kept[1]
    assert all(turn.finished for turn in kept)


async def test_each_turn_of_a_backlog_starts_counting_afresh(
        autojump_clock: trio.testing.MockClock) -> None:
    # The next turn's first task is branch (1,) again, its scope and counts as new.
    log = await _run(["child", "scope", "child", "timed child", "child", "timed child"])
    timed = [e for e in log if isinstance(e, TimeObserved)]
    assert [(e.scope, e.index, e.branch) for e in timed] == [("once", 1, (1,))] * 2
    assert [s for s in Worker.seen if isinstance(s, tuple)] == [(ONCE, 0, 0, False)] * 2
