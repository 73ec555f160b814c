"""Durable messages: ``send`` stores a message in the actor's inbox before it returns, and the
actor consumes it in the commit of the turn it causes, so its effects happen once. Messages a
turn sends (``tell``/``send``) are stored by the turn's commit, never if the turn fails."""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import attrs
import pytest
import trio

import actors
import eventstore
from actors import DeadLettered, MessageSent, Received
from eventstore import EventStore


@eventstore.event_type("tests.send.Added")
@attrs.frozen
class Added:
    sender: str
    n: int


@eventstore.event_type("tests.send.Add")
@attrs.frozen
class Add:
    sender: str
    n: int


@attrs.define
class Tally(actors.Actor):
    kind = "Tally"
    runs: ClassVar[list[Any]] = []
    seen: list[tuple[str, int]] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        self.seen.append((event.sender, event.n))

    async def receive(self, message: Any) -> Any:
        Tally.runs.append(message)
        if isinstance(message, Add):
            if message.sender == "poison":
                raise RuntimeError("poisoned")
            self.emit(Added(message.sender, message.n))
        return self.seen


@eventstore.event_type("tests.send.Forward")
@attrs.frozen
class Forward:
    to: str
    n: int
    fail: bool = False
    durable: bool = True


@attrs.define
class Relay(actors.Actor):
    kind = "Relay"
    forwarded: int = 0

    def apply(self, event: Any) -> None:
        self.forwarded += 1

    async def receive(self, message: Any) -> Any:
        other = self.ref(Tally, message.to)
        if message.durable:
            await other.send(Add("relay", message.n))
        else:
            other.tell(Add("relay", message.n))
        self.emit(Added("relay", message.n))
        if message.fail:
            raise RuntimeError("the turn fails after sending")
        return self.forwarded


@pytest.fixture(autouse=True)
def fresh_runs() -> None:
    Tally.runs = []


async def log_of(store: EventStore, stream: str) -> list[Any]:
    return [store.codec.decode(r) async for r in store.read(stream)]


async def inbox_of(store: EventStore, stream: str) -> list[Any]:
    return [r async for r in store.read_inbox(stream)]


async def test_send_stores_then_the_actor_consumes_once(any_store: EventStore) -> None:
    async with actors.ActorSystem(any_store, actors=[Tally]) as system:
        ref = system.ref(Tally, "t")
        await ref.send(Add("a", 1))
        await ref.send(Add("a", 2), message_id="m-2")
        assert await ref.ask("state") == [("a", 1), ("a", 2)]
    log = await log_of(any_store, "Tally-t")
    received = [e for e in log if isinstance(e, Received)]
    assert [(r.message_id, r.type, r.data) for r in received] == [
        (None, "tests.send.Add", {"sender": "a", "n": 1}),
        ("m-2", "tests.send.Add", {"sender": "a", "n": 2})]
    assert received[0].seq < received[1].seq
    assert await inbox_of(any_store, "Tally-t") == []  # consumed: trimmed with the commit
    assert await any_store.work() == []


async def test_a_resent_message_id_is_processed_once(any_store: EventStore) -> None:
    async with actors.ActorSystem(any_store, actors=[Tally]) as system:
        ref = system.ref(Tally, "t")
        for _ in range(3):
            await ref.send(Add("a", 1), message_id="once")
        await ref.ask("sync")
        await ref.send(Add("a", 1), message_id="once")  # after it was consumed
        assert await ref.ask("state") == [("a", 1)]
    assert Tally.runs.count(Add("a", 1)) == 1


async def test_messages_sent_before_a_crash_are_processed_at_the_next_start(
        any_store: EventStore) -> None:
    # As if the process died right after send() returned: the message waits in the inbox.
    from actors._inbox import encode_message

    stored = encode_message(any_store.codec, "Tally-late", Add("a", 7), "m-7", None)
    await any_store.enqueue("Tally-late", [stored])
    assert [entry.stream for entry in await any_store.work()] == ["Tally-late"]
    async with actors.ActorSystem(any_store, actors=[Tally]) as system:
        with trio.fail_after(10):
            while not Tally.runs:
                await trio.sleep(0.01)
        assert await system.ref(Tally, "late").ask("state") == [("a", 7)]
    assert await any_store.work() == []


