"""``PostgresEventStore``: the conformance suite on a real server, plus what only a server has.

Each test works in its own schema (``t_<hex>``), dropped afterwards, so runs never see each other.
Without a server every test that needs one skips with the reason given by ``postgres_url``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
import trio

from eventstore import (
    NO_STREAM,
    AppendResult,
    EventStore,
    EventStoreError,
    InvalidArgument,
    NewEvent,
    RecordedEvent,
    SchemaError,
    WrongExpectedVersion,
)
from eventstore.postgres import SCHEMA_VERSION, ConnectionFailed, PostgresEventStore
from eventstore.testing import StoreConformance, collect, events

pytestmark = pytest.mark.postgres


def _sql(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


async def run_sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    return await trio.to_thread.run_sync(_sql, url, query, params)


@pytest.fixture
def schema(postgres_schema: str) -> str:
    return postgres_schema


@pytest.fixture
def pg_store(postgres_store: PostgresEventStore) -> PostgresEventStore:
    return postgres_store


class TestPostgresStore(StoreConformance):
    placeholder = "%s"

    async def sql_rows(self, store: EventStore, query: str) -> list[tuple[Any, ...]]:
        assert isinstance(store, PostgresEventStore)
        def work() -> list[tuple[Any, ...]]:
            with psycopg.connect(store._conninfo, autocommit=True,
                                 options=f"-c search_path={store.schema}") as conn:
                return conn.execute(query).fetchall()

        return await trio.to_thread.run_sync(work)

    @pytest.fixture
    async def store(self, pg_store: PostgresEventStore) -> AsyncIterator[EventStore]:
        yield pg_store

    async def corrupt_event(self, store: EventStore, stream: str, version: int) -> None:
        # data is JSON text (not jsonb), so a bad row can be written with plain SQL.
        assert isinstance(store, PostgresEventStore)
        await run_sql(store._conninfo,
                      f'UPDATE "{store.schema}".events SET data = %s WHERE stream = %s '
                      "AND version = %s", "{not json", stream, version)

    async def corrupt_snapshot(self, store: EventStore, stream: str, version: int) -> None:
        assert isinstance(store, PostgresEventStore)
        await run_sql(store._conninfo,
                      f'UPDATE "{store.schema}".snapshots SET state = %s WHERE stream = %s '
                      "AND version = %s", "{not json", stream, version)


# -- the schema -----------------------------------------------------------------------------------


async def test_data_survives_reopen(postgres_url: str, schema: str) -> None:
    async with PostgresEventStore(postgres_url, schema=schema) as store:
        first = await store.append("s", events(3))
        await store.save_snapshot("s", 3, {"n": 3})
    async with PostgresEventStore(postgres_url, schema=schema) as store:
        assert [e.data["n"] for e in await collect(store.read("s"))] == [1, 2, 3]
        assert await store.last_version("s") == 3
        snapshot = await store.load_snapshot("s")
        assert snapshot is not None and snapshot.state == {"n": 3}
        again = await store.append("s", events(1), expected_version=3)
        assert again.position > first.position


async def test_racing_stores_create_the_schema_once(postgres_url: str, schema: str) -> None:
    async def first_use(n: int) -> None:
        async with PostgresEventStore(postgres_url, schema=schema) as store:
            await store.append(f"s{n}", events(1))

    async with trio.open_nursery() as nursery:
        for n in range(4):
            nursery.start_soon(first_use, n)
    async with PostgresEventStore(postgres_url, schema=schema) as store:
        assert len(await collect(store.read_all())) == 4


async def test_a_newer_schema_is_refused(postgres_url: str, schema: str) -> None:
    async with PostgresEventStore(postgres_url, schema=schema) as store:
        await store.append("s", events(1))
    await run_sql(postgres_url, f'UPDATE "{schema}".schema_version SET version = %s',
                  SCHEMA_VERSION + 1)
    async with PostgresEventStore(postgres_url, schema=schema) as store:
        with pytest.raises(SchemaError, match=rf"version {SCHEMA_VERSION + 1}.*upgrade"):
            await store.last_version("s")
        with pytest.raises(SchemaError):
            await store.append("s", events(1))


@pytest.mark.parametrize("schema_name", ["", "1abc", "pg_x", "a-b", 'a"b', "x" * 49, None])
def test_unsafe_schema_names_are_refused(schema_name: Any) -> None:
    with pytest.raises(InvalidArgument, match="schema"):
        PostgresEventStore("postgresql://localhost/test", schema=schema_name)


def test_bad_arguments_are_refused() -> None:
    for conninfo in ["postgresql://host:notaport:/x?=", "postgresql://h/db?x=\ud800", "junk"]:
        with pytest.raises(InvalidArgument, match="conninfo"):
            PostgresEventStore(conninfo)
    with pytest.raises(InvalidArgument, match="readers"):
        PostgresEventStore("postgresql://localhost/test", readers=0)
    timeout: Any
    for timeout in [0, float("inf"), float("nan"), "5"]:
        with pytest.raises(InvalidArgument, match="connect_timeout"):
            PostgresEventStore("postgresql://localhost/test", connect_timeout=timeout)


# -- group commit ---------------------------------------------------------------------------------


async def test_a_conflict_in_a_shared_batch_fails_alone(pg_store: PostgresEventStore) -> None:
    outcomes: dict[str, object] = {}

    async def append(name: str, stream: str) -> None:
        try:
            outcomes[name] = await pg_store.append(stream, events(2), expected_version=NO_STREAM)
        except WrongExpectedVersion as exc:
            outcomes[name] = exc

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(append, f"same{n}", "same")
            nursery.start_soon(append, f"own{n}", f"own{n}")
    lost = [o for o in outcomes.values() if isinstance(o, WrongExpectedVersion)]
    assert len(lost) == 19
    assert await pg_store.last_version("same") == 2
    assert len(await collect(pg_store.read_all())) == 2 * 21


async def test_appends_sharing_a_stream_or_ids_in_one_batch(pg_store: PostgresEventStore) -> None:
    retried = events(2)
    results: list[AppendResult] = []
    twice: list[AppendResult] = []

    async def append(batch: list[NewEvent], into: list[AppendResult]) -> None:
        into.append(await pg_store.append("s", batch))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(append, events(1), results)
        nursery.start_soon(append, retried, twice)
        nursery.start_soon(append, retried, twice)  # the same ids again: an idempotent retry
    assert twice[0] == twice[1]
    recorded = await collect(pg_store.read("s"))
    assert [e.version for e in recorded] == list(range(1, 8))
    assert sorted(r.version for r in results) == sorted(
        e.version for e in recorded if e.id not in {n.id for n in retried})


async def test_text_postgresql_cannot_store_is_refused_alone(pg_store: PostgresEventStore) -> None:
    results: list[object] = []

    async def append(batch: list[NewEvent]) -> None:
        try:
            results.append(await pg_store.append("s", batch))
        except EventStoreError as exc:
            results.append(exc)

    async with trio.open_nursery() as nursery:  # refused before they join the good one's batch
        for batch in ([NewEvent("A\x00B", {})], [NewEvent("A", {"text": "\ud800"})], events(1)):
            nursery.start_soon(append, batch)
    assert sorted(type(r).__name__ for r in results) == [
        "AppendResult", "InvalidArgument", "SerializationError"]
    with pytest.raises(InvalidArgument, match="UTF-8"):
        await collect(pg_store.read("\ud800"))
    assert await pg_store.last_version("s") == 1


async def test_a_statement_the_server_refuses_writes_nothing(
        postgres_url: str, pg_store: PostgresEventStore) -> None:
    await pg_store.append("s", events(1))
    await run_sql(postgres_url, f'ALTER TABLE "{pg_store.schema}".events '
                  "ADD CONSTRAINT no_forbidden CHECK (type <> 'Forbidden')")
    with pytest.raises(EventStoreError, match=r"no_forbidden.*nothing was written") as caught:
        await pg_store.append("s", events(2, "Forbidden"))
    assert not isinstance(caught.value, ConnectionFailed)
    assert await pg_store.last_version("s") == 1
    assert (await pg_store.append("s", events(1))).version == 2  # the connection still works


@pytest.mark.parametrize("seed", range(12))
async def test_sides_in_rounds_give_what_one_by_one_gives(
        pg_store: PostgresEventStore, seed: int) -> None:
    """Each batch through the writer; the same appends one by one on the memory store, round by
    round (``append_rounds``: an append after every one it shares a stream, an id or a message
    with), the order the batch's statements took them in."""
    import random
    import uuid

    from side_batches import inbox_state, side_batch

    from eventstore._group_commit import AppendRequest
    from eventstore._postgres_sql import append_rounds
    from eventstore.memory import MemoryEventStore

    rng = random.Random(seed)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(8)]
    done: list[AppendRequest] = []
    await pg_store.work()  # creates the schema, as any first call does
    async with MemoryEventStore() as memory:
        for _ in range(8):
            batch = side_batch(rng, ids, done)
            await pg_store._write_batch(batch)
            rounds = append_rounds([(r.stream, r.events, r.expected, r.side) for r in batch])
            for idx in [idx for params in rounds for idx in params[0]]:
                request = batch[idx]
                try:
                    expected: object = (await memory._append(
                        request.stream, request.events, request.expected, request.side)).version
                except EventStoreError as exc:
                    expected = type(exc)
                outcome = request.result
                if not request.events and not isinstance(outcome, BaseException):
                    continue  # an enqueue's result is not used
                assert (type(outcome) if isinstance(outcome, BaseException)
                        else getattr(outcome, "version", None)) == expected
            assert await inbox_state(pg_store) == await inbox_state(memory)


