"""Durable timers end to end: fired notifications/s, memory per pending one, wake-up lateness.

- **Fired notifications/s** on SQLite (WAL, ``synchronous=FULL``): each actor runs a chain of
  wake-ups; each ``on_notify`` takes the due token with ``due(durable now)``, emits one event and
  schedules the next notification, due at once. One wake-up commits five events
  (``TimeObserved``, ``NotificationFired``, the user's event, ``NotificationScheduled``,
  ``ScopeCompleted``). In 1 and 100 spawned actors, and in 100 actors of an ``ActorSystem``, whose
  work index adds one append per wake-up (each one moves the actor's deadline). The peer is the
  same storage work reached through the mailbox: the same actors told one message per step, each
  turn committing five events too (``TimeObserved``, three plain events, ``ScopeCompleted``).
- **Memory per pending notification** inside an actor: an actor whose log schedules N
  notifications (int tokens, distinct random instants) is recovered from SQLite under
  ``tracemalloc``; the figure is what it keeps beyond an actor with an empty log, per pending
  notification: the notifier's heap entry, its datetime and its token (events are not kept in
  memory once committed). The peer is a plain ``MultiNotifier`` holding the same notifications.
- **Wake-up lateness**, ``durable now - at`` in ``on_notify``, with 10k actors holding timers in
  an ``ActorSystem``: a steady state in which every actor, at each wake-up, schedules its next
  notification a random 0-60 s ahead: about 330 wake-ups a second at 10k actors, well below the
  throughput ceiling measured above (near it, lateness is queueing). Measured on the wall clock
  on SQLite, with every actor kept in memory and with ``idle_timeout=1`` (actors are passivated
  between wake-ups, so each wake-up includes activation and recovery by the work index); and on
  the virtual clock (trio's ``MockClock``, the memory store), where it must be exactly 0. The
  peer is the floor: 10k bare trio tasks doing ``trio.sleep_until`` at the same instants,
  persisting nothing. The system activates a passivated actor ``WAKE_AHEAD`` (0.25 s) before
  its timer, so recovery is not part of the lateness; what is left on the wall clock is trio's
  scheduling and CPython's garbage collections, which stop everything while they walk the
  objects they collect. One case runs the system with ``gc=actors.GCPolicy()`` (the heap frozen
  at start and after each collection, so every pause is a young collection's): the setting
  the docs recommend for many passivating actors. Each run's percentiles are over the
  wake-ups of its measuring window (after a warm-up); the wall-clock cases and the floor take
  turns for three rounds (each on a fresh database), and the rows give the median over rounds
  and the paired ratio to the floor. ``--quick`` runs the passivating cases (with and without
  the policy) and the floor, one shorter round, at a tenth of the actors.
"""

from __future__ import annotations

import gc
import json
import random
import shutil
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import attrs
import trio
import trio.testing

import actors
import eventstore
from actors import MultiNotifier, durable
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore

from ._harness import SETTINGS, Paired, Report, paired, rounds, scaled

BENCHMARK = "timers"
SPREAD = 60.0  # seconds: how far ahead the lateness actors schedule (uniformly)
QUICK = ("wake-up lateness p99 with 1k actors passivating, with and without GCPolicy(), "
         "against bare trio tasks (a shorter window)")
IDLE = 1.0  # seconds: idle_timeout of the passivating case


def run_trio(work: Callable[[], Coroutine[Any, Any, float]]) -> float:
    result: float = trio.run(work)
    return result




# -- fired notifications/s -------------------------------------------------------------------------


@eventstore.event_type("bench.timers.Handled")
@attrs.frozen
class Handled:
    step: int


@eventstore.event_type("bench.timers.Filler")
@attrs.frozen
class Filler:
    """One of the plain events the mailbox peer emits to match a wake-up's event count."""

    step: int


