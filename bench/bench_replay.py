"""Replay throughput: ``actors.replay.steps`` over a 100k-event log, the state after every event,
against the ``eventsourcing`` library (9.x) reconstructing an aggregate of as many events.

Both sides fold the same thing: an int ``amount`` added to a counter, one event class, events
appended in batches of 1,000 beforehand (not timed). Each is measured on its in-memory store
(``MemoryEventStore`` against eventsourcing's POPO recorder: both keep JSON text and decode it
on every read) and on SQLite (``SQLiteEventStore`` against eventsourcing's SQLite recorder),
ours and the peer replaying in alternate rounds. Each round gives two figures: events per second
of wall-clock time (what a user waits for) and of CPU time (``time.process_time``, all threads),
which load from other processes on the box does not skew: SQLite reads run in worker threads,
whose hand-offs wait for a free core on a busy machine. Ours includes a ``Step`` per event and
the runtime's fold; eventsourcing's ``repository.get`` builds the aggregate without a snapshot or
a cache. Ours opens its store before the clock starts, in each round.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

import actors
import eventstore
from actors import replay
from eventstore import EventStore
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore

from ._harness import Paired, Report, rounds, scaled

QUICK = "100k-event replay from SQLite (10k in quick), against eventsourcing on SQLite"
BATCH = 1_000


@eventstore.event_type("bench.replay.Deposited")
@attrs.frozen
class Deposited:
    amount: int


@attrs.define
class Counter(actors.Actor):
    total: int = 0
    count: int = 0

    def apply(self, event: Any) -> None:
        match event:
            case Deposited(amount=amount):
                self.total += amount
                self.count += 1


class Clocks:
    """Times runs of ``n`` events on the wall clock (returned) and on CPU time (kept)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.cpu: list[float] = []

    def time(self, work: Callable[[], None]) -> float:
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        self.cpu.append(self.n / (time.process_time() - cpu))
        return self.n / (time.perf_counter() - wall)


# -- ours ------------------------------------------------------------------------------------------

async def _fill(store: EventStore, n: int) -> None:
    codec = store.codec
    for start in range(0, n, BATCH):
        size = min(BATCH, n - start)
        await store.append("Counter-c", [codec.new_event(Deposited(1)) for _ in range(size)])


async def _replay(store: EventStore, n: int, clocks: Clocks) -> float:
    """One timed replay of the filled log; events/s of wall-clock time."""
    state = None

    async def steps() -> None:
        nonlocal state
        async for step in replay.steps(store, Counter, "c"):
            state = step.state

    wall, cpu = time.perf_counter(), time.process_time()
    await steps()
    clocks.cpu.append(n / (time.process_time() - cpu))
    rate = n / (time.perf_counter() - wall)
    assert state is not None and state.count == n
    return rate


def ours_memory(n: int, clocks: Clocks) -> Callable[[], float]:
    """A filled memory store (it holds no trio objects across runs), replayed once per call."""
    store = MemoryEventStore()
    trio.run(_fill, store, n)
    return lambda: trio.run(_replay, store, n, clocks)


def ours_sqlite(path: Path, n: int, clocks: Clocks) -> Callable[[], float]:
    async def fill() -> None:
        async with SQLiteEventStore(path) as store:
            await _fill(store, n)

    async def once() -> float:
        async with SQLiteEventStore(path) as store:
            await store.last_version("Counter-c")  # connected before the clock starts
            return await _replay(store, n, clocks)

    trio.run(fill)
    return lambda: trio.run(once)


# -- the peer --------------------------------------------------------------------------------------

@functools.cache
def _tally() -> Any:
    """The peer's counter aggregate, imported only when it runs (eventsourcing is an extra)."""
    from eventsourcing.domain import Aggregate, event

    class Tally(Aggregate):
        def __init__(self) -> None:
            self.total = 0
            self.count = 0

        @event("Deposited")
        def deposit(self, amount: int) -> None:
            self.total += amount
            self.count += 1

    return Tally


def peer(n: int, env: dict[str, str], clocks: Clocks) -> Callable[[], float]:
    """eventsourcing: an aggregate with ``n`` events; each call rebuilds it by ``get``."""
    from eventsourcing.application import Application

    app: Application[Any] = Application(env=env)
    tally = _tally()()
    for _ in range(n):
        tally.deposit(1)
        if len(tally.pending_events) >= BATCH:
            app.save(tally)
    app.save(tally)

    def once() -> float:
        rebuilt: list[Any] = []
        rate = clocks.time(lambda: rebuilt.append(app.repository.get(tally.id)))
        assert rebuilt[0].count == n
        return rate

    return once


# -- the report ------------------------------------------------------------------------------------

def compare(report: Report, case: str, n: int, ours: Callable[[Clocks], Callable[[], float]],
            peer_name: str, theirs: Callable[[Clocks], Callable[[], float]],
            target: str | None) -> None:
    ours_cpu, peer_cpu = Clocks(n), Clocks(n)
    figures = rounds({"ours": ours(ours_cpu), "peer": theirs(peer_cpu)})
    report.row("replay", f"{case}, wall clock", Paired.of(figures, "ours", "peer"), "events/s",
               peer=peer_name, target=target)
    report.row("replay", f"{case}, CPU time", Paired(tuple(ours_cpu.cpu), tuple(peer_cpu.cpu)),
               "events/s", peer=peer_name)


def run(report: Report, *, quick: bool = False) -> None:
    n = scaled(100_000)
    case = f"{n:,} events, state after each"
    if not quick:
        compare(report, f"{case}, memory", n, functools.partial(ours_memory, n),
                "eventsourcing POPO",
                functools.partial(peer, n, {"PERSISTENCE_MODULE": "eventsourcing.popo"}), None)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder)
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
               "SQLITE_DBNAME": str(path / "peer.db")}
        compare(report, f"{case}, SQLite", n, functools.partial(ours_sqlite, path / "ours.db", n),
                "eventsourcing SQLite", functools.partial(peer, n, env),
                ">= 6x and >= 250k events/s")
