"""A bank: accounts are actors, each with its own event log; a transfer is an actor too.

    python samples/bank.py [bank.db]

opens (or creates) the SQLite file ``bank.db`` in the current directory, or the path given,
makes some deposits, a refused withdrawal, a transfer and a refused transfer, and prints the
balances. Run it again: every account starts from the balance the first run left, rebuilt from
its log, and the same operations apply on top.

Accounts never call each other: a transfer is its own actor, which asks the source account for
the money and then asks the target account to take it, recording each step in its own log. Two
transfers in opposite directions therefore cannot wait on each other.
"""

# --8<-- [start:imports]
from __future__ import annotations

import sys
import uuid
from typing import Any

import attrs

import actors
import eventstore
from eventstore.sqlite import SQLiteEventStore

# --8<-- [end:imports]

# --8<-- [start:account]
# -- the events an account writes into its log --------------------------------------------------


@eventstore.event_type("bank.Deposited")
@attrs.frozen
class Deposited:
    amount: int


@eventstore.event_type("bank.Withdrawn")
@attrs.frozen
class Withdrawn:
    amount: int


# -- the messages an account takes ---------------------------------------------------------------


@attrs.frozen
class Deposit:
    amount: int


@attrs.frozen
class Withdraw:
    amount: int


@attrs.frozen
class GetBalance:
    pass


class InsufficientFunds(Exception):
    """A withdrawal larger than the balance: refused, and nothing is written."""

    def __init__(self, account: str, balance: int, amount: int) -> None:
        self.account = account
        self.balance = balance
        self.amount = amount
        super().__init__(f"account {account!r} holds {balance}, so it cannot pay {amount}")


@attrs.define
class Account(actors.Actor):
    """A bank account; its id is the holder's name, its log the stream ``account-<id>``."""

    kind = "account"

    balance: int = 0

    def apply(self, event: Any) -> None:
        match event:
            case Deposited(amount=amount):
                self.balance += amount
            case Withdrawn(amount=amount):
                self.balance -= amount

    async def receive(self, message: Any) -> int:
        match message:
            case Deposit(amount=amount) | Withdraw(amount=amount) if amount <= 0:
                raise ValueError(f"an amount must be positive, got {amount}")
            case Deposit(amount=amount):
                self.emit(Deposited(amount))
            case Withdraw(amount=amount):
                if amount > self.balance:
                    raise InsufficientFunds(self.id, self.balance, amount)
                self.emit(Withdrawn(amount))
            case GetBalance():
                pass
            case _:
                raise TypeError(f"an account does not understand {message!r}")
        return self.balance


# --8<-- [end:account]


# --8<-- [start:transfer]
# -- transfers -----------------------------------------------------------------------------------


@eventstore.event_type("bank.TransferRequested")
@attrs.frozen
class TransferRequested:
    source: str
    target: str
    amount: int


@eventstore.event_type("bank.TransferDebited")
@attrs.frozen
class TransferDebited:
    pass


@eventstore.event_type("bank.TransferCompleted")
@attrs.frozen
class TransferCompleted:
    pass


@eventstore.event_type("bank.TransferRefused")
@attrs.frozen
class TransferRefused:
    reason: str


@attrs.frozen
class Transfer:
    """Move ``amount`` from ``source`` to ``target`` (refs to Account actors)."""

    source: actors.ActorRef
    target: actors.ActorRef
    amount: int


@attrs.define
class TransferProcess(actors.Actor):
    """One transfer, one actor: its log says how far the transfer got."""

    kind = "transfer"

    status: str = "new"

    def apply(self, event: Any) -> None:
        match event:
            case TransferRequested():
                self.status = "requested"
            case TransferDebited():
                self.status = "debited"
            case TransferCompleted():
                self.status = "completed"
            case TransferRefused():
                self.status = "refused"

    async def receive(self, message: Transfer) -> str:
        if self.status != "new":
            return self.status  # a transfer runs once
        self.emit(TransferRequested(message.source.id, message.target.id, message.amount))
        await self.flush()  # a commit point: the request is in the log before any money moves
        try:
            await message.source.ask(Withdraw(message.amount))
        except InsufficientFunds as exc:
            self.emit(TransferRefused(str(exc)))
            await self.flush()  # commit before raising: a failing turn would drop the event
            raise
        self.emit(TransferDebited())
        await self.flush()
        await message.target.ask(Deposit(message.amount))
        self.emit(TransferCompleted())
        return self.status


# --8<-- [end:transfer]


# --8<-- [start:main]
# -- the program ---------------------------------------------------------------------------------


async def balances(*accounts: actors.ActorRef) -> str:
    return ", ".join([f"{account.id} {await account.ask(GetBalance())}" for account in accounts])


async def main(path: str) -> None:
    async with SQLiteEventStore(path) as store, \
            actors.ActorSystem(store, actors=[Account, TransferProcess]) as bank:
        alice = bank.ref(Account, "alice")
        bob = bank.ref(Account, "bob")
        print(f"Bank log: {path}")
        print(f"Balances at start: {await balances(alice, bob)}")

        print(f"alice deposits 100: balance {await alice.ask(Deposit(100))}")
        print(f"bob deposits 50: balance {await bob.ask(Deposit(50))}")
        try:
            await bob.ask(Withdraw(1000))
        except InsufficientFunds as exc:
            print(f"bob withdraws 1000: refused ({exc})")

        transfer = bank.ref(TransferProcess, uuid.uuid4().hex[:12])
        print(f"alice sends bob 30: transfer {await transfer.ask(Transfer(alice, bob, 30))}")
        refused = bank.ref(TransferProcess, uuid.uuid4().hex[:12])
        try:
            await refused.ask(Transfer(bob, alice, 5000))
        except InsufficientFunds as exc:
            print(f"bob sends alice 5000: refused ({exc})")

        print(f"Balances at end: {await balances(alice, bob)}")
        events = [event async for event in store.read_all()]
    print(f"{path} holds {len(events)} events; run the program again and it goes on from "
          "these balances.")


if __name__ == "__main__":
    actors.run_program(main, sys.argv[1] if len(sys.argv) > 1 else "bank.db")
# --8<-- [end:main]
