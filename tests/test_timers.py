"""Durable timers inside actors: ``self.notifier`` as events, wake-ups, recovery, passivation.

Tests taking ``any_store`` run on memory, SQLite and PostgreSQL; the rest assert when (in virtual
time) timers fire, and stay on memory, as the autojump clock jumps to the next deadline while
SQLite or PostgreSQL work runs in a worker thread.
"""

from __future__ import annotations

import enum
import uuid
import warnings
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar

import attrs
import pytest
import trio
import trio.testing

import actors
import eventstore
from actors import durable
from actors._timers import EventSourcedNotifier
from eventstore.memory import MemoryEventStore

START = actors.VirtualClock.DEFAULT_START
HOUR = timedelta(hours=1)

FIRED: dict[str, list[tuple[Any, datetime]]] = {}
"""What ``due`` handed each actor's ``on_notify``, by actor id, with the durable now."""
WAKES: dict[str, int] = {}
"""How many times ``on_notify`` ran, by actor id."""


@pytest.fixture(autouse=True)
def _clean_probes() -> None:
    FIRED.clear()
    WAKES.clear()


@eventstore.event_type("tests.timers.Token")
@attrs.frozen
class Token:
    name: str
    n: int
    tags: tuple[str, ...] = ()


class Colour(enum.Enum):
    RED = "red"


@attrs.frozen
class Schedule:
    """Schedule ``token`` at ``at``, or ``at`` after the durable now when it is a timedelta."""

    at: Any
    token: Any


@attrs.frozen
class Cancel:
    token: Any


@attrs.frozen
class Misuse:
    """Call ``notify_at(at, token)``; return the error and the notifier before and after."""

    at: Any
    token: Any


@attrs.define
class Timers(actors.Actor):
    """Schedules what it is told; ``on_notify`` takes every due token."""

    async def receive(self, message: Any) -> Any:
        match message:
            case Schedule(at=timedelta() as delay, token=token):
                self.notifier.notify_at(await durable.now.aio() + delay, token)
            case Schedule(at=at, token=token):
                self.notifier.notify_at(at, token)
            case Cancel(token=token):
                return self.notifier.cancel(token)
            case Misuse(at=at, token=token):
                before = (self.notifier.pending(), len(self.notifier), self.notifier.next_at())
                try:
                    self.notifier.notify_at(at, token)
                except Exception as exc:
                    after = (self.notifier.pending(), len(self.notifier), self.notifier.next_at())
                    return exc, before, after
                raise AssertionError("notify_at accepted bad input")
            case "pending":
                return self.notifier.pending()
            case "self":
                return self
        return None

    async def on_notify(self) -> None:
        WAKES[self.id] = WAKES.get(self.id, 0) + 1
        now = await durable.now.aio()
        FIRED.setdefault(self.id, []).extend((token, now) for token in self.notifier.due(now))


@attrs.define
class Snapshotting(Timers):
    snapshot_every = 1


@eventstore.event_type("tests.timers.BecameEager")
@attrs.frozen
class BecameEager:
    pass


@attrs.define
class Lazy(Timers):
    """An ``on_notify`` that never takes its due tokens (until told to)."""

    eager: bool = False

    def apply(self, event: Any) -> None:
        if isinstance(event, BecameEager):
            self.eager = True

    async def receive(self, message: Any) -> Any:
        if message == "eager":
            self.emit(BecameEager())
            return None
        return await super().receive(message)

    async def on_notify(self) -> None:
        if self.eager:
            await super().on_notify()
        else:
            WAKES[self.id] = WAKES.get(self.id, 0) + 1


@attrs.define
class Meddler(actors.Actor):
    """Touches another actor's notifier from inside its own turn."""

    async def receive(self, message: Any) -> Any:
        other: Timers = message
        other.notifier.notify_at(START + HOUR, "meddled")


async def events(store: eventstore.EventStore, stream: str) -> list[Any]:
    return [store.codec.decode(recorded) async for recorded in store.read(stream)]


async def fired_seqs(store: eventstore.EventStore, stream: str) -> list[int]:
    return [seq for event in await events(store, stream)
            if isinstance(event, actors.NotificationFired) for seq in event.seqs]


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore()


@pytest.fixture
async def nursery() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()


