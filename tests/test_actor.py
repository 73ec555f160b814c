"""The actor runtime: spawn, tell/ask, turns and commit points, recovery, snapshots, supervision.

Tests taking ``any_store`` run on memory, SQLite and PostgreSQL. On memory only: those that
instrument the memory store (``RecordingStore``, its page size) and the restart tests, which
assert exact virtual times that the autojump clock breaks by jumping while SQLite or PostgreSQL
work runs in a worker thread.
"""

from __future__ import annotations

import gc
import itertools
import logging
import threading
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import actors
import eventstore
from eventstore import RecordedEvent
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore

# -- the domain the tests use ------------------------------------------------------------------


@eventstore.event_type("test_actor.Deposited")
@attrs.frozen
class Deposited:
    amount: int


@eventstore.event_type("test_actor.Withdrawn")
@attrs.frozen
class Withdrawn:
    amount: int


@attrs.frozen
class Deposit:
    amount: int
    times: int = 1


@attrs.frozen
class Withdraw:
    amount: int


@attrs.frozen
class Fail:
    """Emit ``amount`` as a deposit, flush first if asked, then raise."""

    amount: int
    flush: bool = False


class Refused(Exception):
    pass


@attrs.define
class Account(actors.Actor):
    balance: int = 0
    history: list[int] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        match event:
            case Deposited(amount=a):
                self.balance += a
            case Withdrawn(amount=a):
                self.balance -= a
        self.history.append(self.balance)

    async def receive(self, message: Any) -> Any:
        match message:
            case Deposit(amount=a, times=n):
                for _ in range(n):
                    self.emit(Deposited(a))
            case Withdraw(amount=a):
                if a > self.balance:
                    raise Refused(f"balance {self.balance} < {a}")
                self.emit(Withdrawn(a))
            case Fail(amount=a, flush=flush):
                self.emit(Deposited(a))
                if flush:
                    await self.flush()
                    self.emit(Deposited(a))
                raise RuntimeError("the turn failed")
            case "version":
                return self.version
            case _:
                pass
        return self.balance


async def events_in(store: eventstore.EventStore, stream: str) -> list[Any]:
    """The stream's events, without the runtime's ``ScopeCommitted`` bookkeeping."""
    return [event async for r in store.read(stream)
            if not isinstance(event := store.codec.decode(r), actors.ScopeCommitted)]


class RecordingStore(MemoryEventStore):
    """Records appends and page reads into ``log``; an append waits for ``gate`` when set."""

    def __init__(self, *, page_size: int = 500) -> None:
        super().__init__(page_size=page_size)
        self.log: list[tuple[str, Any]] = []
        self.gate: trio.Event | None = None

    async def _append(self, stream: str, events: Any, expected: Any,
                      side: Any) -> eventstore.AppendResult:
        if self.gate is not None:
            await self.gate.wait()
        result = await super()._append(stream, events, expected, side)
        self.log.append(("append", (stream, [e.type for e in events])))
        return result

    async def _read_page(self, stream: str, first: int, last: int | None,
                         size: int) -> list[RecordedEvent]:
        page = await super()._read_page(stream, first, last, size)
        self.log.append(("page", (stream, first, size, len(page))))
        return page

    def appends(self, stream: str) -> list[list[str]]:
        return [types for kind, (s, types) in
                ((k, v) for k, v in self.log if k == "append") if s == stream]


# -- spawn, tell, ask, stop ----------------------------------------------------------------------


async def test_spawn_tell_ask_and_the_ref(any_store: eventstore.EventStore) -> None:
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Account, "a1", store=any_store)
        assert (ref.id, ref.stream, ref.kind) == ("a1", "Account-a1", "Account")
        ref.tell(Deposit(5))
        assert await ref.ask(Deposit(10)) == 15
        assert await ref.ask("version") == 2
        await ref.stop()
        await ref.stop()  # stopping a stopped actor does nothing
    assert await events_in(any_store, "Account-a1") == [Deposited(5), Deposited(10)]


async def test_spawn_returns_after_recovery(any_store: eventstore.EventStore) -> None:
    seen: list[int] = []

    @attrs.define
    class Watched(Account):
        async def on_start(self) -> None:
            seen.append(self.balance)

    for amount in (3, 4):
        await any_store.append("Watched-w", [any_store.codec.new_event(Deposited(amount))])
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Watched, "w", store=any_store)
        assert seen == [7]  # on_start ran on the recovered state before spawn returned
        assert await ref.ask(Deposit(0, times=0)) == 7
        await ref.stop()


