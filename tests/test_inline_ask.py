"""An ask answered on the asker's task (the actor idle): same outcomes as through the mailbox.

The promise under test: cancelling the asker does not cancel a turn that has started, whether
the turn suspends inside cancel scopes of its own (``trio.sleep``) or outside any.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

import actors
import eventstore
from actors import _shield
from eventstore.memory import MemoryEventStore


@eventstore.event_type("test_inline_ask.Noted")
@attrs.frozen
class Noted:
    value: Any


@attrs.frozen
class Sleep:
    seconds: float


@attrs.frozen
class Wait:
    """Wait for ``Gated.gate``, outside any cancel scope of the handler's own."""


@attrs.define
class Gated(actors.Actor):
    """Notes each message; records which task ran each turn."""

    gate: trio.Event = attrs.field(factory=trio.Event)
    notes: list[Any] = attrs.Factory(list)
    tasks: list[trio.lowlevel.Task] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        self.notes.append(event.value)

    async def receive(self, message: Any) -> Any:
        self.tasks.append(trio.lowlevel.current_task())
        match message:
            case Sleep(seconds=s):
                await trio.sleep(s)  # suspends inside trio.sleep's own cancel scope
            case Wait():
                await self.gate.wait()  # suspends with no cancel scope of its own
            case "fail":
                self.emit(Noted("failed"))
                raise ValueError("refused")
        self.emit(Noted(message if isinstance(message, str) else type(message).__name__))
        return list(self.notes)


async def notes_in(store: eventstore.EventStore, stream: str) -> list[Any]:
    return [e.value async for r in store.read(stream)
            if isinstance(e := store.codec.decode(r), Noted)]


async def test_an_idle_actor_answers_on_the_askers_task() -> None:
    store = MemoryEventStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Gated, "g", store=store)
        await trio.testing.wait_all_tasks_blocked()
        assert await ref.ask("a") == ["a"]
        assert await ref.ask("b", timeout=5) == ["a", "b"]  # a deadline: through the mailbox
        nursery.cancel_scope.cancel()
    assert await notes_in(store, "Gated-g") == ["a", "b"]


async def test_the_inline_turn_runs_on_the_asker_and_a_timed_ask_does_not() -> None:
    store = MemoryEventStore()
    seen: list[trio.lowlevel.Task] = []

    @attrs.define
    class Who(actors.Actor):
        async def receive(self, message: Any) -> Any:
            seen.append(trio.lowlevel.current_task())

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Who, "w", store=store)
        await trio.testing.wait_all_tasks_blocked()
        me = trio.lowlevel.current_task()
        await ref.ask(1)
        await ref.ask(2, timeout=5)
        with trio.move_on_after(5):
            await ref.ask(3)  # under a deadline: through the mailbox
        nursery.cancel_scope.cancel()
    assert seen[0] is me
    assert seen[1] is not me and seen[2] is not me


@pytest.mark.parametrize("late", [True, False], ids=["late-shield", "shield-up-front"])
@pytest.mark.parametrize("message", [Sleep(1), Wait()], ids=["own-scope", "no-scope"])
async def test_cancelling_the_asker_does_not_cancel_a_started_inline_turn(
        autojump_clock: trio.testing.MockClock, message: Any, late: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_shield, "LATE_SHIELD", late)  # False: a trio whose internals differ
    store = MemoryEventStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Gated, "g", store=store)
        await trio.testing.wait_all_tasks_blocked()
        asker_task: list[trio.lowlevel.Task] = []
        returned: list[str] = []
        scope = trio.CancelScope()
        finished = trio.Event()

        async def asker() -> None:
            asker_task.append(trio.lowlevel.current_task())
            with scope:
                try:
                    await ref.ask(message)
                    returned.append("answered")
                except trio.Cancelled:
                    returned.append("cancelled")
                    raise
            finished.set()

        nursery.start_soon(asker)
        await trio.testing.wait_all_tasks_blocked()
        scope.cancel()  # the turn has started, on the asker's task
        await trio.testing.wait_all_tasks_blocked()
        actor = ref_actor(ref)
        assert actor.tasks == asker_task  # it did run inline
        assert not finished.is_set()  # the asker waits for the started turn
        actor.gate.set()
        await finished.wait()
        assert returned in (["answered"], ["cancelled"])
        name = type(message).__name__
        assert await ref.ask("after") == [name, "after"]  # the turn finished and committed
        nursery.cancel_scope.cancel()
    assert await notes_in(store, "Gated-g") == [name, "after"]


