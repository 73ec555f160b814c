"""The actor runtime: messaging, persisted commands, recovery and memory, against peers.

Every case with a peer alternates ours and the peer round by round (``_harness.rounds``).

- Messaging with 1, 100 and 10,000 actors that persist nothing (a memory store, no events),
  against Pykka's ``ThreadingActor`` with as many actors (one thread each). ``tell``: the
  messages spread round-robin over the actors, then one ask per actor, all at once, to wait for
  the last. ``ask``: one outstanding ask per actor, each answered ask followed by the next to
  the same actor (with one actor, round trips one after another). Actors are started before the
  clock starts. With one actor, a bare trio memory channel feeding one consumer task is a second
  peer (for ask, each request carries a ``trio.Event`` the consumer sets). With 10k actors,
  Pykka's threads take about a millisecond per message, so that case sends two messages per
  actor and runs three rounds.
- A command that emits one event, on SQLite (WAL, ``synchronous=FULL``), with 1 actor and with
  100 actors told at once; group commit lets the 100 share transactions. Peer: the raw ceiling,
  ``executemany`` of the same rows into the store's schema, 100 rows per transaction.
- Recovery (the time ``spawn`` takes, on a store already open) of an actor with 10k, 100k and
  1M events: loading a snapshot and replaying the 500 events after it, paired with replaying the
  whole log; and snapshot recovery on the 1M-event log paired with the 10k-event one.
- Memory per idle actor: ``tracemalloc`` over spawning 10k actors on SQLite that each recover
  one event and answer one ask, after ``gc.collect()``; what the runtime keeps per actor (task,
  mailbox, state, journal), the store's connections excluded. One measurement, not a ratio.
"""

from __future__ import annotations

import functools
import gc
import json
import sqlite3
import time
import tracemalloc
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import trio

import actors
import eventstore
from eventstore._sqlite_schema import micros
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SCHEMA, SQLiteEventStore

from ._harness import SETTINGS, Files, Paired, Report, rounds, scaled
from ._raw import type_ids

BENCHMARK = "actors"
QUICK = ("tell and ask, 1 actor, against Pykka; 1 event per command, 100 actors on SQLite, "
         "against raw sqlite3")
TAIL = 500  # events after the newest snapshot, in the recovery cases with snapshots
ACTOR_COUNTS = (1, 100, 10_000)


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

async def _spawn_echoes(nursery: trio.Nursery, count: int) -> list[actors.ActorRef]:
    store = MemoryEventStore()
    return [await actors.spawn(nursery, Echo, f"e{k}", store=store) for k in range(count)]


