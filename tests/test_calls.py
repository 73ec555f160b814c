"""Durable calls: ``await ref.ask(msg)`` inside a turn records the reply in the caller's log.

The call goes out with a deterministic message id, so the callee (which records its reply per
id) runs it once; the caller's re-execution gets the reply from its own log once committed, or
from the callee's record when the caller died before committing. In-process crashes cancel the
whole nursery, callees included; the store keeps what was committed.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import pytest
import trio
import trio.testing
from test_durable import crash_after, fresh, log_of

import actors
import eventstore
from actors import AskTimeout, CallReplied, NonDeterminismError, durable
from eventstore.memory import MemoryEventStore


class InsufficientFunds(Exception):
    pass


@eventstore.event_type("tests.calls.Moved")
@attrs.frozen
class Moved:
    amount: int


@attrs.define
class Account(actors.Actor):
    kind = "Account"
    handled: ClassVar[list[tuple[str, Any]]] = []
    balance: int = 100

    def apply(self, event: Moved) -> None:
        self.balance += event.amount

    async def receive(self, amount: int) -> int:
        Account.handled.append((self.id, amount))
        if self.balance + amount < 0:
            raise InsufficientFunds(f"{self.id} holds {self.balance}")
        self.emit(Moved(amount))
        return self.balance


@pytest.fixture(autouse=True)
def fresh_accounts() -> None:
    Account.handled = []


async def balances(store: eventstore.EventStore) -> dict[str, int]:
    found = {}
    for name in ("a", "b"):
        found[name] = 100 + sum(e.amount for e in await log_of(store, f"Account-{name}")
                                if isinstance(e, Moved))
    return found


def transfer_class(pause: Any) -> type[actors.Actor]:
    @attrs.define
    class Transfer(actors.Actor):
        kind = "Transfer"

        async def receive(self, amount: int) -> str:
            system = Transfer.system
            await system.ref(Account, "a").ask(-amount)
            await pause()
            await system.ref(Account, "b").ask(amount)
            return "done"

    return Transfer


async def test_a_call_committed_by_the_caller_replays_without_sending(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    Transfer: Any = transfer_class(lambda: durable.sleep.aio(60))  # a commit point

    async def start(nursery: trio.Nursery) -> None:
        system = await nursery.start(run_system, store, clock, Transfer)
        system.ref(Transfer, "t").tell(30, message_id="t-1")

    await crash_after(10, start)  # in the sleep: the debit's reply is in the caller's log
    async with actors.ActorSystem(store, actors=[Account, Transfer], clock=clock) as system:
        Transfer.system = system
        assert await system.ref(Transfer, "t").ask(30, message_id="t-1") == "done"
    assert Account.handled == [("a", -30), ("b", 30)]
    assert await balances(store) == {"a": 70, "b": 130}
    calls = [e for e in await log_of(store, "Transfer-t") if isinstance(e, CallReplied)]
    assert [(c.target, c.message_id, c.index) for c in calls] == [
        ("Account-a", "Transfer-t/msg:t-1/1", 1), ("Account-b", "Transfer-t/msg:t-1/3", 3)]


async def run_system(store: eventstore.EventStore, clock: actors.Clock, transfer: Any, *,
                     task_status: trio.TaskStatus[actors.ActorSystem]) -> None:
    async with actors.ActorSystem(store, actors=[Account, transfer], clock=clock) as system:
        transfer.system = system
        task_status.started(system)
        await trio.sleep_forever()


async def test_a_call_lost_with_its_caller_is_answered_by_the_callee_s_record(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    Transfer: Any = transfer_class(trio.sleep_forever)  # dies before committing anything

    async def start(nursery: trio.Nursery) -> None:
        system = await nursery.start(run_system, store, clock, Transfer)
        system.ref(Transfer, "t").tell(30, message_id="t-1")

    await crash_after(10, start)
    assert await log_of(store, "Transfer-t") == []  # the caller recorded nothing
    assert await balances(store) == {"a": 70, "b": 100}  # the callee committed the debit
    Fixed: Any = transfer_class(trio.lowlevel.checkpoint)
    async with actors.ActorSystem(store, actors=[Account, Fixed], clock=clock) as system:
        Fixed.system = system
        assert await system.ref(Fixed, "t").ask(30, message_id="t-1") == "done"
    assert Account.handled == [("a", -30), ("b", 30)]  # the resent debit ran nothing
    assert await balances(store) == {"a": 70, "b": 130}


async def test_a_failed_call_is_recorded_and_raised_again_as_its_own_class(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    refusals: list[str] = []

    @attrs.define
    class Transfer(actors.Actor):
        kind = "Transfer"
        system: ClassVar[actors.ActorSystem]

        async def receive(self, amount: int) -> str:
            try:
                await Transfer.system.ref(Account, "a").ask(-amount)
            except InsufficientFunds as exc:
                refusals.append(str(exc))
                await durable.sleep.aio(60)  # crash here, after the failure is committed
                return "refused"
            return "done"

    async def start(nursery: trio.Nursery) -> None:
        system = await nursery.start(run_system, store, clock, Transfer)
        system.ref(Transfer, "t").tell(500, message_id="t-1")

    await crash_after(10, start)
    async with actors.ActorSystem(store, actors=[Account, Transfer], clock=clock) as system:
        Transfer.system = system
        assert await system.ref(Transfer, "t").ask(500, message_id="t-1") == "refused"
    assert Account.handled == [("a", -500)]  # not asked again
    assert refusals == ["a holds 100"] * 2


async def test_a_timeout_is_recorded_like_a_reply(autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    timeouts: list[str] = []

    @attrs.define
    class Slow(actors.Actor):
        kind = "Slow"
        asked: ClassVar[int] = 0

        async def receive(self, message: Any) -> str:
            Slow.asked += 1
            await trio.sleep(3600)
            return "late"

    @attrs.define
    class Caller(actors.Actor):
        kind = "Caller"
        system: ClassVar[actors.ActorSystem]

        async def receive(self, message: Any) -> str:
            try:
                await Caller.system.ref(Slow, "s").ask("hi", timeout=5)
            except AskTimeout as exc:
                timeouts.append(str(exc))
            await durable.sleep.aio(60)
            return "gave up"

    async def start(nursery: trio.Nursery) -> None:
        async def run(*, task_status: trio.TaskStatus[None]) -> None:
            async with actors.ActorSystem(store, actors=[Slow, Caller], clock=clock) as system:
                Caller.system = system
                task_status.started()
                system.ref(Caller, "c").tell("go", message_id="c-1")
                await trio.sleep_forever()

        await nursery.start(run)

    await crash_after(30, start)
    async with actors.ActorSystem(store, actors=[Slow, Caller], clock=clock) as system:
        Caller.system = system
        assert await system.ref(Caller, "c").ask("go", message_id="c-1") == "gave up"
    assert Slow.asked == 1 and len(timeouts) == 2 and timeouts[0] == timeouts[1]


async def test_asking_oneself_inside_a_turn_is_refused() -> None:
    @attrs.define
    class Narcissus(actors.Actor):
        kind = "Narcissus"
        me: ClassVar[actors.ActorRef]

        async def receive(self, message: Any) -> Any:
            return await Narcissus.me.ask("again")

    async with trio.open_nursery() as nursery:
        Narcissus.me = await actors.spawn(nursery, Narcissus, "n", store=MemoryEventStore())
        with pytest.raises(ValueError, match=r"asks itself inside its own turn"):
            await Narcissus.me.ask("hi")
        await Narcissus.me.stop()


async def test_calls_in_parallel_branches_replay_deterministically(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()

    @attrs.define
    class Fanout(actors.Actor):
        kind = "Fanout"
        system: ClassVar[actors.ActorSystem]

        async def receive(self, message: Any) -> list[int]:
            got: dict[str, int] = {}

            async def call(name: str, amount: int) -> None:
                got[name] = await Fanout.system.ref(Account, name).ask(amount)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(call, "a", 1)
                nursery.start_soon(call, "b", 2)
            await durable.sleep.aio(60)
            return [got["a"], got["b"]]

    async def start(nursery: trio.Nursery) -> None:
        async def run(*, task_status: trio.TaskStatus[None]) -> None:
            async with actors.ActorSystem(store, actors=[Account, Fanout], clock=clock) as system:
                Fanout.system = system
                task_status.started()
                system.ref(Fanout, "f").tell("go", message_id="f-1")
                await trio.sleep_forever()

        await nursery.start(run)

    await crash_after(10, start)
    async with actors.ActorSystem(store, actors=[Account, Fanout], clock=clock) as system:
        Fanout.system = system
        assert await system.ref(Fanout, "f").ask("go", message_id="f-1") == [101, 102]
    assert sorted(Account.handled) == [("a", 1), ("b", 2)]
    calls = [e for e in await log_of(store, "Fanout-f") if isinstance(e, CallReplied)]
    assert sorted((c.branch, c.target) for c in calls) == [((1,), "Account-a"),
                                                           ((2,), "Account-b")]


async def test_a_call_to_another_actor_at_a_recorded_key_is_non_determinism(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    target = ["a"]

    @attrs.define
    class Fickle(actors.Actor):
        kind = "Fickle"
        system: ClassVar[actors.ActorSystem]

        async def receive(self, message: Any) -> Any:
            await Fickle.system.ref(Account, target[0]).ask(1)
            await durable.sleep.aio(60)

    async def start(nursery: trio.Nursery) -> None:
        async def run(*, task_status: trio.TaskStatus[None]) -> None:
            async with actors.ActorSystem(store, actors=[Account, Fickle], clock=clock) as system:
                Fickle.system = system
                task_status.started()
                system.ref(Fickle, "f").tell("go", message_id="f-1")
                await trio.sleep_forever()

        await nursery.start(run)

    await crash_after(10, start)
    target[0] = "b"
    async with actors.ActorSystem(store, actors=[Account, Fickle], clock=clock) as system:
        Fickle.system = system
        with pytest.raises(NonDeterminismError, match=r"recorded ask\(Account-a\) but the code "
                                                      r"now asks for ask\(Account-b\)"):
            await system.ref(Fickle, "f").ask("go", message_id="f-1")


async def test_self_ref_reaches_the_system_s_actors_and_refuses_others() -> None:
    store = MemoryEventStore()

    @attrs.define
    class Stranger(actors.Actor):
        kind = "Stranger"

    @attrs.define
    class Teller(actors.Actor):
        kind = "Teller"

        async def receive(self, message: str) -> Any:
            if message == "stranger":
                return self.ref(Stranger, "s")
            return await self.ref(Account, "a").ask(5)

    async with actors.ActorSystem(store, actors=[Account, Teller]) as system:
        teller = system.ref(Teller, "t")
        assert await teller.ask("deposit") == 105
        with pytest.raises(ValueError, match=r"self\.ref\('.*Stranger', 's'\): this actor's "
                                             r"ActorSystem does not host that class"):
            await teller.ask("stranger")
    async with trio.open_nursery() as nursery:
        alone = await actors.spawn(nursery, Teller, "t2", store=store)
        with pytest.raises(actors.ActorError, match=r"spawned without an ActorSystem"):
            await alone.ask("deposit")
        await alone.stop()
    with pytest.raises(actors.ActorError, match=r"spawned without an ActorSystem"):
        actors.testing.project(Teller, []).ref(Account, "a")


async def test_messages_without_ids_call_afresh_each_time() -> None:
    @attrs.define
    class Clerk(actors.Actor):
        kind = "Clerk"

        async def receive(self, amount: int) -> Any:
            return await self.ref(Account, "a").ask(amount)

    store = MemoryEventStore()
    async with actors.ActorSystem(store, actors=[Account, Clerk]) as system:
        clerk = system.ref(Clerk, "c")
        assert [await clerk.ask(1), await clerk.ask(2), await clerk.ask(3)] == [101, 103, 106]
    assert Account.handled == [("a", 1), ("a", 2), ("a", 3)]
    # Nothing can send such a message again: its calls are plain asks, recorded nowhere.
    assert [e for e in await log_of(store, "Clerk-c") if isinstance(e, CallReplied)] == []


async def test_on_start_asks_afresh_at_each_activation() -> None:
    @attrs.define
    class Opener(actors.Actor):
        kind = "Opener"
        seen: ClassVar[list[int]] = []

        async def on_start(self) -> None:
            Opener.seen.append(await self.ref(Account, "a").ask(1))

    store = MemoryEventStore()
    for _ in range(3):  # three activations of the same actor: one scope name, three executions
        async with actors.ActorSystem(store, actors=[Account, Opener]) as system:
            await system.spawn(Opener, "o")
    assert Opener.seen == [101, 102, 103]


async def test_a_call_with_its_own_message_id_records_that_id(
        autojump_clock: trio.testing.MockClock) -> None:
    # A saga that timed out asks again with the same id: the callee runs the call once, and the
    # caller's records name the id each call really went out with.
    @attrs.define
    class Slow(Account):
        kind = "Slow"

        async def receive(self, amount: int) -> int:
            await trio.sleep(10)
            return await super().receive(amount)

    @attrs.define
    class Saga(actors.Actor):
        kind = "Saga"

        async def receive(self, message: Any) -> int:
            slow = self.ref(Slow, "s")
            try:
                return int(await slow.ask(-5, timeout=1, message_id="pay-1"))
            except AskTimeout:
                return int(await slow.ask(-5, message_id="pay-1"))  # its one true answer

    store = MemoryEventStore()
    async with actors.ActorSystem(store, actors=[Slow, Saga]) as system:
        assert await system.ref(Saga, "x").ask("go", message_id="x") == 95
    assert Account.handled == [("s", -5)]
    calls = [e for e in await log_of(store, "Saga-x") if isinstance(e, CallReplied)]
    assert [(c.message_id, c.error is None) for c in calls] == [("pay-1", False), ("pay-1", True)]
