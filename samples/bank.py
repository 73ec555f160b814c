"""A bank: accounts are actors, each with its own event log; a transfer is a saga.

    python samples/bank.py [bank.db]

opens (or creates) the SQLite file ``bank.db`` in the current directory, or the path given,
makes some deposits, a refused withdrawal, closes carol's account, and runs three transfers: one
that completes, one that the source account refuses, and one that the closed target account
refuses, whose money goes back to its source. Then it prints the balances, and the accounts
below 100 from a read model: the table ``balances`` in the same file, kept exactly once by a
projection over every account's events. Run it again: every
account starts from the balance the first run left, rebuilt from its log, and the same
operations apply on top.

Accounts never call each other: a transfer is its own actor, which asks the source account for
the money and then asks the target account to take it, so two transfers in opposite directions
cannot wait on each other. A transfer starts from a message stored with ``send`` and makes
*durable calls*: each answer is recorded in the transfer's log, so a transfer cut by a crash
resumes where it stopped, and no account is asked twice for the same step.
"""

# --8<-- [start:imports]
from __future__ import annotations

import contextlib
import sqlite3
import sys
import uuid
from typing import Any

import attrs

import actors
import eventstore
from eventstore import RecordedEvent
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


@eventstore.event_type("bank.Closed")
@attrs.frozen
class Closed:
    pass


# -- the messages an account takes ---------------------------------------------------------------


@attrs.frozen
class Deposit:
    amount: int


@attrs.frozen
class Withdraw:
    amount: int


@attrs.frozen
class Refund:
    """Money coming back from a transfer that failed: taken even by a closed account."""

    amount: int


@attrs.frozen
class Close:
    pass


@attrs.frozen
class GetBalance:
    pass


class InsufficientFunds(Exception):
    """A withdrawal larger than the balance: refused, and nothing is written."""

    def __init__(self, account: str, balance: int, amount: int) -> None:
        super().__init__(account, balance, amount)  # its args rebuild it (a recorded failure)
        self.account, self.balance, self.amount = account, balance, amount

    def __str__(self) -> str:
        return f"account {self.account!r} holds {self.balance}, so it cannot pay {self.amount}"


class AccountClosed(Exception):
    """A deposit to, or withdrawal from, a closed account: refused."""

    def __init__(self, account: str) -> None:
        super().__init__(account)
        self.account = account

    def __str__(self) -> str:
        return f"account {self.account!r} is closed"


@attrs.define
class Account(actors.Actor):
    """A bank account; its id is the holder's name, its log the stream ``account-<id>``."""

    kind = "account"

    balance: int = 0
    closed: bool = False

    def apply(self, event: Any) -> None:
        match event:
            case Deposited(amount=amount):
                self.balance += amount
            case Withdrawn(amount=amount):
                self.balance -= amount
            case Closed():
                self.closed = True

    async def receive(self, message: Any) -> int:
        match message:
            case Deposit(amount=amount) | Withdraw(amount=amount) | Refund(amount=amount) \
                    if amount <= 0:
                raise ValueError(f"an amount must be positive, got {amount}")
            case Deposit() | Withdraw() if self.closed:
                raise AccountClosed(self.id)
            case Deposit(amount=amount) | Refund(amount=amount):
                self.emit(Deposited(amount))
            case Withdraw(amount=amount):
                if amount > self.balance:
                    raise InsufficientFunds(self.id, self.balance, amount)
                self.emit(Withdrawn(amount))
            case Close():
                if not self.closed:
                    self.emit(Closed())
            case GetBalance():
                pass
            case _:
                raise TypeError(f"an account does not understand {message!r}")
        return self.balance


# --8<-- [end:account]


# --8<-- [start:transfer]
# -- transfers -----------------------------------------------------------------------------------


@eventstore.event_type("bank.TransferEnded")
@attrs.frozen
class TransferEnded:
    outcome: str  # "completed", "refused (why)" or "refunded (why)"


@eventstore.event_type("bank.StartTransfer")  # stored in the transfer's inbox: a stable name
@attrs.frozen
class StartTransfer:
    """Move ``amount`` from account ``source`` to account ``target`` (account ids)."""

    source: str
    target: str
    amount: int


