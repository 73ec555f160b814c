"""Tutorial step 2: the same account, with its log in a SQLite file. Run it twice.

    python samples/tutorial_step_2.py [tutorial_step_2.db]
"""

from __future__ import annotations

import sys

import trio
from bank import Account, Deposit, GetBalance

import actors
from eventstore.sqlite import SQLiteEventStore


async def main(path: str) -> None:
    async with SQLiteEventStore(path) as store, trio.open_nursery() as nursery:
        alice = await actors.spawn(nursery, Account, "alice", store=store)  # folds her log
        print(f"alice's balance at start: {await alice.ask(GetBalance())}")
        print(f"alice deposits 100: balance {await alice.ask(Deposit(100))}")
        await alice.stop()
    print(f"{path} keeps alice's log: run this step again and she starts from this balance.")


if __name__ == "__main__":
    actors.run_program(main, sys.argv[1] if len(sys.argv) > 1 else "tutorial_step_2.db")