class Progress:
    """How many steps each actor runs, how many actors still run; ``done`` when none does."""

    steps: ClassVar[int] = 0
    running: ClassVar[int] = 0
    done: ClassVar[trio.Event]

    @classmethod
    def start(cls, count: int, steps: int) -> None:
        cls.steps = steps
        cls.running = count
        cls.done = trio.Event()

    @classmethod
    def finished(cls) -> None:
        cls.running -= 1
        if cls.running == 0:
            cls.done.set()


@attrs.define
class Chain(actors.Actor):
    """Told to start, it runs ``Progress.steps`` wake-ups, each firing one notification."""

    kind = "Chain"

    async def receive(self, message: Any) -> None:
        self.notifier.notify_at(await durable.now.aio(), 1)

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        for step in self.notifier.due(now):
            self.emit(Handled(step))
            if step < Progress.steps:
                self.notifier.notify_at(now, step + 1)
            else:
                Progress.finished()


@attrs.define
class Mailbox(actors.Actor):
    """The peer: one message turn per step, committing as many events as a wake-up."""

    kind = "Mailbox"

    async def receive(self, message: int) -> None:
        await durable.now.aio()
        self.emit(Handled(message), Filler(message), Filler(message))
        if message == Progress.steps:
            Progress.finished()


def fired_per_second(path: Path, cls: type[actors.Actor], count: int, steps: int,
                     in_system: bool) -> float:
    """Steps per second: ``count`` actors of ``cls`` running ``steps`` steps each."""

    async def drive(refs: list[actors.ActorRef]) -> float:
        started = time.perf_counter()
        for ref in refs:
            if cls is Chain:
                ref.tell("start")
            else:
                for step in range(1, steps + 1):
                    ref.tell(step)
        await Progress.done.wait()
        return count * steps / (time.perf_counter() - started)

    async def main() -> float:
        run = uuid.uuid4().hex[:8]
        Progress.start(count, steps)
        async with SQLiteEventStore(path) as store:
            if in_system:
                async with actors.ActorSystem(store, actors=[cls]) as system:
                    return await drive([await system.spawn(cls, f"{run}-{n}")
                                        for n in range(count)])
            async with trio.open_nursery() as nursery:
                rate = await drive([await actors.spawn(nursery, cls, f"{run}-{n}", store=store)
                                    for n in range(count)])
                nursery.cancel_scope.cancel()
            return rate

    return run_trio(main)


# -- memory per pending notification ---------------------------------------------------------------


@attrs.define
class Holder(actors.Actor):
    """Schedules the (epoch, token) pairs it is told."""

    kind = "Holder"

    async def receive(self, message: list[tuple[float, int]]) -> None:
        for at, token in message:
            self.notifier.notify_at(datetime.fromtimestamp(at, UTC), token)


def instants(n: int) -> list[tuple[float, int]]:
    """``n`` distinct random instants a year from 2030 on, at whole microseconds, with tokens."""
    rng = random.Random(3)
    base = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    micros = rng.sample(range(365 * 86400 * 1_000_000), n)
    return [(base + us / 1_000_000, token) for token, us in enumerate(micros)]


def bytes_in_actor(path: Path, pairs: list[tuple[float, int]]) -> float:
    """What recovering an actor with ``pairs`` pending keeps, beyond an empty one, per pending."""

    async def fill() -> None:
        async with SQLiteEventStore(path) as store, trio.open_nursery() as nursery:
            ref = await actors.spawn(nursery, Holder, "full", store=store)
            for i in range(0, len(pairs), 1000):
                await ref.ask(pairs[i:i + 1000])
            nursery.cancel_scope.cancel()

    async def kept(actor_id: str) -> float:
        async with SQLiteEventStore(path) as store, trio.open_nursery() as nursery:
            await store.last_version("warm-up")  # the connections are not counted
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                ref = await actors.spawn(nursery, Holder, actor_id, store=store)
                gc.collect()
                after = tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()
            await ref.stop()
            nursery.cancel_scope.cancel()
        return float(after - before)

    trio.run(fill)
    return (run_trio(lambda: kept("full")) - run_trio(lambda: kept("empty"))) / len(pairs)


