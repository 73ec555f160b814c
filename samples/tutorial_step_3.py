"""Tutorial step 3: an ActorSystem hosts the accounts and activates each one on demand.

    python samples/tutorial_step_3.py [tutorial_step_3.db]
"""

from __future__ import annotations

import sys

from bank import Account, Deposit, GetBalance, InsufficientFunds, Withdraw

import actors
from eventstore.sqlite import SQLiteEventStore


async def main(path: str) -> None:
    async with SQLiteEventStore(path) as store, \
            actors.ActorSystem(store, actors=[Account]) as bank:
        alice = bank.ref(Account, "alice")  # a ref at once, whether alice is in memory or not
        bob = bank.ref(Account, "bob")
        print(f"actors in memory: {bank.active}")
        print(f"alice deposits 100: balance {await alice.ask(Deposit(100))}")  # activates alice
        print(f"actors in memory: {bank.active}")
        try:
            await bob.ask(Withdraw(5000))
        except InsufficientFunds as exc:
            print(f"bob withdraws 5000: refused ({exc})")
        print(f"actors in memory: {bank.active}")
        print(f"balances: alice {await alice.ask(GetBalance())}, bob {await bob.ask(GetBalance())}")


if __name__ == "__main__":
    actors.run_program(main, sys.argv[1] if len(sys.argv) > 1 else "tutorial_step_3.db")
