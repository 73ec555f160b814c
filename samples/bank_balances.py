"""The bank's read model: every account's balance in a SQLite table, kept by a projection.

    python samples/bank.py bank.db            # the bank writes its accounts' logs
    python samples/bank_balances.py bank.db   # fold them into the table `balances`, then query

folds the ``Deposited`` and ``Withdrawn`` events of every account, in the order of the global
log, into the table ``balances`` of the same SQLite file, exactly once: each batch's rows and
the projection's offset commit in one transaction. It stops once it has caught up and prints the
accounts below 100, read with plain SQL. Run the bank again, then this again: it goes on from
its stored offset, folding only the new events.

In a long-running application the projection runs next to the actors instead:
``actors.ActorSystem(store, actors=[...], projections=[Balances()])``.
"""

# --8<-- [start:imports]
from __future__ import annotations

import contextlib
import sqlite3
import sys
from typing import Any

import trio
from bank import Deposited, Withdrawn  # the events the bank's accounts write

import actors
from eventstore import RecordedEvent
from eventstore.sqlite import SQLiteEventStore

# --8<-- [end:imports]


# --8<-- [start:projection]
class Balances(actors.Projection):
    """``balances(account, balance)``: one row per account, from its events."""

    name = "balances"
    types = [Deposited, Withdrawn]

    async def setup(self, tx: actors.Transaction) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS balances "
                   "(account TEXT PRIMARY KEY, balance INTEGER NOT NULL)")

    async def reset(self, tx: actors.Transaction) -> None:  # a rebuild starts from nothing
        tx.execute("DELETE FROM balances")

    async def handle(self, event: Any, recorded: RecordedEvent, tx: actors.Transaction) -> None:
        account = recorded.stream.removeprefix("account-")  # the account actor's stream
        amount = event.amount if isinstance(event, Deposited) else -event.amount
        tx.execute("INSERT INTO balances (account, balance) VALUES (?, ?) "
                   "ON CONFLICT (account) DO UPDATE SET balance = balance + excluded.balance",
                   (account, amount))
# --8<-- [end:projection]


# --8<-- [start:query]
def accounts_below(path: str, limit: int) -> list[tuple[str, int]]:
    """The accounts whose balance is below ``limit``, lowest first: a query of the read model."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT account, balance FROM balances WHERE balance < ? "
                          "ORDER BY balance, account", (limit,)).fetchall()
# --8<-- [end:query]


# --8<-- [start:main]
async def main(path: str) -> None:
    async with SQLiteEventStore(path) as store, trio.open_nursery() as nursery:
        before = await store.load_offset("balances")
        runner = await nursery.start(actors.run_projection, store, Balances())
        await runner.wait_for(await store.head_position())  # caught up with the log
        nursery.cancel_scope.cancel()
    start = 0 if before is None else before.position
    print(f"Folded the events after position {start} up to {runner.offset} into {path}")
    below = accounts_below(path, 100)
    print("Accounts below 100: " + (", ".join(f"{a} {b}" for a, b in below) or "none"))


if __name__ == "__main__":
    actors.run_program(main, sys.argv[1] if len(sys.argv) > 1 else "bank.db")
# --8<-- [end:main]
