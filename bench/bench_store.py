"""The SQLite event store: append throughput and decoded replay, against peers in the same run.

Peers: the ceiling, raw ``sqlite3`` ``executemany`` of the same rows into the same events table
and indexes (without the store's version checks and its streams table) in batches of 100, what
group commit could at best reach; and the ``eventsourcing`` library's SQLite recorder inserting
one event per transaction, as its aggregates do. Everything uses a file in a temporary directory,
WAL and ``synchronous=FULL``.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
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

from ._harness import REPEATS, Files, Report, measure, scaled

BENCHMARK = "store"


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

def raw_ceiling(files: Files, total: int, batch: int = 100) -> float:
    """Rows per second of plain executemany into the store's schema, ``batch`` per commit."""
    conn = sqlite3.connect(files.new(), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.executescript(SCHEMA)
    now = micros(datetime.now(UTC))
    rows = [(f"s{n % 100}", n // 100 + 1, "Deposited", json.dumps(attrs.asdict(deposit(n))),
             "{}", uuid.uuid4().bytes, now) for n in range(total)]
    started = time.perf_counter()
    for start in range(0, total, batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO events (stream, version, type, data, metadata, id, "
                         "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows[start:start + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return total / elapsed


def eventsourcing_appends(files: Files, total: int) -> float | None:
    """Events per second of eventsourcing's SQLite recorder, one event per transaction."""
    try:
        from eventsourcing.persistence import StoredEvent
        from eventsourcing.sqlite import SQLiteAggregateRecorder, SQLiteDatastore
    except ImportError:
        return None
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


# -- the report ----------------------------------------------------------------------------------

def interleaved(cases: dict[str, Callable[[], float]]) -> dict[str, float]:
    """The median of each case over ``REPEATS`` rounds, the cases taking turns in each round.

    Taking turns spreads any drift of the machine (other load, the disk) over every case alike,
    so the ratios between them stay fair.
    """
    figures: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(REPEATS):
        for name, work in cases.items():
            figures[name].append(measure(work, repeats=1))
    return {name: statistics.median(values) for name, values in figures.items()}


def run(report: Report) -> None:
    files = Files("bench-store-")
    try:
        many = scaled(20_000)
        one = scaled(2_000)
        cases = {
            "concurrent": lambda: ours_appends(files, 100, many),
            "single": lambda: ours_appends(files, 1, one),
            "ceiling": lambda: raw_ceiling(files, many),
        }
        if eventsourcing_appends(files, 10) is not None:
            cases["peer"] = lambda: eventsourcing_appends(files, one) or 0.0
        medians = interleaved(cases)
        concurrent, single = medians["concurrent"], medians["single"]
        report.row(BENCHMARK, "100 concurrent appenders", concurrent, "events/s",
                   peer="raw sqlite3 executemany x100", peer_value=medians["ceiling"],
                   target=">= 0.5x")
        peer = medians.get("peer")
        report.row(BENCHMARK, "100 concurrent appenders", concurrent, "events/s",
                   peer="eventsourcing SQLite", peer_value=peer, target=">= 5x")
        report.row(BENCHMARK, "1 appender", single, "events/s",
                   peer="eventsourcing SQLite", peer_value=peer)
        count = scaled(100_000)
        path = files.new()
        fill_replay(path, count)
        replay = measure(lambda: ours_replay(path, count))
        report.row(BENCHMARK, "replay decoded", replay, "events/s", target=">= 150k/s")
    finally:
        files.remove()
