"""Tutorial step 1: one account actor, on an in-memory event store.

    python samples/tutorial_step_1.py

The classes come from ``bank.py`` next to this file: the tutorial builds that sample.
"""

from __future__ import annotations

import trio
from bank import Account, Deposit, GetBalance, InsufficientFunds, Withdraw

import actors
from eventstore.memory import MemoryEventStore


async def main() -> None:
    store = MemoryEventStore()
    async with trio.open_nursery() as nursery:
        alice = await actors.spawn(nursery, Account, "alice", store=store)
        alice.tell(Deposit(100))  # returns at once, with no answer
        print(f"alice withdraws 30: balance {await alice.ask(Withdraw(30))}")  # waits for it
        try:
            await alice.ask(Withdraw(1000))
        except InsufficientFunds as exc:
            print(f"alice withdraws 1000: refused ({exc})")
        print(f"alice's balance: {await alice.ask(GetBalance())}")
        await alice.stop()

    print("the log of account-alice, where the refused withdrawal wrote nothing:")
    async for recorded in store.read("account-alice"):
        print(f"  version {recorded.version}: {store.codec.decode(recorded)!r}")


if __name__ == "__main__":
    actors.run_program(main)
