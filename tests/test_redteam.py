"""Red-team tests: cases where a promise of the actor core (DESIGN section 8, issue 11) breaks.

Each test is the smallest deterministic sequence found that breaks one promise. They are marked
``xfail(strict=True)`` so the branch stays green: a fix makes the test pass, which then fails
the run until the marker is removed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import actors
import eventstore
from actors import durable, replay
from actors.testing import ActorTestKit
from eventstore.memory import MemoryEventStore


@eventstore.event_type("tests.redteam.Added")
@attrs.frozen
class Added:
    n: int


@eventstore.event_type("tests.redteam.Opened")
@attrs.frozen
class Opened:
    pass


@eventstore.event_type("tests.redteam.Closed")
@attrs.frozen
class Closed:
    pass


@eventstore.event_type("tests.redteam.Sent")
@attrs.frozen
class Sent:
    name: str


async def user_events(store: eventstore.EventStore, stream: str) -> list[Any]:
    """The user's events in ``stream`` (the runtime's own left out)."""
    return [e async for r in store.read(stream)
            if type(e := store.codec.decode(r)).__module__ == __name__]


@attrs.define
class Total(actors.Actor):
    total: int = 0

    def apply(self, event: Any) -> None:
        if isinstance(event, Added):
            self.total += event.n


# -- 1. the state is fold(log) + pending ----------------------------------------------------------


class SlowAck(MemoryEventStore):
    """A store whose next append is stored at once but answered only once ``hold`` is set
    (a network round trip: the row is committed on the server, the client has not heard yet).
    ``held`` is set when the append is stored."""

    hold: trio.Event | None = None
    held: trio.Event | None = None

    async def _append(self, stream: str, events: Any, expected: Any, side: Any) -> Any:
        result = await super()._append(stream, events, expected, side)
        if self.hold is not None:
            hold, self.hold = self.hold, None
            assert self.held is not None
            self.held.set()
            await hold.wait()
        return result


async def test_a_failed_turn_during_another_turns_commit_counts_its_events_once(
        autojump_clock: trio.testing.MockClock) -> None:
    """run() flushes Added(100); while its append is stored but unanswered, a message turn
    fails. Its abort rebuilds from the log (which already holds 100) plus the pending events
    (which still hold 100): the live state counts 100 twice, for good."""
    go = trio.Event()

    @attrs.define
    class Lane(Total):
        async def run(self) -> None:
            await go.wait()
            self.emit(Added(100))
            await self.flush()
            await trio.sleep_forever()

        async def receive(self, message: Any) -> Any:
            self.emit(Added(1))
            raise RuntimeError("the turn fails")

    store = SlowAck()
    ack, held = trio.Event(), trio.Event()
    store.hold, store.held = ack, held
    async with ActorTestKit(store=store) as kit:
        ref = await kit.spawn(Lane, "l")
        go.set()
        await held.wait()  # 100 is stored; run() has not heard back yet
        async with trio.open_nursery() as nursery:
            async def fail() -> None:
                with pytest.raises(RuntimeError, match="the turn fails"):
                    await ref.ask("fail")

            nursery.start_soon(fail)
            await trio.testing.wait_all_tasks_blocked()  # its rebuild waits for the commit
            ack.set()  # run()'s append answers
        await trio.testing.wait_all_tasks_blocked()
        kit_state = kit.state(ref)
        cell = kit._hosted[ref.stream].cell
        assert cell is not None
        assert not cell.journal.pending
        log = await replay.state_at(store, Lane, "l")
        assert log.total == 100
        assert kit_state.total == log.total  # type: ignore[attr-defined]


# -- 1/4/5/6. a commit of one turn's events reorders the log past another turn's -------------------


@attrs.define
class Door(actors.Actor):
    """``Closed`` only applies to an open door: the fold depends on the order of events."""

    open: bool = False

    def apply(self, event: Any) -> None:
        if isinstance(event, Opened):
            self.open = True
        elif isinstance(event, Closed):
            if not self.open:
                raise ValueError("closing a door that is not open")
            self.open = False


async def _ask_outcome(ref: actors.ActorRef, message: Any, **options: Any) -> Any:
    try:
        return await ref.ask(message, **options)
    except Exception as exc:  # the test asserts on what came back
        return exc


async def test_a_turn_that_builds_on_runs_pending_event_is_refused_and_writes_nothing(
        autojump_clock: trio.testing.MockClock) -> None:
    """run() emits Opened (pending); a message turn sees the door open and emits Closed. Its
    commit would append Closed alone, before Opened, a log that does not fold: the commit is
    refused before anything is written, the asker gets an error, and the log still recovers."""

    @attrs.define
    class Porter(Door):
        async def run(self) -> None:
            self.emit(Opened())
            await trio.sleep_forever()

        async def receive(self, message: Any) -> Any:
            self.emit(Closed())
            return "closed"

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Porter, "p")
        outcome = await _ask_outcome(ref, "close")
        stored = await user_events(kit.store, ref.stream)
    assert stored == []  # nothing of the refused turn was written...
    assert isinstance(outcome, actors.ActorError)  # ...and the asker was told
    assert "Porter('p')" in str(outcome) and "nothing was written" in str(outcome)
    assert (await replay.state_at(kit.store, Porter, "p")).open  # run()'s Opened, at the stop


class FailingReads(MemoryEventStore):
    """A store whose reads fail once ``broken`` is set (a lost connection, an I/O error)."""

    broken = False

    async def _read_page(self, stream: str, first: int, last: int | None,
                         size: int) -> Any:
        if self.broken:
            raise eventstore.EventStoreError("the connection was lost")
        return await super()._read_page(stream, first, last, size)


async def test_a_reordering_commit_that_cannot_read_the_log_writes_nothing(
        autojump_clock: trio.testing.MockClock) -> None:
    """run() has Added(100) pending; a message turn commits Added(1) past it (a reordering).
    The commit must first fold the log in its new order, and the read fails: nothing is written,
    the asker gets the read error, and the actor, which cannot rebuild its state either, stops
    loudly rather than answer from a state it could not prove. Its log then recovers."""

    @attrs.define
    class Lane(Total):
        async def run(self) -> None:
            self.emit(Added(100))
            await trio.sleep_forever()

        async def receive(self, message: Any) -> Any:
            if message == "add":
                self.emit(Added(1))
                store.broken = True  # the commit's read of the log fails
            return self.total

    store = FailingReads()
    async with ActorTestKit(store=store) as kit:
        ref = await kit.spawn(Lane, "l")
        outcome = await _ask_outcome(ref, "add")
        store.broken = False
        stored = await user_events(store, ref.stream)
        after = await _ask_outcome(ref, "total")
        await kit.crash(ref)
    assert stored == []  # the failed commit wrote nothing
    assert isinstance(outcome, eventstore.EventStoreError)
    assert isinstance(after, actors.ActorStopped) and "rebuilt" in after.reason
    logged = await user_events(store, "Lane-l")
    assert Added(1) not in logged  # the failed turn left no trace
    assert (await replay.state_at(store, Lane, "l")).total == sum(e.n for e in logged)


async def test_a_commit_never_reorders_the_log_into_one_that_does_not_recover(
        autojump_clock: trio.testing.MockClock) -> None:
    """The log Porter's reordering commit left ([Closed], then Opened at the stop) is the
    runtime's own, from a pure apply(); recovering it raises apply()'s bare ValueError, not a
    RecoveryError naming the stream and the version."""

    @attrs.define
    class Porter(Door):
        async def run(self) -> None:
            self.emit(Opened())
            await trio.sleep_forever()

        async def receive(self, message: Any) -> Any:
            self.emit(Closed())
            return "closed"

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Porter, "p")
        await _ask_outcome(ref, "close")
    async with trio.open_nursery() as nursery:
        try:
            again = await actors.spawn(nursery, Porter, "p", store=kit.store)
        except actors.RecoveryError as exc:  # loud, as promised
            assert (exc.stream, exc.version) == ("Porter-p", 1)
        else:
            await again.stop()  # exact: recovered


async def test_a_timer_from_run_that_fires_before_run_commits_fires_after_its_scheduling(
        autojump_clock: trio.testing.MockClock) -> None:
    """run() schedules a timer (armed at once, not yet committed) and waits. The timer fires:
    on_notify's commit would append NotificationFired before the NotificationScheduled it
    consumes, which run() still holds pending (the log would no longer fold). The wake-up first
    commits run()'s events so far, as a commit point of run()."""
    fired: list[Any] = []

    @attrs.define
    class Alarm(actors.Actor):
        async def run(self) -> None:
            now = await durable.now.aio()
            self.notifier.notify_at(now + timedelta(seconds=30), "wake")
            await trio.sleep_forever()

        async def on_notify(self) -> None:
            fired.extend(self.notifier.due(await durable.now.aio()))

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Alarm, "a")
        await kit.advance(100)
        await kit.crash(ref)
    assert fired == ["wake"]
    state = await replay.state_at(kit.store, Alarm, "a")  # raises RecoveryError today
    assert state.notifier.pending() == []