@attrs.frozen
class GetOutcome:
    pass


@attrs.define
class Transfer(actors.Actor):
    """One transfer, one actor (its id is the transfer's id): a saga of durable calls.

    Each ``ask`` below is a durable call: its answer, or its failure, is recorded in this
    actor's log, and it is sent with an id the account records its own answer under. A crash
    anywhere makes the ``StartTransfer`` message run again, from the top: recorded calls return
    what they returned the first time, calls the log had not recorded yet are sent again with
    the same id, and the account answers those from its own record. Each step happens once.
    """

    kind = "transfer"

    outcome: str = "new"

    def apply(self, event: TransferEnded) -> None:
        self.outcome = event.outcome

    async def receive(self, message: StartTransfer | GetOutcome) -> str:
        if isinstance(message, StartTransfer) and self.outcome == "new":
            self.emit(TransferEnded(await self.move(message)))
        return self.outcome

    async def move(self, order: StartTransfer) -> str:
        source, target = self.ref(Account, order.source), self.ref(Account, order.target)
        try:
            await source.ask(Withdraw(order.amount))
        except (InsufficientFunds, AccountClosed) as refused:
            return f"refused ({refused})"  # nothing moved: nothing to undo
        try:
            await target.ask(Deposit(order.amount))
        except AccountClosed as failed:
            # Commit the failure before compensating: a re-execution must replay this answer,
            # not ask again and maybe get another one after the refund went out.
            await self.flush()
            await source.ask(Refund(order.amount))  # the compensation, a durable call too
            return f"refunded ({failed})"
        return "completed"


# --8<-- [end:transfer]


# -- the read model: balances in a SQLite table, kept by a projection ---------------------------

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
# -- the program ---------------------------------------------------------------------------------


async def transfer(bank: actors.ActorSystem, source: str, target: str, amount: int) -> str:
    """Start a transfer and wait for its outcome."""
    ref = bank.ref(Transfer, uuid.uuid4().hex[:12])
    # Stored in the transfer's inbox before send returns: it runs even if this process dies
    # now (the next ActorSystem on this file resumes it); sent again, it still runs once.
    await ref.send(StartTransfer(source, target, amount), message_id=ref.id)
    return await ref.ask(GetOutcome())  # served after the stored message


async def balances(bank: actors.ActorSystem) -> str:
    names = ("alice", "bob", "carol")
    return ", ".join([f"{n} {await bank.ref(Account, n).ask(GetBalance())}" for n in names])


async def main(path: str) -> None:
    async with SQLiteEventStore(path) as store, \
            actors.ActorSystem(store, actors=[Account, Transfer],
                               projections=[Balances()]) as bank:
        alice, bob = bank.ref(Account, "alice"), bank.ref(Account, "bob")
        print(f"Bank log: {path}")
        print(f"Balances at start: {await balances(bank)}")

        print(f"alice deposits 100: balance {await alice.ask(Deposit(100))}")
        print(f"bob deposits 50: balance {await bob.ask(Deposit(50))}")
        try:
            await bob.ask(Withdraw(1000))
        except InsufficientFunds as exc:
            print(f"bob withdraws 1000: refused ({exc})")
        await bank.ref(Account, "carol").ask(Close())
        print("carol closes her account")

        print(f"alice sends bob 30: transfer {await transfer(bank, 'alice', 'bob', 30)}")
        print(f"bob sends alice 5000: transfer {await transfer(bank, 'bob', 'alice', 5000)}")
        print(f"alice sends carol 20: transfer {await transfer(bank, 'alice', 'carol', 20)}")

        print(f"Balances at end: {await balances(bank)}")
        # The read model catches up with the log, then answers a question across accounts.
        await bank.projection("balances").wait_for(await store.head_position())
        below = accounts_below(path, 100)
        print("Accounts below 100: " + (", ".join(f"{a} {b}" for a, b in below) or "none"))
        events = [event async for event in store.read_all()]
    print(f"{path} holds {len(events)} events; run the program again and it goes on from "
          "these balances.")


if __name__ == "__main__":
    actors.run_program(main, sys.argv[1] if len(sys.argv) > 1 else "bank.db")
# --8<-- [end:main]