def bytes_in_notifier(pairs: list[tuple[float, int]]) -> float:
    """The same in a plain notifier, its datetimes and tokens decoded fresh as the actor's are."""
    data = json.dumps(pairs)
    gc.collect()
    tracemalloc.start()
    try:
        notifier: MultiNotifier[int] = MultiNotifier()
        for at, token in json.loads(data):
            notifier.notify_at(datetime.fromtimestamp(at, UTC), token)
        gc.collect()
        current = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del notifier
    return current / len(pairs)


# -- wake-up lateness ------------------------------------------------------------------------------


class Lateness:
    """Where the wake-ups of the lateness case record ``now - at``, inside the window."""

    warmup: ClassVar[float] = 5.0  # seconds of steady state before lateness is recorded
    window: ClassVar[float] = 10.0  # seconds of steady state during which it is recorded
    record_from: ClassVar[float] = float("inf")
    record_until: ClassVar[float] = float("inf")
    seconds: ClassVar[list[float]] = []
    rng: ClassVar[random.Random] = random.Random(4)

    @classmethod
    def reset(cls) -> None:
        cls.record_from = cls.record_until = float("inf")
        cls.seconds = []

    @classmethod
    def open_window(cls, now: float) -> float:
        """Record from ``now`` + warm-up for the window; the seconds to run until it is over."""
        cls.record_from = now + cls.warmup
        cls.record_until = cls.record_from + cls.window
        return cls.warmup + cls.window + SPREAD / 10

    @classmethod
    def note(cls, at: float, now: float) -> None:
        if cls.record_from <= at < cls.record_until:
            cls.seconds.append(now - at)

    @classmethod
    def ahead(cls) -> timedelta:
        return timedelta(seconds=cls.rng.uniform(0.0, SPREAD))


@attrs.define
class Ticker(actors.Actor):
    """Holds one timer; each wake-up schedules the next, a random 0-SPREAD s ahead."""

    kind = "Ticker"

    async def receive(self, message: Any) -> None:
        self.notifier.notify_at(await durable.now.aio() + Lateness.ahead(), 0)

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        at = self.notifier.next_at()
        if self.notifier.due(now):
            assert at is not None
            Lateness.note(at.timestamp(), now.timestamp())
            self.notifier.notify_at(now + Lateness.ahead(), 0)


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(median, p99) in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


async def steady_state(system: actors.ActorSystem, count: int, clock: actors.Clock) -> None:
    """Arm ``count`` tickers, then record lateness over the measuring window."""
    Lateness.reset()
    async with trio.open_nursery() as nursery:
        for n in range(count):
            nursery.start_soon(system.ref(Ticker, f"t{n}").ask, "arm")
    await trio.sleep(Lateness.open_window(clock.time()))


def lateness_wall(root: Path, count: int, idle_timeout: float | None, *,
                  policy: actors.GCPolicy | None = None) -> tuple[float, float, int]:
    """One run on a fresh database: an old one would hold the last run's pending timers."""
    path = root / f"late-{uuid.uuid4().hex[:8]}.db"

    async def main() -> None:
        async with SQLiteEventStore(path) as store, \
                actors.ActorSystem(store, actors=[Ticker], idle_timeout=idle_timeout,
                                   gc=policy) as system:
            await steady_state(system, count, actors.WallClock())

    trio.run(main)
    gc.collect()  # what this run left must not pause the next one
    return (*percentiles(Lateness.seconds), len(Lateness.seconds))


def lateness_virtual(count: int) -> tuple[float, float, int]:
    async def main() -> None:
        clock = actors.VirtualClock()
        async with actors.ActorSystem(MemoryEventStore(), actors=[Ticker], clock=clock,
                                      idle_timeout=IDLE) as system:
            await steady_state(system, count, clock)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return (*percentiles(Lateness.seconds), len(Lateness.seconds))