async def test_kind_names_the_stream(any_store: eventstore.EventStore) -> None:
    @attrs.define
    class Named(Account):
        kind = "account"

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Named, "x", store=any_store)
        assert ref.stream == "account-x"
        await ref.ask(Deposit(1))
        # Same id, another kind: another actor on another stream, allowed side by side.
        other = await actors.spawn(nursery, Account, "x", store=any_store)
        assert await other.ask(Deposit(2)) == 2
        nursery.cancel_scope.cancel()
    assert await events_in(any_store, "account-x") == [Deposited(1)]


async def test_ask_reraises_the_handler_exception_and_the_actor_goes_on(
        any_store: eventstore.EventStore) -> None:
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Account, "a", store=any_store)
        await ref.ask(Deposit(5))
        with pytest.raises(Refused, match="balance 5 < 9"):
            await ref.ask(Withdraw(9))
        assert await ref.ask(Withdraw(2)) == 3
        nursery.cancel_scope.cancel()


async def test_a_failing_tell_is_logged(
        caplog: pytest.LogCaptureFixture, any_store: eventstore.EventStore) -> None:
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Account, "a", store=any_store)
        with caplog.at_level(logging.ERROR, logger="actors"):
            ref.tell(Withdraw(1))
            assert await ref.ask(Deposit(1)) == 1
        nursery.cancel_scope.cancel()
    [record] = [r for r in caplog.records if r.name == "actors"]
    assert "Account('a')" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], Refused)


async def test_turns_run_one_at_a_time(
        autojump_clock: trio.testing.MockClock, any_store: eventstore.EventStore) -> None:
    trace: list[str] = []

    @attrs.define
    class Slow(actors.Actor):
        async def receive(self, message: Any) -> Any:
            trace.append(f"start {message}")
            await trio.sleep(1)
            trace.append(f"end {message}")

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Slow, "s", store=any_store)
        ref.tell(1)
        ref.tell(2)
        await ref.ask(3)
        nursery.cancel_scope.cancel()
    assert trace == ["start 1", "end 1", "start 2", "end 2", "start 3", "end 3"]


async def test_plain_def_receive_runs_in_a_worker_thread(any_store: eventstore.EventStore) -> None:
    threads: list[int] = []

    @attrs.define
    class Threaded(actors.Actor):
        total: int = 0

        def apply(self, event: Any) -> None:
            self.total += event.amount

        def receive(self, message: Any) -> Any:
            threads.append(threading.get_ident())
            self.emit(Deposited(message))
            if message < 0:
                raise Refused("negative")
            return self.total

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Threaded, "t", store=any_store)
        assert await ref.ask(2) == 2
        assert await ref.ask(3) == 5
        with pytest.raises(Refused):
            await ref.ask(-1)
        assert await ref.ask(1) == 6
        nursery.cancel_scope.cancel()
    assert threads and threading.get_ident() not in threads
    assert await events_in(any_store, "Threaded-t") == [Deposited(2), Deposited(3), Deposited(1)]


async def test_ask_timeout(
        autojump_clock: trio.testing.MockClock, any_store: eventstore.EventStore) -> None:
    @attrs.define
    class Sleepy(actors.Actor):
        async def receive(self, message: Any) -> Any:
            await trio.sleep(10)
            return "late"

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Sleepy, "s", store=any_store)
        started = trio.current_time()
        with pytest.raises(actors.AskTimeout, match="did not answer within 2"):
            await ref.ask("x", timeout=2)
        assert trio.current_time() - started >= 2
        assert await ref.ask("y") == "late"  # the timed-out message was still processed first
        assert trio.current_time() - started >= 20
        with pytest.raises(actors.InvalidActorArgument):
            await ref.ask("z", timeout=0)
        nursery.cancel_scope.cancel()


async def test_version_counts_committed_and_pending_events(
        any_store: eventstore.EventStore) -> None:
    seen: list[int] = []

    @attrs.define
    class Versions(Account):
        async def receive(self, message: Any) -> Any:
            seen.append(self.version)
            self.emit(Deposited(1), Deposited(1))
            seen.append(self.version)
            return None

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Versions, "v", store=any_store)
        await ref.ask("a")
        await ref.ask("b")
        nursery.cancel_scope.cancel()
    assert seen == [0, 2, 2, 4]


