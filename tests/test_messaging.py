"""Idempotent messages: with a ``message_id``, the handler's effects happen once per (actor, id).

The reply is recorded with the turn's events (``ReplyRecorded``); a resend after a timeout, a
client crash or a server crash gets the recorded reply and runs nothing. A failed turn records
nothing, so its resend runs again. Ids are remembered for ``remember_replies`` seconds of durable
time, in snapshots too.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import pytest
import trio
import trio.testing
from test_durable import fresh

import actors
import eventstore
from actors import ReplyRecorded
from eventstore import EventStore
from eventstore.memory import MemoryEventStore


@eventstore.event_type("tests.messaging.Deposited")
@attrs.frozen
class Deposited:
    amount: int


@attrs.define
class Account(actors.Actor):
    kind = "Account"
    runs: ClassVar[list[Any]] = []
    balance: int = 0

    def apply(self, event: Any) -> None:
        self.balance += event.amount

    async def receive(self, message: Any) -> Any:
        Account.runs.append(message)
        if message == "boom":
            self.emit(Deposited(1000))
            raise RuntimeError("refused")
        if message == "unencodable":
            self.emit(Deposited(1000))
            return object()
        self.emit(Deposited(message))
        return {"balance": self.balance}


@pytest.fixture(autouse=True)
def fresh_runs() -> None:
    Account.runs = []


async def replies_in(store: EventStore, stream: str) -> list[ReplyRecorded]:
    return [e for r in [r async for r in store.read(stream)]
            if isinstance(e := store.codec.decode(r), ReplyRecorded)]


async def test_a_resend_gets_the_recorded_reply_across_a_restart(any_store: EventStore) -> None:
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Account, "a", store=any_store)
        assert await ref.ask(5, message_id="d-1") == {"balance": 5}
        assert await ref.ask(5, message_id="d-1") == {"balance": 5}  # not 10
        await ref.stop()
    async with trio.open_nursery() as nursery:  # a new process on the same log
        ref = await actors.spawn(nursery, Account, "a", store=any_store)
        assert await ref.ask(5, message_id="d-1") == {"balance": 5}
        ref.tell(5, message_id="d-1")  # a told resend is deduplicated the same way
        assert await ref.ask(7, message_id="d-2") == {"balance": 12}
        await ref.stop()
    assert Account.runs == [5, 7]
    replies = await replies_in(any_store, "Account-a")
    assert [(r.message_id, any_store.codec.decode_value(r.value)) for r in replies] == [
        ("d-1", {"balance": 5}), ("d-2", {"balance": 12})]


async def test_duplicates_queued_together_run_once_and_get_the_same_reply() -> None:
    store = MemoryEventStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Account, "a", store=store)
        replies: list[Any] = []

        async def ask(n: int) -> None:
            replies.append(await ref.ask(n, message_id="same"))

        async with trio.open_nursery() as askers:
            for n in (3, 4, 5):
                askers.start_soon(ask, n)
        await ref.stop()
    assert len(Account.runs) == 1 and replies == [{"balance": Account.runs[0]}] * 3


async def test_a_failed_turn_records_nothing_and_its_resend_runs_again(
        any_store: EventStore) -> None:
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Account, "a", store=any_store)
        for _ in range(2):
            with pytest.raises(RuntimeError, match="refused"):
                await ref.ask("boom", message_id="b-1")
        await ref.stop()
    assert Account.runs == ["boom", "boom"]
    assert [r async for r in any_store.read("Account-a")] == []


async def test_a_reply_the_codec_cannot_record_fails_the_turn_and_rolls_it_back(
        any_store: EventStore) -> None:
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Account, "a", store=any_store)
        with pytest.raises(TypeError, match=r"Account\('a'\): the reply to message_id 'u-1' is "
                                            r"object .* cannot record .* without a message_id"):
            await ref.ask("unencodable", message_id="u-1")
        assert isinstance(await ref.ask("unencodable"), object)  # without an id: as before
        await ref.stop()
    log = [any_store.codec.decode(r) async for r in any_store.read("Account-a")]
    assert log == [Deposited(1000)]  # only the turn without an id committed


async def test_ids_are_forgotten_after_the_window_of_durable_time(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()

    @attrs.define
    class Brief(Account):
        kind = "Account"
        remember_replies = 3600.0

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Brief, "a", store=store, clock=clock)
        assert await ref.ask(1, message_id="old") == {"balance": 1}
        await trio.sleep(1800)
        assert await ref.ask(2, message_id="mid") == {"balance": 3}
        assert await ref.ask(1, message_id="old") == {"balance": 1}  # within the hour
        await trio.sleep(1801)
        assert await ref.ask(4, message_id="new") == {"balance": 7}  # forgets "old"
        assert await ref.ask(1, message_id="mid") == {"balance": 3}  # "mid" is 1 h - 1 s old
        assert await ref.ask(1, message_id="old") == {"balance": 8}  # runs again
        await ref.stop()
    assert Account.runs == [1, 2, 4, 1]


async def test_remembered_ids_live_in_snapshots(any_store: EventStore) -> None:
    @attrs.define
    class Snapped(Account):
        kind = "Account"
        snapshot_every = 1

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Snapped, "a", store=any_store)
        await ref.ask(5, message_id="d-1")
        await ref.ask(6, message_id="d-2")
        await ref.stop()
    snapshot = await any_store.load_snapshot("Account-a")
    assert snapshot is not None and [row[0] for row in snapshot.state["replies"]] == ["d-1", "d-2"]
    await any_store.delete_up_to("Account-a", snapshot.version)  # only the snapshot knows now
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Snapped, "a", store=any_store)
        assert await ref.ask(5, message_id="d-1") == {"balance": 5}
        await ref.stop()
    assert Account.runs == [5, 6]


@pytest.mark.parametrize(("message_id", "match"), [
    ("", r"message_id must be a non-empty string or None, got ''"),
    (7, r"message_id must be a non-empty string or None, got 7"),
    ("a\ud800", r"lone surrogate"),
])
async def test_bad_message_ids_are_refused_before_anything_is_sent(
        message_id: Any, match: str) -> None:
    store = MemoryEventStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Account, "a", store=store)
        with pytest.raises(ValueError, match=match):
            ref.tell(1, message_id=message_id)
        with pytest.raises(ValueError, match=match):
            await ref.ask(1, message_id=message_id)
        await ref.stop()
    assert Account.runs == []


@pytest.mark.parametrize("window", [-1, float("inf"), float("nan"), "week", True])
async def test_a_bad_reply_window_is_refused_at_spawn(window: Any) -> None:
    @attrs.define
    class Odd(Account):
        remember_replies = window

    async with trio.open_nursery() as nursery:
        with pytest.raises(TypeError, match=r"remember_replies must be finite seconds >= 0"):
            await actors.spawn(nursery, Odd, "a", store=MemoryEventStore())