async def spawn(nursery: trio.Nursery, store: eventstore.EventStore, clock: actors.Clock,
                cls: type[actors.Actor] = Timers, actor_id: str = "t") -> actors.ActorRef:
    return await actors.spawn(nursery, cls, actor_id, store=store, clock=clock)


# -- in-actor behaviour ------------------------------------------------------------------------


async def test_notifications_fire_in_order_at_their_time_as_events(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore,
        nursery: trio.Nursery) -> None:
    clock = actors.VirtualClock()
    ref = await spawn(nursery, store, clock)
    await ref.ask(Schedule(2 * HOUR, "b"))
    await ref.ask(Schedule(HOUR, "a"))
    await ref.ask(Schedule(2 * HOUR, "c"))  # same instant as "b": fires after it
    await ref.ask(Schedule(START - HOUR, "past"))  # already due: fires at once
    await trio.testing.wait_all_tasks_blocked()
    assert FIRED["t"] == [("past", START)]
    await trio.sleep(3 * 3600)
    assert FIRED["t"] == [("past", START), ("a", START + HOUR), ("b", START + 2 * HOUR),
                          ("c", START + 2 * HOUR)]
    assert WAKES["t"] == 3
    logged = [e for e in await events(store, ref.stream) if isinstance(
        e, actors.NotificationScheduled | actors.NotificationFired)]
    assert logged == [
        actors.NotificationScheduled(0, START + 2 * HOUR, "b"),
        actors.NotificationScheduled(1, START + HOUR, "a"),
        actors.NotificationScheduled(2, START + 2 * HOUR, "c"),
        actors.NotificationScheduled(3, START - HOUR, "past"),
        actors.NotificationFired((3,)),
        actors.NotificationFired((1,)),
        actors.NotificationFired((0, 2)),
    ]


async def test_notifier_changes_outside_a_turn_raise_not_in_turn_and_change_nothing(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore,
        nursery: trio.Nursery) -> None:
    clock = actors.VirtualClock()
    ref = await spawn(nursery, store, clock)
    await ref.ask(Schedule(HOUR, "kept"))
    actor: Timers = await ref.ask("self")
    version = await store.last_version(ref.stream)
    before = actor.notifier.pending()
    with pytest.raises(actors.NotInTurn):
        actor.notifier.notify_at(START + 2 * HOUR, "outside")
    with pytest.raises(actors.NotInTurn):
        actor.notifier.due(START + 3 * HOUR)
    with pytest.raises(actors.NotInTurn):
        actor.notifier.cancel("kept")
    # Inside another actor's turn is still outside this actor's turns.
    meddler = await spawn(nursery, store, clock, Meddler, "m")
    with pytest.raises(actors.NotInTurn):
        await meddler.ask(actor)
    assert actor.notifier.pending() == before == [(START + HOUR, "kept")]
    assert await store.last_version(ref.stream) == version
    assert await ref.ask("pending") == before
    await trio.sleep(2 * 3600)
    assert FIRED["t"] == [("kept", START + HOUR)]


@pytest.mark.parametrize(("at", "token", "error"), [
    pytest.param(datetime(2026, 1, 2), "t", ValueError, id="naive datetime"),
    pytest.param(START.timestamp() + 60, "t", TypeError, id="epoch float"),
    pytest.param(date(2026, 1, 2), "t", TypeError, id="date"),
    pytest.param("2026-01-02T00:00:00Z", "t", TypeError, id="iso string"),
    pytest.param(START + HOUR, object(), eventstore.SerializationError, id="object token"),
    pytest.param(START + HOUR, {1: "int key"}, eventstore.SerializationError, id="int-key dict"),
    pytest.param(START + HOUR, ("ok", float("nan")), eventstore.SerializationError,
                 id="nan in tuple"),
])
async def test_bad_input_raises_before_anything_changes(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore, nursery: trio.Nursery,
        at: Any, token: Any, error: type[Exception]) -> None:
    clock = actors.VirtualClock()
    ref = await spawn(nursery, store, clock)
    await ref.ask(Schedule(HOUR, "kept"))
    exc, before, after = await ref.ask(Misuse(at, token))
    assert isinstance(exc, error)
    assert after == before == ([(START + HOUR, "kept")], 1, START + HOUR)
    await ref.ask(Schedule(2 * HOUR, "next"))
    scheduled = [e for e in await events(store, ref.stream)
                 if isinstance(e, actors.NotificationScheduled)]
    # Nothing was logged for the bad call, and it did not use up a sequence number.
    assert [(e.seq, e.token) for e in scheduled] == [(0, "kept"), (1, "next")]
    # Uncaught, the error reaches the asker, and the actor goes on as before.
    with pytest.raises(error):
        await ref.ask(Schedule(at, token))
    await trio.sleep(3 * 3600)
    assert [t for t, _ in FIRED["t"]] == ["kept", "next"]


