"""Red-team tests of durable messages (``send``, the inbox, sends inside a turn, dead letters).

Each test is a real scenario that injects its fault for real (a store fault, a stop, a restart,
a resend) and checks a promise of ``docs/messaging.md`` from the outside: the log, the inbox,
the work index, the replies, the state after recovery. The eight defects they found first are
fixed; each test now guards its promise.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
import trio
import trio.testing
from reliability.faults import FaultyStore

import actors
import eventstore
from actors import DeadLettered, MessageSent, Received
from actors._inbox import encode_message
from eventstore import AppendOutcomeUnknown, AppendResult, EventStore, Expected
from eventstore._validate import EncodedEvent
from eventstore._work import Side
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore


@eventstore.event_type("tests.redteam_send.Did")
@attrs.frozen
class Did:
    sender: str
    n: int


@eventstore.event_type("tests.redteam_send.Do")
@attrs.frozen
class Do:
    sender: str
    n: int
    fail: int = 0  # how many deliveries of it fail before one succeeds


@attrs.define
class Counter(actors.Actor):
    """Emits ``Did`` for each ``Do``; counts each handler run (effects and runs are checked)."""

    kind = "RtCounter"
    max_deliveries: ClassVar[int] = 3
    supervision = actors.Restart(initial_backoff=0.05, max_backoff=0.05)
    runs: ClassVar[list[Any]] = []
    failures: ClassVar[dict[tuple[str, int], int]] = {}
    seen: list[tuple[str, int]] = attrs.Factory(list)

    def apply(self, event: Did) -> None:
        self.seen.append((event.sender, event.n))

    async def receive(self, message: Any) -> Any:
        Counter.runs.append(message)
        if isinstance(message, Do):
            key = (message.sender, message.n)
            failed = Counter.failures.get(key, 0)
            if failed < message.fail:
                Counter.failures[key] = failed + 1
                raise RuntimeError(f"failing {key} ({failed + 1} of {message.fail})")
            self.emit(Did(message.sender, message.n))
        return list(self.seen)


@pytest.fixture(autouse=True)
def fresh() -> None:
    Counter.runs = []
    Counter.failures = {}
    Stepper.steps = 0
    Pinger.runs = 0


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    """The memory store and SQLite, each empty."""
    if request.param == "memory":
        async with MemoryEventStore() as memory:
            yield memory
    else:
        async with SQLiteEventStore(tmp_path / "events.db") as sqlite:
            yield sqlite


class CommitFaults(FaultyStore):
    """A ``FaultyStore`` whose ``append`` faults hit commits only, never an ``enqueue`` (a
    ``send`` from outside a turn), so a fault armed before a ``send`` hits the turn it causes."""

    async def _append(self, stream: str, events: list[EncodedEvent], expected: Expected,
                      side: Side) -> AppendResult:
        if not events:
            return await self.inner._append(stream, events, expected, side)
        return await super()._append(stream, events, expected, side)


@pytest.fixture
async def memory() -> AsyncIterator[EventStore]:
    """The memory store alone: for tests on trio's autojump clock (SQLite's worker threads
    would let the clock jump past a wait's deadline)."""
    async with MemoryEventStore() as memory:
        yield memory


async def log_of(store: EventStore, stream: str) -> list[Any]:
    return [store.codec.decode(r) async for r in store.read(stream)]


async def did(store: EventStore, stream: str) -> list[tuple[str, int]]:
    return [(e.sender, e.n) for e in await log_of(store, stream) if isinstance(e, Did)]


async def inbox_of(store: EventStore, stream: str) -> list[Any]:
    return [r async for r in store.read_inbox(stream)]


async def enqueue(store: EventStore, stream: str, *messages: Any,
                  message_id: str | None = None) -> None:
    """Store messages in ``stream``'s inbox directly, as a ``send`` before a crash would."""
    await store.enqueue(stream, [encode_message(store.codec, stream, m, message_id, None)
                                 for m in messages])


async def until(predicate: Any, *, timeout: float = 10.0, step: float = 0.01) -> None:
    with trio.fail_after(timeout):
        while not await predicate():
            await trio.sleep(step)


# -- exactly-once effects across failures ---------------------------------------------------------


async def test_a_consuming_commit_that_fails_once_is_retried_and_runs_once(
        store: EventStore) -> None:
    await enqueue(store, "RtCounter-c", Do("a", 1))
    faulty = FaultyStore(store, own_inner=False)
    faulty.inject("append", times=1)  # the turn's commit fails: nothing of it is written
    async with actors.ActorSystem(faulty, actors=[Counter]) as system:
        await until(lambda: did_done(store, 1))
        await system.ref(Counter, "c").send(Do("a", 2))
        await until(lambda: did_done(store, 2))
    assert await did(store, "RtCounter-c") == [("a", 1), ("a", 2)]
    assert Counter.runs.count(Do("a", 1)) == 2  # run again: the failed commit wrote nothing
    assert await inbox_of(store, "RtCounter-c") == [] and await store.work() == []


async def did_done(store: EventStore, n: int) -> bool:
    return len(await did(store, "RtCounter-c")) >= n