# -- gap-safe global order across processes --------------------------------------------------------

WRITER = """
import sys, trio
from eventstore import NewEvent
from eventstore.postgres import PostgresEventStore

url, schema, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

async def main():
    async with PostgresEventStore(url, schema=schema) as store:
        async def task(t):
            for n in range(count):
                events = [NewEvent("E", {"w": name, "t": t, "n": n}) for _ in range(1 + n % 3)]
                await store.append(f"{name}-{t}", events)
                if n % 4 == 0:
                    await trio.sleep(0.001 * (t + 1))
        async with trio.open_nursery() as nursery:
            for t in range(3):
                nursery.start_soon(task, t)

trio.run(main)
"""


async def test_tailing_readers_never_skip_while_processes_race(
        postgres_url: str, schema: str) -> None:
    writers, per_task = 4, 40
    expected = writers * 3 * sum(1 + n % 3 for n in range(per_task))
    async with PostgresEventStore(postgres_url, schema=schema, poll_interval=0.05) as store:
        await store.last_version("init")  # create the schema before the writers race
        subscribed: list[RecordedEvent] = []
        polled: list[RecordedEvent] = []

        async def subscriber() -> None:
            async for event in store.subscribe():
                subscribed.append(event)

        async def poller() -> None:
            after = 0
            while True:
                async for event in store.read_all(after_position=after):
                    polled.append(event)
                    after = event.position
                await trio.sleep(0.001)

        async def writer(name: str) -> None:
            await trio.run_process([sys.executable, "-c", WRITER, postgres_url, schema, name,
                                    str(per_task)], capture_stderr=True)

        def behind(seen: list[RecordedEvent], last: int) -> bool:
            return not seen or seen[-1].position < last

        with trio.fail_after(60):
            async with trio.open_nursery() as readers:
                readers.start_soon(subscriber)
                readers.start_soon(poller)
                async with trio.open_nursery() as writing:
                    for n in range(writers):
                        writing.start_soon(writer, f"w{n}")
                stored = [e.position for e in await collect(store.read_all())]
                while behind(subscribed, stored[-1]) or behind(polled, stored[-1]):
                    await trio.sleep(0.01)
                readers.cancel_scope.cancel()
    assert len(stored) == len(set(stored)) == expected
    # A reader that passed a position whose transaction had not committed yet would miss it.
    assert [e.position for e in subscribed] == stored
    assert [e.position for e in polled] == stored
    for n in range(writers):
        for t in range(3):
            mine = [e.version for e in subscribed if e.stream == f"w{n}-{t}"]
            assert mine == list(range(1, len(mine) + 1))


