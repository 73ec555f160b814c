"""Tutorial step 3: a transfer between two accounts is an actor of its own.

    python samples/tutorial_step_3.py [tutorial_step_3.db]
"""

from __future__ import annotations

import sys
import uuid

import trio
from bank import Account, Deposit, GetBalance, InsufficientFunds, Transfer, TransferProcess

import actors
from eventstore.sqlite import SQLiteEventStore


async def main(path: str) -> None:
    async with SQLiteEventStore(path) as store, trio.open_nursery() as nursery:
        alice = await actors.spawn(nursery, Account, "alice", store=store)
        bob = await actors.spawn(nursery, Account, "bob", store=store)
        print(f"alice deposits 100: balance {await alice.ask(Deposit(100))}")

        # Each transfer gets a new id, so every run of this step makes new transfers.
        transfer = await actors.spawn(nursery, TransferProcess, uuid.uuid4().hex, store=store)
        print(f"alice sends bob 30: transfer {await transfer.ask(Transfer(alice, bob, 30))}")
        print(f"the same transfer asked again: {await transfer.ask(Transfer(alice, bob, 30))}")

        refused = await actors.spawn(nursery, TransferProcess, uuid.uuid4().hex, store=store)
        try:
            await refused.ask(Transfer(bob, alice, 5000))
        except InsufficientFunds as exc:
            print(f"bob sends alice 5000: refused ({exc})")
        print("the refused transfer's events:")
        async for recorded in store.read(f"transfer-{refused.id}"):
            if not recorded.type.startswith("actors."):  # not the runtime's own records
                print(f"  {store.codec.decode(recorded)!r}")

        alice_balance, bob_balance = await alice.ask(GetBalance()), await bob.ask(GetBalance())
        print(f"balances: alice {alice_balance}, bob {bob_balance}")
        for ref in (alice, bob, transfer, refused):
            await ref.stop()


if __name__ == "__main__":
    actors.run_program(main, sys.argv[1] if len(sys.argv) > 1 else "tutorial_step_3.db")