async def test_an_aware_datetime_in_any_zone_is_stored_in_utc(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore,
        nursery: trio.Nursery) -> None:
    clock = actors.VirtualClock()
    ref = await spawn(nursery, store, clock)
    minus5 = timezone(-timedelta(hours=5))
    await ref.ask(Schedule((START + HOUR).astimezone(minus5), "zoned"))
    assert await ref.ask("pending") == [(START + HOUR, "zoned")]
    await trio.sleep(3599)
    assert "t" not in FIRED
    await trio.sleep(2)
    assert FIRED["t"] == [("zoned", START + HOUR)]


TOKENS: list[Any] = [
    "text", 7, None, True, 2.5, ["a", 1], ("tuple", 1, ("nested", 2)), frozenset({"x", "y"}),
    {"key": ("v", 1)}, Token("attrs", 3, ("a", "b")), START + 5 * HOUR, Decimal("1.10"),
    uuid.UUID(int=5), b"\x00bytes", Colour.RED, (Token("in", 1), [Token("list", 2)]),
]


@pytest.mark.parametrize("cls", [Timers, Snapshotting], ids=["replay", "snapshot"])
async def test_tokens_of_many_kinds_survive_recovery(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore,
        cls: type[Timers]) -> None:
    clock = actors.VirtualClock()
    async with trio.open_nursery() as nursery:
        ref = await spawn(nursery, store, clock, cls)
        for n, token in enumerate(TOKENS):
            await ref.ask(Schedule(START + HOUR + n * timedelta(seconds=1), token))
        await ref.ask(Schedule(START + HOUR, "duplicate"))
        await ref.ask(Cancel("duplicate"))
        await ref.stop()
    stream = ref.stream
    if cls is Snapshotting:
        snapshot = await store.load_snapshot(stream)
        assert snapshot is not None and snapshot.version == await store.last_version(stream)
        # Without the log, recovery must come from the snapshot alone.
        await store.delete_up_to(stream, snapshot.version)
        assert await events(store, stream) == []
    async with trio.open_nursery() as nursery:
        ref = await spawn(nursery, store, clock, cls)
        pending = await ref.ask("pending")
        assert [token for _, token in pending] == TOKENS
        assert [type(token) for _, token in pending] == [type(token) for token in TOKENS]
        await trio.sleep(2 * 3600)
        await ref.stop()
    fired = [token for token, _ in FIRED["t"]]
    assert fired == TOKENS
    assert [type(token) for token in fired] == [type(token) for token in TOKENS]


async def test_snapshot_keeps_the_sequence_counter(
        autojump_clock: trio.testing.MockClock, any_store: eventstore.EventStore) -> None:
    clock = actors.VirtualClock()
    async with trio.open_nursery() as nursery:
        ref = await spawn(nursery, any_store, clock, Snapshotting)
        await ref.ask(Schedule(HOUR, "a"))
        await ref.ask(Schedule(2 * HOUR, "b"))
        await ref.ask(Cancel("b"))  # the newest seq is gone from the pending set
        await ref.stop()
    snapshot = await any_store.load_snapshot(ref.stream)
    assert snapshot is not None
    await any_store.delete_up_to(ref.stream, snapshot.version)
    async with trio.open_nursery() as nursery:
        ref = await spawn(nursery, any_store, clock, Snapshotting)
        await ref.ask(Schedule(3 * HOUR, "c"))
        await ref.stop()
    scheduled = [e for e in await events(any_store, ref.stream)
                 if isinstance(e, actors.NotificationScheduled)]
    assert [(e.seq, e.token) for e in scheduled] == [(2, "c")]