async def test_a_backlog_whose_commit_fails_twice_keeps_order_and_runs_each_message_once(
        store: EventStore) -> None:
    await enqueue(store, "RtCounter-c", *(Do("a", n) for n in range(3)))  # one backlog
    faulty = FaultyStore(store, own_inner=False)
    faulty.inject("append", times=2)
    async with actors.ActorSystem(faulty, actors=[Counter]) as system:
        await until(lambda: inbox_empty(store))
        await system.ref(Counter, "c").ask("sync")
    assert await did(store, "RtCounter-c") == [("a", 0), ("a", 1), ("a", 2)]
    received = [e.seq for e in await log_of(store, "RtCounter-c") if isinstance(e, Received)]
    assert received == sorted(set(received))  # each message received once, in order


async def inbox_empty(store: EventStore) -> bool:
    return await inbox_of(store, "RtCounter-c") == []


async def test_an_unknown_commit_outcome_that_was_stored_is_not_run_again(
        store: EventStore) -> None:
    faulty = CommitFaults(store, own_inner=False)
    async with actors.ActorSystem(faulty, actors=[Counter]) as system:
        ref = system.ref(Counter, "c")
        await ref.ask("warm")
        faulty.inject("append", after=True, error=lambda: AppendOutcomeUnknown(
            "RtCounter-c", 2, "injected: the connection dropped after the commit"))
        await ref.send(Do("a", 1))
        await until(lambda: did_done(store, 1))
        await trio.sleep(0.1)
        # The actor stopped rather than guess; the next message activates it from the log.
        assert await ref.ask("state") == [("a", 1)]
    assert await did(store, "RtCounter-c") == [("a", 1)]
    assert Counter.runs.count(Do("a", 1)) == 1
    assert await inbox_of(store, "RtCounter-c") == [] and await store.work() == []


async def test_an_unknown_commit_outcome_that_was_not_stored_runs_at_the_next_start(
        store: EventStore) -> None:
    faulty = CommitFaults(store, own_inner=False)
    async with actors.ActorSystem(faulty, actors=[Counter]) as system:
        ref = system.ref(Counter, "c")
        await ref.ask("warm")
        faulty.inject("append", error=lambda: AppendOutcomeUnknown(
            "RtCounter-c", 2, "injected: the connection dropped before the commit"))
        await ref.send(Do("a", 1))
        await until(lambda: _is(Do("a", 1) in Counter.runs))
        await trio.sleep(0.1)
    assert await did(store, "RtCounter-c") == []
    assert [e.stream for e in await store.work()] == ["RtCounter-c"]  # it still waits
    async with actors.ActorSystem(store, actors=[Counter]):
        await until(lambda: did_done(store, 1))
    assert await did(store, "RtCounter-c") == [("a", 1)]
    assert await store.work() == []


async def _is(value: bool) -> bool:
    return value


@attrs.define
class Stepper(actors.Actor):
    """A message turn with a recorded step and a durable sleep (two mid-turn commit points)."""

    kind = "RtStepper"
    steps: ClassVar[int] = 0
    done: list[str] = attrs.Factory(list)

    def apply(self, event: Did) -> None:
        self.done.append(f"{event.sender}{event.n}")

    async def receive(self, message: Any) -> Any:
        if message == "go":
            self.emit(Did("before", 0))
            await actors.durable.step.aio(self._external)
            await actors.durable.sleep.aio(3600)
            self.emit(Did("after", 0))
            await self.ref(Counter, "c").send(Do("stepper", 1))
        return self.done

    async def _external(self) -> int:
        Stepper.steps += 1
        return Stepper.steps


@pytest.mark.parametrize("message_id", [None, "go-1"])
async def test_a_turn_cut_at_a_durable_sleep_resumes_once_with_its_step_and_send_once(
        memory: EventStore, autojump_clock: trio.testing.MockClock,
        message_id: str | None) -> None:
    store = memory
    clock = actors.VirtualClock()
    async with actors.ActorSystem(store, actors=[Stepper, Counter], clock=clock) as system:
        await system.ref(Stepper, "s").send("go", message_id=message_id)
        await trio.sleep(60)  # asleep: the step's result and "before" are committed
    assert len(await inbox_of(store, "RtStepper-s")) == 1
    for _ in range(2):  # a stop mid-sleep twice: each resumes, none re-runs the step
        async with actors.ActorSystem(store, actors=[Stepper, Counter], clock=clock):
            await trio.sleep(60)
    async with actors.ActorSystem(store, actors=[Stepper, Counter], clock=clock) as system:
        await trio.sleep(2 * 3600)
        assert await system.ref(Stepper, "s").ask("state") == ["before0", "after0"]
        await until(lambda: did_done(store, 1))
    assert Stepper.steps == 1
    log = await log_of(store, "RtStepper-s")
    assert [type(e).__name__ for e in log].count("Received") == 1
    assert [e for e in log if isinstance(e, MessageSent)].__len__() == 1
    assert await did(store, "RtCounter-c") == [("stepper", 1)]
    assert await inbox_of(store, "RtStepper-s") == [] and await store.work() == []


# -- order ---------------------------------------------------------------------------------------


