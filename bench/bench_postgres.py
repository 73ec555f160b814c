"""PostgreSQL store: appends/s, replay events/s and subscription latency against the server.

Peers measured in the same run on the same server: raw psycopg ``executemany`` in transactions of
100 rows (the ceiling for inserting rows like ours), and the ``eventsourcing`` library's PostgreSQL
application recorder (which also keeps a gap-free global order, with a table lock) appending one
event at a time; and trio's floor, the raw rows handed one at a time by 100 trio tasks to the
store's group commit, which writes each batch with the raw ``executemany`` (what callers that
wait for their commit cost by themselves). The appending cases take turns round by round, as do
the replays. Every case works in its own schema, dropped afterwards. Skips with a printed line
when no server answers at ``ACTORS_TEST_POSTGRES_URL`` (default: the local test database).
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

from ._floor import trio_floor
from ._harness import Paired, Report, measure, paired, rounds, scaled

URL = os.environ.get("ACTORS_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
DATA = {"order": "A-1042", "sku": "widget", "quantity": 3, "price": 9.99, "note": "gift wrap"}
METADATA = {"correlation": "c-1", "actor": "orders"}
QUICK = "100 concurrent appenders on PostgreSQL, against raw psycopg executemany"


def run(report: Report, *, quick: bool = False) -> None:
    try:
        import psycopg

        with psycopg.connect(URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        print(f"  postgres: skipped, no PostgreSQL server at {URL}: {' '.join(str(exc).split())}")
        return

    cases = {
        "ours 100": lambda: ours_appending(100, scaled(30_000)),
        "raw": lambda: raw_executemany(scaled(30_000)),
        "floor": lambda: floor(100, scaled(30_000)),
    }
    if not quick:
        cases["ours 1"] = lambda: ours_appending(1, scaled(1500))
        cases["eventsourcing"] = lambda: eventsourcing_one_at_a_time(scaled(1500))
    figures = rounds(cases)
    report.row("postgres", "append, 100 concurrent appenders",
               Paired.of(figures, "ours 100", "raw"), "appends/s",
               peer="raw psycopg executemany x100", target=">= 0.7x")
    report.row("postgres", "trio's floor: 100 tasks through group commit, raw rows",
               Paired.of(figures, "floor", "raw"), "appends/s",
               peer="raw psycopg executemany x100")
    report.row("postgres", "append, 100 concurrent appenders",
               Paired.of(figures, "ours 100", "floor"), "appends/s",
               peer="trio's floor (the row above)")
    if quick:
        return
    report.row("postgres", "append, 100 concurrent appenders",
               Paired.of(figures, "ours 100", "eventsourcing"), "appends/s",
               peer="eventsourcing, one at a time", target=">= 5x")
    report.row("postgres", "append, 1 appender", Paired.of(figures, "ours 1", "eventsourcing"),
               "appends/s", peer="eventsourcing, one at a time")

    with filled_schema(scaled(100_000)) as (schema, count):
        report.row("postgres", "replay one stream (read)",
                   paired(lambda: ours_replay(schema, count, all_streams=False),
                          lambda: raw_replay(schema, count)),
                   "events/s", peer="raw psycopg + json.loads")
        report.row("postgres", "replay the log (read_all)", measure(lambda: ours_replay(
            schema, count, all_streams=True)), "events/s")

    for case, other_store in [("another store, LISTEN/NOTIFY", True), ("same store", False)]:
        after_commit, end_to_end = subscription_latency(scaled(500), other_store=other_store)
        report.row("postgres", f"subscription latency median, {case}",
                   statistics.median(after_commit), "ms")
        report.row("postgres", f"subscription latency p99, {case}", p99(after_commit), "ms",
                   target="< 50 ms")
        report.row("postgres", f"append + delivery p99, {case}", p99(end_to_end), "ms")


# -- helpers --------------------------------------------------------------------------------------


def sql(query: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(URL, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


@contextmanager
def fresh_schema() -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def open_store(schema: str, **options: Any) -> Any:
    from eventstore.postgres import PostgresEventStore

    return PostgresEventStore(URL, schema=schema, **options)


def timed(count: int, work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return count / (time.perf_counter() - started)


# -- appends --------------------------------------------------------------------------------------


def ours_appending(appenders: int, total: int) -> float:
    from eventstore import NewEvent

    per_appender = max(1, total // appenders)

    async def main() -> float:
        async with open_store(schema) as store:
            await store.append("warm-up", [NewEvent("E", DATA, METADATA)])

            async def appender(name: int) -> None:
                for version in range(per_appender):
                    await store.append(f"s{name}", [NewEvent("E", DATA, METADATA)],
                                       expected_version=version)

            started = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for name in range(appenders):
                    nursery.start_soon(appender, name)
            return appenders * per_appender / (time.perf_counter() - started)

    with fresh_schema() as schema:
        return trio.run(main)


def raw_table(conn: Any, schema: str) -> str:
    """An events table like ours in ``schema`` (made here); the raw peers' ``INSERT``."""
    conn.execute(f'CREATE SCHEMA "{schema}"')
    conn.execute(f'''CREATE TABLE "{schema}".events (
        position bigserial PRIMARY KEY, stream text NOT NULL, version bigint NOT NULL,
        type text NOT NULL, data text NOT NULL, metadata text NOT NULL,
        id uuid NOT NULL UNIQUE, recorded_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (stream, version))''')
    return (f'INSERT INTO "{schema}".events (stream, version, type, data, metadata, id) '
            "VALUES (%s, %s, %s, %s, %s, %s)")


