"""The actor runtime: messaging, persisted commands and recovery, against peers in the same run.

- Messaging on one actor that persists nothing (a memory store, no events): ``tell`` throughput
  (N tells, then one ask to wait for the last) and ``ask`` round trips one after another. Peers:
  a bare trio memory channel feeding one consumer task (for ask, each request carries a
  ``trio.Event`` the consumer sets), and Pykka's ``ThreadingActor`` (``tell`` / blocking
  ``ask``).
- A command that emits one event, on SQLite (WAL, ``synchronous=FULL``), with 1 actor and with
  100 actors told at once; group commit lets the 100 share transactions. Peer: the raw ceiling,
  ``executemany`` of the same rows into the store's schema, 100 rows per transaction.
- Recovery (the time ``spawn`` takes, on a store already open) of an actor with 100k events,
  replaying them all against loading a snapshot and replaying the 500 events after it; and the
  same snapshot recovery on a log of 10k events against one of 1M.
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
import pykka
import trio

import actors
import eventstore
from eventstore._sqlite_schema import micros
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SCHEMA, SQLiteEventStore

from ._harness import Files, Report, measure, scaled

BENCHMARK = "actors"
TAIL = 500  # events after the newest snapshot, in the recovery cases with snapshots


@eventstore.event_type("bench.Added")
@attrs.frozen
class Added:
    amount: int


@attrs.define
class Echo(actors.Actor):
    """Answers every message with itself; writes nothing."""

    async def receive(self, message: Any) -> Any:
        return message


@attrs.define
class Counter(actors.Actor):
    """Every message is a command that emits one event."""

    total: int = 0

    def apply(self, event: Any) -> None:
        self.total += event.amount

    async def receive(self, message: Any) -> Any:
        if message:
            self.emit(Added(message))
        return self.total


@attrs.define
class SnapshotCounter(Counter):
    kind = "Counter"
    snapshot_every = 1000


def run_trio(work: Callable[[], Coroutine[Any, Any, float]]) -> float:
    result: float = trio.run(work)
    return result




# -- messaging, no persistence --------------------------------------------------------------------

def ours_tell(n: int) -> float:
    async def main() -> float:
        async with trio.open_nursery() as nursery:
            ref = await actors.spawn(nursery, Echo, "e", store=MemoryEventStore())
            started = time.perf_counter()
            for i in range(n):
                ref.tell(i)
            await ref.ask(None)
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        return n / elapsed

    return run_trio(main)


def ours_ask(n: int) -> float:
    async def main() -> float:
        async with trio.open_nursery() as nursery:
            ref = await actors.spawn(nursery, Echo, "e", store=MemoryEventStore())
            started = time.perf_counter()
            for i in range(n):
                await ref.ask(i)
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        return n / elapsed

    return run_trio(main)


def channel_tell(n: int) -> float:
    async def main() -> float:
        send, receive = trio.open_memory_channel[Any](float("inf"))
        done = trio.Event()

        async def consumer() -> None:
            async for message in receive:
                if message is None:
                    done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            started = time.perf_counter()
            for i in range(n):
                send.send_nowait(i)
            send.send_nowait(None)
            await done.wait()
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        return n / elapsed

    return run_trio(main)


class _Request:
    __slots__ = ("done", "message", "value")

    def __init__(self, message: Any) -> None:
        self.message = message
        self.done = trio.Event()
        self.value: Any = None


def channel_ask(n: int) -> float:
    async def main() -> float:
        send, receive = trio.open_memory_channel[_Request](float("inf"))

        async def consumer() -> None:
            async for request in receive:
                request.value = request.message
                request.done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            started = time.perf_counter()
            for i in range(n):
                request = _Request(i)
                send.send_nowait(request)
                await request.done.wait()
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        return n / elapsed

    return run_trio(main)


class PykkaEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


def pykka_tell(n: int) -> float:
    ref = PykkaEcho.start()
    try:
        started = time.perf_counter()
        for i in range(n):
            ref.tell(i)
        ref.ask(None)
        return n / (time.perf_counter() - started)
    finally:
        ref.stop()


def pykka_ask(n: int) -> float:
    ref = PykkaEcho.start()
    try:
        started = time.perf_counter()
        for i in range(n):
            ref.ask(i)
        return n / (time.perf_counter() - started)
    finally:
        ref.stop()


# -- commands that emit one event, on SQLite -------------------------------------------------------

def ours_commands(path: Path, actor_count: int, total: int) -> float:
    """Commands per second: ``total`` tells spread over ``actor_count`` actors, all committed."""
    each = max(1, total // actor_count)

    async def main() -> float:
        async with SQLiteEventStore(path, synchronous="FULL") as store, \
                trio.open_nursery() as nursery:
            refs = [await actors.spawn(nursery, Counter, f"c{k}", store=store)
                    for k in range(actor_count)]
            started = time.perf_counter()
            for _ in range(each):
                for ref in refs:
                    ref.tell(1)
            for ref in refs:
                await ref.ask(0)  # after the last command's commit
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        return each * actor_count / elapsed

    return run_trio(main)


def raw_ceiling(path: Path, total: int, batch: int = 100) -> float:
    """Rows per second of plain executemany of the same rows, ``batch`` per transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.executescript(SCHEMA)
    now = micros(datetime.now(UTC))
    data = json.dumps({"amount": 1})
    rows = [(n + 1, f"Counter-c{n % 100}", n // 100 + 1, "bench.Added", data, "{}",
             uuid.uuid4().bytes, now) for n in range(total)]
    started = time.perf_counter()
    for start in range(0, total, batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO events (position, stream, version, type, data, metadata, "
                         "id, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         rows[start:start + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return total / elapsed


# -- recovery ------------------------------------------------------------------------------------

def fill(path: Path, count: int, *, snapshot: bool) -> None:
    """A ``Counter-c`` log of ``count`` events.

    With ``snapshot``, the event at ``count - TAIL`` goes through the actor, whose commit saves a
    snapshot, so recovery reads the snapshot and a tail of ``TAIL`` events.
    """

    async def append(store: SQLiteEventStore, n: int) -> None:
        for start in range(0, n, 5000):
            await store.append("Counter-c", [store.codec.new_event(Added(1))
                                             for _ in range(min(5000, n - start))])

    async def main() -> float:
        async with SQLiteEventStore(path, synchronous="OFF") as store:
            if not snapshot:
                await append(store, count)
                return 0.0
            await append(store, count - TAIL - 1)
            async with trio.open_nursery() as nursery:
                ref = await actors.spawn(nursery, SnapshotCounter, "c", store=store)
                assert await ref.ask(1) == count - TAIL
                await ref.stop()
            assert await store.load_snapshot("Counter-c") is not None
            await append(store, TAIL)
        return 0.0

    run_trio(main)


def recover(path: Path, cls: type[Counter], count: int) -> float:
    """Seconds from spawn to a recovered ref, on a store already open (its connections warm)."""

    async def main() -> float:
        async with SQLiteEventStore(path) as store, trio.open_nursery() as nursery:
            await store.last_version("Counter-other")
            started = time.perf_counter()
            ref = await actors.spawn(nursery, cls, "c", store=store)
            elapsed = time.perf_counter() - started
            assert await ref.ask(0) == count
            await ref.stop()
        return elapsed

    return run_trio(main)


# -- the report ----------------------------------------------------------------------------------

def run(report: Report) -> None:
    n = scaled(100_000)
    tell = measure(lambda: ours_tell(n))
    report.row(BENCHMARK, "tell, 1 actor, no persistence", tell, "messages/s",
               peer="Pykka ThreadingActor", peer_value=measure(lambda: pykka_tell(n)),
               target=">= 3x")
    report.row(BENCHMARK, "tell, 1 actor, no persistence", tell, "messages/s",
               peer="bare trio channel", peer_value=measure(lambda: channel_tell(n)))
    asks = scaled(20_000)
    ask = measure(lambda: ours_ask(asks))
    report.row(BENCHMARK, "ask round trip, no persistence", ask, "messages/s",
               peer="Pykka ThreadingActor", peer_value=measure(lambda: pykka_ask(asks)),
               target=">= 1.5x")
    report.row(BENCHMARK, "ask round trip, no persistence", ask, "messages/s",
               peer="bare trio channel", peer_value=measure(lambda: channel_ask(asks)))

    files = Files("bench-actors-")
    try:
        many = scaled(20_000)
        ceiling = measure(lambda: raw_ceiling(files.new(), many))
        hundred = measure(lambda: ours_commands(files.new(), 100, many))
        single = measure(lambda: ours_commands(files.new(), 1, scaled(2_000)))
        report.row(BENCHMARK, "emit 1 event/command, 100 actors, SQLite", hundred, "commands/s",
                   peer="raw sqlite3 executemany x100", peer_value=ceiling, target=">= 0.5x")
        report.row(BENCHMARK, "emit 1 event/command, 1 actor, SQLite", single, "commands/s",
                   peer="raw sqlite3 executemany x100", peer_value=ceiling)

        count = scaled(100_000)
        plain, snapped = files.new(), files.new()
        fill(plain, count, snapshot=False)
        fill(snapped, count, snapshot=True)
        full = measure(lambda: recover(plain, Counter, count), repeats=3)
        fast = measure(lambda: recover(snapped, SnapshotCounter, count))
        report.row(BENCHMARK, f"recover {count:,} events, snapshot + {TAIL} tail", fast, "s",
                   peer="full replay", peer_value=full, higher_is_better=False)

        # At least a snapshot's worth before the tail, however small the scale.
        small_count = max(scaled(10_000), SnapshotCounter.snapshot_every + TAIL + 1)
        big_count = scaled(1_000_000)
        small, big = files.new(), files.new()
        fill(small, small_count, snapshot=True)
        fill(big, big_count, snapshot=True)
        small_time = measure(lambda: recover(small, SnapshotCounter, small_count))
        big_time = measure(lambda: recover(big, SnapshotCounter, big_count))
        report.row(BENCHMARK, f"recover {big_count:,} events, snapshot + {TAIL} tail", big_time,
                   "s", peer=f"{small_count:,} events", peer_value=small_time,
                   higher_is_better=False, target=">= 0.5x (within 2x)")
    finally:
        files.remove()