async def test_a_notification_due_while_down_fires_once_at_recovery(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore) -> None:
    clock = actors.VirtualClock()
    async with trio.open_nursery() as nursery:
        ref = await spawn(nursery, store, clock)
        await ref.ask(Schedule(HOUR, "missed"))
        await ref.ask(Schedule(5 * HOUR, "later"))
        await ref.stop()
    await trio.sleep(3 * 3600)  # "down" for three hours
    assert FIRED == {}
    async with trio.open_nursery() as nursery:
        await spawn(nursery, store, clock)
        await trio.testing.wait_all_tasks_blocked()
        assert FIRED["t"] == [("missed", START + 3 * HOUR)]
        await trio.sleep(3 * 3600)
        nursery.cancel_scope.cancel()
    assert FIRED["t"] == [("missed", START + 3 * HOUR), ("later", START + 5 * HOUR)]
    assert await fired_seqs(store, ref.stream) == [0, 1]


async def test_recovery_before_the_deadline_never_fires_early(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore) -> None:
    clock = actors.VirtualClock()
    async with trio.open_nursery() as nursery:
        ref = await spawn(nursery, store, clock)
        await ref.ask(Schedule(HOUR, "soon"))
        await ref.stop()
    await trio.sleep(1800)
    async with trio.open_nursery() as nursery:
        await spawn(nursery, store, clock)
        await trio.sleep(1799.9)
        assert FIRED == {}
        await trio.sleep(0.2)
        nursery.cancel_scope.cancel()
    assert FIRED["t"] == [("soon", START + HOUR)]


async def test_a_failed_wake_up_is_retried_and_fires_at_least_once(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore) -> None:
    attempts: list[datetime] = []

    @attrs.define
    class Flaky(Timers):
        async def on_notify(self) -> None:
            await super().on_notify()
            attempts.append(await durable.now.aio())
            if len(attempts) == 1:
                raise RuntimeError("lost the turn after due()")

    clock = actors.VirtualClock()
    async with trio.open_nursery() as nursery:
        ref = await spawn(nursery, store, clock, Flaky)
        await ref.ask(Schedule(HOUR, "retried"))
        await ref.ask(Schedule(2 * HOUR, "next"))
        await trio.sleep(3 * 3600)
        nursery.cancel_scope.cancel()
    # The failed turn's NotificationFired was dropped, so the token came back.
    assert [t for t, _ in FIRED["t"]] == ["retried", "retried", "next"]
    assert await fired_seqs(store, ref.stream) == [0, 1]


async def test_cancel_survives_recovery(autojump_clock: trio.testing.MockClock,
                                        store: MemoryEventStore) -> None:
    clock = actors.VirtualClock()
    async with trio.open_nursery() as nursery:
        ref = await spawn(nursery, store, clock)
        await ref.ask(Schedule(HOUR, "a"))
        await ref.ask(Schedule(2 * HOUR, Token("b", 1)))
        await ref.ask(Schedule(3 * HOUR, "a"))
        assert await ref.ask(Cancel("a")) == 2
        assert await ref.ask(Cancel("missing")) == 0
        await ref.stop()
    logged = [e for e in await events(store, ref.stream)
              if isinstance(e, actors.NotificationCancelled)]
    assert logged == [actors.NotificationCancelled((0, 2))]
    async with trio.open_nursery() as nursery:
        ref = await spawn(nursery, store, clock)
        assert await ref.ask("pending") == [(START + 2 * HOUR, Token("b", 1))]
        await trio.sleep(4 * 3600)
        nursery.cancel_scope.cancel()
    assert FIRED["t"] == [(Token("b", 1), START + 2 * HOUR)]


