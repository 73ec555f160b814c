"""Faults injected under real stores: a turn whose store call fails fails cleanly.

Each test arms a fault in a ``FaultyStore`` around a real store (memory and SQLite), checks that
the asker sees the error, that the actor recovers once the fault clears, and that its state is
exactly what a fresh recovery from the log gives: no phantom state, no partial write.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from faults import FaultyStore, recovered, stream_log

import actors
import eventstore
from actors import durable
from eventstore import EventStore, EventStoreError
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore


@eventstore.event_type("reliability.faults.Added")
@attrs.frozen
class Added:
    amount: int
    note: str = ""


@eventstore.event_type("reliability.faults.Woke")
@attrs.frozen
class Woke:
    at: float


@eventstore.event_type("reliability.faults.Fired")
@attrs.frozen
class Fired:
    token: str
    at: float


@attrs.frozen
class Add:
    amount: int
    parts: int = 1
    note: str = ""


@attrs.define
class Ledger(actors.Actor):
    """Adds amounts; a message may emit several events, which commit together or not at all."""

    kind = "ledger"
    total: int = 0
    entries: list[int] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        if isinstance(event, Added):
            self.total += event.amount
            self.entries.append(event.amount)

    async def receive(self, message: Any) -> Any:
        if message == "state":
            return self.total, list(self.entries), self.version
        assert isinstance(message, Add)
        for _ in range(message.parts):
            self.emit(Added(message.amount, message.note))
        return self.total


@attrs.define
class Sleeper(actors.Actor):
    """Sleeps a durable minute in ``run()``, then records when it woke."""

    kind = "sleeper"
    supervision = actors.Restart(initial_backoff=1.0)
    woke: float | None = None

    def apply(self, event: Any) -> None:
        if isinstance(event, Woke):
            self.woke = event.at

    async def run(self) -> None:
        await durable.sleep.aio(60)
        self.emit(Woke(await durable.time.aio()))

    async def receive(self, message: Any) -> Any:
        return self.woke, self.version


@attrs.define
class Alarm(actors.Actor):
    """Schedules a token ``delay`` seconds ahead; records each firing with the durable time."""

    kind = "alarm"
    fired: list[tuple[str, float]] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        if isinstance(event, Fired):
            self.fired.append((event.token, event.at))

    async def receive(self, message: Any) -> Any:
        if message == "state":
            return list(self.fired), len(self.notifier), self.version
        token, delay = message
        self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=delay), token)
        return None

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        for token in self.notifier.due(now):
            self.emit(Fired(token, now.timestamp()))


async def test_a_failed_append_fails_the_turn_and_leaves_no_trace(inner: EventStore) -> None:
    store = FaultyStore(inner, own_inner=False)
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Ledger, "a", store=store)
        await ref.ask(Add(1, parts=2))
        store.inject("append")
        with pytest.raises(EventStoreError, match="injected fault in append"):
            await ref.ask(Add(10, parts=3))
        state = await ref.ask("state")
        assert state == (2, [1, 1], 2) == await recovered(inner, Ledger, "a")
        assert await ref.ask(Add(5)) == 7
        assert await ref.ask("state") == (7, [1, 1, 5], 3) == await recovered(inner, Ledger, "a")
        nursery.cancel_scope.cancel()
    assert len(await stream_log(inner, "ledger-a")) == 3


async def test_an_append_that_fails_after_writing_leaves_the_state_of_the_log(
        inner: EventStore) -> None:
    # The ambiguous commit: the store wrote the batch, then the caller saw an error (a lost
    # connection after COMMIT). The turn fails, and the state is rebuilt from the log: with it.
    store = FaultyStore(inner, own_inner=False)
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Ledger, "a", store=store)
        await ref.ask(Add(1))
        store.inject("append", after=True)
        with pytest.raises(EventStoreError, match="injected fault in append"):
            await ref.ask(Add(10, parts=2))
        state = await ref.ask("state")
        assert state == (21, [1, 10, 10], 3) == await recovered(inner, Ledger, "a")
        assert await ref.ask(Add(5)) == 26  # no version conflict: the actor knows its version
        nursery.cancel_scope.cancel()
    assert len(await stream_log(inner, "ledger-a")) == 4


async def test_a_hanging_append_times_the_asker_out_and_then_completes(
        inner: EventStore, autojump_clock: trio.abc.Clock) -> None:
    store = FaultyStore(inner, own_inner=False)
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Ledger, "a", store=store)
        fault = store.inject("append", hang=True)
        with pytest.raises(actors.AskTimeout):
            await ref.ask(Add(3), timeout=5)
        assert fault.entered.is_set() and not fault.released.is_set()
        assert await store.last_version("ledger-a") == 0  # nothing half-written meanwhile
        fault.release()
        assert await ref.ask(Add(4)) == 7  # queued behind the hanging turn, which completed
        assert await ref.ask("state") == (7, [3, 4], 2) == await recovered(inner, Ledger, "a")
        nursery.cancel_scope.cancel()


async def test_cancelling_an_actor_whose_append_hangs_writes_nothing(
        inner: EventStore) -> None:
    store = FaultyStore(inner, own_inner=False)
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Ledger, "a", store=store)
        await ref.ask(Add(1))
        fault = store.inject("append", hang=True)
        ref.tell(Add(100, parts=4))
        await fault.entered.wait()
        nursery.cancel_scope.cancel()
    assert await recovered(inner, Ledger, "a") == (1, [1], 1)
    assert len(await stream_log(inner, "ledger-a")) == 1


async def test_a_read_error_during_recovery_fails_spawn_until_it_clears(
        inner: EventStore) -> None:
    store = FaultyStore(inner, own_inner=False)
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Ledger, "a", store=store)
        await ref.ask(Add(2, parts=3))
        await ref.stop()
        store.inject("read", times=2)
        for _ in range(2):
            with pytest.raises(EventStoreError, match="injected fault in read"):
                await actors.spawn(nursery, Ledger, "a", store=store)
        ref = await actors.spawn(nursery, Ledger, "a", store=store)
        assert await ref.ask("state") == (6, [2, 2, 2], 3)
        nursery.cancel_scope.cancel()
    assert len(await stream_log(inner, "ledger-a")) == 3


async def test_a_read_error_while_rebuilding_after_a_failed_turn_stops_the_actor_cleanly(
        inner: EventStore) -> None:
    # The turn's append fails, then so does the read that rebuilds the state from the log: the
    # state is unknown, so the actor stops (its nursery goes on); a new spawn recovers it.
    store = FaultyStore(inner, own_inner=False)
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Ledger, "a", store=store)
        await ref.ask(Add(1))
        store.inject("append")
        store.inject("read")
        with pytest.raises(EventStoreError, match="injected fault in append"):
            await ref.ask(Add(10))
        with pytest.raises(actors.ActorStopped, match="rebuil"):
            await ref.ask("state")
        await ref.stop()  # wait until it has stopped
        ref = await actors.spawn(nursery, Ledger, "a", store=store)
        assert await ref.ask(Add(5)) == 6
        assert await ref.ask("state") == (6, [1, 5], 2) == await recovered(inner, Ledger, "a")
        nursery.cancel_scope.cancel()


async def test_an_actor_system_reactivates_an_actor_stopped_by_a_fault(
        inner: EventStore) -> None:
    store = FaultyStore(inner, own_inner=False)
    async with actors.ActorSystem(store, actors=[Ledger]) as system:
        ref = system.ref(Ledger, "a")
        await ref.ask(Add(1))
        store.inject("append")
        store.inject("read")
        with pytest.raises(EventStoreError, match="injected fault in append"):
            await ref.ask(Add(10))
        await system.spawn(Ledger, "a")  # re-activated from the log, the fault spent
        assert await ref.ask(Add(2)) == 3
        assert await ref.ask("state") == (3, [1, 2], 2) == await recovered(inner, Ledger, "a")


async def test_a_failed_commit_before_a_durable_sleep_restarts_run_and_sleeps_in_full(
        autojump_clock: trio.abc.Clock) -> None:
    inner = MemoryEventStore()  # exact virtual time: no worker threads
    store = FaultyStore(inner, own_inner=False)
    clock = actors.VirtualClock()
    start = clock.time()
    store.inject("append")  # the SleepStarted commit fails: run() raises and is restarted
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Sleeper, "a", store=store, clock=clock)
        while (await ref.ask("state"))[0] is None:
            await trio.sleep(10)
        nursery.cancel_scope.cancel()
    log = [store.codec.decode(event) for event in await stream_log(inner, "sleeper-a")]
    sleeps = [event for event in log if isinstance(event, actors.SleepStarted)]
    assert len(sleeps) == 1  # the failed commit left nothing behind
    woke = next(event.at for event in log if isinstance(event, Woke))
    assert sleeps[0].started_at == start + 1.0  # after the restart's backoff
    assert woke == sleeps[0].started_at + 60


async def test_a_sleep_whose_commit_fails_after_writing_resumes_instead_of_restarting(
        autojump_clock: trio.abc.Clock) -> None:
    inner = MemoryEventStore()  # exact virtual time: no worker threads
    # SleepStarted is stored but run() sees an error and restarts a second later: the replayed
    # sleep waits only for the rest, so the actor wakes 60 s after the first start, not 61.
    store = FaultyStore(inner, own_inner=False)
    clock = actors.VirtualClock()
    start = clock.time()
    store.inject("append", after=True)
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Sleeper, "a", store=store, clock=clock)
        while (await ref.ask("state"))[0] is None:
            await trio.sleep(10)
        nursery.cancel_scope.cancel()
    log = [store.codec.decode(event) for event in await stream_log(inner, "sleeper-a")]
    sleeps = [event for event in log if isinstance(event, actors.SleepStarted)]
    woke = next(event.at for event in log if isinstance(event, Woke))
    assert [s.started_at for s in sleeps] == [start]
    assert woke == start + 60


async def test_a_failed_timer_turn_fires_once_after_the_fault_clears(
        autojump_clock: trio.abc.Clock) -> None:
    inner = MemoryEventStore()  # exact virtual time: no worker threads
    store = FaultyStore(inner, own_inner=False)
    clock = actors.VirtualClock()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Alarm, "a", store=store, clock=clock)
        await ref.ask(("t", 30))
        due = clock.time() + 30
        fault = store.inject("append")  # the firing turn fails: nothing of it is recorded
        await fault.entered.wait()
        assert clock.time() >= due
        # A failed on_notify runs again at the next message or deadline: this message is one.
        assert (await ref.ask("state"))[:2] == ([], 1)
        await trio.testing.wait_all_tasks_blocked()
        fired, pending, _ = await ref.ask("state")
        assert [token for token, _ in fired] == ["t"] and pending == 0
        assert fired[0][1] >= due
        assert await ref.ask("state") == await recovered(inner, Alarm, "a")
        nursery.cancel_scope.cancel()
    log = [store.codec.decode(event) for event in await stream_log(inner, "alarm-a")]
    assert sum(isinstance(event, actors.NotificationFired) for event in log) == 1


async def test_a_full_sqlite_file_fails_appends_cleanly_until_space_is_freed(
        tmp_path: Path) -> None:
    # A real SQLITE_FULL: the writer connection may not grow the file past its current pages.
    async with SQLiteEventStore(tmp_path / "events.db") as inner:
        store = FaultyStore(inner, own_inner=False)
        note = "x" * 1500  # about a third of a page per event: the file grows every few appends
        async with trio.open_nursery() as nursery:
            refs = [await actors.spawn(nursery, Ledger, str(n), store=store) for n in range(8)]
            for ref in refs:
                await ref.ask(Add(1, note=note))
            limit = await inner._write(lambda conn: conn.execute(
                "PRAGMA page_count").fetchone()[0])
            await inner._write(lambda conn: conn.execute(f"PRAGMA max_page_count = {limit}"))
            errors: list[BaseException] = []

            async def fill(ref: actors.ActorRef) -> None:
                for _ in range(100):
                    try:
                        await ref.ask(Add(1, parts=2, note=note))
                    except EventStoreError as exc:
                        errors.append(exc)
                        return

            async with trio.open_nursery() as fillers:
                for ref in refs:
                    fillers.start_soon(fill, ref)
            assert len(errors) == len(refs)
            assert all("SQLITE_FULL" in str(error) for error in errors)
            for n, ref in enumerate(refs):
                state = await ref.ask("state")
                assert state == await recovered(inner, Ledger, str(n))
                assert len(state[1]) % 2 == 1  # 1 + whole turns of 2: no half of a turn
            await inner._write(lambda conn: conn.execute("PRAGMA max_page_count = 1000000000"))
            for n, ref in enumerate(refs):
                total, _, version = await ref.ask("state")
                assert await ref.ask(Add(1, parts=2)) == total + 2
                state = await ref.ask("state")
                assert state[::2] == (total + 2, version + 2)
                assert state == await recovered(inner, Ledger, str(n))
            nursery.cancel_scope.cancel()
        for n in range(len(refs)):
            assert len(await stream_log(inner, f"ledger-{n}")) % 2 == 1


@eventstore.event_type("reliability.faults.Stepped")
@attrs.frozen
class Stepped:
    step: int


@attrs.define
class Stepper(actors.Actor):
    """Its run() emits one step and ends; messages read the steps."""

    kind = "stepper"
    steps: int = 0

    def apply(self, event: Any) -> None:
        self.steps += 1

    async def run(self) -> None:
        self.emit(Stepped(1))

    async def receive(self, message: Any) -> Any:
        return self.steps


async def test_a_reply_waits_for_the_commit_in_flight_of_what_it_read(
        autojump_clock: trio.abc.Clock) -> None:
    # run()'s step is applied and being committed when a message reads it: the reply must wait
    # for that commit, or a crash right after it would lose state the asker has seen.
    inner = MemoryEventStore()
    store = FaultyStore(inner, own_inner=False)
    fault = store.inject("append", hang=True)
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Stepper, "a", store=store)
        await fault.entered.wait()
        with pytest.raises(actors.AskTimeout):
            await ref.ask("steps", timeout=5)
        fault.release()
        assert await ref.ask("steps") == 1
        assert await store.last_version("stepper-a") == 2  # Stepped, RunCompleted
        nursery.cancel_scope.cancel()


async def test_a_failed_timer_turn_is_retried_with_backoff_without_any_message(
        autojump_clock: trio.abc.Clock) -> None:
    inner = MemoryEventStore()  # exact virtual time: no worker threads
    store = FaultyStore(inner, own_inner=False)
    clock = actors.VirtualClock()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Alarm, "a", store=store, clock=clock)
        await ref.ask(("t", 30))
        due = clock.time() + 30
        fault = store.inject("append")  # the firing turn fails once
        await fault.entered.wait()
        failed_at = clock.time()
        await trio.sleep(5)  # no message meanwhile: only the retry can fire it
        fired, pending, _ = await ref.ask("state")
        assert [token for token, _ in fired] == ["t"] and pending == 0
        assert due <= fired[0][1] <= failed_at + 1
        nursery.cancel_scope.cancel()