def ours_tell(count: int, n: int) -> float:
    """Messages per second: ``n`` tells spread over ``count`` actors, then one ask each."""
    each = max(1, n // count)

    async def main() -> float:
        async with trio.open_nursery() as nursery:
            refs = await _spawn_echoes(nursery, count)
            started = time.perf_counter()
            for i in range(each):
                for ref in refs:
                    ref.tell(i)
            async with trio.open_nursery() as asks:
                for ref in refs:
                    asks.start_soon(ref.ask, None)
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        return each * count / elapsed

    return run_trio(main)


def ours_ask(count: int, n: int) -> float:
    """Asks per second: ``n`` asks over ``count`` actors, one outstanding per actor."""
    each = max(1, n // count)

    async def main() -> float:
        async def asker(ref: actors.ActorRef) -> None:
            for i in range(each):
                await ref.ask(i)

        async with trio.open_nursery() as nursery:
            refs = await _spawn_echoes(nursery, count)
            started = time.perf_counter()
            if count == 1:
                await asker(refs[0])
            else:
                async with trio.open_nursery() as askers:
                    for ref in refs:
                        askers.start_soon(asker, ref)
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        return each * count / elapsed

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


@functools.cache
def _pykka_echo() -> Any:
    """Pykka's echo actor class, imported only when a Pykka case runs (an optional extra)."""
    import pykka

    class PykkaEcho(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            return message

    return PykkaEcho


def _with_pykka(count: int, work: Callable[[list[Any]], float]) -> float:
    echo = _pykka_echo()
    refs = [echo.start() for _ in range(count)]
    try:
        return work(refs)
    finally:
        for ref in refs:
            ref.stop(block=False)
        for ref in refs:
            ref.actor_stopped.wait()


def pykka_tell(count: int, n: int) -> float:
    each = max(1, n // count)

    def work(refs: list[Any]) -> float:
        started = time.perf_counter()
        for i in range(each):
            for ref in refs:
                ref.tell(i)
        for future in [ref.ask(None, block=False) for ref in refs]:
            future.get()
        return each * count / (time.perf_counter() - started)

    return _with_pykka(count, work)


def pykka_ask(count: int, n: int) -> float:
    each = max(1, n // count)

    def work(refs: list[Any]) -> float:
        started = time.perf_counter()
        futures = [ref.ask(0, block=False) for ref in refs]
        for i in range(1, each):
            for k, ref in enumerate(refs):
                futures[k].get()
                futures[k] = ref.ask(i, block=False)
        for future in futures:
            future.get()
        return each * count / (time.perf_counter() - started)

    return _with_pykka(count, work)


def messaging(report: Report, counts: tuple[int, ...]) -> None:
    tells, asks = scaled(100_000), scaled(20_000)
    for count in counts:
        label = f"{count:,} actor{'s' if count > 1 else ''}"
        for verb, n, ours, peer, channel, target in (
                ("tell", tells, ours_tell, pykka_tell, channel_tell, ">= 3x"),
                ("ask", asks, ours_ask, pykka_ask, channel_ask, ">= 3x")):
            # 10k Pykka threads take ~1 ms per message: two per actor, three rounds.
            big = count >= 10_000
            n = min(n, 2 * count) if big else n
            cases = {"ours": functools.partial(ours, count, n),
                     "pykka": functools.partial(peer, count, n)}
            if count == 1:
                cases["channel"] = functools.partial(channel, n)
            figures = rounds(cases, repeats=min(3, SETTINGS.repeats) if big else None)
            case = f"{verb}, {label}, no persistence"
            report.row(BENCHMARK, case, Paired.of(figures, "ours", "pykka"), "messages/s",
                       peer=f"Pykka ThreadingActor x{count:,}",
                       target=target if count == 1 else None)
            if count == 1:
                report.row(BENCHMARK, case, Paired.of(figures, "ours", "channel"), "messages/s",
                           peer="bare trio channel")


# -- memory per idle actor -----------------------------------------------------------------------

def bytes_per_idle_actor(path: Path, count: int) -> float:
    """What ``count`` recovered, idle actors keep in Python memory, per actor."""

    async def fill() -> float:
        async with SQLiteEventStore(path, synchronous="OFF") as store:
            for k in range(count):
                await store.append(f"Counter-i{k}", [store.codec.new_event(Added(1))])
        return 0.0

    async def main() -> float:
        async with SQLiteEventStore(path) as store, trio.open_nursery() as nursery:
            await store.last_version("Counter-other")  # the connections are not counted
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                refs = [await actors.spawn(nursery, Counter, f"i{k}", store=store)
                        for k in range(count)]
                for ref in refs:
                    assert await ref.ask(0) == 1
                gc.collect()
                after = tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()
            nursery.cancel_scope.cancel()
        return (after - before) / count

    run_trio(fill)
    return run_trio(main)


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
    kind = type_ids(conn, ["bench.Added"])["bench.Added"]
    rows = [(n + 1, f"Counter-c{n % 100}", n // 100 + 1, kind, data, None,
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

def commands(report: Report, files: Files) -> None:
    many = scaled(20_000)
    figures = rounds({
        "hundred": lambda: ours_commands(files.new(), 100, many),
        "single": lambda: ours_commands(files.new(), 1, scaled(2_000)),
        "ceiling": lambda: raw_ceiling(files.new(), many),
    })
    report.row(BENCHMARK, "emit 1 event/command, 100 actors, SQLite FULL",
               Paired.of(figures, "hundred", "ceiling"), "commands/s",
               peer="raw sqlite3 executemany x100", target=">= 0.8x")
    report.row(BENCHMARK, "emit 1 event/command, 1 actor, SQLite FULL",
               Paired.of(figures, "single", "ceiling"), "commands/s",
               peer="raw sqlite3 executemany x100")


def recovery(report: Report, files: Files) -> None:
    """All lengths, with and without a snapshot, in the same rounds: every pair is fair."""
    # At least a snapshot's worth before the tail, however small the scale.
    lengths = [max(scaled(n), SnapshotCounter.snapshot_every + TAIL + 1)
               for n in (10_000, 100_000, 1_000_000)]
    cases: dict[str, Callable[[], float]] = {}
    for count in lengths:
        plain, snapped = files.new(), files.new()
        fill(plain, count, snapshot=False)
        fill(snapped, count, snapshot=True)
        cases[f"snapshot {count}"] = functools.partial(recover, snapped, SnapshotCounter, count)
        cases[f"full {count}"] = functools.partial(recover, plain, Counter, count)
    figures = rounds(cases)
    for count in lengths:
        pair = Paired.of(figures, f"snapshot {count}", f"full {count}", higher_is_better=False)
        report.row(BENCHMARK, f"recover {count:,} events, snapshot + {TAIL} tail", pair, "s",
                   peer="full replay of the log")
        report.row(BENCHMARK, f"recover {count:,} events, full replay", count / pair.peer_median,
                   "events/s")
    small, big = lengths[0], lengths[-1]
    report.row(BENCHMARK, f"recover {big:,} events against {small:,}, snapshot + {TAIL} tail",
               Paired.of(figures, f"snapshot {big}", f"snapshot {small}",
                         higher_is_better=False),
               "s", peer=f"{small:,}-event log", target=">= 0.5x")


def run(report: Report, *, quick: bool = False) -> None:
    messaging(report, (1,) if quick else ACTOR_COUNTS)
    files = Files("bench-actors-")
    try:
        commands(report, files)
        if quick:
            return
        recovery(report, files)
        count = scaled(10_000)
        report.row(BENCHMARK, f"memory per idle actor, {count:,} actors, SQLite",
                   bytes_per_idle_actor(files.new(), count), "bytes/actor", target="<= 4 KB")
    finally:
        files.remove()