# -- turns and commit points --------------------------------------------------------------------


async def test_a_turn_commits_in_one_append_before_the_reply() -> None:
    store = RecordingStore()
    order: list[str] = []
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Account, "a", store=store)
        store.gate = trio.Event()

        async def asker() -> None:
            order.append(f"reply {await ref.ask(Deposit(2, times=3))}")

        nursery.start_soon(asker)
        await trio.testing.wait_all_tasks_blocked()
        assert order == []  # the turn is done, but its append has not finished
        assert await store.last_version("Account-a") == 0
        store.gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert order == ["reply 6"]
        nursery.cancel_scope.cancel()
    assert store.appends("Account-a") == [["test_actor.Deposited"] * 3]  # one append, 3 events


async def test_reply_follows_the_commit_in_the_store_log() -> None:
    store = RecordingStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Account, "a", store=store)
        for n in range(3):
            await ref.ask(Deposit(1))
            store.log.append(("reply", n))
        nursery.cancel_scope.cancel()
    kinds = [kind for kind, _ in store.log if kind in ("append", "reply")]
    assert kinds == ["append", "reply"] * 3


async def test_a_failing_turn_leaves_no_trace() -> None:
    store = RecordingStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Account, "a", store=store)
        await ref.ask(Deposit(10))
        with pytest.raises(RuntimeError, match="the turn failed"):
            await ref.ask(Fail(100))
        # The state was rebuilt from the log: the emitted 100 is gone, in memory and on disk.
        assert await ref.ask(Deposit(1)) == 11
        nursery.cancel_scope.cancel()
    assert await events_in(store, "Account-a") == [Deposited(10), Deposited(1)]
    assert len(store.appends("Account-a")) == 2


async def test_a_failing_turn_keeps_what_it_flushed(any_store: eventstore.EventStore) -> None:
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Account, "a", store=any_store)
        with pytest.raises(RuntimeError):
            await ref.ask(Fail(7, flush=True))  # flush() is a commit point; the second 7 is lost
        assert await ref.ask(Deposit(0, times=0)) == 7
        nursery.cancel_scope.cancel()
    assert await events_in(any_store, "Account-a") == [Deposited(7)]


# -- one actor per stream ----------------------------------------------------------------------


async def test_the_same_actor_twice_in_one_process_is_an_error(
        any_store: eventstore.EventStore) -> None:
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Account, "a", store=any_store)
        with pytest.raises(actors.DuplicateActor, match="already running"):
            await actors.spawn(nursery, Account, "a", store=any_store)
        await ref.ask(Deposit(1))
        await ref.stop()
        again = await actors.spawn(nursery, Account, "a", store=any_store)  # fine once stopped
        assert await again.ask(Deposit(1)) == 2
        nursery.cancel_scope.cancel()


async def test_two_writers_on_one_stream_the_loser_stops(
        store_pair: tuple[eventstore.EventStore, eventstore.EventStore]) -> None:
    one, two = store_pair
    async with trio.open_nursery() as nursery:
        first = await actors.spawn(nursery, Account, "a", store=one)
        second = await actors.spawn(nursery, Account, "a", store=two)  # "another process"
        assert await first.ask(Deposit(5)) == 5
        with pytest.raises(actors.ActorStopped, match="another writer"):
            await second.ask(Deposit(100))
        with pytest.raises(actors.ActorStopped):
            second.tell(Deposit(1))
        assert await first.ask(Deposit(1)) == 6
        nursery.cancel_scope.cancel()
    assert await events_in(one, "Account-a") == [Deposited(5), Deposited(1)]


# -- bad input ------------------------------------------------------------------------------------


async def test_bad_spawns_write_nothing(any_store: eventstore.EventStore) -> None:
    class NotAnActor:
        pass

    class NotAttrs(actors.Actor):
        pass

    @attrs.define
    class NoDefault(actors.Actor):
        x: int

    async with trio.open_nursery() as nursery:
        with pytest.raises(actors.InvalidActorType, match=r"not a subclass of actors\.Actor"):
            await actors.spawn(nursery, NotAnActor, "a", store=any_store)  # type: ignore[arg-type]
        with pytest.raises(actors.InvalidActorType, match=r"attrs\.define"):
            await actors.spawn(nursery, NotAttrs, "a", store=any_store)
        with pytest.raises(actors.InvalidActorType, match="need defaults"):
            await actors.spawn(nursery, NoDefault, "a", store=any_store)
        for bad in ("", None, 5):
            with pytest.raises(actors.InvalidActorArgument, match="non-empty string"):
                await actors.spawn(nursery, Account, bad, store=any_store)  # type: ignore[arg-type]
        with pytest.raises(actors.InvalidActorType, match="EventStore"):
            await actors.spawn(nursery, Account, "a", store=object())  # type: ignore[arg-type]
    assert [e async for e in any_store.read_all()] == []