async def test_a_failing_message_retried_with_backoff_is_not_overtaken(
        store: EventStore) -> None:
    async with actors.ActorSystem(store, actors=[Counter]) as system:
        ref = system.ref(Counter, "c")
        await ref.send(Do("a", 1, fail=2))  # fails twice, then succeeds (max_deliveries 3)
        for n in range(2, 6):
            await ref.send(Do("a", n))
        other = system.ref(Counter, "c")
        await other.send(Do("b", 1))
        await until(lambda: did_done(store, 6))
    assert [n for s, n in await did(store, "RtCounter-c") if s == "a"] == [1, 2, 3, 4, 5]
    assert await inbox_of(store, "RtCounter-c") == []


async def test_order_holds_across_a_restart_during_a_retry_backoff(
        store: EventStore) -> None:
    slow = actors.Restart(initial_backoff=30.0, max_backoff=30.0)
    async with actors.ActorSystem(store, actors=[Counter]) as system:
        Counter.supervision = slow
        try:
            ref = system.ref(Counter, "c")
            await ref.send(Do("a", 1, fail=1))
            await ref.send(Do("a", 2))
            await until(lambda: _is(len(Counter.runs) >= 1))
            await trio.sleep(0.05)  # in its 30 s backoff: stopped now
        finally:
            Counter.supervision = actors.Restart(initial_backoff=0.05, max_backoff=0.05)
    assert await did(store, "RtCounter-c") == []
    assert len(await inbox_of(store, "RtCounter-c")) == 2
    async with actors.ActorSystem(store, actors=[Counter]):  # re-activated by the work index
        await until(lambda: did_done(store, 2))
    assert await did(store, "RtCounter-c") == [("a", 1), ("a", 2)]
    assert await store.work() == []


@attrs.define
class Napper(actors.Actor):
    """Its first message sleeps durably mid-turn (a commit point); later ones just emit."""

    kind = "RtNapper"
    done: list[str] = attrs.Factory(list)

    def apply(self, event: Did) -> None:
        self.done.append(f"{event.sender}{event.n}")

    async def receive(self, message: Any) -> Any:
        if message == "nap":
            self.emit(Did("nap-before", 1))
            await actors.durable.sleep.aio(3600)
            self.emit(Did("nap-after", 1))
        elif isinstance(message, Do):
            self.emit(Did(message.sender, message.n))
        return list(self.done)


async def test_a_turn_cut_by_a_stop_is_not_overtaken_by_the_next_message(
        memory: EventStore, autojump_clock: trio.testing.MockClock) -> None:
    store = memory
    clock = actors.VirtualClock()
    await enqueue(store, "RtNapper-n", "nap", Do("next", 2))  # one sender, in this order
    async with actors.ActorSystem(store, actors=[Napper], clock=clock):
        await trio.sleep(60)  # message 1 sleeps durably; the system stops
    async with actors.ActorSystem(store, actors=[Napper], clock=clock):
        await trio.sleep(2 * 3600)
    assert [f"{e.sender}{e.n}" for e in await log_of(store, "RtNapper-n")
            if isinstance(e, Did)] == ["nap-before1", "nap-after1", "next2"]
    assert await store.work() == []


# -- dedup ----------------------------------------------------------------------------------------


@attrs.define
class Gate(actors.Actor):
    """Blocks on a class-level event while handling ``Do``: a message caught mid-turn."""

    kind = "RtGate"
    entered: ClassVar[trio.Event]
    release: ClassVar[trio.Event]
    runs: ClassVar[int] = 0
    seen: list[tuple[str, int]] = attrs.Factory(list)

    def apply(self, event: Did) -> None:
        self.seen.append((event.sender, event.n))

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Do):
            Gate.runs += 1
            Gate.entered.set()
            await Gate.release.wait()
            self.emit(Did(message.sender, message.n))
        return list(self.seen)


async def test_a_resent_message_id_runs_once_while_waiting_processing_and_after(
        store: EventStore) -> None:
    Gate.entered, Gate.release, Gate.runs = trio.Event(), trio.Event(), 0
    async with actors.ActorSystem(store, actors=[Gate]) as system:
        ref = system.ref(Gate, "g")
        await ref.send(Do("a", 1), message_id="m-1")
        await Gate.entered.wait()  # being processed
        for _ in range(3):
            await ref.send(Do("a", 1), message_id="m-1")
        assert len(await inbox_of(store, "RtGate-g")) == 1  # not stored twice
        Gate.release.set()
        assert await ref.ask("state") == [("a", 1)]
        await ref.send(Do("a", 1), message_id="m-1")  # after its consumption
        await until(lambda: _empty(store, "RtGate-g"))
        assert await ref.ask("state") == [("a", 1)]
    assert Gate.runs == 1
    assert await store.work() == []


async def _empty(store: EventStore, stream: str) -> bool:
    return await inbox_of(store, stream) == []