INBOX_WRITER = """
import sys, trio
from eventstore import NewEvent
from eventstore.postgres import PostgresEventStore

url, schema, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

async def main():
    async with PostgresEventStore(url, schema=schema) as store:
        async def task(t):
            for n in range(count):
                message = NewEvent("Msg", {"w": name, "t": t, "n": n})
                if n % 2:
                    await store.enqueue("q", [message])
                else:
                    await store.append(f"{name}-{t}", [NewEvent("E", {})],
                                       enqueue=[("q", message)], wake_at=float(n))
                if n % 4 == 0:
                    await trio.sleep(0.001 * (t + 1))
        async with trio.open_nursery() as nursery:
            for t in range(3):
                nursery.start_soon(task, t)

trio.run(main)
"""


async def test_an_inbox_reader_never_skips_while_processes_race(
        postgres_url: str, schema: str) -> None:
    writers, per_task = 4, 30
    async with PostgresEventStore(postgres_url, schema=schema) as store:
        await store.work()  # create the schema before the writers race
        polled: list[RecordedEvent] = []

        async def poller() -> None:
            after = 0
            while True:
                async for message in store.read_inbox("q", after=after):
                    polled.append(message)
                    after = message.position
                await trio.sleep(0.001)

        async def writer(name: str) -> None:
            await trio.run_process([sys.executable, "-c", INBOX_WRITER, postgres_url, schema,
                                    name, str(per_task)], capture_stderr=True)

        with trio.fail_after(60):
            async with trio.open_nursery() as readers:
                readers.start_soon(poller)
                async with trio.open_nursery() as writing:
                    for n in range(writers):
                        writing.start_soon(writer, f"w{n}")
                stored = [m.position for m in await collect(store.read_inbox("q"))]
                while not polled or polled[-1].position < stored[-1]:
                    await trio.sleep(0.01)
                readers.cancel_scope.cancel()
        work = {entry.stream: entry for entry in await store.work()}
    assert len(stored) == len(set(stored)) == writers * 3 * per_task
    # A reader that passed a sequence number whose transaction had not committed would miss it.
    assert [m.position for m in polled] == stored
    for n in range(writers):
        for t in range(3):
            mine = [m.data["n"] for m in polled if (m.data["w"], m.data["t"]) == (f"w{n}", t)]
            assert mine == list(range(per_task))  # each sender's order
            assert work[f"w{n}-{t}"].wake_at == float(per_task - 2)
    assert work["q"].waiting == len(stored)


