"""The child processes of the reliability tests: run as a script on a SQLite file, never imported.

``work DB ACKS INCARNATION``: an ``ActorSystem`` with 100 ``Worker`` actors (events, timers) and
10 ``Sleeper`` actors (durable sleeps in ``run()``); eight driver tasks ask the workers to emit
events and set timers, and append an acknowledgement line to ACKS (fsync'd) after each reply.
It runs until it is killed.

``drain DB``: the same system without drivers, until every timer in the log has fired and every
sleeper has finished (exit 0), or a deadline passes (exit 3). It sends no message: what wakes
the actors is the system's work index.

``append DB TAG TASKS COUNT``: TASKS trio tasks each make COUNT read-modify-write appends to
shared streams (each event holds the stream's counter, +1), retrying on WrongExpectedVersion;
prints every acknowledged append and the conflicts as JSON.

``race DB TAG COUNT``: runs the actor ``Tally("shared")``, which the other process runs too, and
asks it COUNT times; an ask that loses the race to the other process (``ActorStopped``) is sent
again to a freshly recovered actor. Prints every acknowledged key and version as JSON.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import trio

import actors
import eventstore
from actors import durable
from eventstore import NewEvent, WrongExpectedVersion
from eventstore.sqlite import SQLiteEventStore

WORKERS = 100
SLEEPERS = 10
DRIVERS = 8
ROUNDS = int(os.environ.get("ACTORS_SLEEP_ROUNDS", "3"))
COUNTERS = ["c-0", "c-1", "c-2"]


def nap(actor_id: str, round: int) -> float:
    """The durable sleep of a sleeper's round: 3 to 5 s, the same in every incarnation."""
    return 3.0 + zlib.crc32(f"{actor_id}/{round}".encode()) % 21 / 10


@eventstore.event_type("reliability.Emitted")
@attrs.frozen
class Emitted:
    key: str


@eventstore.event_type("reliability.Fired")
@attrs.frozen
class Fired:
    token: str
    at: float


@eventstore.event_type("reliability.Slept")
@attrs.frozen
class Slept:
    round: int
    started: float
    woke: float


@attrs.frozen
class Emit:
    key: str


@attrs.frozen
class Schedule:
    token: str
    delay: float


@attrs.define
class Worker(actors.Actor):
    """Emits what it is asked to; sets timers and records each firing with the durable time."""

    kind = "w"
    snapshot_every = 100
    emitted: int = 0

    def apply(self, event: Any) -> None:
        if isinstance(event, Emitted):
            self.emitted += 1

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Emit):
            self.emit(Emitted(message.key))
            return self.version
        now = await durable.now.aio()
        at = now + timedelta(seconds=message.delay)
        self.notifier.notify_at(at, message.token)
        return at.timestamp()

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        for token in self.notifier.due(now):
            self.emit(Fired(token, now.timestamp()))


@attrs.define
class Sleeper(actors.Actor):
    """Sleeps durably ``ROUNDS`` times in ``run()``, recording when each sleep began and ended."""

    kind = "sl"
    rounds: int = 0

    def apply(self, event: Any) -> None:
        if isinstance(event, Slept):
            self.rounds += 1

    async def run(self) -> None:
        # The same durable calls on every execution: a re-run replays the rounds already done.
        for round in range(ROUNDS):
            started = await durable.time.aio()
            await durable.sleep.aio(nap(self.id, round))
            woke = await durable.time.aio()
            if round == self.rounds:
                self.emit(Slept(round, started, woke))


