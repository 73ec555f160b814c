"""Actors, durable time, timers and replay on every backend: memory, SQLite and PostgreSQL.

The detailed suites run on the memory store under virtual time; this one proves the same
behaviour end to end on each real store, on the wall clock (short durable sleeps and timers are
the behaviour under test here, not a way to wait).
"""

from __future__ import annotations

import io
from datetime import timedelta

import attrs
import pytest
import trio

import actors
from actors import durable, replay
from actors.testing import ActorTestKit
from eventstore import EventStore, event_type


@event_type("every_store.Added")
@attrs.frozen
class Added:
    amount: int


@event_type("every_store.Noted")
@attrs.frozen
class Noted:
    text: str


@attrs.define
class Ledger(actors.Actor):
    snapshot_every = 3
    total: int = 0
    notes: list[str] = attrs.Factory(list)

    def apply(self, event: object) -> None:
        match event:
            case Added(amount=amount):
                self.total += amount
            case Noted(text=text):
                self.notes.append(text)

    async def receive(self, message: object) -> object:
        match message:
            case ("add", int(amount)):
                if amount < 0:
                    self.emit(Added(amount))
                    raise ValueError("refused: negative amount")
                self.emit(Added(amount))
                return self.total
            case "stamp":
                return await durable.time.aio()
            case ("remind", float(seconds), str(text)):
                now = await durable.now.aio()
                self.notifier.notify_at(now + timedelta(seconds=seconds), text)
                return len(self.notifier)
        raise ValueError(f"unknown message {message!r}")

    async def on_notify(self) -> None:
        for text in self.notifier.due(await durable.now.aio()):
            self.emit(Noted(text))


@attrs.define
class Napper(actors.Actor):
    woke_at: float = 0.0
    started_at: float = 0.0

    def apply(self, event: object) -> None:
        if isinstance(event, Noted):
            self.woke_at = float(event.text)

    async def run(self) -> None:
        self.started_at = await durable.time.aio()
        await durable.sleep.aio(0.3)
        self.emit(Noted(str(await durable.time.aio())))


async def test_turns_commit_recover_and_roll_back(any_store: EventStore) -> None:
    async with ActorTestKit(store=any_store, clock=actors.WallClock()) as kit:
        ref = await kit.spawn(Ledger, "a")
        for amount in (5, 10, 20, 40):
            await ref.ask(("add", amount))
        with pytest.raises(ValueError, match="refused"):
            await ref.ask(("add", -1))
        assert await ref.ask(("add", 0)) == 75
        await kit.crash(ref)
        ref = await kit.recover(ref)
        assert await ref.ask(("add", 1)) == 76
    assert await any_store.last_version("Ledger-a") == 6
    snapshot = await any_store.load_snapshot("Ledger-a")
    assert snapshot is not None and snapshot.version == 6
    state = await replay.state_at(any_store, Ledger, "a", version=2)
    assert state.total == 15
    assert (await replay.check(any_store, Ledger, "a")).ok


async def test_durable_time_replays_after_a_crash(any_store: EventStore) -> None:
    async with ActorTestKit(store=any_store, clock=actors.WallClock()) as kit:
        ref = await kit.spawn(Ledger, "t")
        first = await ref.ask("stamp", message_id="m-1")
        await kit.crash(ref)
        ref = await kit.recover(ref)
        assert await ref.ask("stamp", message_id="m-1") == first  # the recorded reply
        assert await ref.ask("stamp", message_id="m-2") != first  # a new id runs afresh
        nap = await kit.spawn(Napper, "n")
        with trio.fail_after(10):
            while not (await kit.events(nap, system=True)) or \
                    not any(isinstance(e, actors.SleepStarted)
                            for e in await kit.events(nap, system=True)):
                await trio.sleep(0.01)
        await kit.crash(nap)  # mid-sleep
        nap = await kit.recover(nap)
        with trio.fail_after(10):
            while not any(isinstance(e, actors.RunCompleted)
                          for e in await kit.events(nap, system=True)):
                await trio.sleep(0.02)
        napper = await replay.state_at(any_store, Napper, "n")
        [sleep] = [e for e in await kit.events(nap, system=True)
                   if isinstance(e, actors.SleepStarted)]
        assert napper.woke_at >= sleep.started_at + 0.3
        assert napper.woke_at < sleep.started_at + 5


async def test_timers_fire_after_a_restart(any_store: EventStore) -> None:
    async with ActorTestKit(store=any_store, clock=actors.WallClock()) as kit:
        ref = await kit.spawn(Ledger, "r")
        assert await ref.ask(("remind", 0.2, "early")) == 1
        assert await ref.ask(("remind", 0.4, "late")) == 2
        await kit.crash(ref)
        ref = await kit.recover(ref)
        with trio.fail_after(10):
            while len((await replay.state_at(any_store, Ledger, "r")).notes) < 2:
                await trio.sleep(0.02)
    fired = [e for e in await kit.events(ref, system=True)
             if isinstance(e, actors.NotificationFired)]
    assert sum(len(e.seqs) for e in fired) == 2
    assert (await replay.state_at(any_store, Ledger, "r")).notes == ["early", "late"]


async def test_a_log_exports_and_imports_between_stores(any_store: EventStore) -> None:
    async with ActorTestKit(store=any_store, clock=actors.WallClock()) as kit:
        ref = await kit.spawn(Ledger, "x")
        for amount in range(1, 6):
            await ref.ask(("add", amount))
    out = io.StringIO()
    await replay.export_jsonl(any_store, "Ledger-x", out)
    async with ActorTestKit() as other:
        await replay.import_jsonl(other.store, out.getvalue().splitlines(keepends=True))
        assert (await replay.state_at(other.store, Ledger, "x")).total == 15


async def test_an_event_can_keep_its_recording_time(any_store: EventStore) -> None:
    from datetime import UTC, datetime, timezone

    import eventstore

    then = datetime(2020, 2, 29, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    await any_store.append("s", [eventstore.NewEvent("E", {}, recorded_at=then),
                                 eventstore.NewEvent("E", {})])
    first, second = [e.recorded_at async for e in any_store.read("s")]
    assert first == then and first.tzinfo is not None
    assert first.utcoffset() == timedelta(0)  # stored and read back in UTC
    assert second > datetime(2025, 1, 1, tzinfo=UTC)  # the append's own time
    with pytest.raises(eventstore.InvalidArgument, match="aware datetime"):
        naive = datetime(2020, 1, 1)
        await any_store.append("s", [eventstore.NewEvent("E", {}, recorded_at=naive)])
