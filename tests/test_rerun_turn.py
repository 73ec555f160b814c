"""``replay.check`` re-runs the turns of recorded messages (durable sends): ``receive`` on the
state before ``Received``, durable calls answered from the log, emits compared with the log."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import shop_actors
import trio
import trio.testing
from shop_actors import (
    Shop,
    ShopForgets,
    ShopNoMail,
    ShopRaises,
    ShopStepFirst,
    ShopTwice,
    Stock,
)
from test_replay import NoWrites

import actors
import eventstore
from actors import NonDeterminismError, durable, replay
from actors._clock import VirtualClock


async def test_recorded_turns_are_re_run_without_running_their_side_effects() -> None:
    store = NoWrites()
    await shop_actors.fill(store)
    store.sealed = True
    codes, left = next(shop_actors._codes), Stock.left
    result = await replay.check(store, Shop, "s1")
    assert result.ok and result.turns == 3  # two orders and a value; the resend runs nothing
    assert next(shop_actors._codes) == codes + 1  # the steps were not run again
    assert Stock.left == left  # nor the calls to Stock sent


@pytest.mark.parametrize(("cls", "version", "says"), [
    (ShopTwice, 6, 'receive() emitted shop.Ordered {"item": "tea", "qty": 0'),
    (ShopNoMail, 5, "where the log holds actors.MessageSent"),
    (ShopForgets, 6, "the log's turn also emitted shop.Ordered"),
    (ShopStepFirst, 1, "raised NonDeterminismError"),
    (ShopRaises, 10, "raised ValueError: 3 is too many"),
])
async def test_the_first_turn_that_emits_something_else_is_the_divergence(
        cls: type[actors.Actor], version: int, says: str) -> None:
    store = eventstore.memory.MemoryEventStore()
    await shop_actors.fill(store)
    divergence = (await replay.check(store, cls, "s1")).divergence
    assert divergence is not None and divergence.version == version, divergence
    assert "re-running the turn of inbox message #" in divergence.reason and says in str(
        divergence)
    if cls is ShopStepFirst:
        assert isinstance(divergence.error, NonDeterminismError)


@eventstore.event_type("tests.rerun_turn.Noted")
@attrs.frozen
class Noted:
    what: str
    at: float = 0.0


@attrs.define
class Napper(actors.Actor):
    """Naps durably inside a message's turn; plain notes have no durable calls; asks count."""

    kind = "Napper"
    notes: list[str] = attrs.Factory(list)

    def apply(self, event: Noted) -> None:
        self.notes.append(event.what)

    async def receive(self, message: Any) -> Any:
        if message == "nap":
            await durable.sleep.aio(60)
            self.emit(Noted("woke", await durable.time.aio()))
        elif message != "state":
            self.emit(Noted(message))
        return self.notes


@attrs.define
class NapperSync(Napper):
    """The same notes from a plain-def receive (run on a worker thread)."""

    kind = "Napper"

    def receive(self, message: Any) -> Any:  # type: ignore[override]
        if message != "state":
            self.emit(Noted(message))
        return self.notes


@attrs.define
class NapperLonger(Napper):
    kind = "Napper"

    async def receive(self, message: Any) -> Any:
        if message == "nap":
            await durable.sleep.aio(61)
        return await super().receive("state" if message == "nap" else message)


@attrs.define
class NapperHi(Napper):
    kind = "Napper"

    async def receive(self, message: Any) -> Any:
        return await super().receive("hi" if message == "hello" else message)


async def _naps(store: eventstore.EventStore) -> None:
    async with actors.ActorSystem(store, actors=[Napper], clock=VirtualClock()) as system:
        ref = system.ref(Napper, "n")
        await ref.send("nap", message_id="nap-1")
        await ref.send("hello")
        await ref.ask("asked")  # not recorded: its event follows hello's turn, unmarked
        with trio.fail_after(600):
            while "woke" not in await ref.ask("state"):
                await trio.sleep(10)


