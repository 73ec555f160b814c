"""Durable time on SQLite: what a durable call costs, against a plain event and against DBOS.

Everything runs on SQLite files in a temporary directory, ours in WAL mode with
``synchronous=FULL`` (the store's default). Cases:

- **time.aio() per message turn**, in one actor and spread over 100 actors: each turn calls
  ``await durable.time.aio()`` once, so it emits ``TimeObserved`` (a message without an id
  needs no ``ScopeCompleted``). The peer is the same actors emitting one plain, fieldless event
  per turn instead: one event per turn either way, and a backlog's turns share a commit; the
  target: 100 actors at least 0.9x the plain event's rate.
- **sleep(0) round trips** in one actor's ``run()``, as the issue names them. A sleep of zero
  seconds returns at once and records nothing, in our runtime as in DBOS (``DBOS.sleep`` returns
  before recording when ``seconds <= 0``): this row measures the call path only.
- **recorded sleeps**: ``sleep(0.001)``, the smallest wait that is recorded: ``SleepStarted``
  committed, then a millisecond's wait. In one actor, and in 100 actors at once, against DBOS's
  ``DBOS.sleep(0.001)`` in one workflow and in 100 concurrent workflows (``max_executor_threads``
  raised to 128 so they really run at once; DBOS's own SQLite settings, rollback journal). The
  target: 100 actors at least 3x DBOS's durable sleeps/s.

Ours and the peer (the plain-event actors, DBOS) alternate round by round. Timings start once
the actors (or workflows) are running and waiting for a go signal, so spawning and recovery are
not counted. DBOS is optional (``pip install dbos``); without it the DBOS rows show ours alone,
with a printed reason.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import attrs
import trio

import actors
import eventstore
from actors import durable
from eventstore.sqlite import SQLiteEventStore

from ._harness import Report, measure, paired, scaled

BENCHMARK = "durable"
QUICK = "durable.time.aio() per turn in 100 actors, against a plain event per turn"
RECORDED = 0.001  # seconds: the recorded sleep


@eventstore.event_type("bench.durable.Ticked")
@attrs.frozen
class Ticked:
    """The plain event the peer actors emit instead of a durable call."""


@attrs.define
class TimeTurns(actors.Actor):
    async def receive(self, message: Any) -> None:
        await durable.time.aio()


@attrs.define
class EventTurns(actors.Actor):
    async def receive(self, message: Any) -> None:
        self.emit(Ticked())


@attrs.define
class Sleeper(actors.Actor):
    """``run()`` says it is ready, waits for ``go``, sleeps ``sleeps`` times, says it is done."""

    ready: ClassVar[trio.Event]
    go: ClassVar[trio.Event]
    done: ClassVar[trio.Event]
    waiting: ClassVar[int]
    running: ClassVar[int]
    sleeps: ClassVar[int]
    seconds: ClassVar[float]

    async def run(self) -> None:
        Sleeper.waiting -= 1
        if Sleeper.waiting == 0:
            Sleeper.ready.set()
        await Sleeper.go.wait()
        for _ in range(Sleeper.sleeps):
            await durable.sleep.aio(Sleeper.seconds)
        Sleeper.running -= 1
        if Sleeper.running == 0:
            Sleeper.done.set()




def run_trio(work: Callable[[], Coroutine[Any, Any, float]]) -> float:
    result: float = trio.run(work)
    return result


# -- ours ------------------------------------------------------------------------------------------


def ours_turns(path: Path, cls: type[actors.Actor], count: int, per_actor: int) -> float:
    """Message turns per second: ``count`` actors of ``cls``, ``per_actor`` messages each."""

    async def main() -> float:
        async with SQLiteEventStore(path) as store, trio.open_nursery() as nursery:
            run = uuid.uuid4().hex[:8]
            refs = [await actors.spawn(nursery, cls, f"{run}-{n}", store=store)
                    for n in range(count)]
            started = time.perf_counter()
            async with trio.open_nursery() as asks:
                for ref in refs:
                    for _ in range(per_actor - 1):
                        ref.tell("tick")
                    asks.start_soon(ref.ask, "tick")
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        return count * per_actor / elapsed

    return run_trio(main)


def ours_sleeps(path: Path, count: int, sleeps: int, seconds: float) -> float:
    """Durable sleeps per second: ``count`` actors each sleeping ``sleeps`` times in run()."""

    async def main() -> float:
        Sleeper.ready, Sleeper.go, Sleeper.done = trio.Event(), trio.Event(), trio.Event()
        Sleeper.waiting = Sleeper.running = count
        Sleeper.sleeps, Sleeper.seconds = sleeps, seconds
        async with SQLiteEventStore(path) as store, trio.open_nursery() as nursery:
            run = uuid.uuid4().hex[:8]
            for n in range(count):
                await actors.spawn(nursery, Sleeper, f"{run}-{n}", store=store)
            await Sleeper.ready.wait()
            started = time.perf_counter()
            Sleeper.go.set()
            await Sleeper.done.wait()
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        return count * sleeps / elapsed

    return run_trio(main)


# -- DBOS ------------------------------------------------------------------------------------------


class Dbos:
    """DBOS launched once on a SQLite system database; workflows that sleep ``k`` times."""

    def __init__(self, root: Path) -> None:
        from dbos import DBOS

        logging.getLogger("dbos").setLevel(logging.WARNING)
        self.DBOS = DBOS
        self.ready = threading.Semaphore(0)
        self.go = threading.Event()
        DBOS(config={"name": "bench-durable", "log_level": "WARNING",
                     "system_database_url": f"sqlite:///{root / 'dbos.sqlite'}",
                     "max_executor_threads": 128})
        ready, go = self.ready, self.go

        @DBOS.workflow(name="bench_durable_sleeper")
        def sleeper(k: int, seconds: float) -> int:
            ready.release()
            go.wait()
            for _ in range(k):
                DBOS.sleep(seconds)
            return k

        self.sleeper = sleeper
        DBOS.launch()

    def sleeps(self, count: int, sleeps: int, seconds: float) -> float:
        """Durable sleeps per second: ``count`` concurrent workflows of ``sleeps`` sleeps."""
        self.go.clear()
        handles = [self.DBOS.start_workflow(self.sleeper, sleeps, seconds)
                   for _ in range(count)]
        for _ in range(count):  # every workflow is running, blocked on go
            if not self.ready.acquire(timeout=60):
                raise RuntimeError("DBOS did not start the workflows within 60 s")
        started = time.perf_counter()
        self.go.set()
        for handle in handles:
            handle.get_result()
        return count * sleeps / (time.perf_counter() - started)

    def close(self) -> None:
        self.DBOS.destroy(destroy_registry=True)


def open_dbos(root: Path) -> Dbos | str:
    """DBOS, or the reason it cannot run here."""
    try:
        import dbos  # noqa: F401
    except ImportError:
        return "dbos is not installed (pip install dbos)"
    try:
        return Dbos(root)
    except Exception as exc:  # offline, no SQLite support in this version, ...
        return f"DBOS cannot run on SQLite here: {exc!r}"


# -- the table -------------------------------------------------------------------------------------


def run(report: Report, *, quick: bool = False) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-durable-"))
    try:
        path = root / "ours.db"
        turns: list[tuple[int, int, str, str | None]] = [
            (100, scaled(100), "100 actors", ">= 0.9x")]
        if not quick:
            turns.insert(0, (1, scaled(1_000), "1 actor", None))
        for count, each, case, target in turns:
            pair = paired(partial(ours_turns, path, TimeTurns, count, each),
                          partial(ours_turns, path, EventTurns, count, each))
            report.row(BENCHMARK, f"time.aio() per message turn, {case}", pair, "calls/s",
                       peer="same actors, 1 plain event per turn", target=target)
        if not quick:
            sleeps(report, root, path)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def sleeps(report: Report, root: Path, path: Path) -> None:
    """Our durable sleeps, and DBOS's in the same rounds when it can run here."""
    zero = scaled(20_000)
    ours: dict[str, Callable[[], float]] = {
        "zero": lambda: ours_sleeps(path, 1, zero, 0),
        "one": lambda: ours_sleeps(path, 1, scaled(300), RECORDED),
        "many": lambda: ours_sleeps(path, 100, scaled(20), RECORDED),
    }
    cases = {
        "zero": ("sleep(0) round trips, 1 actor (records nothing, both sides)", None),
        "one": (f"recorded sleep({RECORDED}), 1 actor", None),
        "many": (f"recorded sleep({RECORDED}), 100 actors", ">= 3x"),
    }
    opened = open_dbos(root)
    if isinstance(opened, str):
        print(f"  {BENCHMARK}: skipping the DBOS rows: {opened}", flush=True)
        for key, (case, target) in cases.items():
            report.row(BENCHMARK, case, measure(ours[key]), "sleeps/s", target=target)
        return
    try:
        # DBOS is slower per sleep: fewer sleeps per round, the same rates measured.
        theirs: dict[str, Callable[[], float]] = {
            "zero": lambda: opened.sleeps(1, zero, 0),
            "one": lambda: opened.sleeps(1, scaled(100), RECORDED),
            "many": lambda: opened.sleeps(100, scaled(5), RECORDED),
        }
        for key, (case, target) in cases.items():
            report.row(BENCHMARK, case, paired(ours[key], theirs[key]), "sleeps/s",
                       peer="DBOS.sleep on SQLite", target=target)
    finally:
        opened.close()