class FailingOnce(MemoryEventStore):
    """Refuses the next append once ``armed`` (writing nothing), as a store error would."""

    armed = False

    async def _append(self, stream: str, events: Any, expected: Any,
                      side: Any) -> eventstore.AppendResult:
        if self.armed:
            self.armed = False
            raise eventstore.EventStoreError("the disk is full (injected); nothing was written")
        return await super()._append(stream, events, expected, side)


async def test_a_failed_commit_of_the_scheduling_turn_retries_the_wake_up(
        autojump_clock: trio.testing.MockClock) -> None:
    """The commit of run()'s events that a wake-up makes before its own fails (a store
    error): the wake-up fails as a whole, writing nothing, and is tried again after a backoff,
    as a failed on_notify is (its side effects at least once); the actor goes on."""
    fired: list[Any] = []

    @attrs.define
    class Alarm(actors.Actor):
        async def run(self) -> None:
            self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=30), "wake")
            await trio.sleep_forever()

        async def on_notify(self) -> None:
            fired.extend(self.notifier.due(await durable.now.aio()))

    store = FailingOnce()
    async with ActorTestKit(store=store) as kit:
        ref = await kit.spawn(Alarm, "a")
        await kit.advance(10)
        store.armed = True
        await kit.advance(100)
        assert fired == ["wake", "wake"] and not store.armed  # the first try failed
        events = await kit.events(ref, system=True)
        await kit.crash(ref)
    assert sum(isinstance(e, actors.NotificationFired) for e in events) == 1
    state = await replay.state_at(store, Alarm, "a")
    assert state.notifier.pending() == []


