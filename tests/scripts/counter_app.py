"""A program run as ``python counter_app.py DB``: its classes live in ``__main__``.

Each run adds 1 and 2 to the counter ``c1`` in the SQLite file DB (recovering what earlier runs
stored) and schedules a far-off reminder whose token is an attrs value. It prints the total.
With ``--import-itself`` it first imports its own file as ``counter_app`` (the double import).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import attrs
import trio

import actors
from eventstore.sqlite import SQLiteEventStore


@attrs.frozen
class Added:
    amount: int


@attrs.frozen
class Remind:
    what: str


@attrs.frozen
class Add:
    amount: int


@attrs.define
class Counter(actors.Actor):
    kind = "counter"

    total: int = 0

    def apply(self, event: Any) -> None:
        match event:
            case Added(amount=amount):
                self.total += amount

    async def receive(self, message: Any) -> int:
        match message:
            case Add(amount=amount):
                self.emit(Added(amount))
                self.notifier.notify_at(datetime(2999, 1, 1, tzinfo=UTC), Remind("check"))
        return self.total


async def main(path: str) -> None:
    async with SQLiteEventStore(path) as store, trio.open_nursery() as nursery:
        counter = await actors.spawn(nursery, Counter, "c1", store=store)
        await counter.ask(Add(1))
        print(await counter.ask(Add(2)))
        await counter.stop()


if __name__ == "__main__":
    if "--import-itself" in sys.argv:
        import counter_app  # noqa: F401 - the mistake under test
    trio.run(main, sys.argv[1])
