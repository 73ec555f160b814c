"""Child process for tests/test_steps_crash.py: an actor whose ``run()`` makes one payment.

Usage: ``step_charger.py DB LEDGER [--no-spawn]``. The payment is a ``durable.step`` that
appends a line to the file LEDGER (the outside world) and returns how many lines it holds.
Prints ``{"charged": n}`` once the step returned (its record is committed by then), then
sleeps durably for an hour: the parent kills it there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import attrs
import trio

import actors
from actors import durable
from eventstore.sqlite import SQLiteEventStore

LEDGER = Path()


def charge(amount: int) -> int:
    with LEDGER.open("a") as ledger:
        ledger.write(f"{durable.step_key()} {amount}\n")
    return len(LEDGER.read_text().splitlines())


@attrs.define
class Charger(actors.Actor):
    kind = "Charger"

    async def run(self) -> None:
        charged = await durable.step.aio(charge, 30)
        print(json.dumps({"charged": charged}), flush=True)
        await durable.sleep.aio(3600)


async def main(db: str, flags: list[str]) -> None:
    async with SQLiteEventStore(db) as store, \
            actors.ActorSystem(store, actors=[Charger]) as system:
        if "--no-spawn" not in flags:
            await system.spawn(Charger, "c1")
        await trio.sleep_forever()


if __name__ == "__main__":
    LEDGER = Path(sys.argv[2])
    trio.run(main, sys.argv[1], sys.argv[3:])