async def test_a_timer_set_by_a_message_while_runs_timer_is_pending_keeps_both(
        autojump_clock: trio.testing.MockClock) -> None:
    """run() schedules timer seq 0 (pending); a message turn schedules seq 1 and commits it.
    The rebuild folds seq 1 from the log, then run()'s pending seq 0, which the notifier
    refuses as already used: run() is poisoned and fails at its flush though it did nothing
    wrong; under Stop supervision the actor stops and neither timer ever fires."""
    fired: list[str] = []

    @attrs.define
    class Both(Total):
        supervision = actors.Stop()

        async def run(self) -> None:
            self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=30), "r")
            await trio.sleep(5)
            await self.flush()
            await trio.sleep_forever()

        async def receive(self, message: Any) -> Any:
            self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=60), "m")

        async def on_notify(self) -> None:
            fired.extend(self.notifier.due(await durable.now.aio()))

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Both, "b")
        await trio.sleep(1)
        await ref.ask("set")
        await kit.advance(100)
    assert sorted(fired) == ["m", "r"]


# -- 2. a failed turn leaves no trace -------------------------------------------------------------


async def test_a_task_that_outlives_its_failed_turn_cannot_emit_into_it(
        autojump_clock: trio.testing.MockClock) -> None:
    """A handler starts a task in a nursery it was handed, emits, and fails. Its emit is
    dropped, but the task keeps the failed turn as its context: what it emits later is pending
    under that turn, emit() does not refuse it, and the stop commits it. The failed turn left
    a trace."""

    @attrs.define
    class Leaky(Total):
        async def receive(self, message: Any) -> Any:
            message.start_soon(self._late)
            self.emit(Added(1))
            raise RuntimeError("the turn fails")

        async def _late(self) -> None:
            await trio.sleep(1)
            self.emit(Added(100))

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Leaky, "l")
        # The late task's emit is refused: its turn has ended.
        with pytest.RaisesGroup(actors.NotInTurn, flatten_subgroups=True):
            async with trio.open_nursery() as nursery:
                await _ask_outcome(ref, nursery)
    assert await user_events(kit.store, ref.stream) == []


# -- 3. a scope that runs again: never twice, never silently lost ---------------------------------


@pytest.mark.xfail(strict=True, reason=(
    "an emit equal to a committed one the guard skipped is passed over: silent loss"))
