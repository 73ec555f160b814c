"""Child process for tests/test_durable_crash.py: an actor that reads the time, naps, reads again.

Usage: ``durable_napper.py DB SECONDS [--no-spawn]``. Prints JSON lines: ``{"t0": ...}`` after
the first ``durable.time()``, ``{"sleeping": wall}`` right before ``durable.sleep``, and
``{"t1": ..., "wall": ...}`` once the sleep is over; then exits once the run is committed. With
``--no-spawn`` nobody asks for the actor: the ActorSystem's work index must bring it back.
With ``--kill-after=DELAY`` the process sends itself SIGKILL ``DELAY`` seconds after the
``sleeping`` line, from a thread: a kill that can land inside the commit of ``SleepStarted``,
which a parent reading the line through a pipe would mostly miss.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import ClassVar

import attrs
import trio

import actors
from actors import durable
from eventstore.sqlite import SQLiteEventStore


def say(**fields: float) -> None:
    print(json.dumps(fields), flush=True)


@attrs.define
class Napper(actors.Actor):
    kind = "Napper"
    seconds: ClassVar[float] = 0.0
    kill_after: ClassVar[float | None] = None
    finished: ClassVar[trio.Event]

    async def run(self) -> None:
        say(t0=await durable.time.aio())
        say(sleeping=time.time())
        if Napper.kill_after is not None:
            threading.Timer(Napper.kill_after, os.kill, (os.getpid(), signal.SIGKILL)).start()
        await durable.sleep.aio(Napper.seconds)
        say(t1=await durable.time.aio(), wall=time.time())
        Napper.finished.set()


async def main(db: str, seconds: float, flags: list[str]) -> None:
    Napper.seconds = seconds
    for flag in flags:
        if flag.startswith("--kill-after="):
            Napper.kill_after = float(flag.removeprefix("--kill-after="))
    Napper.finished = trio.Event()
    async with SQLiteEventStore(db) as store, \
            actors.ActorSystem(store, actors=[Napper]) as system:
        if "--no-spawn" not in flags:
            await system.spawn(Napper, "n1")
        await Napper.finished.wait()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], float(sys.argv[2]), sys.argv[3:])
