"""Recorded side effects (``durable.step``, ``uuid4``, ``random``, ``patched``).

A step's function runs once per key: its outcome is recorded and committed before the scope
goes on, so a scope that runs again (a resent message, ``run()`` after a crash) gets the
recorded value, or the recorded failure, and the function is not called again. In-process
crashes are a cancelled nursery (the store keeps what was committed); the real ``kill -9`` test
is in ``test_steps_crash.py``.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from test_durable import crash_after, fresh, log_of

import actors
from actors import NonDeterminismError, PatchMarked, StepFailed, StepRecorded, durable
from actors._record import DurableRecord
from actors.replay import check
from eventstore import EventStore


def recorded_steps(log: list[Any]) -> list[Any]:
    return [e for e in log if isinstance(e, StepRecorded | PatchMarked)]


class Charges:
    """A payment API stand-in: counts the calls that reached it."""

    def __init__(self, fail: int = 0) -> None:
        self.calls: list[str | None] = []
        self.fail = fail

    def charge(self, amount: int) -> dict[str, Any]:
        self.calls.append(durable.step_key())
        if len(self.calls) <= self.fail:
            raise ConnectionError(f"refused #{len(self.calls)}")
        return {"receipt": f"r-{len(self.calls)}", "amount": amount}

    async def acharge(self, amount: int) -> dict[str, Any]:
        """``charge`` without a worker thread (which trio's autojump clock would not wait for,
        so a virtual crash could land while the thread runs)."""
        await trio.lowlevel.checkpoint()
        return self.charge(amount)


# -- a step runs once per key ---------------------------------------------------------------------


async def test_a_resent_message_gets_the_recorded_step_and_never_calls_again(
        any_store: EventStore) -> None:
    api = Charges()

    @attrs.define
    class Payer(actors.Actor):
        kind = "Payer"

        async def receive(self, message: Any) -> Any:
            receipt = await durable.step.aio(api.charge, 30)
            await durable.sleep.aio(3600)  # the crash lands here, after the step committed
            return receipt

    async def send_then_crash(nursery: trio.Nursery) -> None:
        ref = await actors.spawn(nursery, Payer, "p", store=any_store)
        ref.tell("pay", message_id="pay-1")
        with trio.fail_after(10):
            while not api.calls or not recorded_steps(await log_of(any_store, "Payer-p")):
                await trio.sleep(0.01)

    await crash_after(0, send_then_crash)
    assert len(api.calls) == 1

    @attrs.define
    class Payer2(Payer):
        async def receive(self, message: Any) -> Any:
            return await durable.step.aio(api.charge, 30)  # the sleep is gone: it ends at once

    # The same class name and stream: a restarted process running a fixed handler.
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Payer, "p", store=any_store)
        Payer.receive = Payer2.receive  # type: ignore[method-assign]
        assert await ref.ask("pay", message_id="pay-1") == {"receipt": "r-1", "amount": 30}
        await ref.stop()
    assert api.calls == ["Payer-p/msg:pay-1/1"]
    assert recorded_steps(await log_of(any_store, "Payer-p")) == [
        StepRecorded("msg:pay-1", 1, "Charges.charge",
                     {"$dict": {"receipt": "r-1", "amount": 30}})]


async def test_run_restarted_after_a_crash_replays_its_steps_and_values(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    api = Charges()
    seen: list[tuple[Any, uuid.UUID, float]] = []

    @attrs.define
    class Worker(actors.Actor):
        kind = "Worker"

        async def run(self) -> None:
            receipt = await durable.step.aio(api.acharge, 5)
            seen.append((receipt, await durable.uuid4.aio(), await durable.random.aio()))
            await durable.sleep.aio(600)

    async def start(nursery: trio.Nursery) -> None:
        await actors.spawn(nursery, Worker, "w", store=store, clock=clock)

    await crash_after(100, start)
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Worker, "w", store=store, clock=clock)
        await trio.sleep(600)
        await ref.stop()
    assert len(api.calls) == 1
    assert len(seen) == 2 and seen[0] == seen[1]
    assert isinstance(seen[0][1], uuid.UUID) and 0 <= seen[0][2] < 1


async def test_a_failing_step_retries_with_backoff_then_records_its_failure(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    api = Charges(fail=10)
    outcomes: list[str] = []

    @attrs.define
    class Payer(actors.Actor):
        kind = "Payer"

        async def receive(self, message: Any) -> str:
            try:
                await durable.step.aio(api.acharge, 1, retries=2, backoff=10)
            except StepFailed as failed:
                outcomes.append(str(failed))
                await durable.sleep.aio(3600)
                return f"refunded after {failed.error}"
            return "paid"

    async def send(nursery: trio.Nursery) -> None:
        ref = await actors.spawn(nursery, Payer, "p", store=store, clock=clock)
        ref.tell("pay", message_id="m")

    await crash_after(100, send)
    # Three attempts, 10 s then 20 s apart, all with the same key.
    assert api.calls == ["Payer-p/msg:m/1"] * 3
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Payer, "p", store=store, clock=clock)
        reply = await ref.ask("pay", message_id="m")
        await ref.stop()
    assert reply == "refunded after ConnectionError: refused #3"
    assert len(api.calls) == 3  # the recorded failure is raised again, nothing is called
    assert outcomes[0] == outcomes[1] and "Charges.acharge failed" in outcomes[0]
    assert recorded_steps(await log_of(store, "Payer-p")) == [
        StepRecorded("msg:m", 1, "Charges.acharge", None, "ConnectionError: refused #3")]


async def test_a_retry_that_succeeds_records_only_the_value(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    api = Charges(fail=1)

    @attrs.define
    class Payer(actors.Actor):
        kind = "Payer"

        async def receive(self, message: Any) -> Any:
            return await durable.step.aio(api.acharge, 2, retries=1, backoff=5)

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Payer, "p", store=store, clock=clock)
        began = trio.current_time()
        assert await ref.ask("pay") == {"receipt": "r-2", "amount": 2}
        assert trio.current_time() - began >= 5  # waited its backoff on the durable clock
        await ref.stop()
    steps = recorded_steps(await log_of(store, "Payer-p"))
    assert [(store.codec.decode_value(s.value), s.error) for s in steps] == [
        ({"receipt": "r-2", "amount": 2}, None)]


async def test_async_and_plain_def_steps_from_a_plain_def_handler(any_store: EventStore) -> None:
    api = Charges()

    async def lookup(name: str) -> tuple[str, int]:
        await trio.sleep(0)
        return name, 7

    @attrs.define
    class Clerk(actors.Actor):
        kind = "Clerk"

        def receive(self, message: Any) -> Any:  # runs in a worker thread
            return durable.step(api.charge, 3), durable.step(lookup, "x"), durable.uuid4()

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Clerk, "c", store=any_store)
        receipt, looked_up, made = await ref.ask("go")
        await ref.stop()
    assert receipt == {"receipt": "r-1", "amount": 3}
    assert looked_up == ("x", 7)  # decoded from the record: a tuple stays a tuple
    steps = recorded_steps(await log_of(any_store, "Clerk-c"))
    assert [s.function for s in steps] == ["Charges.charge",
                                           "test_async_and_plain_def_steps_from_a_plain_def_"
                                           "handler.<locals>.lookup", "durable.uuid4"]
    assert any_store.codec.decode_value(steps[2].value) == made


async def test_a_sync_step_on_trio_s_thread_says_to_await_aio() -> None:
    store, _ = MemoryStore()

    @attrs.define
    class Hasty(actors.Actor):
        kind = "Hasty"

        async def receive(self, message: Any) -> Any:
            return durable.step(len, "abc")

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Hasty, "h", store=store)
        with pytest.raises(ValueError, match=r"await durable\.step\.aio\(fn"):
            await ref.ask("go")
        await ref.stop()
    assert recorded_steps(await log_of(store, "Hasty-h")) == []


def MemoryStore() -> tuple[EventStore, None]:
    from eventstore.memory import MemoryEventStore
    return MemoryEventStore(), None


async def test_a_value_the_codec_cannot_record_fails_the_turn_and_records_nothing() -> None:
    store, _ = MemoryStore()

    @attrs.define
    class Leaky(actors.Actor):
        kind = "Leaky"

        async def receive(self, message: Any) -> Any:
            return await durable.step.aio(object)

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Leaky, "l", store=store)
        with pytest.raises(TypeError, match=r"durable\.step\(object\) returned object .* cannot "
                                            r"record"):
            await ref.ask("go")
        await ref.stop()
    assert await log_of(store, "Leaky-l") == []


async def test_a_different_step_at_a_recorded_key_is_non_determinism(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()

    async def first() -> int:
        return 1

    async def second() -> int:
        return 2

    calls = [first]

    @attrs.define
    class Fickle(actors.Actor):
        kind = "Fickle"

        async def receive(self, message: Any) -> Any:
            await durable.step.aio(calls[0])
            await durable.sleep.aio(3600)

    async def send(nursery: trio.Nursery) -> None:
        ref = await actors.spawn(nursery, Fickle, "f", store=store, clock=clock)
        ref.tell("go", message_id="m")

    await crash_after(10, send)
    calls[0] = second
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Fickle, "f", store=store, clock=clock)
        with pytest.raises(NonDeterminismError, match=r"recorded step\(.*first\) but the code "
                                                      r"now asks for step\(.*second\)"):
            await ref.ask("go", message_id="m")
        await ref.stop()


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), [
    ((42,), {}, TypeError, r"takes a function to call first, got int 42"),
    ((len, "x"), {"retries": -1}, ValueError, r"retries=\) takes an int >= 0, got -1"),
    ((len, "x"), {"retries": True}, ValueError, r"retries=\) takes an int >= 0"),
    ((len, "x"), {"backoff": math.nan}, ValueError, r"backoff=\) takes finite seconds"),
])
async def test_bad_step_arguments_are_refused_in_both_forms(
        args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        durable.step(*args, **kwargs)
    with pytest.raises(error, match=match):
        await durable.step.aio(*args, **kwargs)


async def test_outside_an_actor_steps_and_values_are_plain_calls() -> None:
    api = Charges(fail=1)
    assert durable.step(api.charge, 1, retries=1, backoff=0) == {"receipt": "r-2", "amount": 1}
    assert await durable.step.aio(api.charge, 2) == {"receipt": "r-3", "amount": 2}
    assert api.calls == [None, None, None]  # no key outside an actor
    assert isinstance(durable.uuid4(), uuid.UUID) and durable.uuid4() != durable.uuid4()
    assert 0 <= await durable.random.aio() < 1
    assert durable.patched("anything") and await durable.patched.aio("anything")
    with pytest.raises(TypeError, match=r"coroutine function: use `await durable\.step\.aio"):
        durable.step(trio.sleep, 0)
    with pytest.raises(TypeError, match=r"patch's name as a non-empty str"):
        durable.patched("")


# -- patched: code versioning -----------------------------------------------------------------


async def test_patched_is_false_for_history_made_before_the_patch(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    fees: list[str] = []
    patched_code = [False]

    @attrs.define
    class Billing(actors.Actor):
        kind = "Billing"

        async def receive(self, message: Any) -> str:
            new = patched_code[0] and await durable.patched.aio("new-fee-rule")
            fee = "new" if new else "old"
            await durable.sleep.aio(3600)
            fees.append(fee)
            return fee

    async def send(nursery: trio.Nursery) -> None:
        ref = await actors.spawn(nursery, Billing, "b", store=store, clock=clock)
        ref.tell("bill", message_id="old-1")  # sleeps when the old code is deployed away

    await crash_after(10, send)
    patched_code[0] = True  # the deploy
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Billing, "b", store=store, clock=clock)
        old, new = await ref.ask("bill", message_id="old-1"), await ref.ask("bill",
                                                                            message_id="new-1")
        await ref.stop()
    assert (old, new) == ("old", "new")
    marks = [e for e in await log_of(store, "Billing-b") if isinstance(e, PatchMarked)]
    assert marks == [PatchMarked("msg:new-1", 1, "new-fee-rule")]


async def test_patched_is_true_again_where_the_history_has_its_marker(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    answers: list[bool] = []

    @attrs.define
    class Billing(actors.Actor):
        kind = "Billing"

        async def run(self) -> None:
            answers.append(await durable.patched.aio("v2"))
            await durable.sleep.aio(3600)

    async def start(nursery: trio.Nursery) -> None:
        await actors.spawn(nursery, Billing, "b", store=store, clock=clock)

    await crash_after(10, start)
    await crash_after(10, start)
    assert answers == [True, True]
    marks = [e for e in await log_of(store, "Billing-b") if isinstance(e, PatchMarked)]
    assert marks == [PatchMarked("run", 1, "v2")]


# -- check and snapshots ------------------------------------------------------------------------


async def test_check_replays_steps_without_calling_them(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    api = Charges()

    @attrs.define
    class Worker(actors.Actor):
        kind = "Worker"

        async def run(self) -> None:
            await durable.step.aio(api.acharge, 5)
            await durable.sleep.aio(600)
            await durable.step.aio(api.acharge, 6)

    async def start(nursery: trio.Nursery) -> None:
        await actors.spawn(nursery, Worker, "w", store=store, clock=clock)

    await crash_after(100, start)
    assert len(api.calls) == 1
    result = await check(store, Worker, "w")
    assert result.ok, result.divergence
    assert len(api.calls) == 1  # the check met the recorded step, and stopped at the new one


def test_the_record_of_steps_and_patches_survives_a_snapshot_round_trip() -> None:
    from eventstore.memory import MemoryEventStore
    codec = MemoryEventStore().codec
    record = DurableRecord()
    step = StepRecorded("run", 1, "f", codec.encode_value((1, "a")), None, (2,))
    mark = PatchMarked("run", 1, "v2")
    record.apply(step)
    record.apply(mark)
    again = DurableRecord.load(record.dump(codec), codec)
    assert again.get("run", 1, (2,)) == step and again.get("run", 1) == mark


async def test_messages_without_ids_never_share_a_step_key() -> None:
    keys: list[str | None] = []

    async def note() -> None:
        keys.append(durable.step_key())

    @attrs.define
    class Noter(actors.Actor):
        kind = "Noter"

        async def receive(self, message: Any) -> None:
            await durable.step.aio(note)

    store, _ = MemoryStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Noter, "n", store=store)
        await ref.ask("a")
        await ref.ask("b")
        await ref.ask("c", message_id="c-1")
        await ref.stop()
    assert len(set(keys)) == 3 and all(k is not None and k.startswith("Noter-n/") for k in keys)
    assert keys[2] == "Noter-n/msg:c-1/1"  # a message with an id: its stable key
