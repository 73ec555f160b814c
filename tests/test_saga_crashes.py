"""The samples' sagas crashed after every commit, in turn: each resumes and ends consistently.

A store counts its appends and, after the n-th, lets none more through: the process is as good
as dead. The test then cancels everything (what SIGKILL leaves, minus the process) and starts a
new system on the same store, which re-sends every saga's start message with its id. For n = 1,
2, ... until a run completes without reaching n, every commit point of the sagas is a crash
point once: between a withdrawal and its deposit, between a refused deposit's commit and the
refund, between a timed-out booking and its cancellation.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import actors
from eventstore import AppendResult
from eventstore.memory import MemoryEventStore

sys.path.insert(0, str(Path(__file__).parent.parent / "samples"))

import bank  # the samples, found through the path above
import saga_timeout


@pytest.fixture(autouse=True)
def samples_as_imported() -> None:
    """Define the samples' classes again: ``test_docs.py`` runs their code under the same module
    names, and the codec decodes each event type into the class defined last."""
    importlib.reload(bank)
    importlib.reload(saga_timeout)


class DyingStore(MemoryEventStore):
    """A memory store whose appends stop after the ``limit``-th: each later one hangs."""

    def __init__(self, limit: int | None) -> None:
        super().__init__()
        self.limit = limit
        self.appends = 0
        self.dead = trio.Event()

    async def append(self, *args: Any, **kwargs: Any) -> AppendResult:
        if self.limit is not None and self.appends >= self.limit:
            self.dead.set()
            await trio.sleep_forever()
        result = await super().append(*args, **kwargs)
        self.appends += 1
        return result


async def crash_sweep(classes: list[type[actors.Actor]],
                      work: Callable[[actors.ActorSystem], Awaitable[None]],
                      check: Callable[[actors.ActorSystem, DyingStore], Awaitable[None]]) -> int:
    """Run ``work`` (which waits for its sagas to end) crashed after its n-th append, then
    again to the end, and ``check``; for every n until the work ends before its n-th append.
    Returns how many crash points there were."""
    n = 0
    while True:
        n += 1
        store = DyingStore(limit=n)
        async with trio.open_nursery() as nursery:
            async def run(store: DyingStore = store) -> None:
                try:
                    async with actors.ActorSystem(store, actors=classes) as system:
                        await work(system)
                except* Exception:
                    pass  # cut anywhere by the crash (an ask fails with ActorStopped)

            nursery.start_soon(run)
            with trio.move_on_after(30):
                await store.dead.wait()
            nursery.cancel_scope.cancel()  # the crash
        finished = not store.dead.is_set()
        store.limit = None
        async with actors.ActorSystem(store, actors=classes) as system:
            await work(system)  # the client sends everything again, with the same ids
            await check(system, store)
        if finished:
            return n - 1


async def outcome(ref: actors.ActorRef, get: Any) -> str:
    with trio.fail_after(600):  # virtual seconds: the start message may be retried with backoff
        while (found := await ref.ask(get)) == "new":
            await trio.sleep(0.01)
    return str(found)


TRANSFERS = [("t-1", "alice", "bob", 30), ("t-2", "bob", "alice", 5000),
             ("t-3", "alice", "carol", 20)]


async def banking(system: actors.ActorSystem) -> None:
    for name, amount in [("alice", 100), ("bob", 50), ("carol", 10)]:
        await system.ref(bank.Account, name).ask(bank.Deposit(amount), message_id=f"open-{name}")
    await system.ref(bank.Account, "carol").ask(bank.Close())
    for tid, source, target, amount in TRANSFERS:
        await system.ref(bank.Transfer, tid).send(bank.StartTransfer(source, target, amount),
                                                  message_id=tid)
    for tid, *_ in TRANSFERS:
        await outcome(system.ref(bank.Transfer, tid), bank.GetOutcome())


async def bank_check(system: actors.ActorSystem, store: DyingStore) -> None:
    outcomes = [await outcome(system.ref(bank.Transfer, tid), bank.GetOutcome())
                for tid, *_ in TRANSFERS]
    assert [o.split(" ")[0] for o in outcomes] == ["completed", "refused", "refunded"]
    balances = [await system.ref(bank.Account, n).ask(bank.GetBalance())
                for n in ("alice", "bob", "carol")]
    assert balances == [70, 80, 10]  # 100 - 30 (- 20 + 20), 50 + 30, 10


async def test_a_bank_transfer_crashed_at_any_commit_ends_with_the_money_in_place(
        autojump_clock: trio.testing.MockClock) -> None:
    assert await crash_sweep([bank.Account, bank.Transfer], banking, bank_check) >= 10


async def shopping(system: actors.ActorSystem) -> None:
    for order_id, wait in [("o-1", 0.0), ("o-2", 0.5)]:  # one after the other, as in the sample
        order = system.ref(saga_timeout.Order, order_id)
        await order.send(saga_timeout.PlaceOrder(wait), message_id=order_id)
        await outcome(order, saga_timeout.GetOutcome())


async def shop_check(system: actors.ActorSystem, store: DyingStore) -> None:
    outcomes = [await outcome(system.ref(saga_timeout.Order, o), saga_timeout.GetOutcome())
                for o in ("o-1", "o-2")]
    booked = await system.ref(saga_timeout.Courier, "courier").ask(saga_timeout.GetBookings())
    for order_id, ended in zip(("o-1", "o-2"), outcomes, strict=True):
        assert (order_id in booked) == (ended == "booked"), (order_id, ended, booked)
    assert outcomes[1].startswith("cancelled")  # o-2 always misses the deadline


async def test_a_timed_out_booking_crashed_at_any_commit_is_booked_iff_the_order_says_so(
        autojump_clock: trio.testing.MockClock) -> None:
    assert await crash_sweep([saga_timeout.Courier, saga_timeout.Order], shopping,
                             shop_check) >= 4