# -- LISTEN/NOTIFY --------------------------------------------------------------------------------


async def test_notify_wakes_a_subscriber_without_waiting_a_poll(
        postgres_url: str, schema: str) -> None:
    async with PostgresEventStore(postgres_url, schema=schema, poll_interval=30) as reader, \
            PostgresEventStore(postgres_url, schema=schema) as writer:
        await reader.last_version("init")
        seen: list[RecordedEvent] = []
        with trio.fail_after(10):  # far below the 30 s poll: only a notification can wake it
            async with trio.open_nursery() as nursery:
                async def subscriber() -> None:
                    async for event in reader.subscribe():
                        seen.append(event)
                        if len(seen) == 3:
                            return

                nursery.start_soon(subscriber)
                for round in range(1, 4):
                    # Rounds 1 and 2 may ride on the wake-up the listener sends once it is
                    # listening; by round 3 it listens, so only NOTIFY can deliver it.
                    await writer.append("s", events(1, round=round))
                    while len(seen) < round:
                        await trio.sleep(0.01)
        assert [e.data["round"] for e in seen] == [1, 2, 3]


async def test_the_listener_reconnects(postgres_url: str, schema: str) -> None:
    async with PostgresEventStore(postgres_url, schema=schema, poll_interval=30) as reader, \
            PostgresEventStore(postgres_url, schema=schema) as writer:
        seen: list[RecordedEvent] = []

        async def subscriber() -> None:
            async for event in reader.subscribe():
                seen.append(event)

        listen = f'LISTEN "{schema}_appended"'
        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(subscriber)
                while not await run_sql(postgres_url, "SELECT pid FROM pg_stat_activity "
                                        "WHERE query = %s", listen):
                    await trio.sleep(0.01)
                await writer.append("s", events(1))
                while len(seen) < 1:
                    await trio.sleep(0.01)
                await run_sql(postgres_url, "SELECT pg_terminate_backend(pid) "
                              "FROM pg_stat_activity WHERE query = %s", listen)
                await writer.append("s", events(1))
                while len(seen) < 2:
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
        assert [e.version for e in seen] == [1, 2]