async def test_a_guarded_emit_passed_over_makes_an_equal_later_emit_vanish(
        autojump_clock: trio.testing.MockClock) -> None:
    """run() deposits 10 once (guarded on the state) and flushes, then deposits 10 again
    unconditionally, then sleeps durably. Crashed between the two, run() runs again: the guard
    skips the first deposit, and the second, equal to the one committed at that place, is
    taken for it and passed over. The second deposit is silently lost."""
    go = trio.Event()

    @attrs.define
    class Savings(Total):
        opened: bool = False

        def apply(self, event: Any) -> None:
            super().apply(event)
            self.opened = True

        async def run(self) -> None:
            if not self.opened:
                self.emit(Added(10))  # the opening deposit
                await self.flush()
                await go.wait()  # never set: the crash comes here
            self.emit(Added(10))  # the monthly deposit
            await durable.sleep.aio(100)

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Savings, "s")
        await trio.testing.wait_all_tasks_blocked()
        await kit.crash(ref)
        await kit.recover(ref)
        await kit.advance(200)
        total = kit.state(ref).total  # type: ignore[attr-defined]
    assert await user_events(kit.store, ref.stream) == [Added(10), Added(10)]
    assert total == 20


async def test_non_determinism_in_a_branch_of_run_stops_the_actor(
        autojump_clock: trio.testing.MockClock) -> None:
    """A new release's run() makes another durable call in a branch (a task it starts). The
    NonDeterminismError reaches the supervisor inside an ExceptionGroup, which it takes for an
    ordinary failure: run() is restarted again and again instead of the actor stopping."""
    runs: list[int] = []

    @attrs.define
    class Old(actors.Actor):
        kind = "BranchJob"

        async def run(self) -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(durable.sleep.aio, 3600)

    @attrs.define
    class New(actors.Actor):
        kind = "BranchJob"
        supervision = actors.Restart(initial_backoff=0.1)

        async def run(self) -> None:
            runs.append(1)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(durable.time.aio)

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Old, "j")
        await kit.advance(10)
        await kit.crash(ref)
    async with ActorTestKit(store=kit.store, clock=kit.clock) as kit2:
        ref = await kit2.spawn(New, "j")
        await kit2.advance(60)
        outcome = await _ask_outcome(ref, "x")
    assert len(runs) == 1
    assert isinstance(outcome, actors.ActorStopped)


# -- 7. concurrent durable calls replay deterministically -----------------------------------------


@eventstore.event_type("tests.redteam.Seen")
@attrs.frozen
class Seen:
    who: str
    at: float


@attrs.define
class Relay(actors.Actor):
    """Branch 1 starts a sibling into the handler's nursery (the nursery passed down)."""

    seen: list[Seen] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        if isinstance(event, Seen):
            self.seen.append(event)

    async def receive(self, message: Any) -> Any:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._first, nursery)
        await durable.sleep.aio(100)  # a commit point; the test crashes the actor here
        return sorted((s.who, s.at) for s in self.seen)

    async def _first(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._second)
        await durable.sleep.aio(10)
        self.emit(Seen("first", await durable.time.aio()))

    async def _second(self) -> None:
        await trio.sleep(5)  # not durable: a replay runs it again for real
        self.emit(Seen("second", await durable.time.aio()))


async def test_a_task_a_branch_starts_elsewhere_gets_a_branch_of_its_own(
        autojump_clock: trio.testing.MockClock) -> None:
    """Branch (1,) starts a task into the handler's nursery: that task gets no branch of its
    own and counts its durable calls on branch (1,)'s counter. First run: first's sleep is
    call 1, second's time() (at 5 s) call 2, first's time() (at 10 s) call 3. On the resend,
    first's sleep is over at once, so first's time() meets call 2 and gets second's recorded
    value (5 s): the replay depends on timing, not on the start order, and the unchanged code
    fails with NonDeterminismError when first emits what it saw."""
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Relay, "r")
        async with trio.open_nursery() as nursery:
            async def first_try() -> None:
                with pytest.raises(actors.ActorStopped):
                    await ref.ask("go", message_id="m-1")

            nursery.start_soon(first_try)
            await kit.advance(50)  # both legs done, the turn sleeps its 100 s
            first = sorted((s.who, s.at) for s in kit.state(ref).seen)  # type: ignore[attr-defined]
            await kit.crash(ref)
        await kit.recover(ref)
        again = await _ask_outcome(ref, "go", message_id="m-1")
    assert again == first


# -- 8. stopping does not wait out durable sleeps; they resume -----------------------------------


