"""Projections: order, offsets, exactly-once SQL, batches, failures, operations, bad input."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

import actors
import eventstore
from actors.testing import feed
from eventstore import EventStore, RecordedEvent
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore


@eventstore.event_type("test_projection.Deposited")
@attrs.frozen
class Deposited:
    account: str
    amount: int


@eventstore.event_type("test_projection.Withdrawn")
@attrs.frozen
class Withdrawn:
    account: str
    amount: int


@eventstore.event_type("test_projection.Noise")
@attrs.frozen
class Noise:
    n: int


class Totals(actors.Projection):
    """An in-memory read model: balance per account, and every position seen."""

    name = "totals"
    types = [Deposited, Withdrawn]
    backoff = 0.001

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.seen: list[int] = []

    async def handle(self, event: Any, recorded: RecordedEvent) -> None:
        sign = 1 if isinstance(event, Deposited) else -1
        self.balances[event.account] = self.balances.get(event.account, 0) + sign * event.amount
        self.seen.append(recorded.position)

    async def reset(self) -> None:
        self.balances.clear()
        self.seen.clear()


class SqlBalances(actors.Projection):
    """The same model in a SQLite table, exactly once."""

    name = "balances"
    types = [Deposited, Withdrawn]
    batch_size = 7
    backoff = 0.001

    async def setup(self, tx: actors.Transaction) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS balances "
                   "(account TEXT PRIMARY KEY, balance INTEGER NOT NULL, events INTEGER NOT NULL)")

    async def reset(self, tx: actors.Transaction) -> None:
        tx.execute("DELETE FROM balances")

    async def handle(self, event: Any, recorded: RecordedEvent, tx: actors.Transaction) -> None:
        amount = event.amount if isinstance(event, Deposited) else -event.amount
        tx.execute("INSERT INTO balances (account, balance, events) VALUES (?, ?, 1) "
                   "ON CONFLICT (account) DO UPDATE SET balance = balance + excluded.balance, "
                   "events = events + 1", (event.account, amount))


def rows(store: EventStore) -> dict[str, tuple[int, int]]:
    assert isinstance(store, SQLiteEventStore)
    conn = sqlite3.connect(store.path)
    try:
        return {a: (b, n) for a, b, n in conn.execute("SELECT * FROM balances")}
    finally:
        conn.close()


async def fill(store: EventStore, count: int = 30) -> dict[str, int]:
    expected: dict[str, int] = {}
    for n in range(count):
        account = f"a{n % 3}"
        event: Any = Deposited(account, n + 1) if n % 4 else Withdrawn(account, 1)
        await store.append(f"Account-{account}", [store.codec.new_event(event)])
        await store.append("noise", [store.codec.new_event(Noise(n))])
        sign = 1 if isinstance(event, Deposited) else -1
        expected[account] = expected.get(account, 0) + sign * event.amount
    return expected


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteEventStore]:
    async with SQLiteEventStore(tmp_path / "events.db", synchronous="OFF") as store:
        yield store


async def test_catch_up_then_live_in_position_order() -> None:
    async with MemoryEventStore() as store, trio.open_nursery() as nursery:
        expected = await fill(store, 10)
        totals = Totals()
        runner = await nursery.start(actors.run_projection, store, totals)
        await runner.wait_for(await store.head_position())
        assert totals.balances == expected and runner.state == "live"
        await store.append("Account-a9", [store.codec.new_event(Deposited("a9", 5))])
        await runner.wait_for(await store.head_position())
        assert totals.balances["a9"] == 5
        assert totals.seen == sorted(totals.seen) and len(totals.seen) == 11
        offset = await store.load_offset("totals")
        assert offset is not None and offset.position == totals.seen[-1]
        assert await runner.lag() == actors.Lag(0, 0.0)
        nursery.cancel_scope.cancel()
    assert runner.state == "stopped"


async def test_a_restart_resumes_after_the_stored_offset() -> None:
    async with MemoryEventStore() as store:
        await fill(store, 6)
        totals = Totals()
        async with trio.open_nursery() as nursery:
            runner = await nursery.start(actors.run_projection, store, totals)
            await runner.wait_for(await store.head_position())
            nursery.cancel_scope.cancel()
        handled = list(totals.seen)
        await fill(store, 3)
        async with trio.open_nursery() as nursery:
            runner = await nursery.start(actors.run_projection, store, totals)
            await runner.wait_for(await store.head_position())
            nursery.cancel_scope.cancel()
        assert totals.seen[:len(handled)] == handled
        assert len(totals.seen) == len(set(totals.seen)) == 9


async def test_sql_is_written_exactly_once_with_the_offset(
        sqlite_store: SQLiteEventStore) -> None:
    expected = await fill(sqlite_store)
    async with trio.open_nursery() as nursery:
        runner = await nursery.start(actors.run_projection, sqlite_store, SqlBalances())
        await runner.wait_for(await sqlite_store.head_position())
        nursery.cancel_scope.cancel()
    assert {a: b for a, (b, _) in rows(sqlite_store).items()} == expected
    assert sum(n for _, n in rows(sqlite_store).values()) == 30
    # A runner started again from a stale offset cannot write: its commit is refused.
    with pytest.raises(eventstore.OffsetConflict):
        await sqlite_store.save_offset("balances", 3, expected=0,
                                       statements=[("DELETE FROM balances", ())])
    assert sum(n for _, n in rows(sqlite_store).values()) == 30


async def test_batches_store_the_offset_once_each(sqlite_store: SQLiteEventStore) -> None:
    await fill(sqlite_store, 20)
    saves: list[int] = []
    original = sqlite_store.save_offset

    async def counting(name: str, position: int, **kwargs: Any) -> None:
        saves.append(position)
        await original(name, position, **kwargs)

    sqlite_store.save_offset = counting  # type: ignore[method-assign]
    batches: list[int] = []

    class Batched(actors.Projection):
        name = "batched"
        types = [Deposited, Withdrawn]
        batch_size = 8

        async def handle_batch(self, batch: list[tuple[Any, RecordedEvent]]) -> None:
            batches.append(len(batch))

    async with trio.open_nursery() as nursery:
        runner = await nursery.start(actors.run_projection, sqlite_store, Batched())
        await runner.wait_for(await sqlite_store.head_position())
        nursery.cancel_scope.cancel()
    assert batches == [8, 8, 4]
    assert len(saves) == 1 + 3  # the start, then once per batch


async def test_a_failing_handler_is_retried_then_stops_the_projection_visibly(
        autojump_clock: Any) -> None:
    calls: list[int] = []

    class Flaky(Totals):
        name = "flaky"
        max_attempts = 3
        backoff = 1.0
        failures = 2

        async def handle(self, event: Any, recorded: RecordedEvent) -> None:
            calls.append(recorded.position)
            if self.failures and recorded.position == 3:
                self.failures -= 1
                raise RuntimeError("flaky")
            await super().handle(event, recorded)

    async with MemoryEventStore() as store:
        await fill(store, 4)
        flaky = Flaky()
        flaky.batch_size = 1
        async with trio.open_nursery() as nursery:
            runner = await nursery.start(actors.run_projection, store, flaky)
            await runner.wait_for(await store.head_position())
            nursery.cancel_scope.cancel()
        assert flaky.seen == [1, 3, 5, 7] and calls.count(3) == 3

        class Broken(Totals):
            name = "broken"
            max_attempts = 2

            async def handle(self, event: Any, recorded: RecordedEvent) -> None:
                if recorded.position == 3:
                    raise ValueError("bad data")
                await super().handle(event, recorded)

        broken = Broken()
        broken.batch_size = 1
        runner = actors.ProjectionRunner(store, broken)
        with pytest.raises(actors.ProjectionFailed) as failed:
            await runner.run()
        assert (failed.value.projection, failed.value.position) == ("broken", 1)
        assert "ValueError: bad data" in str(failed.value)
        assert runner.state == "failed" and runner.error is failed.value
        stored = await store.load_offset("broken")
        assert stored is not None and (stored.position, stored.state) == (1, "failed")
        assert stored.error == "ValueError: bad data"
        assert broken.seen == [1]  # nothing after the failure was skipped to


async def test_pause_resume_and_rebuild(autojump_clock: Any) -> None:
    async with MemoryEventStore() as store, trio.open_nursery() as nursery:
        expected = await fill(store, 5)
        totals = Totals()
        runner = await nursery.start(actors.run_projection, store, totals)
        await runner.wait_for(await store.head_position())
        runner.pause()
        await trio.sleep(1)
        assert runner.state == "paused"
        stored = await store.load_offset("totals")
        assert stored is not None and stored.state == "paused"
        await store.append("Account-a0", [store.codec.new_event(Deposited("a0", 100))])
        await trio.sleep(1)
        assert totals.balances == expected
        lag = await runner.lag()
        assert lag.positions == 1 and lag.seconds >= 0
        runner.resume()
        await runner.wait_for(await store.head_position())
        assert totals.balances["a0"] == expected["a0"] + 100
        before = dict(totals.balances)
        await runner.rebuild()
        await runner.wait_for(await store.head_position())
        assert totals.balances == before and len(totals.seen) == 6
        # A rebuild asked for from outside (the CLI): picked up within check_every.
        await store.save_offset("totals", 0, state="rebuild")
        await trio.sleep(3)
        await runner.wait_for(await store.head_position())
        assert totals.balances == before and len(totals.seen) == 6
        stored = await store.load_offset("totals")
        assert stored is not None and stored.state == "running"
        nursery.cancel_scope.cancel()


async def test_a_filtered_projection_is_not_behind_on_others_events(autojump_clock: Any) -> None:
    async with MemoryEventStore() as store, trio.open_nursery() as nursery:
        for n in range(250):
            await store.append("noise", [store.codec.new_event(Noise(n))])
        runner = await nursery.start(actors.run_projection, store, Totals())
        await runner.wait_for(250)
        assert await runner.lag() == actors.Lag(0, 0.0)
        stored = await store.load_offset("totals")
        assert stored is not None and stored.position == 250  # skipped in one commit
        nursery.cancel_scope.cancel()


async def test_an_actor_system_hosts_projections() -> None:
    @attrs.define
    class Account(actors.Actor):
        kind = "Account"
        balance: int = 0

        def apply(self, event: Any) -> None:
            self.balance += event.amount

        async def receive(self, amount: int) -> int:
            self.emit(Deposited(self.id, amount))
            return self.balance

    totals = Totals()
    async with MemoryEventStore() as store, \
            actors.ActorSystem(store, actors=[Account], projections=[totals]) as system:
        for n in range(5):
            await system.ref(Account, f"a{n % 2}").ask(n + 1)
        runner = system.projection("totals")
        await runner.wait_for(await store.head_position())
        assert totals.balances == {"a0": 9, "a1": 6}
        with pytest.raises(actors.InvalidActorArgument, match="no projection named"):
            system.projection("nope")


async def test_plain_def_handlers_run_in_a_worker_thread() -> None:
    threads: set[int] = set()

    class Plain(Totals):
        name = "plain"

        def handle(self, event: Any, recorded: RecordedEvent) -> None:  # type: ignore[override]
            threads.add(threading.get_ident())
            self.seen.append(recorded.position)

    async with MemoryEventStore() as store, trio.open_nursery() as nursery:
        await fill(store, 3)
        plain = Plain()
        runner = await nursery.start(actors.run_projection, store, plain)
        await runner.wait_for(await store.head_position())
        assert len(plain.seen) == 3 and threading.get_ident() not in threads
        nursery.cancel_scope.cancel()


async def test_sql_on_the_memory_store_fails_clearly() -> None:
    async with MemoryEventStore() as store:
        await fill(store, 2)
        with pytest.raises(actors.ProjectionFailed, match="no SQL"):
            await actors.run_projection(store, SqlBalances())


# -- bad input ------------------------------------------------------------------------------------

class Named(actors.Projection):
    async def handle(self, event: Any, recorded: RecordedEvent) -> None:
        pass


@pytest.mark.parametrize(("attributes", "error", "match"), [
    ({"name": ""}, actors.InvalidActorArgument, "non-empty string"),
    ({"name": None}, actors.InvalidActorArgument, "non-empty string"),
    ({"name": "p", "types": [Deposited, "Withdrawn"]}, actors.InvalidActorType, "not a class"),
    ({"name": "p", "types": [Deposited(a, 1) for a in "x"]}, actors.InvalidActorType,
     "not a class"),
    ({"name": "p", "types": Deposited}, actors.InvalidActorType, "list of event classes"),
    ({"name": "p", "types": []}, actors.InvalidActorArgument, "empty"),
    ({"name": "p", "batch_size": 0}, actors.InvalidActorArgument, "batch_size"),
    ({"name": "p", "backoff": -1}, actors.InvalidActorArgument, "backoff"),
])
async def test_a_malformed_projection_gets_a_clear_error(
        attributes: dict[str, Any], error: type[Exception], match: str) -> None:
    projection = type("Bad", (Named,), attributes)()
    with pytest.raises(error, match=match):
        actors.ProjectionRunner(MemoryEventStore(), projection)


async def test_handlers_of_the_wrong_shape_get_a_clear_error() -> None:
    class NoHandler(actors.Projection):
        name = "p"

    class TooMany(actors.Projection):
        name = "p"

        async def handle(self, event: Any, recorded: Any, tx: Any, extra: Any) -> None:
            pass

    class Generator(actors.Projection):
        name = "p"

        async def handle(self, event: Any, recorded: Any) -> AsyncIterator[None]:  # type: ignore[override]
            yield None

    for cls, match in ((NoHandler, "must define"), (TooMany, "parameter"),
                       (Generator, "generator")):
        with pytest.raises(actors.InvalidActorType, match=match):
            actors.ProjectionRunner(MemoryEventStore(), cls())
    with pytest.raises(actors.InvalidActorType, match=r"not an actors\.Projection"):
        actors.ProjectionRunner(MemoryEventStore(), object())  # type: ignore[arg-type]


async def test_a_name_used_twice_gets_a_clear_error() -> None:
    async with MemoryEventStore() as store:
        with pytest.raises(actors.InvalidActorArgument, match="two projections are named"):
            actors.ActorSystem(store, projections=[Totals(), Totals()])
        async with trio.open_nursery() as nursery:
            await nursery.start(actors.run_projection, store, Totals())
            with pytest.raises(actors.InvalidActorArgument, match="already runs"):
                await actors.run_projection(store, Totals())
            nursery.cancel_scope.cancel()


# -- the test kit ---------------------------------------------------------------------------------

async def test_feed_runs_a_projection_without_a_store() -> None:
    totals = Totals()
    handled = await feed(totals, [Deposited("a", 5), Noise(1), Withdrawn("a", 2)])
    assert handled == 2 and totals.balances == {"a": 3} and totals.seen == [1, 3]

    db = sqlite3.connect(":memory:")
    await feed(SqlBalances(), [Deposited("a", 5)] * 10 + [Withdrawn("b", 1)], db=db)
    assert sorted(db.execute("SELECT * FROM balances")) == [("a", 50, 10), ("b", -1, 1)]
    with pytest.raises(actors.InvalidActorArgument, match="db="):
        await feed(SqlBalances(), [Deposited("a", 5)])
