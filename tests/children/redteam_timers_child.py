"""Child process for tests/test_redteam_timers.py: a wake-up killed (SIGKILL) in a durable sleep.

``redteam_timers_child.py DB schedule`` starts an ``ActorSystem`` (actors passivated after 0.3 s
idle), asks the actor to schedule "job" 0.5 s on, and serves. The wake-up takes "job", commits
``Did("job")``, schedules "next" 4 s after its durable now, prints ``{"took": ...}`` and sleeps
durably 2 s (the parent kills it there), then commits ``Did("slept")`` and prints
``{"slept": ...}``. "next" prints ``{"next": ...}`` and ends the child.
``redteam_timers_child.py DB resume`` starts an ``ActorSystem`` that nobody asks anything.

Each line carries the durable ``now`` (epoch s) where it was printed.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Any

import attrs
import trio

import actors
import eventstore
from actors import durable
from eventstore.sqlite import SQLiteEventStore

WAIT = 20.0


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


@eventstore.event_type("tests.redteam_timers_child.Did")
@attrs.frozen
class Did:
    what: str


FINISHED: trio.Event


@attrs.define
class Sleeper(actors.Actor):
    kind = "RTSleeper"

    done: list[str] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        self.done.append(event.what)

    async def receive(self, message: Any) -> Any:
        now = await durable.now.aio()
        self.notifier.notify_at(now + timedelta(seconds=0.5), message)
        return now.timestamp()

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        for token in self.notifier.due(now):
            if token == "job":
                self.emit(Did("job"))
                self.notifier.notify_at(now + timedelta(seconds=4), "next")
                await self.flush()
                say(took=token, now=now.timestamp())
                await durable.sleep.aio(2)
                self.emit(Did("slept"))
                say(slept=token, now=(await durable.now.aio()).timestamp())
            else:
                self.emit(Did(token))
                await self.flush()
                say(next=token, now=now.timestamp())
                FINISHED.set()


async def main(db: str, mode: str) -> None:
    global FINISHED
    FINISHED = trio.Event()
    with trio.move_on_after(WAIT) as bound:
        async with SQLiteEventStore(db) as store, \
                actors.ActorSystem(store, actors=[Sleeper], idle_timeout=0.3) as system:
            if mode == "schedule":
                say(scheduled=await system.ref(Sleeper, "s1").ask("job"))
            await FINISHED.wait()
    if bound.cancelled_caught:
        sys.exit(f"gave up after {WAIT} s")


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2])