def raw_executemany(total: int) -> float:
    import psycopg

    data, metadata = json.dumps(DATA), json.dumps(METADATA)
    with fresh_schema() as schema, psycopg.connect(URL, autocommit=True) as conn:
        insert = raw_table(conn, schema)
        batches = max(1, total // 100)

        def work() -> None:
            with conn.cursor() as cursor:
                for batch in range(batches):
                    rows = [(f"s{n}", batch + 1, "E", data, metadata, uuid.uuid4())
                            for n in range(100)]
                    with conn.transaction():
                        cursor.executemany(insert, rows)

        return timed(batches * 100, work)


def floor(appenders: int, total: int) -> float:
    """Trio's floor (``bench._floor``) under the raw peer's rows, ``appenders`` tasks of one
    stream each, each batch written with the raw ``executemany``."""
    import psycopg

    data, metadata = json.dumps(DATA), json.dumps(METADATA)
    each = max(1, total // appenders)
    with fresh_schema() as schema, psycopg.connect(URL, autocommit=True) as conn:
        insert = raw_table(conn, schema)

        def write(batch: list[tuple[Any, ...]]) -> None:
            with conn.cursor() as cursor, conn.transaction():
                cursor.executemany(insert, batch)

        return trio_floor(write, [[(f"s{k}", version + 1, "E", data, metadata, uuid.uuid4())
                                   for version in range(each)] for k in range(appenders)])


def eventsourcing_one_at_a_time(total: int) -> float:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(URL)
    state = json.dumps({**DATA, **METADATA}).encode()
    with fresh_schema() as schema:
        sql(f'CREATE SCHEMA "{schema}"')
        datastore = PostgresDatastore(
            str(info.get("dbname", "postgres")), str(info.get("host", "127.0.0.1")),
            str(info.get("port", "5432")), str(info.get("user", "postgres")),
            str(info.get("password", "")), schema=schema)
        try:
            recorder = PostgresApplicationRecorder(datastore)
            recorder.create_table()
            ids = [uuid.uuid4() for _ in range(total)]

            def work() -> None:
                for originator in ids:
                    recorder.insert_events([StoredEvent(originator, 1, "orders:Placed", state)])

            return timed(total, work)
        finally:
            datastore.close()


# -- replay ---------------------------------------------------------------------------------------


@contextmanager
def filled_schema(count: int) -> Iterator[tuple[str, int]]:
    from eventstore import NewEvent

    async def fill() -> None:
        async with open_store(schema) as store:
            for version in range(0, count, 1000):
                batch = [NewEvent("E", {**DATA, "n": n}, METADATA)
                         for n in range(version, min(count, version + 1000))]
                await store.append("big", batch, expected_version=version)

    with fresh_schema() as schema:
        trio.run(fill)
        yield schema, count


def ours_replay(schema: str, count: int, *, all_streams: bool) -> float:
    async def main() -> float:
        async with open_store(schema) as store:
            await store.last_version("big")  # connect first: time the reading only
            started = time.perf_counter()
            seen = 0
            async for _ in (store.read_all() if all_streams else store.read("big")):
                seen += 1
            assert seen == count
            return seen / (time.perf_counter() - started)

    return trio.run(main)


def raw_replay(schema: str, count: int) -> float:
    import psycopg

    with psycopg.connect(URL, autocommit=True) as conn:
        def work() -> None:
            cursor = conn.execute(
                f'SELECT version, position, type, data, metadata, id, recorded_at FROM "{schema}"'
                ".events WHERE stream = %s ORDER BY version", ("big",))
            rows = [(json.loads(row[3]), json.loads(row[4])) for row in cursor]
            assert len(rows) == count

        return timed(count, work)


# -- subscriptions --------------------------------------------------------------------------------


def subscription_latency(samples: int, *, other_store: bool) -> tuple[list[float], list[float]]:
    """Latencies in ms to a subscriber: (from the commit, from the start of the append).

    The commit is taken as the moment ``append`` returns; an event delivered even before that
    counts as 0. The second figure adds the append itself (its commit waits for the disk).
    """
    from eventstore import NewEvent

    async def main() -> tuple[list[float], list[float]]:
        async with open_store(schema) as reader, open_store(schema) as other:
            writer = other if other_store else reader
            await writer.append("warm-up", [NewEvent("E", DATA)])
            started: list[float] = []
            committed: list[float] = []
            delivered: list[float] = []
            arrived = trio.Event()

            async def subscriber() -> None:
                async for _ in reader.subscribe(types=["Ping"]):
                    delivered.append(time.perf_counter())
                    arrived.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(subscriber)
                await trio.sleep(0.2)  # let the listener connect
                for n in range(samples):
                    arrived = trio.Event()
                    started.append(time.perf_counter())
                    await writer.append("pings", [NewEvent("Ping", {"n": n})])
                    committed.append(time.perf_counter())
                    with trio.fail_after(5):
                        await arrived.wait()
                    await trio.sleep(0.002)
                nursery.cancel_scope.cancel()
            after_commit = [max(0.0, d - c) for d, c in zip(delivered, committed, strict=True)]
            end_to_end = [d - s for d, s in zip(delivered, started, strict=True)]
            return after_commit, end_to_end

    with fresh_schema() as schema:
        after_commit, end_to_end = trio.run(main)
    return sorted(1000 * x for x in after_commit), sorted(1000 * x for x in end_to_end)


def p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(0.99 * len(values)))]