async def test_ask_then_send_of_one_message_id_runs_once(store: EventStore) -> None:
    async with actors.ActorSystem(store, actors=[Counter]) as system:
        ref = system.ref(Counter, "c")
        assert await ref.ask(Do("a", 1), message_id="x") == [("a", 1)]
        await ref.send(Do("a", 1), message_id="x")
        await until(lambda: _empty(store, "RtCounter-c"))
        assert await ref.ask(Do("a", 1), message_id="x") == [("a", 1)]
    assert Counter.runs.count(Do("a", 1)) == 1
    assert await did(store, "RtCounter-c") == [("a", 1)]


async def test_send_then_ask_of_one_message_id_runs_once(store: EventStore) -> None:
    async with actors.ActorSystem(store, actors=[Counter]) as system:
        ref = system.ref(Counter, "c")
        await ref.send(Do("a", 1), message_id="y")
        await ref.ask(Do("a", 1), message_id="y")  # the send's reply is recorded as None
        await until(lambda: _empty(store, "RtCounter-c"))
    assert Counter.runs.count(Do("a", 1)) == 1
    assert await did(store, "RtCounter-c") == [("a", 1)]


# -- poison messages -----------------------------------------------------------------------------


async def test_a_poison_message_is_dead_lettered_after_the_backlog_before_it_commits(
        store: EventStore) -> None:
    await enqueue(store, "RtCounter-c", Do("a", 1), Do("a", 2, fail=99), Do("a", 3))
    async with actors.ActorSystem(store, actors=[Counter]) as system:
        await until(lambda: did_done(store, 2))
        assert await system.ref(Counter, "c").ask("state") == [("a", 1), ("a", 3)]
    log = await log_of(store, "RtCounter-c")
    kinds = [(type(e).__name__, getattr(e, "n", None)) for e in log
             if isinstance(e, Did | DeadLettered)]
    assert kinds == [("Did", 1), ("DeadLettered", None), ("Did", 3)]
    [dead] = [e for e in log if isinstance(e, DeadLettered)]
    assert dead.data == {"sender": "a", "n": 2, "fail": 99}
    assert "RuntimeError" in dead.error and "('a', 2)" in dead.error
    assert dead.attempts == Counter.max_deliveries
    assert Counter.runs.count(Do("a", 2, fail=99)) == Counter.max_deliveries
    assert await inbox_of(store, "RtCounter-c") == [] and await store.work() == []


@attrs.define
class Stopper(actors.Actor):
    """Its handler raises ``ActorStopped`` for ``"stop"`` (as an ask to a stopped actor does)."""

    kind = "RtStopper"
    max_deliveries: ClassVar[int] = 2
    supervision = actors.Restart(initial_backoff=0.01, max_backoff=0.01)
    done: list[str] = attrs.Factory(list)

    def apply(self, event: Did) -> None:
        self.done.append(event.sender)

    async def receive(self, message: Any) -> Any:
        if message == "stop":
            raise actors.ActorStopped("Other('x')", "it was stopped")
        if isinstance(message, Do):
            self.emit(Did(message.sender, message.n))
        return list(self.done)


async def test_a_message_whose_handler_raises_actor_stopped_does_not_block_the_inbox(
        store: EventStore) -> None:
    async with actors.ActorSystem(store, actors=[Stopper]) as system:
        ref = system.ref(Stopper, "s")
        await ref.send("stop")
        for n in range(4):  # each send re-activates it
            await trio.sleep(0.05)
            await ref.send(Do("a", n))
        with trio.move_on_after(0.5):
            while len([e async for e in store.read("RtStopper-s")]) < 5:
                await trio.sleep(0.05)
    assert [e.sender for e in await log_of(store, "RtStopper-s") if isinstance(e, Did)] == \
        ["a"] * 4
    assert [e.type for e in await log_of(store, "RtStopper-s")
            if isinstance(e, DeadLettered)] == ["actors.Value"]


async def test_a_message_that_cannot_be_decoded_is_dead_lettered_and_the_inbox_moves_on(
        store: EventStore) -> None:
    await store.enqueue("RtCounter-c", [eventstore.NewEvent("tests.redteam_send.Unknown", {})])
    await enqueue(store, "RtCounter-c", Do("a", 1))
    async with actors.ActorSystem(store, actors=[Counter]):
        await until(lambda: did_done(store, 1))
    dead = [e for e in await log_of(store, "RtCounter-c") if isinstance(e, DeadLettered)]
    assert [d.type for d in dead] == ["tests.redteam_send.Unknown"]
    assert await inbox_of(store, "RtCounter-c") == [] and await store.work() == []


# -- sends inside a turn -------------------------------------------------------------------------


@eventstore.event_type("tests.redteam_send.Relay")
@attrs.frozen
class Relay:
    to: str
    n: int
    fail: bool = False
    durable: bool = True


@attrs.define
class Relayer(actors.Actor):
    kind = "RtRelayer"
    max_deliveries: ClassVar[int] = 2
    supervision = actors.Restart(initial_backoff=0.01, max_backoff=0.01)
    relayed: int = 0

    def apply(self, event: Did) -> None:
        self.relayed += 1

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Relay):
            target = self.ref(Counter, message.to)
            if message.durable:
                await target.send(Do("relay", message.n))
            else:
                target.tell(Do("relay", message.n))
            self.emit(Did("relay", message.n))
            if message.fail:
                raise RuntimeError("the turn fails after sending")
        return self.relayed