async def test_each_senders_order_is_kept(any_store: EventStore) -> None:
    async with actors.ActorSystem(any_store, actors=[Tally]) as system:
        ref = system.ref(Tally, "t")

        async def sender(name: str) -> None:
            for n in range(20):
                await ref.send(Add(name, n))

        async with trio.open_nursery() as nursery:
            for name in "abcd":
                nursery.start_soon(sender, name)
        seen = await ref.ask("state")
    assert len(seen) == 80
    for name in "abcd":
        assert [n for s, n in seen if s == name] == list(range(20))


async def test_a_message_that_cannot_be_encoded_is_refused_before_anything_is_stored(
        any_store: EventStore) -> None:
    async with actors.ActorSystem(any_store, actors=[Tally]) as system:
        ref = system.ref(Tally, "t")
        with pytest.raises(actors.InvalidActorArgument, match="cannot be stored"):
            await ref.send(object())
        for bad in ("", 7, "\udc80"):
            with pytest.raises(actors.InvalidActorArgument, match="message_id"):
                await ref.send(Add("a", 1), message_id=bad)  # type: ignore[arg-type]
    assert await inbox_of(any_store, "Tally-t") == []
    assert Tally.runs == []


async def test_plain_values_can_be_sent(any_store: EventStore) -> None:
    async with actors.ActorSystem(any_store, actors=[Tally]) as system:
        ref = system.ref(Tally, "t")
        await ref.send(("a", 1, [2.5, None]))
        await ref.ask("sync")
    assert Tally.runs[0] == ("a", 1, [2.5, None])


@attrs.define
class Brittle(Tally):
    kind = "Brittle"
    max_deliveries = 3
    supervision = actors.Restart(initial_backoff=0.01)


async def test_a_poison_message_becomes_a_dead_letter_and_the_inbox_moves_on(
        any_store: EventStore) -> None:
    async with actors.ActorSystem(any_store, actors=[Brittle]) as system:
        ref = system.ref(Brittle, "b")
        await ref.send(Add("poison", 1), message_id="bad")
        await ref.send(Add("a", 2))
        with trio.fail_after(10):
            while len(Tally.runs) < 4:
                await trio.sleep(0.01)
        assert await ref.ask("state") == [("a", 2)]
    assert Tally.runs[:3] == [Add("poison", 1)] * 3  # tried max_deliveries times
    log = await log_of(any_store, "Brittle-b")
    [dead] = [e for e in log if isinstance(e, DeadLettered)]
    assert (dead.message_id, dead.type, dead.attempts) == ("bad", "tests.send.Add", 3)
    assert dead.data == {"sender": "poison", "n": 1} and "poisoned" in dead.error
    assert await inbox_of(any_store, "Brittle-b") == []


async def test_a_turn_sends_after_its_commit_and_never_if_it_fails(
        any_store: EventStore) -> None:
    async with actors.ActorSystem(any_store, actors=[Tally, Relay]) as system:
        relay = system.ref(Relay, "r")
        with pytest.raises(RuntimeError):
            await relay.ask(Forward("t", 1, fail=True))
        with pytest.raises(RuntimeError):
            await relay.ask(Forward("t", 2, fail=True, durable=False))
        assert await relay.ask(Forward("t", 3)) == 1
        assert await relay.ask(Forward("t", 4, durable=False)) == 2
        tally = system.ref(Tally, "t")
        with trio.fail_after(10):
            while len(Tally.runs) < 2:
                await trio.sleep(0.01)
        assert await tally.ask("state") == [("relay", 3), ("relay", 4)]
    sent = [e for e in await log_of(any_store, "Relay-r") if isinstance(e, MessageSent)]
    assert [(s.to, s.type) for s in sent] == [("Tally-t", "tests.send.Add")] * 2