# -- lost connections and bad servers -------------------------------------------------------------


async def terminate(url: str, pid: int) -> None:
    await run_sql(url, "SELECT pg_terminate_backend(%s)", pid)
    while await run_sql(url, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", pid):
        await trio.sleep(0.01)


async def test_a_dead_idle_connection_is_replaced(
        postgres_url: str, pg_store: PostgresEventStore) -> None:
    await pg_store.append("s", events(1))
    assert pg_store._writer is not None and pg_store._idle
    await terminate(postgres_url, pg_store._writer.info.backend_pid)
    for conn in pg_store._idle:
        await terminate(postgres_url, conn.info.backend_pid)
    batch = events(2)
    assert (await pg_store.append("s", batch)).version == 3
    assert [e.version for e in await collect(pg_store.read("s"))] == [1, 2, 3]


async def test_an_append_cut_off_midway_is_stored_whole_or_not_at_all(
        postgres_url: str, pg_store: PostgresEventStore) -> None:
    await pg_store.append("s", events(1))
    assert pg_store._writer is not None
    writer_pid = pg_store._writer.info.backend_pid
    batch = events(3)
    with psycopg.connect(postgres_url) as blocker:
        # Hold the lock on the global position: the append waits for it inside its transaction.
        blocker.execute(f'SELECT * FROM "{pg_store.schema}".global_position FOR UPDATE')
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                failure: list[BaseException] = []

                async def append() -> None:
                    try:
                        await pg_store.append("s", batch)
                    except ConnectionFailed as exc:
                        failure.append(exc)

                nursery.start_soon(append)
                while not await run_sql(postgres_url, "SELECT 1 FROM pg_stat_activity "
                                        "WHERE pid = %s AND wait_event_type = 'Lock'",
                                        writer_pid):
                    await trio.sleep(0.01)
                await terminate(postgres_url, writer_pid)
        blocker.rollback()
    [error] = failure
    # The store looked the ids up before answering: the killed transaction wrote nothing.
    assert "nothing was written" in str(error) and "reconnects" in str(error)
    assert await pg_store.last_version("s") == 1
    retried = await pg_store.append("s", batch)
    assert retried.version == 4
    assert await pg_store.append("s", batch) == retried  # and again: an idempotent retry
    assert [e.version for e in await collect(pg_store.read("s"))] == [1, 2, 3, 4]


async def test_an_unreachable_server_is_a_clear_error() -> None:
    async with PostgresEventStore("postgresql://postgres@127.0.0.1:1/test",
                                  connect_timeout=2) as store:
        with pytest.raises(ConnectionFailed, match=r"cannot connect to PostgreSQL.*127\.0\.0\.1"):
            await store.append("s", events(1))
        with pytest.raises(ConnectionFailed):
            await store.last_version("s")


async def test_an_unknown_database_or_user_is_a_clear_error(postgres_url: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(postgres_url)
    for change, shown in [({"dbname": "no_such_database"}, "no_such_database"),
                          ({"user": "no_such_user", "password": "x"}, "no_such_user")]:
        url = psycopg.conninfo.make_conninfo(**{**info, **change})  # type: ignore[arg-type]
        async with PostgresEventStore(url) as store:
            with pytest.raises(ConnectionFailed, match=rf"cannot connect.*{shown}") as caught:
                await store.last_version("s")
            assert "password=" not in str(caught.value)