@pytest.mark.parametrize("durable", [True, False])
async def test_a_send_from_a_failed_turn_is_never_stored(
        store: EventStore, durable: bool) -> None:
    async with actors.ActorSystem(store, actors=[Relayer, Counter]) as system:
        ref = system.ref(Relayer, "r")
        with pytest.raises(RuntimeError):
            await ref.ask(Relay("c", 1, fail=True, durable=durable))
        await ref.send(Relay("c", 2, fail=True, durable=durable))  # dead-lettered in the end
        await until(lambda: _empty(store, "RtRelayer-r"))
        await ref.ask(Relay("c", 3, durable=durable))
        await until(lambda: did_done(store, 1))
        await trio.sleep(0.05)
    assert await did(store, "RtCounter-c") == [("relay", 3)]
    assert [m for m in Counter.runs if isinstance(m, Do)] == [Do("relay", 3)]


@attrs.define
class Crasher(actors.Actor):
    """Sends, commits (a durable sleep), and is cut: its resend must not send twice."""

    kind = "RtCrasher"

    def apply(self, event: Any) -> None:
        pass

    async def receive(self, message: Any) -> Any:
        if message == "go":
            await self.ref(Counter, "c").send(Do("crasher", 1))
            self.ref(Counter, "c").tell(Do("crasher", 2))
            await actors.durable.sleep.aio(3600)  # commit point: the sends are stored
            await self.ref(Counter, "c").send(Do("crasher", 3))
        return None


async def test_a_message_with_an_id_cut_and_resent_sends_each_message_once(
        memory: EventStore, autojump_clock: trio.testing.MockClock) -> None:
    store = memory
    clock = actors.VirtualClock()
    async with actors.ActorSystem(store, actors=[Crasher, Counter], clock=clock) as system:
        ref = system.ref(Crasher, "x")
        with trio.move_on_after(60):
            await ref.ask("go", message_id="go")
        await until(lambda: did_done(store, 2))
    async with actors.ActorSystem(store, actors=[Crasher, Counter], clock=clock) as system:
        ref = system.ref(Crasher, "x")
        with trio.move_on_after(2 * 3600):
            await ref.ask("go", message_id="go")  # resumes the cut turn
        await ref.ask("go", message_id="go")  # answered from the log
        await until(lambda: did_done(store, 3))
        await trio.sleep(1)
    assert sorted(await did(store, "RtCounter-c")) == [("crasher", 1), ("crasher", 2),
                                                       ("crasher", 3)]
    assert await store.work() == []


@attrs.define
class Threaded(actors.Actor):
    """A plain-def handler that tells another actor from its worker thread."""

    kind = "RtThreaded"

    def apply(self, event: Any) -> None:
        pass

    def receive(self, message: Any) -> Any:
        if isinstance(message, Relay):
            self.ref(Counter, message.to).tell(Do("thread", message.n))
        return "ok"


@pytest.mark.parametrize("active", [True, False])
async def test_tell_from_a_plain_def_handler_reaches_the_receiver(
        store: EventStore, active: bool) -> None:
    async with actors.ActorSystem(store, actors=[Threaded, Counter]) as system:
        if active:
            await system.ref(Counter, "c").ask("warm")
        assert await system.ref(Threaded, "t").ask(Relay("c", 1)) == "ok"
        await until(lambda: did_done(store, 1), timeout=3)
    assert await did(store, "RtCounter-c") == [("thread", 1)]


async def test_send_to_a_stopped_spawned_actor_stores_nothing(store: EventStore) -> None:
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Counter, "c", store=store)
        await ref.stop()
        with pytest.raises(actors.ActorStopped):
            await ref.send(Do("a", 1))
    assert await inbox_of(store, "RtCounter-c") == [] and await store.work() == []


async def test_send_to_a_passivated_actor_activates_it(
        memory: EventStore, autojump_clock: trio.testing.MockClock) -> None:
    store = memory
    async with actors.ActorSystem(store, actors=[Counter], idle_timeout=1.0) as system:
        ref = system.ref(Counter, "c")
        for n in range(6):
            await ref.send(Do("a", n))
            await trio.sleep(0.999 if n % 2 else 1.0)  # around the moment it passivates
        await until(lambda: did_done(store, 6))
        await trio.sleep(5)
        assert system.active == 0
    assert await did(store, "RtCounter-c") == [("a", n) for n in range(6)]
    assert await store.work() == []


@attrs.define
class Pinger(actors.Actor):
    """A sends to B sends to A, ``n`` hops in all."""

    kind = "RtPinger"
    runs: ClassVar[int] = 0
    hops: int = 0

    def apply(self, event: Did) -> None:
        self.hops += 1

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Do):
            Pinger.runs += 1
            self.emit(Did(self.id, message.n))
            if message.n > 0:
                other = "b" if self.id == "a" else "a"
                await self.ref(Pinger, other).send(Do(self.id, message.n - 1))
        return self.hops


