"""Child process for tests/test_projection_crash.py: a projection writing SQL, killed at will.

Usage: ``projector.py DB``. Runs the ``balances`` projection (exactly-once into a SQLite table
in the store's file) over the log: prints ``{"started": offset}`` once set up, then
``{"caught_up": position}`` each time it has handled everything up to the head it last saw, and
runs until it is killed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import attrs
import trio

import actors
import eventstore
from eventstore import RecordedEvent
from eventstore.sqlite import SQLiteEventStore


@eventstore.event_type("projector.Deposited")
@attrs.frozen
class Deposited:
    account: str
    amount: int


class Balances(actors.Projection):
    name = "balances"
    types = [Deposited]
    batch_size = 7
    backoff = 0.01

    async def setup(self, tx: actors.Transaction) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, "
                   "balance INTEGER NOT NULL, events INTEGER NOT NULL, last INTEGER NOT NULL)")

    async def handle(self, event: Any, recorded: RecordedEvent, tx: actors.Transaction) -> None:
        # ``last`` must only grow: a batch applied twice, or out of order, would break it.
        tx.execute("INSERT INTO balances VALUES (?, ?, 1, ?) ON CONFLICT (account) DO UPDATE "
                   "SET balance = balance + excluded.balance, events = events + 1, "
                   "last = CASE WHEN excluded.last > last THEN excluded.last ELSE -1 END",
                   (event.account, event.amount, recorded.position))
        await trio.sleep(0)


async def main(db: str) -> None:
    async with SQLiteEventStore(db, poll_interval=0.05) as store, \
            trio.open_nursery() as nursery:
        runner = await nursery.start(actors.run_projection, store, Balances())
        print(json.dumps({"started": runner.offset}), flush=True)
        while True:
            head = await store.head_position()
            await runner.wait_for(head)
            print(json.dumps({"caught_up": head}), flush=True)
            await trio.sleep(0.05)


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