async def test_a_scope_that_runs_again_sends_with_the_same_id(any_store: EventStore) -> None:
    async with actors.ActorSystem(any_store, actors=[Tally, Relay]) as system:
        relay = system.ref(Relay, "r")
        await relay.ask(Forward("t", 5), message_id="fwd-5")
        await relay.ask(Forward("t", 5), message_id="fwd-5")  # answered from the record
        await system.ref(Tally, "t").ask("sync")
    sent = [e for e in await log_of(any_store, "Relay-r") if isinstance(e, MessageSent)]
    assert [s.message_id for s in sent] == ["Relay-r/msg:fwd-5/>0"]
    received = [e for e in await log_of(any_store, "Tally-t") if isinstance(e, Received)]
    assert [r.message_id for r in received] == ["Relay-r/msg:fwd-5/>0"]


@eventstore.event_type("tests.send.Introduce")
@attrs.frozen
class Introduce:
    friend: actors.ActorRef
    n: int


@eventstore.event_type("tests.send.Introduced")
@attrs.frozen
class Introduced:
    friend: actors.ActorRef


@attrs.define
class Host(actors.Actor):
    kind = "Host"
    friends: list[actors.ActorRef] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        self.friends.append(event.friend)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Introduce):
            self.emit(Introduced(message.friend))
            await message.friend.send(Add("host", message.n))
        return self.friends


async def test_refs_travel_in_messages_and_events(any_store: EventStore) -> None:
    async with actors.ActorSystem(any_store, actors=[Host, Tally]) as system:
        host, tally = system.ref(Host, "h"), system.ref(Tally, "t")
        await host.send(Introduce(tally, 1))
        assert await host.ask("friends") == [tally]
        with trio.fail_after(10):
            while not Tally.runs:
                await trio.sleep(0.01)
        assert await tally.ask("state") == [("host", 1)]
    async with actors.ActorSystem(any_store, actors=[Host, Tally]) as system:
        [friend] = await system.ref(Host, "h").ask("friends")  # folded from the log
        assert friend == system.ref(Tally, "t")
        assert await friend.ask("state") == [("host", 1)]
    [stored] = [r async for r in any_store.read("Host-h") if r.type == "tests.send.Introduced"]
    assert stored.data == {"friend": {"kind": "Tally", "id": "t"}}
    unbound = any_store.codec.decode(stored).friend  # outside a system: equal, not usable
    assert unbound == actors.ActorRef.__codec_decode__({"kind": "Tally", "id": "t"})
    with pytest.raises(actors.ActorStopped, match="outside a running ActorSystem"):
        unbound.tell("x")


@eventstore.event_type("tests.send.Step")
@attrs.frozen
class Step:
    name: str


@attrs.define
class Slow(actors.Actor):
    kind = "Slow"
    steps: list[str] = attrs.Factory(list)

    def apply(self, event: Step) -> None:
        self.steps.append(event.name)

    async def receive(self, message: Any) -> Any:
        if message == "go":
            self.emit(Step("before"))
            await actors.durable.sleep.aio(3600)  # a commit point: "before" is stored
            self.emit(Step("after"))
        return self.steps


async def test_a_message_whose_turn_is_cut_after_a_commit_point_resumes_once(
        autojump_clock: Any) -> None:
    from actors import Consumed
    from eventstore.memory import MemoryEventStore

    store, clock = MemoryEventStore(), actors.VirtualClock()
    async with actors.ActorSystem(store, actors=[Slow], clock=clock) as system:
        await system.ref(Slow, "s").send("go", message_id="go-1")
        await trio.sleep(60)  # asleep: "before" and Received are committed, the message waits
        assert [r.type for r in await inbox_of(store, "Slow-s")] == ["actors.Value"]
    # Stopped mid-turn (as a crash would): the message still waits, so the turn resumes.
    assert [entry.stream for entry in await store.work()] == ["Slow-s"]
    async with actors.ActorSystem(store, actors=[Slow], clock=clock) as system:
        await trio.sleep(2 * 3600)
        assert await system.ref(Slow, "s").ask("state") == ["before", "after"]
    log = await log_of(store, "Slow-s")
    kinds = [type(e).__name__ for e in log]
    assert kinds.count("Received") == 1 and kinds.count("Consumed") == 1
    assert [e.name for e in log if isinstance(e, Step)] == ["before", "after"]
    after = next(n for n, e in enumerate(log) if isinstance(e, Step) and e.name == "after")
    assert any(isinstance(e, Consumed) for e in log[after:])  # the final commit consumes it
    assert await inbox_of(store, "Slow-s") == [] and await store.work() == []