async def test_a_send_cycle_runs_each_hop_once(store: EventStore) -> None:
    async with actors.ActorSystem(store, actors=[Pinger]) as system:
        await system.ref(Pinger, "a").send(Do("start", 9))
        await until(lambda: _is(Pinger.runs >= 10))
        await trio.sleep(0.05)
        assert await system.ref(Pinger, "a").ask("n") + \
            await system.ref(Pinger, "b").ask("n") == 10
    assert Pinger.runs == 10
    assert await store.work() == []


# -- the work index --------------------------------------------------------------------------------


@attrs.define
class Timed(actors.Actor):
    """Sets a timer on a message; its wake-up emits."""

    kind = "RtTimed"
    log: list[str] = attrs.Factory(list)

    def apply(self, event: Did) -> None:
        self.log.append(event.sender)

    async def receive(self, message: Any) -> Any:
        if message == "arm":
            self.notifier.notify_at(await actors.durable.now.aio() + timedelta(seconds=10), "t")
        elif isinstance(message, Do):
            self.emit(Did(message.sender, message.n))
        return list(self.log)

    async def on_notify(self) -> None:
        for _ in self.notifier.due(await actors.durable.now.aio()):
            self.emit(Did("timer", 0))


async def test_timers_and_inbox_together_are_served_and_the_work_index_empties(
        memory: EventStore, autojump_clock: trio.testing.MockClock) -> None:
    store = memory
    clock = actors.VirtualClock()
    async with actors.ActorSystem(store, actors=[Timed], clock=clock) as system:
        await system.ref(Timed, "t").ask("arm")
    await enqueue(store, "RtTimed-t", Do("a", 1))
    assert [(e.stream, e.waiting) for e in await store.work()] == [("RtTimed-t", 1)]
    async with actors.ActorSystem(store, actors=[Timed], clock=clock) as system:
        await trio.sleep(1)
        assert await inbox_of(store, "RtTimed-t") == []  # re-activated for its inbox
        assert [e.stream for e in await store.work()] == ["RtTimed-t"]  # the timer is left
        await trio.sleep(20)
        assert await system.ref(Timed, "t").ask("s") == ["a", "timer"]
    assert await store.work() == []


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("message", "message_id", "names"), [
    (object(), None, "message"),
    ([1, object()], None, "message"),
    (Do("a", 1), "", "message_id"),
    (Do("a", 1), 7, "message_id"),
    (Do("a", 1), "bad\ud800", "message_id"),
])
async def test_bad_input_is_refused_with_a_clear_error_and_nothing_is_stored(
        store: EventStore, message: Any, message_id: Any, names: str) -> None:
    async with actors.ActorSystem(store, actors=[Counter]) as system:
        with pytest.raises(actors.InvalidActorArgument, match=names):
            await system.ref(Counter, "c").send(message, message_id=message_id)
    assert await inbox_of(store, "RtCounter-c") == []
    assert await store.work() == []


async def test_a_bad_message_sent_inside_a_turn_fails_that_turn_only(store: EventStore) -> None:
    @attrs.define
    class Bad(actors.Actor):
        kind = "RtBad"

        def apply(self, event: Any) -> None:
            pass

        async def receive(self, message: Any) -> Any:
            await self.ref(Counter, "c").send(object())

    async with actors.ActorSystem(store, actors=[Bad, Counter]) as system:
        with pytest.raises(actors.InvalidActorArgument, match="message"):
            await system.ref(Bad, "b").ask("go")
    assert await inbox_of(store, "RtCounter-c") == []
    with contextlib.suppress(Exception):
        assert await store.work() == []


# -- more: store outages, run(), stopped receivers, passivation races ------------------------------


async def test_a_store_outage_does_not_dead_letter_a_healthy_message(store: EventStore) -> None:
    await enqueue(store, "RtCounter-c", Do("a", 1))
    faulty = FaultyStore(store, own_inner=False)
    faulty.inject("append", times=Counter.max_deliveries)  # every attempt's commit fails
    async with actors.ActorSystem(faulty, actors=[Counter]) as system:
        await until(lambda: _empty(store, "RtCounter-c"))
        await system.ref(Counter, "c").ask("sync")
    log = await log_of(store, "RtCounter-c")
    assert not [e for e in log if isinstance(e, DeadLettered)]
    assert await did(store, "RtCounter-c") == [("a", 1)]


@attrs.define
class Runner(actors.Actor):
    """``run()`` sends, commits, then fails once: its restart must not send again."""

    kind = "RtRunner"
    supervision = actors.Restart(initial_backoff=0.01, max_backoff=0.01)
    failed: ClassVar[int] = 0

    def apply(self, event: Any) -> None:
        pass

    async def run(self) -> None:
        await self.ref(Counter, "c").send(Do("run", 1))
        self.ref(Counter, "c").tell(Do("run", 2))
        await self.flush()  # commit point: both sends are stored
        await self.ref(Counter, "c").send(Do("run", 3))
        if Runner.failed < 2:
            Runner.failed += 1
            raise RuntimeError("run() fails after sending")
        await self.ref(Counter, "c").send(Do("run", 4))

    async def receive(self, message: Any) -> Any:
        return None