async def test_messages_to_a_stopped_actor_fail(any_store: eventstore.EventStore) -> None:
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Account, "a", store=any_store)
        await ref.stop()
        with pytest.raises(actors.ActorStopped, match=r"Account\('a'\) is not running"):
            ref.tell(Deposit(1))
        with pytest.raises(actors.ActorStopped):
            await ref.ask(Deposit(1))
    assert await any_store.last_version("Account-a") == 0


async def test_asks_queued_when_the_actor_stops_fail(
        autojump_clock: trio.testing.MockClock, any_store: eventstore.EventStore) -> None:
    @attrs.define
    class Slow(actors.Actor):
        async def receive(self, message: Any) -> Any:
            await trio.sleep(1)

    errors: list[BaseException] = []
    async with trio.open_nursery() as outer, trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Slow, "s", store=any_store)

        async def ask() -> None:
            try:
                await ref.ask("x", timeout=10)  # a bug would show as AskTimeout, not a hang
            except actors.ActorStopped as exc:
                errors.append(exc)

        for _ in range(3):
            outer.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()  # the actor's nursery goes away mid-turn
    assert len(errors) == 3


async def test_emitting_a_non_attrs_event_writes_nothing(any_store: eventstore.EventStore) -> None:
    @attrs.define
    class Sloppy(Account):
        async def receive(self, message: Any) -> Any:
            self.emit(Deposited(1))
            self.emit(message)
            return self.balance

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Sloppy, "s", store=any_store)
        for bad in ({"amount": 1}, Deposited, 3):
            with pytest.raises(actors.InvalidActorType, match="attrs"):
                await ref.ask(bad)
        assert await ref.ask(Deposited(2)) == 3  # the actor goes on, state from the log
        nursery.cancel_scope.cancel()
    assert await events_in(any_store, "Sloppy-s") == [Deposited(1), Deposited(2)]


async def test_system_events_cannot_be_emitted_by_users(any_store: eventstore.EventStore) -> None:
    @attrs.define
    class Forger(actors.Actor):
        async def receive(self, message: Any) -> Any:
            self.emit(actors.RunCompleted())

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Forger, "f", store=any_store)
        with pytest.raises(actors.InvalidActorType, match="runtime only"):
            await ref.ask("x")
        nursery.cancel_scope.cancel()
    assert await any_store.last_version("Forger-f") == 0


async def test_emit_and_flush_outside_a_turn_fail(any_store: eventstore.EventStore) -> None:
    instances: list[Account] = []

    @attrs.define
    class Leaky(Account):
        async def on_start(self) -> None:
            instances.append(self)

    with pytest.raises(actors.ActorError, match="not running"):
        Account().emit(Deposited(1))
    async with trio.open_nursery() as nursery:
        await actors.spawn(nursery, Leaky, "l", store=any_store)
        [leaky] = instances
        with pytest.raises(actors.NotInTurn, match="inside a turn"):
            leaky.emit(Deposited(1))
        with pytest.raises(actors.NotInTurn):
            await leaky.flush()
        nursery.cancel_scope.cancel()
    assert leaky.balance == 0
    assert await any_store.last_version("Leaky-l") == 0


# -- recovery and snapshots ---------------------------------------------------------------------


async def fill(store: eventstore.EventStore, stream: str, n: int, *, batch: int = 1000) -> None:
    """Write ``n`` ``Deposited(1)`` events straight into ``stream``."""
    for start in range(0, n, batch):
        await store.append(stream, [store.codec.new_event(Deposited(1))
                                    for _ in range(min(batch, n - start))])


async def recovered_balance(store: eventstore.EventStore, cls: type[Account],
                            actor_id: str) -> int:
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, cls, actor_id, store=store)
        balance: int = await ref.ask(Deposit(0, times=0))
        await ref.stop()
    return balance


