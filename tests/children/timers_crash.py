"""Child process for tests/test_timers_crash.py: an actor with timers, on a SQLite file.

Usage: ``timers_crash.py DB schedule DELAY...`` starts an ``ActorSystem``, asks the actor to
schedule one notification per delay (tokens ``t1``, ``t2``, ...) at the durable now plus that
many seconds, and serves until every token has fired. ``timers_crash.py DB resume COUNT`` starts
an ``ActorSystem`` that nobody asks anything: its work index must bring the actor back, and it
serves until COUNT tokens have fired.

Prints JSON lines: ``{"scheduled": epoch}`` once the schedule is committed, then, for each token,
``{"fired": token, "at": due epoch, "now": durable now, "wall": time.time()}`` once its
``Reminded`` event is committed (so a parent that kills on this line never loses it).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta
from typing import Any, ClassVar

import attrs
import trio

import actors
import eventstore
from actors import durable
from eventstore.sqlite import SQLiteEventStore

WAIT = 20.0  # seconds: the child gives up after this long (a bound, never reached if all works)


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


@eventstore.event_type("tests.timers_crash.Reminded")
@attrs.frozen
class Reminded:
    """Token ``name``, due at ``at``, was handed to ``on_notify`` at the durable ``now``."""

    name: str
    at: datetime
    now: datetime


@attrs.frozen
class Plan:
    delays: tuple[float, ...]


@attrs.define
class Alarms(actors.Actor):
    kind = "Alarms"
    expected: ClassVar[int] = 0
    finished: ClassVar[trio.Event]

    fired: int = 0

    def apply(self, event: Any) -> None:
        if isinstance(event, Reminded):
            self.fired += 1

    async def receive(self, message: Any) -> Any:
        assert isinstance(message, Plan)
        now = await durable.now.aio()
        for n, delay in enumerate(message.delays, start=1):
            at = now + timedelta(seconds=delay)
            self.notifier.notify_at(at, (f"t{n}", at))  # a tuple token: through the codec
        return now.timestamp()

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        due = self.notifier.due(now)
        for name, at in due:
            self.emit(Reminded(name, at, now))
        await self.flush()
        for name, at in due:
            say(fired=name, at=at.timestamp(), now=now.timestamp(), wall=time.time())
        if self.fired >= Alarms.expected:
            Alarms.finished.set()


async def main(db: str, mode: str, args: list[str]) -> None:
    Alarms.finished = trio.Event()
    with trio.move_on_after(WAIT) as bound:
        async with SQLiteEventStore(db) as store, \
                actors.ActorSystem(store, actors=[Alarms]) as system:
            if mode == "schedule":
                delays = tuple(float(arg) for arg in args)
                Alarms.expected = len(delays)
                say(scheduled=await system.ref(Alarms, "a1").ask(Plan(delays)))
            else:
                Alarms.expected = int(args[0])
            await Alarms.finished.wait()
    if bound.cancelled_caught:
        sys.exit(f"gave up after {WAIT} s")


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], sys.argv[3:])
