"""Replay throughput: ``actors.replay.steps`` over a 100k-event log, the state after every event,
against the ``eventsourcing`` library (9.x) reconstructing an aggregate of as many events.

Both sides fold the same thing: an int ``amount`` added to a counter, one event class, events
appended in batches of 1,000 beforehand (not timed). Each is measured on its in-memory store
(``MemoryEventStore`` against eventsourcing's POPO recorder: both keep JSON text and decode it
on every read) and on SQLite (``SQLiteEventStore`` against eventsourcing's SQLite recorder).
Each case gives two figures from the same runs: events per second of wall-clock time (what a
user waits for) and of CPU time (``time.process_time``, all threads), which load from other
processes on the box does not skew: SQLite reads run in worker threads, whose hand-offs wait
for a free core on a busy machine. Ours includes a ``Step`` per event and the runtime's
``Cell.fold``; eventsourcing's ``repository.get`` builds the aggregate without a snapshot or a
cache.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import trio
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

import actors
import eventstore
from actors import replay
from eventstore import EventStore
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore

from ._harness import REPEATS, Report, scaled

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


async def _fill(store: EventStore, n: int) -> None:
    codec = store.codec
    for start in range(0, n, BATCH):
        size = min(BATCH, n - start)
        await store.append("Counter-c", [codec.new_event(Deposited(1)) for _ in range(size)])


Figures = tuple[float, float]
"""Median events/s of wall-clock time, and of CPU time."""


class _Timer:
    """Times REPEATS runs on both clocks."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __enter__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def __exit__(self, *exc: object) -> None:
        self.wall.append(self.n / (time.perf_counter() - self._wall))
        self.cpu.append(self.n / (time.process_time() - self._cpu))

    def medians(self) -> Figures:
        return statistics.median(self.wall), statistics.median(self.cpu)


async def _ours(store: EventStore, n: int) -> Figures:
    """Replays of the filled log, REPEATS times."""
    await _fill(store, n)
    timer = _Timer(n)
    for _ in range(REPEATS):
        state = None
        with timer:
            async for step in replay.steps(store, Counter, "c"):
                state = step.state
        assert state is not None and state.count == n
    return timer.medians()


def _ours_memory(n: int) -> Figures:
    return trio.run(_ours, MemoryEventStore(), n)


def _ours_sqlite(n: int, folder: Path) -> Figures:
    async def main() -> Figures:
        async with SQLiteEventStore(folder / "ours.db") as store:
            return await _ours(store, n)

    return trio.run(main)


class Tally(Aggregate):
    """The peer's counter."""

    def __init__(self) -> None:
        self.total = 0
        self.count = 0

    @event("Deposited")
    def deposit(self, amount: int) -> None:
        self.total += amount
        self.count += 1


def _peer(n: int, env: dict[str, str]) -> Figures:
    """eventsourcing: an aggregate with ``n`` events, rebuilt by ``repository.get``."""
    app: Application = Application(env=env)
    tally = Tally()
    for _ in range(n):
        tally.deposit(1)
        if len(tally.pending_events) >= BATCH:
            app.save(tally)
    app.save(tally)
    timer = _Timer(n)
    for _ in range(REPEATS):
        with timer:
            rebuilt = app.repository.get(tally.id)
        assert rebuilt.count == n
    return timer.medians()


def _rows(report: Report, case: str, ours: Figures, peer: str, theirs: Figures) -> None:
    for clock, value, peer_value in (("wall clock", ours[0], theirs[0]),
                                     ("CPU time", ours[1], theirs[1])):
        report.row("replay", f"{case}, {clock}", value, "events/s", peer=peer,
                   peer_value=peer_value, target=">= 5x")


def run(report: Report) -> None:
    n = scaled(100_000)
    case = f"{n:,} events, state after each"
    _rows(report, f"{case}, memory", _ours_memory(n), "eventsourcing POPO",
          _peer(n, {"PERSISTENCE_MODULE": "eventsourcing.popo"}))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder)
        peer = _peer(n, {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                         "SQLITE_DBNAME": str(path / "peer.db")})
        _rows(report, f"{case}, SQLite", _ours_sqlite(n, path), "eventsourcing SQLite", peer)