async def test_unconsumed_due_tokens_warn_once_and_do_not_spin(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore,
        nursery: trio.Nursery) -> None:
    clock = actors.VirtualClock()
    ref = await spawn(nursery, store, clock, Lazy)
    await ref.ask(Schedule(HOUR, "ignored"))
    with pytest.warns(RuntimeWarning, match="unconsumed") as warned:
        await trio.sleep(12 * 3600)
        assert WAKES["t"] == 1
        # The next message wakes it again (without a second warning)...
        await ref.ask("pending")
        await trio.testing.wait_all_tasks_blocked()
        assert WAKES["t"] == 2
        await ref.ask(Schedule(START + 15 * HOUR, "later"))
        await trio.testing.wait_all_tasks_blocked()
        assert WAKES["t"] == 3
        # ...and so does a later deadline.
        await trio.sleep(2.5 * 3600)
        assert WAKES["t"] == 3
        await trio.sleep(3600)
        assert WAKES["t"] == 4
        await trio.sleep(10 * 3600)
        assert WAKES["t"] == 4
    assert len([w for w in warned if "unconsumed" in str(w.message)]) == 1
    assert "t" not in FIRED
    assert await ref.ask("pending") == [(START + HOUR, "ignored"), (START + 15 * HOUR, "later")]
    # Once on_notify takes them, both fire (at the wake-up after the next message).
    await ref.ask("eager")
    await trio.testing.wait_all_tasks_blocked()
    now = START + 25.5 * HOUR
    assert FIRED["t"] == [("ignored", now), ("later", now)]
    assert await ref.ask("pending") == []


def test_a_cancelled_notification_is_left_out_of_next_after_dump_and_load() -> None:
    events: list[Any] = []

    def emit(event: Any) -> None:
        events.append(event)
        notifier.fold(event)

    notifier = EventSourcedNotifier(eventstore.Codec(), emit)
    for hours, token in [(1, "a"), (2, "b"), (3, "c"), (2, "d")]:
        notifier.notify_at(START + hours * HOUR, token)
    assert notifier.cancel("b") == 1  # not the earliest: it stays in the heap as a tombstone
    assert notifier.next_after((START + HOUR).timestamp()) == START + 2 * HOUR  # "d"
    assert notifier.cancel("d") == 1
    assert notifier.next_after((START + HOUR).timestamp()) == START + 3 * HOUR
    dumped = notifier.dump()
    assert [token for _, _, token in dumped["pending"]] == ["a", "c"]
    fresh = EventSourcedNotifier(eventstore.Codec(), emit)
    fresh.load(dumped)
    assert fresh == notifier and fresh.earliest_seq() == notifier.earliest_seq() == 0
    assert notifier.cancel("a") == 1
    assert notifier.earliest_seq() == 2 and notifier.next_at() == START + 3 * HOUR
    assert [type(event).__name__ for event in events].count("NotificationCancelled") == 3


# -- the system: passivation, restarts -------------------------------------------------------


async def test_a_passivated_actor_is_activated_at_its_deadline(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore) -> None:
    clock = actors.VirtualClock()
    async with actors.ActorSystem(store, actors=[Timers], clock=clock,
                                  idle_timeout=60) as system:
        ref = system.ref(Timers, "p")
        await ref.ask(Schedule(HOUR, "first"))
        await ref.ask(Schedule(2 * HOUR, "second"))
        assert system.active == 1
        await trio.sleep(61)
        assert system.active == 0
        await trio.sleep(HOUR.total_seconds() - 62)
        assert "p" not in FIRED
        await trio.sleep(2)
        assert FIRED["p"] == [("first", START + HOUR)]
        assert system.active == 1
        await trio.sleep(120)
        assert system.active == 0
        await trio.sleep(3600)
        assert FIRED["p"] == [("first", START + HOUR), ("second", START + 2 * HOUR)]
    assert await fired_seqs(store, ref.stream) == [0, 1]


async def test_a_passivated_actor_is_activated_ahead_of_its_timer_which_fires_on_time(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore) -> None:
    from actors._index import WAKE_AHEAD

    clock = actors.VirtualClock()
    async with actors.ActorSystem(store, actors=[Timers], clock=clock,
                                  idle_timeout=WAKE_AHEAD / 10) as system:
        await system.ref(Timers, "e").ask(Schedule(HOUR, "on time"))
        await trio.sleep(1)
        assert system.active == 0
        await trio.sleep(HOUR.total_seconds() - 1 - WAKE_AHEAD * 1.5)
        assert system.active == 0
        await trio.sleep(WAKE_AHEAD)  # recovered ahead; its idle_timeout does not passivate it
        assert system.active == 1 and "e" not in FIRED
        await trio.sleep(WAKE_AHEAD)
        assert FIRED["e"] == [("on time", START + HOUR)]  # at the instant: never early
        await trio.sleep(1)
        assert system.active == 0


