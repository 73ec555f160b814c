"""Tutorial step 4: a transfer is a saga of durable calls, started by a stored message.

    python samples/tutorial_step_4.py [tutorial_step_4.db]
"""

from __future__ import annotations

import sys
import uuid

from bank import Account, Close, Deposit, GetBalance, GetOutcome, StartTransfer, Transfer

import actors
from eventstore.sqlite import SQLiteEventStore


async def main(path: str) -> None:
    async with SQLiteEventStore(path) as store, \
            actors.ActorSystem(store, actors=[Account, Transfer]) as bank:
        alice, bob = bank.ref(Account, "alice"), bank.ref(Account, "bob")
        print(f"alice deposits 100: balance {await alice.ask(Deposit(100))}")

        # Each transfer gets a new id, so every run of this step makes new transfers.
        transfer = bank.ref(Transfer, uuid.uuid4().hex)
        order = StartTransfer("alice", "bob", 30)
        await transfer.send(order, message_id=transfer.id)  # stored, then run by the transfer
        print(f"alice sends bob 30: transfer {await transfer.ask(GetOutcome())}")
        await transfer.send(order, message_id=transfer.id)  # a resend (after a timeout, say)
        print(f"the same transfer sent again: {await transfer.ask(GetOutcome())}")

        await bank.ref(Account, "carol").ask(Close())
        refunded = bank.ref(Transfer, uuid.uuid4().hex)
        await refunded.send(StartTransfer("alice", "carol", 20), message_id=refunded.id)
        print(f"alice sends carol 20: transfer {await refunded.ask(GetOutcome())}")
        print("what the refunded transfer recorded:")
        async for recorded in store.read(f"transfer-{refunded.id}"):
            if recorded.type == "actors.CallReplied":  # the answer of a durable call
                error = recorded.data["error"]
                answer = error["text"] if error else f"returned {recorded.data['value']}"
                print(f"  call {recorded.data['index']} to {recorded.data['target']}: {answer}")
            elif not recorded.type.startswith("actors."):  # the transfer's own events
                print(f"  {store.codec.decode(recorded)!r}")

        print(f"balances: alice {await alice.ask(GetBalance())}, bob {await bob.ask(GetBalance())}")


if __name__ == "__main__":
    actors.run_program(main, sys.argv[1] if len(sys.argv) > 1 else "tutorial_step_4.db")