@pytest.mark.parametrize("cut", ["stop", "crash"])
async def test_a_wake_up_cut_short_in_a_durable_sleep_resumes(
        autojump_clock: trio.testing.MockClock, cut: str) -> None:
    """on_notify takes its due token, then sleeps durably before acting on it. Were the sleep's
    commit point to commit NotificationFired, then once the actor is stopped (or crashes)
    mid-sleep nothing would be due any more: the wake-up's scope would never be called again and
    its work would be silently lost. The firing is committed with the wake-up's end instead: the
    token is handed out again, and the scope resumes its sleep where it was."""

    @attrs.define
    class Throttled(actors.Actor):
        sent: list[str] = attrs.Factory(list)

        def apply(self, event: Any) -> None:
            if isinstance(event, Sent):
                self.sent.append(event.name)

        async def receive(self, message: Any) -> Any:
            self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=10), message)

        async def on_notify(self) -> None:
            for token in self.notifier.due(await durable.now.aio()):
                await durable.sleep.aio(60)
                self.emit(Sent(token))

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Throttled, "t")
        await ref.ask("mail")
        await kit.advance(30)  # the wake-up took "mail" and sleeps until 70 s
        await (ref.stop() if cut == "stop" else kit.crash(ref))
        await kit.recover(ref)
        await kit.advance(1000)
        assert kit.state(ref).sent == ["mail"]  # type: ignore[attr-defined]
        events = await kit.events(ref, system=True)
        checked = await replay.check(kit.store, Throttled, "t")
    assert checked.ok, checked.divergence
    sleeps = [e for e in events if isinstance(e, actors.SleepStarted)]
    assert len(sleeps) == 1 and sleeps[0].seconds == 60  # resumed, not slept again from zero
    assert [e for e in events if isinstance(e, Sent)] == [Sent("mail")]
    assert sum(isinstance(e, actors.NotificationFired) for e in events) == 1


async def test_leaving_a_system_while_on_start_sleeps_durably_leaves_it_alone(
        autojump_clock: trio.testing.MockClock) -> None:
    """on_start sleeps durably; the system is left while it sleeps. The stop cuts the sleep
    short with SleepInterrupted, which nothing catches on the on_start path: it escapes the
    actor's task and crashes the system's nursery."""

    @attrs.define
    class Warmup(actors.Actor):
        async def on_start(self) -> None:
            await durable.sleep.aio(3600)

        async def receive(self, message: Any) -> Any:
            return "ok"

    store = MemoryEventStore()
    escaped: list[BaseException] = []
    try:
        async with actors.ActorSystem(store, actors=[Warmup],
                                      clock=actors.VirtualClock()) as system:
            system.ref(Warmup, "w").tell("hi")
            await trio.sleep(10)
    except BaseException as exc:  # the test asserts on what escaped
        escaped.append(exc)
    assert escaped == []


@attrs.define
class Legs(actors.Actor):
    done: list[str] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        if isinstance(event, Sent):
            self.done.append(event.name)

    async def receive(self, message: Any) -> Any:
        async with trio.open_nursery() as nursery:
            for name, seconds in (("a", 30), ("b", 10)):
                nursery.start_soon(self._leg, name, seconds)
        return sorted(self.done)

    async def _leg(self, name: str, seconds: float) -> None:
        await durable.sleep.aio(seconds)
        self.emit(Sent(name))


async def test_stopping_an_actor_whose_branches_sleep_durably_leaves_the_nursery_alone(
        autojump_clock: trio.testing.MockClock) -> None:
    """Two branches of a message turn sleep durably; ref.stop() cuts both sleeps short. The
    SleepInterrupted of each reaches the handler wrapped in a BaseExceptionGroup, which the
    turn does not recognise: it escapes the actor's task and crashes the caller's nursery."""
    store = MemoryEventStore()
    escaped: list[BaseException] = []
    try:
        async with trio.open_nursery() as nursery:
            ref = await actors.spawn(nursery, Legs, "l", store=store,
                                     clock=actors.VirtualClock())

            async def ask() -> None:
                with pytest.raises(actors.ActorStopped):
                    await ref.ask("go", message_id="m-1")

            nursery.start_soon(ask)
            await trio.sleep(5)
            await ref.stop()
    except BaseException as exc:  # the test asserts on what escaped
        escaped.append(exc)
    assert escaped == []