async def test_a_turn_that_sleeps_and_turns_followed_by_unrecorded_ones(
        autojump_clock: trio.testing.MockClock) -> None:
    store = eventstore.memory.MemoryEventStore()
    await _naps(store)
    result = await replay.check(store, Napper, "n")
    assert result.ok, result.divergence
    assert result.turns == 2
    longer = (await replay.check(store, NapperLonger, "n")).divergence
    assert longer is not None and longer.version == 1
    assert "the log recorded sleep(60.0) but the code now asks for sleep(61.0)" in longer.reason
    # hello's turn has no end marker: the ask's event after it is not taken for its own, but
    # a different event where hello's was is a divergence.
    hi = (await replay.check(store, NapperHi, "n")).divergence
    assert hi is not None and hi.version == 9 and '"what": "hi"' in hi.reason


@attrs.define
class NapperQuiet(Napper):
    kind = "Napper"

    async def receive(self, message: Any) -> Any:
        return await super().receive("state" if message == "one" else message)


@attrs.define
class NapperLoud(Napper):
    kind = "Napper"

    async def receive(self, message: Any) -> Any:
        notes = await super().receive(message)
        if message == "one":
            self.emit(Noted("extra"))
        return notes


async def test_a_send_whose_received_holds_its_reply_ends_where_it_counts() -> None:
    store = eventstore.memory.MemoryEventStore()
    async with actors.ActorSystem(store, actors=[Napper]) as system:
        ref = system.ref(Napper, "n")
        await ref.send("one", message_id="one-1")
        await ref.send("quiet", message_id="q-1")
        await ref.ask("asked")  # not recorded: its event follows the send's turn, unmarked
    types = [r.type async for r in store.read("Napper-n")]
    assert "actors.ReplyRecorded" not in types
    result = await replay.check(store, Napper, "n")
    assert result.ok and result.turns == 2, result.divergence
    # The turn's end is known (its Received counts one event): the code that no longer emits
    # it, or emits one more, diverges; the ask's event after it is not taken for the turn's.
    quiet = (await replay.check(store, NapperQuiet, "n")).divergence
    assert quiet is not None and quiet.version == 2 and "also emitted" in quiet.reason
    loud = (await replay.check(store, NapperLoud, "n")).divergence
    assert loud is not None and "which the log does not hold" in loud.reason


async def test_a_turn_recorded_with_reply_recorded_is_re_run_as_before() -> None:
    store = eventstore.memory.MemoryEventStore()
    codec = store.codec
    await store.append("Napper-n", [
        codec.new_event(actors.Received(1, "one-1", "actors.Value", "one")),
        codec.new_event(Noted("one")),
        codec.new_event(actors.ReplyRecorded("one-1", None, 1.0)),
        codec.new_event(Noted("asked"))])
    assert (await replay.check(store, Napper, "n")).ok
    quiet = (await replay.check(store, NapperQuiet, "n")).divergence
    assert quiet is not None and quiet.version == 2


async def test_a_plain_def_receive_is_re_run_on_a_thread(
        autojump_clock: trio.testing.MockClock) -> None:
    store = eventstore.memory.MemoryEventStore()
    async with actors.ActorSystem(store, actors=[NapperSync]) as system:
        ref = system.ref(NapperSync, "n")
        await ref.send("hello")
        await ref.send("again", message_id="a-1")
        assert await ref.ask("state") == ["hello", "again"]
    result = await replay.check(store, NapperSync, "n")
    assert result.ok and result.turns == 2
    divergence = (await replay.check(store, Napper, "n")).divergence
    assert divergence is None  # the async twin emits the same


async def test_check_of_a_sqlite_log_from_the_command_line(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from actors._cli import main

    url = f"sqlite:///{tmp_path}/shop.db"
    async with eventstore.open(url, create=True) as store:
        await shop_actors.fill(store)
    assert await trio.to_thread.run_sync(main, ["export", url, "Shop-s1", "-o",
                                                str(tmp_path / "s1.jsonl")]) == 0
    status = await trio.to_thread.run_sync(
        main, ["check", "--actor", "shop_actors:Shop", str(tmp_path / "s1.jsonl")])
    out = capsys.readouterr().out
    assert status == 0 and out.rstrip().endswith(
        "ok: 19 events, 0 snapshots compared, 0 recoveries re-run, 3 message turns re-run")
    status = await trio.to_thread.run_sync(
        main, ["check", "--actor", "shop_actors:ShopTwice", "--json",
               str(tmp_path / "s1.jsonl")])
    item = __import__("json").loads(capsys.readouterr().out)
    assert status == 1 and item["turns"] == 1 and item["divergence"]["version"] == 6