async def test_a_restarted_system_fires_timers_of_actors_never_touched(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore) -> None:
    clock = actors.VirtualClock()
    async with actors.ActorSystem(store, actors=[Timers], clock=clock) as system:
        for n, actor_id in enumerate(["x", "y", "z"]):
            await system.ref(Timers, actor_id).ask(Schedule((n + 1) * HOUR, actor_id))
        await system.ref(Timers, "idle").ask("pending")  # no timer: stays passive later
    await trio.sleep(1.5 * 3600)  # "x" comes due while no system runs
    async with actors.ActorSystem(store, actors=[Timers], clock=clock) as system:
        await trio.testing.wait_all_tasks_blocked()
        assert FIRED == {"x": [("x", START + 1.5 * HOUR)]}
        assert system.active == 1
        await trio.sleep(0.5 * 3600 - 1)
        assert "y" not in FIRED
        await trio.sleep(2 * 3600)
        assert FIRED == {"x": [("x", START + 1.5 * HOUR)], "y": [("y", START + 2 * HOUR)],
                         "z": [("z", START + 3 * HOUR)]}
        assert system.active == 3
    async with actors.ActorSystem(store, actors=[Timers], clock=clock) as system:
        await trio.sleep(24 * 3600)
        assert system.active == 0  # nothing left to do: nothing is activated
    assert len(FIRED) == 3


async def test_an_index_entry_that_is_too_early_is_corrected_at_activation(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore) -> None:
    # The index is written in each commit's transaction, so only a hand edit (or an older
    # release) leaves an entry that is too early: the activation finds nothing due and corrects it.
    clock = actors.VirtualClock()
    async with actors.ActorSystem(store, actors=[Timers], clock=clock) as system:
        await system.ref(Timers, "e").ask(Schedule(2 * HOUR, "real"))
    await store.set_wake("Timers-e", (START + HOUR).timestamp())
    async with actors.ActorSystem(store, actors=[Timers], clock=clock,
                                  idle_timeout=60) as system:
        await trio.sleep(3600 + 1)
        assert system.active == 1  # activated by the stale entry, to no avail
        await trio.sleep(120)
        assert system.active == 0
        assert FIRED == {}
        await trio.sleep(3600)
        assert FIRED == {"e": [("real", START + 2 * HOUR)]}


async def test_a_legacy_index_stream_is_moved_into_the_store_index(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore) -> None:
    # Logs of earlier releases kept the index in the "$actors-index" stream.
    from actors._events import WorkIndexed

    clock = actors.VirtualClock()
    async with actors.ActorSystem(store, actors=[Timers], clock=clock) as system:
        await system.ref(Timers, "old").ask(Schedule(2 * HOUR, "legacy"))
    await store.set_wake("Timers-old", None)  # as an older release left it: in the stream only
    await store.append("$actors-index", [store.codec.new_event(
        WorkIndexed("Timers", "old", (START + 2 * HOUR).timestamp()))])
    async with actors.ActorSystem(store, actors=[Timers], clock=clock) as system:
        assert [entry.stream for entry in await store.work()] == ["Timers-old"]
        assert [e async for e in store.read("$actors-index")] == []
        await trio.sleep(3 * 3600)
        assert FIRED == {"old": [("legacy", START + 2 * HOUR)]}
    assert await store.work() == []


async def test_an_actor_with_unconsumed_due_tokens_is_not_passivated(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore) -> None:
    # Passivated, it would be woken only at its earliest (already handled) deadline: never.
    clock = actors.VirtualClock()
    async with actors.ActorSystem(store, actors=[Lazy], clock=clock, idle_timeout=60) as system:
        ref = system.ref(Lazy, "l")
        await ref.ask(Schedule(HOUR, "ignored"))
        await ref.ask(Schedule(3 * HOUR, "later"))
        with pytest.warns(RuntimeWarning, match="unconsumed"):
            await trio.sleep(2 * 3600)
        assert system.active == 1
        assert WAKES["l"] == 1
        await trio.sleep(3601)  # not a tie with the deadline: trio randomises ties
        assert WAKES["l"] == 2
        await ref.ask("eager")
        await trio.testing.wait_all_tasks_blocked()
        assert [t for t, _ in FIRED["l"]] == ["ignored", "later"]
        await trio.sleep(61)
        assert system.active == 0