def test_a_wake_ups_hand_outs_survive_a_snapshot_round_trip() -> None:
    from actors._record import DurableRecord
    from actors._turn import CANCEL, DUE

    codec = MemoryEventStore().codec
    record = DurableRecord()
    record.add_taken("notify:3", DUE, [((1,), (3, 4)), ((1,), (7,)), ((2, 2), (9,)), ((1,), ())])
    record.add_taken("notify:3", CANCEL, [((1,), (5,)), ((1,), ())])
    again = DurableRecord.load(record.dump(codec), codec)
    assert again.scopes["notify:3"].fired == {((), 1): [(3, 4), (7,), ()], ((2,), 2): [(9,)]}
    assert again.scopes["notify:3"].cancels == {((), 1): [(5,), ()]}


@pytest.mark.parametrize("snapshots", [False, True])
async def test_a_wake_up_run_again_hands_out_what_it_handed_out(
        autojump_clock: trio.testing.MockClock, snapshots: bool) -> None:
    """on_notify takes "a" and "b" and sleeps durably; the actor crashes mid-sleep. While it is
    down, its log gets "c" scheduled for an instant already past (before "a": now the earliest)
    and "b" cancelled, as another turn of it would have committed them. Recovered (from a
    snapshot too), the wake-up runs again under its scope: its due() hands out what it handed
    out the first time and is still pending ("a"), not "c"; "c" comes in the next wake-up."""
    handed: list[list[str]] = []

    @attrs.define
    class Batch(actors.Actor):
        snapshot_every = 1 if snapshots else None
        sent: list[str] = attrs.Factory(list)

        def apply(self, event: Any) -> None:
            if isinstance(event, Sent):
                self.sent.append(event.name)

        async def receive(self, message: Any) -> Any:
            self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=10), message)

        async def on_notify(self) -> None:
            tokens = self.notifier.due(await durable.now.aio())
            handed.append(tokens)
            await durable.sleep.aio(60)
            for token in tokens:
                self.emit(Sent(token))

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Batch, "b")
        await ref.ask("a")
        await ref.ask("b")
        start = kit.clock.time()
        await kit.advance(30)  # the wake-up took a and b at 10 s; it sleeps until 70 s
        await kit.crash(ref)
        store, codec = kit.store, kit.store.codec
        late = actors.NotificationScheduled(
            2, datetime.fromtimestamp(start - 100, UTC), codec.encode_value("c"))
        await store.append(ref.stream, [codec.new_event(late),
                                        codec.new_event(actors.NotificationCancelled((1,)))],
                           expected_version=await store.last_version(ref.stream))
        if snapshots:  # a snapshot of that state: the wake-up's record comes from it
            from actors._journal import recover_into
            from actors._state import ActorState

            state = ActorState(Batch, "b", codec)
            await recover_into(state, store, ref.stream, snapshots=True)
            assert state.record.scopes["notify:0"].fired == {((), 1): [(0, 1)]}
            await store.save_snapshot(ref.stream, state.version, state.snapshot())
        await kit.recover(ref)
        await kit.advance(1000)
        events = await kit.events(ref, system=True)
        assert kit.state(ref).sent == ["a", "c"]  # type: ignore[attr-defined]
    assert handed == [["a", "b"], ["a"], ["c"]]
    assert [e.seqs for e in events if isinstance(e, actors.NotificationFired)] == [(0,), (2,)]
    sleeps = [e for e in events if isinstance(e, actors.SleepStarted)]
    assert [e.scope for e in sleeps] == ["notify:0", "notify:2"]  # resumed, not started again


async def test_run_that_resets_its_timer_keeps_it_when_it_runs_again(
        autojump_clock: trio.testing.MockClock) -> None:
    """run() cancels any "x", re-arms "x" for 100 s, flushes, and sleeps durably; crashed and
    run again, its cancel() must leave alone the "x" it re-armed itself (which it then
    matches): "x" fires once, at 100 s."""
    fired: list[Any] = []

    @attrs.define
    class Resetting(actors.Actor):
        async def run(self) -> None:
            self.notifier.cancel("x")
            self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=100), "x")
            await self.flush()
            await durable.sleep.aio(50)

        async def on_notify(self) -> None:
            fired.extend(self.notifier.due(await durable.now.aio()))

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Resetting, "r")
        await kit.advance(10)
        await kit.crash(ref)
        await kit.recover(ref)
        await kit.advance(200)
        events = await kit.events(ref, system=True)
    assert fired == ["x"]
    assert not any(isinstance(e, actors.NotificationCancelled) for e in events)
