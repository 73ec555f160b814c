"""The bank's read model on its own: its projection run standalone, without the actors.

    python samples/bank.py bank.db            # the bank, its projection running beside it
    python samples/bank_balances.py bank.db   # the projection alone: catch up, then query

``samples/bank.py`` hosts the projection ``Balances`` in its ``ActorSystem``; this program runs
the same projection with ``actors.run_projection`` (as a separate process would, or a rebuild):
it folds the ``Deposited`` and ``Withdrawn`` events after its stored offset into the table
``balances`` of the same SQLite file, exactly once (each batch's rows and the offset commit in
one transaction), stops once it has caught up, and prints the accounts below 100.
"""

# --8<-- [start:imports]
from __future__ import annotations

import sys

import trio
from bank import Balances, accounts_below  # the bank's read model and its query

import actors
from eventstore.sqlite import SQLiteEventStore

# --8<-- [end:imports]


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