async def test_recovery_reads_the_log_in_pages() -> None:
    store = RecordingStore(page_size=4)
    await fill(store, "Account-a", 10)
    store.log.clear()
    assert await recovered_balance(store, Account, "a") == 10
    pages = [args for kind, args in store.log if kind == "page"]
    assert pages == [("Account-a", 1, 4, 4), ("Account-a", 5, 4, 4), ("Account-a", 9, 4, 2)]


async def test_recovery_memory_does_not_grow_with_the_log() -> None:
    # Everything a replay keeps (state, projections) is tiny here, so the peak during recovery is
    # the pages in flight: ten times the log must not cost ten times the memory.
    @attrs.define
    class Counter(Account):
        def apply(self, event: Any) -> None:
            self.balance += event.amount

    peaks = []
    for n in (2_000, 20_000):
        store = MemoryEventStore(page_size=100)
        await fill(store, f"Counter-{n}", n)
        gc.collect()
        tracemalloc.start()
        try:
            assert await recovered_balance(store, Counter, str(n)) == n
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] < 2 * peaks[0], peaks


@attrs.define
class Snappy(Account):
    snapshot_every = 10


async def test_snapshots_every_n_events_and_recovery_from_the_newest() -> None:
    store = RecordingStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Snappy, "s", store=store)
        for _ in range(25):
            await ref.ask(Deposit(1))
        nursery.cancel_scope.cancel()
    snapshot = await store.load_snapshot("Snappy-s")
    assert snapshot is not None and snapshot.version == 20
    # The attrs fields, through cattrs: the list field is there as JSON data.
    assert snapshot.state["state"] == {"balance": 20, "history": list(range(1, 21))}
    store.log.clear()
    assert await recovered_balance(store, Snappy, "s") == 25
    pages = [args for kind, args in store.log if kind == "page"]
    assert pages == [("Snappy-s", 21, 500, 5)]  # only the tail after the snapshot was read


async def test_a_bad_snapshot_falls_back_to_a_full_replay() -> None:
    store = RecordingStore()
    await fill(store, "Snappy-s", 30)
    await store.save_snapshot("Snappy-s", 20, {"state": {"balance": "not a number"}})
    store.log.clear()
    with pytest.warns(RuntimeWarning, match="cannot be restored"):
        assert await recovered_balance(store, Snappy, "s") == 30
    pages = [args for kind, args in store.log if kind == "page"]
    assert pages == [("Snappy-s", 1, 500, 30)]


async def test_an_undecodable_snapshot_falls_back_to_a_full_replay(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "s.db"
    async with SQLiteEventStore(path) as store:
        await fill(store, "Snappy-s", 12)
        await store.save_snapshot("Snappy-s", 10, {"state": {}})
    with sqlite3.connect(path) as db:
        db.execute("UPDATE snapshots SET state = '{not json'")
    async with SQLiteEventStore(path) as store:
        with pytest.warns(RuntimeWarning, match="cannot be decoded"):
            assert await recovered_balance(store, Snappy, "s") == 12


async def test_snapshot_and_restore_can_be_overridden(any_store: eventstore.EventStore) -> None:
    restored: list[Any] = []

    @attrs.define
    class Compact(Account):
        snapshot_every = 3

        def snapshot(self) -> Any:
            return [self.balance]

        def restore(self, state: Any) -> None:
            restored.append(state)
            self.balance = state[0]

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Compact, "c", store=any_store)
        await ref.ask(Deposit(2, times=4))  # one turn of 4 events: a snapshot at version 4
        nursery.cancel_scope.cancel()
    snapshot = await any_store.load_snapshot("Compact-c")
    assert snapshot is not None
    assert (snapshot.version, snapshot.state["state"]) == (4, [8])
    assert await recovered_balance(any_store, Compact, "c") == 8
    assert restored == [[8]]


async def test_snapshot_fields_go_through_cattrs(any_store: eventstore.EventStore) -> None:
    @eventstore.event_type("test_actor.Stamped")
    @attrs.frozen
    class Stamped:
        at: datetime

    @attrs.define
    class Stamps(actors.Actor):
        snapshot_every = 2
        stamps: tuple[datetime, ...] = ()

        def apply(self, event: Any) -> None:
            self.stamps = (*self.stamps, event.at)

        async def receive(self, message: Any) -> Any:
            self.emit(Stamped(message))

    moments = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC))
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Stamps, "s", store=any_store)
        for moment in moments:
            await ref.ask(moment)
        nursery.cancel_scope.cancel()
    snapshot = await any_store.load_snapshot("Stamps-s")
    assert snapshot is not None and snapshot.version == 2
    assert all(isinstance(v, str) for v in snapshot.state["state"]["stamps"])  # JSON data
    got: list[Any] = []

    @attrs.define
    class Check(Stamps):
        kind = "Stamps"

        async def on_start(self) -> None:
            got.append(self.stamps)

    async with trio.open_nursery() as nursery:
        await actors.spawn(nursery, Check, "s", store=any_store)
        nursery.cancel_scope.cancel()
    assert got == [moments]