async def test_a_failed_backlog_commit_runs_its_durable_messages_again(
        any_store: EventStore) -> None:
    from reliability.faults import FaultyStore

    from actors._inbox import encode_message

    for n in range(5):  # waiting when the system starts: one backlog
        await any_store.enqueue("Tally-t", [encode_message(any_store.codec, "Tally-t",
                                                           Add("a", n), None, None)])
    faulty = FaultyStore(any_store, own_inner=False)
    faulty.inject("append", times=1)  # the backlog's commit fails: nothing of it is written
    async with actors.ActorSystem(faulty, actors=[Tally]) as system:
        ref = system.ref(Tally, "t")
        seen: list[Any] = []
        with trio.fail_after(20):
            while len(seen) < 5:
                await trio.sleep(0.05)
                # An ask that read the backlog whose commit failed fails with it.
                with contextlib.suppress(eventstore.EventStoreError):
                    seen = await ref.ask("state")
        assert seen == [("a", n) for n in range(5)]
    assert faulty.calls["append"] >= 2
    assert await inbox_of(any_store, "Tally-t") == []
    assert [e.seq for e in await log_of(any_store, "Tally-t") if isinstance(e, Received)] == \
        sorted({e.seq for e in await log_of(any_store, "Tally-t") if isinstance(e, Received)})


async def test_a_long_inbox_is_read_in_bounded_batches_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from actors import _cell
    from actors._inbox import encode_message
    from eventstore.memory import MemoryEventStore

    monkeypatch.setattr(_cell, "_PULL", 7)
    store = MemoryEventStore()
    await store.enqueue("Tally-t", [encode_message(store.codec, "Tally-t", Add("a", n), None,
                                                   None) for n in range(30)])
    async with actors.ActorSystem(store, actors=[Tally]) as system:
        with trio.fail_after(10):
            while len(Tally.runs) < 30:
                await trio.sleep(0.01)
        assert await system.ref(Tally, "t").ask("state") == [("a", n) for n in range(30)]
    assert await inbox_of(store, "Tally-t") == []


async def test_a_sent_message_is_handed_to_its_running_actor_without_a_read(
        any_store: EventStore) -> None:
    from actors._inbox import encode_message

    reads: list[int] = []
    read_inbox = any_store.read_inbox

    def counted(stream: str, **options: Any) -> Any:
        reads.append(options.get("after", 0))
        return read_inbox(stream, **options)

    any_store.read_inbox = counted  # type: ignore[method-assign]
    async with actors.ActorSystem(any_store, actors=[Tally]) as system:
        ref = system.ref(Tally, "t")
        await ref.ask("start")
        started = len(reads)
        for n in range(5):
            await ref.send(Add("a", n), message_id=f"m-{n}")
        await ref.send(Add("a", 0), message_id="m-0")  # a resend, after it was consumed
        assert await ref.ask("state") == [("a", n) for n in range(5)]
        if any_store.reports_inbox_seq:
            assert len(reads) == started  # handed over: none read back
        # Stored by another way (no hand-over): read, and the handed ones never read twice.
        await any_store.enqueue("Tally-t", [encode_message(any_store.codec, "Tally-t",
                                                           Add("b", 9), None, None)])
        await ref.send(Add("a", 5))
        system.ref(Tally, "t")._poke()
        with trio.fail_after(10):
            while len(Tally.runs) < 8:
                await trio.sleep(0.01)
        seen = await ref.ask("state")
    assert sorted(seen) == sorted([("a", n) for n in range(6)] + [("b", 9)])
    assert [n for s, n in seen if s == "a"] == list(range(6))
    assert Tally.runs.count(Add("a", 0)) == 1
    log = await log_of(any_store, "Tally-t")
    seqs = [e.seq for e in log if isinstance(e, Received) and e.data is not None]
    assert len(seqs) == len(set(seqs)) == 7
    assert await inbox_of(any_store, "Tally-t") == []