async def test_a_restarted_run_sends_each_message_once(store: EventStore) -> None:
    Runner.failed = 0
    async with actors.ActorSystem(store, actors=[Runner, Counter]) as system:
        await system.spawn(Runner, "r")
        await until(lambda: did_done(store, 4))
        await trio.sleep(0.1)
    assert await did(store, "RtCounter-c") == [("run", n) for n in range(1, 5)]
    sent = [e for e in await log_of(store, "RtRunner-r") if isinstance(e, MessageSent)]
    assert len(sent) == 4 and len({e.message_id for e in sent}) == 4
    assert await store.work() == []


async def test_a_send_inside_a_turn_to_a_stopped_spawned_actor_is_refused(
        store: EventStore) -> None:
    @attrs.define
    class Teller(actors.Actor):
        kind = "RtTeller"
        target: ClassVar[actors.ActorRef]

        def apply(self, event: Any) -> None:
            pass

        async def receive(self, message: Any) -> Any:
            await Teller.target.send(Do("teller", 1))
            return "sent"

    async with trio.open_nursery() as nursery:
        Teller.target = await actors.spawn(nursery, Counter, "c", store=store)
        teller = await actors.spawn(nursery, Teller, "t", store=store)
        await Teller.target.stop()
        with pytest.raises(actors.ActorStopped):
            await teller.ask("go")
        await teller.stop()
    assert await inbox_of(store, "RtCounter-c") == []


async def test_senders_racing_passivation_and_reactivation_run_once_in_order(
        memory: EventStore, autojump_clock: trio.testing.MockClock) -> None:
    store = memory
    delays = [0.5, 0.999, 1.0, 1.001, 0.0, 2.0, 0.3]

    async def sender(name: str, ref: actors.ActorRef, shift: int) -> None:
        for n in range(12):
            await ref.send(Do(name, n))
            await trio.sleep(delays[(n + shift) % len(delays)])

    async with actors.ActorSystem(store, actors=[Counter], idle_timeout=1.0) as system:
        ref = system.ref(Counter, "c")
        async with trio.open_nursery() as nursery:
            for shift, name in enumerate("abc"):
                nursery.start_soon(sender, name, ref, shift)
        await until(lambda: did_done(store, 36))
        await trio.sleep(5)
    done = await did(store, "RtCounter-c")
    assert len(done) == 36
    for name in "abc":
        assert [n for s, n in done if s == name] == list(range(12))
    assert await store.work() == []


def arm_inbox_read_fault(store: FaultyStore, times: int = 1) -> None:
    """Arm a fault on ``read_inbox`` (``FaultyStore`` meets it, though ``inject`` does not list
    it): the next read of an inbox raises ``EventStoreError``, nothing read."""
    from reliability.faults import Fault, injected

    store._faults["read_inbox"] = Fault("read_inbox", injected("read_inbox"), False, False, times)


async def test_a_failed_inbox_read_is_retried_and_the_message_runs(store: EventStore) -> None:
    faulty = FaultyStore(store, own_inner=False)
    async with actors.ActorSystem(faulty, actors=[Counter]) as system:
        ref = system.ref(Counter, "c")
        await ref.ask("warm")  # running, its inbox read once
        arm_inbox_read_fault(faulty)
        await ref.send(Do("a", 1))
        with trio.move_on_after(0.5):
            await until(lambda: did_done(store, 1))
    assert await did(store, "RtCounter-c") == [("a", 1)]


@attrs.define
class StepThenFail(actors.Actor):
    """A durable message's turn: a recorded step (committed), an event, then a failure on the
    first delivery only; the retry must not call the step again nor emit twice."""

    kind = "RtStepThenFail"
    supervision = actors.Restart(initial_backoff=0.01, max_backoff=0.01)
    calls: ClassVar[int] = 0
    failed: ClassVar[int] = 0
    done: list[str] = attrs.Factory(list)

    def apply(self, event: Did) -> None:
        self.done.append(f"{event.sender}{event.n}")

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Do):
            self.emit(Did("before", message.n))
            value = await actors.durable.step.aio(self._charge)
            self.emit(Did("after", value))
            await self.ref(Counter, "c").send(Do("charged", value))
            if StepThenFail.failed < message.fail:
                StepThenFail.failed += 1
                raise RuntimeError("fails after its step")
        return list(self.done)

    async def _charge(self) -> int:
        StepThenFail.calls += 1
        return StepThenFail.calls


@pytest.mark.parametrize("message_id", [None, "charge-1"])
async def test_a_retried_message_does_not_repeat_its_committed_step(
        store: EventStore, message_id: str | None) -> None:
    StepThenFail.calls = StepThenFail.failed = 0
    async with actors.ActorSystem(store, actors=[StepThenFail, Counter]) as system:
        ref = system.ref(StepThenFail, "s")
        await ref.send(Do("x", 1, fail=2), message_id=message_id)
        await ref.send(Do("x", 2))
        await until(lambda: did_done(store, 2))
        assert await ref.ask("state") == ["before1", "after1", "before2", "after2"]
    assert StepThenFail.calls == 2
    assert await did(store, "RtCounter-c") == [("charged", 1), ("charged", 2)]
    log = await log_of(store, "RtStepThenFail-s")
    assert [type(e).__name__ for e in log].count("Received") == 2
    assert await store.work() == []