# -- supervision of run() ----------------------------------------------------------------------


async def test_restart_backs_off_exponentially(autojump_clock: trio.testing.MockClock) -> None:
    starts: list[float] = []

    @attrs.define
    class Flaky(actors.Actor):
        supervision = actors.Restart(initial_backoff=1, max_backoff=4, max_restarts=5)

        async def run(self) -> None:
            starts.append(trio.current_time())
            raise RuntimeError("flaky")

        async def receive(self, message: Any) -> Any:
            return message

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Flaky, "f", store=MemoryEventStore())
        assert await ref.ask("still answering") == "still answering"
        await trio.sleep(100)
        with pytest.raises(actors.ActorStopped, match="run"):
            ref.tell("x")
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(starts)]
    assert gaps == [1, 2, 4, 4, 4]  # 6 runs: the first and 5 restarts, then it stops


async def test_restart_until_run_succeeds(autojump_clock: trio.testing.MockClock) -> None:
    runs: list[int] = []

    @attrs.define
    class Eventually(Account):
        supervision = actors.Restart(initial_backoff=0.5)

        async def run(self) -> None:
            runs.append(self.balance)
            self.emit(Deposited(1))
            if len(runs) < 3:
                raise RuntimeError("not yet")  # its deposit is rolled back

    store = MemoryEventStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Eventually, "e", store=store)
        await trio.sleep(10)
        assert await ref.ask(Deposit(0, times=0)) == 1
        nursery.cancel_scope.cancel()
    assert runs == [0, 0, 0]
    assert await events_in(store, "Eventually-e") == [Deposited(1), actors.RunCompleted()]


async def test_stop_policy_stops_the_actor(
        autojump_clock: trio.testing.MockClock, any_store: eventstore.EventStore) -> None:
    @attrs.define
    class Fragile(Account):
        supervision = actors.Stop()

        async def run(self) -> None:
            self.emit(Deposited(3))
            await self.flush()
            await trio.sleep(1)
            raise RuntimeError("broken")

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Fragile, "f", store=any_store)
        assert await ref.ask(Deposit(1)) == 4
        await trio.sleep(2)
        with pytest.raises(actors.ActorStopped, match="broken"):
            await ref.ask(Deposit(1))
    assert await events_in(any_store, "Fragile-f") == [Deposited(3), Deposited(1)]


async def test_escalate_reraises_into_the_nursery(any_store: eventstore.EventStore) -> None:
    @attrs.define
    class Loud(actors.Actor):
        supervision = actors.Escalate()

        async def run(self) -> None:
            raise KeyError("escalated")

    with pytest.raises(BaseExceptionGroup) as info:
        async with trio.open_nursery() as nursery:
            await actors.spawn(nursery, Loud, "l", store=any_store)
            await trio.sleep_forever()
    assert info.group_contains(KeyError, match="escalated")


async def test_run_interleaves_with_messages_and_completes(
        any_store: eventstore.EventStore) -> None:
    step = trio.Event()

    @attrs.define
    class Worker(Account):
        async def run(self) -> None:
            self.emit(Deposited(100))
            await step.wait()  # messages are served while run() waits
            self.emit(Deposited(1000))

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Worker, "w", store=any_store)
        # The turn sees run()'s pending event, but commits only its own: run() has not
        # reached a commit point, so its event stays pending, after the message's in the log.
        assert await ref.ask(Deposit(1)) == 101
        assert await events_in(any_store, "Worker-w") == [Deposited(1)]
        step.set()
        await trio.testing.wait_all_tasks_blocked()
        assert await ref.ask(Deposit(1)) == 1102
        nursery.cancel_scope.cancel()
    events = await events_in(any_store, "Worker-w")
    assert events == [Deposited(1), Deposited(100), Deposited(1000), actors.RunCompleted(),
                      Deposited(1)]
    # A finished run() is not started again.
    assert await recovered_balance(any_store, Worker, "w") == 1102