async def test_a_failing_inline_turn_raises_to_the_asker_and_leaves_no_trace() -> None:
    store = MemoryEventStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Gated, "g", store=store)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(ValueError, match="refused"):
            await ref.ask("fail")
        assert await ref.ask("ok") == ["ok"]
        nursery.cancel_scope.cancel()
    assert await notes_in(store, "Gated-g") == ["ok"]


async def test_messages_sent_during_a_suspended_inline_turn_run_after_it_in_order(
        autojump_clock: trio.testing.MockClock) -> None:
    store = MemoryEventStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Gated, "g", store=store)
        await trio.testing.wait_all_tasks_blocked()
        answers: dict[Any, Any] = {}

        async def ask(message: Any) -> None:
            answers[message] = await ref.ask(message)

        nursery.start_soon(ask, Sleep(1))
        await trio.testing.wait_all_tasks_blocked()
        ref.tell("told")
        nursery.start_soon(ask, "asked")
        await trio.testing.wait_all_tasks_blocked()
        assert answers == {}  # both wait for the turn on the first asker's task
        await trio.sleep(2)
        assert answers == {Sleep(1): ["Sleep"], "asked": ["Sleep", "told", "asked"]}
        nursery.cancel_scope.cancel()


async def test_stopping_the_actor_during_a_suspended_inline_turn_fails_the_ask(
        autojump_clock: trio.testing.MockClock) -> None:
    store = MemoryEventStore()
    errors: list[BaseException] = []
    async with trio.open_nursery() as outer, trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Gated, "g", store=store)
        await trio.testing.wait_all_tasks_blocked()

        async def ask() -> None:
            try:
                await ref.ask(Wait())
            except actors.ActorStopped as exc:
                errors.append(exc)

        outer.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()  # the actor's nursery goes away mid-turn
    assert len(errors) == 1
    assert await notes_in(store, "Gated-g") == []


async def test_a_loop_of_inline_asks_lets_other_tasks_run() -> None:
    store = MemoryEventStore()
    ticks = 0

    @attrs.define
    class Echo(actors.Actor):
        async def receive(self, message: Any) -> Any:
            return message

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Echo, "e", store=store)
        await trio.testing.wait_all_tasks_blocked()  # the actor is idle: the asks run inline
        nursery.start_soon(ticker)
        before = ticks
        for i in range(1000):
            assert await ref.ask(i) == i
        assert ticks > before
        nursery.cancel_scope.cancel()


async def test_the_late_shield_is_available_on_this_trio() -> None:
    assert _shield.LATE_SHIELD  # else every inline ask pays a cancel scope up front


@pytest.mark.parametrize("scopes", [
    (), ("deadline",), ("plain",), ("shield",), ("deadline", "shield"), ("shield", "deadline"),
    ("deadline", "plain", "plain"), ("plain", "cancelled"), ("cancelled", "shield"),
    ("deadline-passed",), ("shield", "plain", "shield")])
async def test_no_deadline_agrees_with_trio(scopes: tuple[str, ...]) -> None:
    """The inline ask's own reading of the cancel statuses gives trio's answer, outermost
    scope first, whatever the nesting."""
    async def check(rest: tuple[str, ...]) -> None:
        assert _shield.no_deadline() == (trio.current_effective_deadline() == float("inf"))
        if not rest:
            return
        kind, now = rest[0], trio.current_time()
        with trio.CancelScope(shield=kind == "shield",
                              deadline={"deadline": now + 60, "deadline-passed": now - 1}.get(
                                  kind, float("inf"))) as scope:
            if kind == "cancelled":
                scope.cancel()
            await check(rest[1:])

    await check(scopes)


def ref_actor(ref: actors.ActorRef) -> Any:
    return ref._current().actor  # type: ignore[union-attr]


async def test_an_inline_ask_cancelled_with_its_actor_is_cancelled_not_stopped() -> None:
    # The asker and the actor share a nursery; cancelling it stops the actor mid-turn, and the
    # asker's ask ends with the cancellation (the nursery exits cleanly), not ActorStopped.
    from eventstore.memory import MemoryEventStore

    started = trio.Event()

    @attrs.define
    class Slow(actors.Actor):
        async def receive(self, message: Any) -> Any:
            started.set()
            await trio.sleep_forever()

    outcome: list[str] = []
    async with trio.open_nursery() as nursery:  # no deadline: the ask runs inline
        ref = await actors.spawn(nursery, Slow, "s", store=MemoryEventStore())

        async def ask() -> None:
            assert ref._resolve().can_inline()
            try:
                await ref.ask("x")
            except trio.Cancelled:
                outcome.append("cancelled")
                raise

        nursery.start_soon(ask)
        await started.wait()
        nursery.cancel_scope.cancel()
    assert outcome == ["cancelled"]
