"""The SQLite event store: append throughput and decoded replay, against peers in the same run.

Peers: the ceiling, raw ``sqlite3`` ``executemany`` of the same rows into the same events table
and indexes (without the store's version checks and its streams table) in batches of 100, what
group commit could at best reach; and the ``eventsourcing`` library's SQLite recorder inserting
one event per transaction, as its aggregates do. And trio's floor: the ceiling's rows handed one
at a time by 100 trio tasks to the store's group commit (``GroupCommitter``), which writes each
batch with the ceiling's ``executemany``: what 100 callers that each wait for their commit cost
by themselves, the most a store that validates and encodes could reach. Everything uses a file
in a temporary directory,
WAL and ``synchronous=FULL``; the appending cases take turns round by round.
Also: decoded replay (no peer) and the bytes each bench event takes in the database file.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import trio

from eventstore import NewEvent
from eventstore._sqlite_schema import micros
from eventstore.sqlite import SCHEMA, SQLiteEventStore

from ._floor import trio_floor
from ._harness import Files, Paired, Report, measure, rounds, scaled
from ._raw import type_ids

BENCHMARK = "store"
QUICK = "100 concurrent appenders on SQLite FULL, against raw sqlite3 executemany"


@attrs.frozen
class Deposited:
    account: str
    amount: int
    note: str


def deposit(n: int) -> Deposited:
    return Deposited(account=f"acct-{n % 100}", amount=n, note="monthly salary")


def new_event(store: SQLiteEventStore, obj: Deposited) -> NewEvent:
    if hasattr(store.codec, "new_event"):
        made: NewEvent = store.codec.new_event(obj)
        return made
    return NewEvent("Deposited", attrs.asdict(obj))




def run_trio(work: Callable[[], Coroutine[Any, Any, float]]) -> float:
    result: float = trio.run(work)
    return result


# -- ours ----------------------------------------------------------------------------------------

def ours_appends(files: Files, appenders: int, total: int) -> float:
    """Events per second with ``appenders`` tasks each appending single events."""
    each = max(1, total // appenders)

    async def main() -> float:
        async with SQLiteEventStore(files.new(), synchronous="FULL") as store:
            batches = [[new_event(store, deposit(n))] for n in range(each * appenders)]
            started = time.perf_counter()

            async def appender(k: int) -> None:
                for batch in batches[k * each:(k + 1) * each]:
                    await store.append(f"s{k}", batch)

            async with trio.open_nursery() as nursery:
                for k in range(appenders):
                    nursery.start_soon(appender, k)
            return each * appenders / (time.perf_counter() - started)

    return run_trio(main)


def ours_replay(path: Path, count: int) -> float:
    """Decoded events per second replaying one stream of ``count`` events."""

    async def main() -> float:
        async with SQLiteEventStore(path) as store:
            codec = store.codec
            if hasattr(codec, "decode"):
                decode: Callable[[Any], Any] = codec.decode
            else:
                def decode(recorded: Any) -> Any:
                    return Deposited(**recorded.data)
            started = time.perf_counter()
            replayed = 0
            last = None
            async for recorded in store.read("replay"):
                last = decode(recorded)  # folded away, as recovery does
                replayed += 1
            elapsed = time.perf_counter() - started
            assert replayed == count and isinstance(last, Deposited)
            return count / elapsed

    return run_trio(main)


def fill_replay(path: Path, count: int) -> None:
    async def main() -> float:
        async with SQLiteEventStore(path, synchronous="NORMAL") as store:
            for start in range(0, count, 1000):
                await store.append("replay", [new_event(store, deposit(n))
                                              for n in range(start, min(count, start + 1000))])
        return 0.0

    run_trio(main)


# -- peers ---------------------------------------------------------------------------------------

INSERT_ROW = ("INSERT INTO events (stream, version, type, data, metadata, id, recorded_at) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)")


def raw_rows(files: Files, total: int) -> tuple[sqlite3.Connection, list[tuple[Any, ...]]]:
    """A new file in the store's schema, and ``total`` rows of bench events over 100 streams
    (stream ``s{n % 100}``), as the raw peers write them."""
    conn = sqlite3.connect(files.new(), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.executescript(SCHEMA)
    now = micros(datetime.now(UTC))
    kind = type_ids(conn, ["Deposited"])["Deposited"]
    return conn, [(f"s{n % 100}", n // 100 + 1, kind, json.dumps(attrs.asdict(deposit(n))),
                   None, uuid.uuid4().bytes, now) for n in range(total)]


def raw_ceiling(files: Files, total: int, batch: int = 100) -> float:
    """Rows per second of plain executemany into the store's schema, ``batch`` per commit."""
    conn, rows = raw_rows(files, total)
    started = time.perf_counter()
    for start in range(0, total, batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_ROW, rows[start:start + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return total / elapsed


def floor(files: Files, appenders: int, total: int) -> float:
    """Trio's floor (``bench._floor``) under the ceiling's rows, ``appenders`` tasks (task ``k``
    appends rows ``k``, ``k + appenders``, ...), each batch written as the ceiling writes."""
    conn, rows = raw_rows(files, total)

    def write(batch: list[tuple[Any, ...]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_ROW, batch)
        conn.execute("COMMIT")

    try:
        return trio_floor(write, [rows[k::appenders] for k in range(appenders)])
    finally:
        conn.close()


def eventsourcing_appends(files: Files, total: int) -> float:
    """Events per second of eventsourcing's SQLite recorder, one event per transaction."""
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.sqlite import SQLiteAggregateRecorder, SQLiteDatastore

    datastore = SQLiteDatastore(str(files.new()))
    recorder = SQLiteAggregateRecorder(datastore)
    recorder.create_table()
    originators = [uuid.uuid4() for _ in range(100)]
    stored = [StoredEvent(originator_id=originators[n % 100], originator_version=n // 100 + 1,
                          topic="bench.bench_store:Deposited",
                          state=json.dumps(attrs.asdict(deposit(n))).encode())
              for n in range(total)]
    started = time.perf_counter()
    for event in stored:
        recorder.insert_events([event])
    elapsed = time.perf_counter() - started
    datastore.close()
    return total / elapsed


# -- bytes on disk --------------------------------------------------------------------------------

def bytes_per_event(path: Path, count: int) -> float:
    """The database file's size over ``count`` bench events (no metadata), 100 per append.

    Measured after the store is closed, then ``PRAGMA wal_checkpoint(TRUNCATE)`` (the WAL folded
    into the file) and ``VACUUM`` (free pages dropped): page_count x page_size, so the events
    table, its indexes and the streams table, over the number of events.
    """

    async def main() -> float:
        async with SQLiteEventStore(path, synchronous="OFF") as store:
            for start in range(0, count, 100):
                await store.append(f"s{start // 100 % 100}",
                                   [new_event(store, deposit(n))
                                    for n in range(start, min(count, start + 100))])
        return 0.0

    run_trio(main)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        (pages,), (page_size,) = (conn.execute("PRAGMA page_count").fetchone(),
                                  conn.execute("PRAGMA page_size").fetchone())
        (stored,) = conn.execute("SELECT count(*) FROM events").fetchone()
    finally:
        conn.close()
    assert stored == count
    return float(pages * page_size) / count


# -- the report ----------------------------------------------------------------------------------

def run(report: Report, *, quick: bool = False) -> None:
    files = Files("bench-store-")
    try:
        many = scaled(20_000)
        one = scaled(2_000)
        cases = {
            "concurrent": lambda: ours_appends(files, 100, many),
            "ceiling": lambda: raw_ceiling(files, many),
            "floor": lambda: floor(files, 100, many),
        }
        if not quick:
            cases["single"] = lambda: ours_appends(files, 1, one)
            cases["peer"] = lambda: eventsourcing_appends(files, one)
        figures = rounds(cases)
        report.row(BENCHMARK, "100 concurrent appenders, SQLite FULL",
                   Paired.of(figures, "concurrent", "ceiling"), "events/s",
                   peer="raw sqlite3 executemany x100", target=">= 0.7x")
        report.row(BENCHMARK, "trio's floor: 100 tasks through group commit, raw rows",
                   Paired.of(figures, "floor", "ceiling"), "events/s",
                   peer="raw sqlite3 executemany x100")
        report.row(BENCHMARK, "100 concurrent appenders, SQLite FULL",
                   Paired.of(figures, "concurrent", "floor"), "events/s",
                   peer="trio's floor (the row above)")
        if quick:
            return
        report.row(BENCHMARK, "100 concurrent appenders, SQLite FULL",
                   Paired.of(figures, "concurrent", "peer"), "events/s",
                   peer="eventsourcing SQLite, one at a time", target=">= 5x")
        report.row(BENCHMARK, "1 appender, SQLite FULL", Paired.of(figures, "single", "peer"),
                   "events/s", peer="eventsourcing SQLite, one at a time")
        count = scaled(100_000)
        path = files.new()
        fill_replay(path, count)
        replay = measure(lambda: ours_replay(path, count))
        report.row(BENCHMARK, "replay decoded", replay, "events/s", target=">= 150k/s")
        report.row(BENCHMARK, f"bytes per event on disk, {count:,} bench events",
                   bytes_per_event(files.new(), count), "bytes/event", target="<= 120 B")
    finally:
        files.remove()