async def test_a_sends_reply_is_recorded_in_its_received_and_survives_a_restart(
        any_store: EventStore) -> None:
    async with actors.ActorSystem(any_store, actors=[Tally]) as system:
        ref = system.ref(Tally, "t")
        await ref.send(Add("a", 1), message_id="m-1")
        await ref.ask("sync")
    log = await log_of(any_store, "Tally-t")
    assert not [e for e in log if isinstance(e, actors.ReplyRecorded)]  # one event fewer
    [received] = [e for e in log if isinstance(e, Received)]
    assert received.message_id == "m-1" and received.replied_at is not None
    assert received.events == 1  # its turn's Added follows it
    async with actors.ActorSystem(any_store, actors=[Tally]) as system:
        ref = system.ref(Tally, "t")
        await ref.send(Add("a", 1), message_id="m-1")  # recovered from the log: runs nothing
        assert await ref.ask("state") == [("a", 1)]
    assert Tally.runs.count(Add("a", 1)) == 1


async def test_a_reply_recorded_the_older_way_still_answers_a_resend(
        any_store: EventStore) -> None:
    # A log written before a send's reply went into its Received: Received, the turn's
    # events, then ReplyRecorded.
    codec = any_store.codec
    await any_store.append("Tally-t", [
        codec.new_event(Received(1, "m-1", "tests.send.Add", {"sender": "a", "n": 1})),
        codec.new_event(Added("a", 1)),
        codec.new_event(actors.ReplyRecorded("m-1", None, 1.0))])
    async with actors.ActorSystem(any_store, actors=[Tally]) as system:
        ref = system.ref(Tally, "t")
        await ref.send(Add("a", 1), message_id="m-1")
        assert await ref.ask("state") == [("a", 1)]
    assert Tally.runs == ["state"]


@pytest.mark.parametrize(("stream", "message_id"), [
    ("Tally-t", "m-1"), ("Tally-é", "\u2603" * 40), ("a", "b\x00c")])
def test_a_message_ids_inbox_id_is_its_uuid5(stream: str, message_id: str) -> None:
    import uuid

    from actors._inbox import _NAMESPACE, inbox_id

    made = inbox_id(stream, message_id)
    expected = uuid.uuid5(_NAMESPACE, f"{stream}\x00{message_id}")
    assert made == expected and str(made) == str(expected) and hash(made) == hash(expected)
    assert made.version == 5 and made.is_safe == expected.is_safe
    assert inbox_id(stream, None) is None


@pytest.mark.parametrize("replied_at", [None, 1234.5])
def test_a_received_reads_the_same_whichever_way_its_message_came(
        replied_at: float | None) -> None:
    # Handed over (the stored JSON text spliced in) or read back from the inbox (no text): the
    # same data and the same text, so a log does not depend on the timing of a delivery.
    import json

    from actors._inbox import encode_received

    codec = eventstore.Codec()
    message = {"item": "tea", "qty": 2, "note": "é\u0000"}
    event = Received(7, "order-1", "shop.Order", message, replied_at, 1 if replied_at else 0)
    spliced = encode_received(codec, event, json.dumps(message, separators=(",", ":")))
    read = encode_received(codec, event, None)
    assert spliced.data == read.data
    assert json.loads(spliced.data_json) == json.loads(read.data_json) == read.data
    assert ("replied_at" in read.data) is (replied_at is not None)