@attrs.define
class Countdown(actors.Actor):
    """Sends itself ``Do(n - 1)`` inside each turn until 0: a self-cycle through its inbox."""

    kind = "RtCountdown"
    runs: ClassVar[int] = 0
    left: list[int] = attrs.Factory(list)

    def apply(self, event: Did) -> None:
        self.left.append(event.n)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Do):
            Countdown.runs += 1
            self.emit(Did("self", message.n))
            if message.n:
                await self.ref(Countdown, self.id).send(Do("self", message.n - 1))
        return list(self.left)


async def test_a_self_send_cycle_runs_each_hop_once(store: EventStore) -> None:
    Countdown.runs = 0
    async with actors.ActorSystem(store, actors=[Countdown]) as system:
        ref = system.ref(Countdown, "d")
        await ref.send(Do("start", 20))
        await until(lambda: _is(Countdown.runs >= 21))
        await trio.sleep(0.05)
        assert await ref.ask("state") == list(range(20, -1, -1))
    assert Countdown.runs == 21
    assert await inbox_of(store, "RtCountdown-d") == [] and await store.work() == []


@attrs.define
class Alarm(actors.Actor):
    """Its wake-up sends a message, then fails once: the retried wake-up sends it once."""

    kind = "RtAlarm"
    failed: ClassVar[int] = 0

    def apply(self, event: Any) -> None:
        pass

    async def receive(self, message: Any) -> Any:
        self.notifier.notify_at(await actors.durable.now.aio() + timedelta(milliseconds=50), "ring")

    async def on_notify(self) -> None:
        due = self.notifier.due(await actors.durable.now.aio())
        for _ in due:
            await self.ref(Counter, "c").send(Do("alarm", 1))
        await self.flush()  # the send is stored
        if Alarm.failed < 1:
            Alarm.failed += 1
            raise RuntimeError("on_notify fails after sending")


async def test_a_failed_wake_up_retried_sends_once(store: EventStore) -> None:
    Alarm.failed = 0
    async with actors.ActorSystem(store, actors=[Alarm, Counter]) as system:
        await system.ref(Alarm, "a").ask("arm")
        await until(lambda: did_done(store, 1))
        await trio.sleep(0.3)  # past the retry of the failed on_notify (0.1 s)
    assert await did(store, "RtCounter-c") == [("alarm", 1)]
    assert await store.work() == []


async def test_two_processes_activating_one_inbox_run_each_message_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    async with SQLiteEventStore(path) as one, SQLiteEventStore(path) as two:
        await enqueue(one, "RtCounter-c", *(Do("a", n) for n in range(10)))
        async with actors.ActorSystem(one, actors=[Counter]), \
                actors.ActorSystem(two, actors=[Counter]):  # both re-activate it at start
            await until(lambda: did_done(one, 10))
            await trio.sleep(0.1)
        assert await did(one, "RtCounter-c") == [("a", n) for n in range(10)]
        received = [e.seq for e in await log_of(one, "RtCounter-c") if isinstance(e, Received)]
        assert received == sorted(set(received)) and len(received) == 10
        assert await inbox_of(one, "RtCounter-c") == [] and await one.work() == []


@pytest.mark.parametrize("stored", [True, False])
async def test_a_backlog_commit_of_unknown_outcome_runs_each_message_once_after_restart(
        store: EventStore, stored: bool) -> None:
    await enqueue(store, "RtCounter-c", *(Do("a", n) for n in range(4)))  # one backlog
    faulty = CommitFaults(store, own_inner=False)
    faulty.inject("append", after=stored, error=lambda: AppendOutcomeUnknown(
        "RtCounter-c", 8, "injected: the connection dropped"))
    async with actors.ActorSystem(faulty, actors=[Counter]):
        await until(lambda: _is(len(Counter.runs) >= 4))
        await trio.sleep(0.1)  # it stopped rather than guess
    assert await did(store, "RtCounter-c") == ([("a", n) for n in range(4)] if stored else [])
    async with actors.ActorSystem(store, actors=[Counter]) as system:
        await until(lambda: did_done(store, 4))
        assert await system.ref(Counter, "c").ask("state") == [("a", n) for n in range(4)]
    assert await did(store, "RtCounter-c") == [("a", n) for n in range(4)]
    assert await inbox_of(store, "RtCounter-c") == [] and await store.work() == []


async def test_a_send_from_a_turn_whose_commit_fails_is_stored_once_by_its_retry(
        store: EventStore) -> None:
    await enqueue(store, "RtRelayer-r", Relay("c", 1))
    faulty = CommitFaults(store, own_inner=False)
    faulty.inject("append", times=1)  # the relaying turn's commit fails: nothing is sent
    async with actors.ActorSystem(faulty, actors=[Relayer, Counter]):
        await until(lambda: did_done(store, 1))
        await trio.sleep(0.1)
    assert await did(store, "RtCounter-c") == [("relay", 1)]
    assert [m for m in Counter.runs if isinstance(m, Do)] == [Do("relay", 1)]
    sent = [e for e in await log_of(store, "RtRelayer-r") if isinstance(e, MessageSent)]
    assert len(sent) == 1
    assert await store.work() == []