def lateness_floor(count: int) -> tuple[float, float, int]:
    """Bare trio tasks sleeping until the same kind of instants: the floor."""

    async def ticker(clock: actors.WallClock) -> None:
        while True:
            at = clock.time() + Lateness.ahead().total_seconds()
            await trio.sleep_until(trio.current_time() + (at - clock.time()))
            Lateness.note(at, clock.time())

    async def main() -> None:
        Lateness.reset()
        clock = actors.WallClock()
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(ticker, clock)
            await trio.sleep(Lateness.open_window(clock.time()))
            nursery.cancel_scope.cancel()

    trio.run(main)
    return (*percentiles(Lateness.seconds), len(Lateness.seconds))


# -- the table -------------------------------------------------------------------------------------


def lateness(report: Report, root: Path, count: int, *, quick: bool) -> None:
    """The wall-clock cases and the bare-task floor in the same rounds (three at most)."""
    passivating = f"SQLite, idle_timeout={IDLE:g}"
    recommended = f"{passivating}, gc=GCPolicy()"
    runs: dict[str, Callable[[], tuple[float, float, int]]] = {
        "floor": partial(lateness_floor, count),
        passivating: partial(lateness_wall, root, count, IDLE),
        recommended: partial(lateness_wall, root, count, IDLE, policy=actors.GCPolicy()),
    }
    if not quick:
        runs["SQLite, all in memory"] = partial(lateness_wall, root, count, None)
    medians: dict[str, list[float]] = {name: [] for name in runs}
    samples: dict[str, list[int]] = {name: [] for name in runs}

    def p99_of(name: str) -> float:
        median, p99, n = runs[name]()
        medians[name].append(median)
        samples[name].append(n)
        return p99

    p99s = rounds({name: partial(p99_of, name) for name in runs},
                  repeats=1 if quick else min(3, SETTINGS.repeats))
    for name in runs:
        if name == "floor":
            continue
        wake_ups = f"{min(samples[name]):,}-{max(samples[name]):,} wake-ups a round"
        report.row(BENCHMARK, f"lateness median, {count:,} actors, {name}",
                   Paired(tuple(medians[name]), tuple(medians["floor"]), higher_is_better=False),
                   "ms", peer="bare trio tasks")
        report.row(BENCHMARK, f"lateness p99, {count:,} actors, {name} ({wake_ups})",
                   Paired.of(p99s, name, "floor", higher_is_better=False), "ms",
                   peer="bare trio tasks", target="< 10 ms" if name == recommended else None)


def run(report: Report, *, quick: bool = False) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-timers-"))
    try:
        count = scaled(10_000)
        if quick:
            Lateness.warmup, Lateness.window = 2.0, 5.0
            lateness(report, root, count, quick=True)
            return
        path = root / "fired.db"
        cases = [(1, scaled(1_000), False, "1 actor"),
                 (100, scaled(50), False, "100 actors"),
                 (100, scaled(50), True, "100 actors in an ActorSystem")]
        for actor_count, steps, in_system, case in cases:
            pair = paired(partial(fired_per_second, path, Chain, actor_count, steps, in_system),
                          partial(fired_per_second, path, Mailbox, actor_count, steps, in_system))
            report.row(BENCHMARK, f"fired end to end on SQLite, {case}", pair,
                       "notifications/s", peer="same actors, message turns, same events",
                       target="~1x")

        pairs = instants(scaled(100_000))
        # tracemalloc counts are deterministic up to a few bytes: one round.
        report.row(BENCHMARK, f"memory per pending timer inside an actor, {len(pairs):,} pending",
                   paired(partial(bytes_in_actor, root / "memory.db", pairs),
                          partial(bytes_in_notifier, pairs), higher_is_better=False, repeats=1),
                   "bytes/pending", peer="plain MultiNotifier")

        lateness(report, root, count, quick=False)
        median, p99, samples = lateness_virtual(count)
        case = f"{count:,} actors, virtual clock, memory store, idle_timeout={IDLE:g}"
        report.row(BENCHMARK, f"lateness median, {case}", median, "ms", target="== 0")
        report.row(BENCHMARK, f"lateness p99, {case} ({samples:,} wake-ups)", p99, "ms",
                   target="== 0")
    finally:
        shutil.rmtree(root, ignore_errors=True)
