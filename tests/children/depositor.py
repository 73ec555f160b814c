"""Child process for tests/test_messaging_crash.py: asks one deposit with a message id.

Usage: ``depositor.py DB``. Asks ``Deposit(5)`` of account ``a`` with ``message_id="d-1"``,
prints ``{"balance": n}`` with the reply (its turn and reply are committed by then), then waits
to be killed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import attrs
import trio

import actors
import eventstore
from eventstore.sqlite import SQLiteEventStore


@eventstore.event_type("depositor.Deposited")
@attrs.frozen
class Deposited:
    amount: int


@attrs.define
class Account(actors.Actor):
    kind = "Account"
    balance: int = 0

    def apply(self, event: Any) -> None:
        self.balance += event.amount

    async def receive(self, amount: int) -> int:
        self.emit(Deposited(amount))
        return self.balance


async def main(db: str) -> None:
    async with SQLiteEventStore(db) as store, \
            actors.ActorSystem(store, actors=[Account]) as system:
        balance = await system.ref(Account, "a").ask(5, message_id="d-1")
        print(json.dumps({"balance": balance}), flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