async def write_acks(path: str, lines: trio.MemoryReceiveChannel[str]) -> None:
    """Append acknowledgement lines, each batch fsync'd before the next one is taken."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(batch: list[str]) -> None:
        os.write(fd, "".join(batch).encode())
        os.fsync(fd)

    async for line in lines:
        batch = [line]
        while True:
            try:
                batch.append(lines.receive_nowait())
            except trio.WouldBlock:
                break
        await trio.to_thread.run_sync(write, batch)


async def drive(system: actors.ActorSystem, acks: trio.MemorySendChannel[str],
                incarnation: int, driver: int) -> None:
    rng = random.Random(incarnation * 1000 + driver)
    for n in range(sys.maxsize):
        await trio.sleep(rng.uniform(0, 0.04))  # about 400 asks a second in all
        worker = f"{rng.randrange(WORKERS)}"
        ref = system.ref(Worker, worker)
        key = f"{incarnation}.{driver}.{n}"
        if rng.random() < 0.85:
            version = await ref.ask(Emit(key))
            await acks.send(f"E w-{worker} {key} {version}\n")
        else:
            at = await ref.ask(Schedule(key, rng.uniform(0.1, 2.0)))
            await acks.send(f"T w-{worker} {key} {at!r}\n")


async def work(path: str, acks_path: str, incarnation: int) -> None:
    async with SQLiteEventStore(path) as store, \
            actors.ActorSystem(store, actors=[Worker, Sleeper]) as system:
        for n in range(SLEEPERS):
            await system.spawn(Sleeper, str(n))
        send, receive = trio.open_memory_channel[str](math.inf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_acks, acks_path, receive)
            await send.send(f"R {incarnation} {time.time()!r}\n")
            for driver in range(DRIVERS):
                nursery.start_soon(drive, system, send, incarnation, driver)


async def unfinished(store: eventstore.EventStore) -> int:
    """How many timers have not fired and sleepers have not finished, by the log."""
    pending: set[tuple[str, int]] = set()
    running = {f"sl-{n}" for n in range(SLEEPERS)}
    async for event in store.read_all(types=["actors.NotificationScheduled",
                                             "actors.NotificationFired", "actors.RunCompleted"]):
        if event.type == "actors.NotificationScheduled":
            pending.add((event.stream, event.data["seq"]))
        elif event.type == "actors.NotificationFired":
            pending -= {(event.stream, seq) for seq in event.data["seqs"]}
        else:
            running.discard(event.stream)
    return len(pending) + len(running)


async def drain(path: str) -> int:
    async with SQLiteEventStore(path) as store, actors.ActorSystem(store,
                                                                   actors=[Worker, Sleeper]):
        with trio.move_on_after(60 + 5 * ROUNDS):
            while await unfinished(store):
                await trio.sleep(0.2)
            return 0
    return 3


async def barrier(path: str, tag: str) -> None:
    """Wait until both racing children (tags a and b) are ready, so that they do race."""
    Path(f"{path}.{tag}.ready").touch()
    while not all(Path(f"{path}.{other}.ready").exists() for other in "ab"):
        await trio.sleep(0.005)


async def append(path: str, tag: str, tasks: int, count: int) -> None:
    acknowledged: list[list[Any]] = []
    conflicts = 0

    async def writer(task: int) -> None:
        nonlocal conflicts
        rng = random.Random(f"{tag}.{task}")
        n = 0
        while n < count:
            stream = rng.choice(COUNTERS)
            version = await store.last_version(stream)
            value = 0
            async for event in store.read(stream, from_version=version):
                value = event.data["value"]
            data = {"writer": f"{tag}.{task}", "n": n, "value": value + 1, "read": version}
            try:
                result = await store.append(stream, [NewEvent("Counted", data)],
                                            expected_version=version)
            except WrongExpectedVersion:
                conflicts += 1
                continue
            acknowledged.append([stream, result.version, result.position, data["writer"], n])
            n += 1

    async with SQLiteEventStore(path) as store, trio.open_nursery() as nursery:
        await barrier(path, tag)
        for task in range(tasks):
            nursery.start_soon(writer, task)
    print(json.dumps({"acknowledged": acknowledged, "conflicts": conflicts}))


@attrs.define
class Tally(actors.Actor):
    """One actor that two processes run at once: each commit races the other process's."""

    kind = "tally"
    keys: int = 0

    def apply(self, event: Any) -> None:
        self.keys += 1

    async def receive(self, message: Any) -> Any:
        self.emit(Emitted(message))
        return self.version


async def race(path: str, tag: str, count: int) -> None:
    acknowledged: list[list[Any]] = []
    stopped = 0
    async with SQLiteEventStore(path) as store, trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Tally, "shared", store=store)
        await barrier(path, tag)
        n = 0
        while n < count:
            key = f"{tag}.{n}"
            try:
                version = await ref.ask(key)
            except actors.ActorStopped:  # lost a race: nothing of the turn was written
                stopped += 1
                await ref.stop()
                ref = await actors.spawn(nursery, Tally, "shared", store=store)
                continue
            acknowledged.append([key, version])
            n += 1
        nursery.cancel_scope.cancel()
    print(json.dumps({"acknowledged": acknowledged, "stopped": stopped}))


def main(argv: list[str]) -> int:
    mode, path, *rest = argv
    if mode == "work":
        trio.run(work, path, rest[0], int(rest[1]))
    elif mode == "drain":
        return trio.run(drain, path)
    elif mode == "append":
        trio.run(append, path, rest[0], int(rest[1]), int(rest[2]))
    elif mode == "race":
        trio.run(race, path, rest[0], int(rest[1]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