async def test_a_plain_def_handler_schedules_from_its_worker_thread(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore,
        nursery: trio.Nursery) -> None:
    @attrs.define
    class Threaded(Timers):
        def receive(self, message: Any) -> Any:
            self.notifier.notify_at(durable.now() + HOUR, message)
            return self.notifier.pending()

    clock = actors.VirtualClock()
    ref = await spawn(nursery, store, clock, Threaded)
    assert await ref.ask("threaded") == [(START + HOUR, "threaded")]
    await trio.sleep(2 * 3600)
    assert FIRED["t"] == [("threaded", START + HOUR)]


class SlowClock:
    """A wall clock that runs 0.1 % slower than trio's (NTP slewing it back, say)."""

    def __init__(self) -> None:
        self.origin: float | None = None

    def time(self) -> float:
        now = trio.current_time()
        if self.origin is None:
            self.origin = now
        return START.timestamp() + (now - self.origin) * 0.999

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), START.tzinfo)


async def test_an_early_wake_up_sleeps_the_rest_without_calling_on_notify(
        autojump_clock: trio.testing.MockClock, any_store: eventstore.EventStore,
        nursery: trio.Nursery) -> None:
    @attrs.define
    class Slow(Timers):
        async def on_notify(self) -> None:
            await super().on_notify()
            await trio.sleep(1)  # a slow turn: the tokens' time passes while it runs

    clock = SlowClock()
    ref = await spawn(nursery, any_store, clock, Slow)
    await ref.ask(Schedule(HOUR, "drifted"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        await trio.sleep(2 * 3600)
    assert [token for token, _ in FIRED["t"]] == ["drifted"]
    assert FIRED["t"][0][1] >= START + HOUR
    assert WAKES["t"] == 1


class FastClock(SlowClock):
    """A wall clock that runs 0.1 % faster than trio's."""

    def time(self) -> float:
        slow = super().time()
        return START.timestamp() + (slow - START.timestamp()) / 0.999 * 1.001


async def test_an_actor_is_not_passivated_with_a_notification_due(
        autojump_clock: trio.testing.MockClock, any_store: eventstore.EventStore) -> None:
    # The system skips a due entry while its actor is active (the actor fires it itself), so an
    # actor must not passivate with one due, as clock drift can have it decide at that moment.
    clock = FastClock()
    async with actors.ActorSystem(any_store, actors=[Timers], clock=clock,
                                  idle_timeout=60) as system:
        ref = system.ref(Timers, "a")
        await ref.ask(Schedule(timedelta(seconds=60.02), "edge"))
        await trio.sleep(30)
        await system.ref(Timers, "b").ask(Schedule(HOUR, "moves the index"))
        await trio.sleep(600)
        assert [token for token, _ in FIRED["a"]] == ["edge"]


@attrs.define
class Chaining(Timers):
    """Each wake-up takes what is due and schedules the next link at an instant already due:
    ``link`` seconds after the one it fired for (0: the same instant, negative: earlier)."""

    link: ClassVar[float] = 0.0

    async def on_notify(self) -> None:
        WAKES[self.id] = WAKES.get(self.id, 0) + 1
        now = await durable.now.aio()
        for token in self.notifier.due(now):
            FIRED.setdefault(self.id, []).append((token, now))
            if isinstance(token, int) and token < 3:
                self.notifier.notify_at(START + HOUR + timedelta(seconds=self.link * token),
                                        token + 1)


@pytest.mark.parametrize("link", [0.0, -1.0, 0.5])
async def test_a_notification_on_notify_schedules_already_due_fires_without_a_message(
        autojump_clock: trio.testing.MockClock, store: MemoryEventStore, nursery: trio.Nursery,
        link: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a wake-up schedules is new, not left unconsumed: due at or before the instant it
    was woken for, it fires at once (no warning, no wait for a message)."""
    monkeypatch.setattr(Chaining, "link", link)
    clock = actors.VirtualClock()
    ref = await spawn(nursery, store, clock, Chaining)
    await ref.ask(Schedule(START + HOUR, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        await trio.sleep(2 * 3600)
    assert [token for token, _ in FIRED["t"]] == [0, 1, 2, 3]
    assert await ref.ask("pending") == []
