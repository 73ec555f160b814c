"""The conformance cases for inboxes and the work index (see ``eventstore._work``)."""

from __future__ import annotations

import uuid

import pytest
import trio

from . import (
    NO_STREAM,
    Enqueued,
    EventStore,
    InvalidArgument,
    NewEvent,
    SerializationError,
    WorkEntry,
    WrongExpectedVersion,
)
from ._conformance import ConformanceBase, collect, events


def message(n: int, id: uuid.UUID | None = None) -> NewEvent:
    return NewEvent("Msg", {"n": n}, {"from": "test"}) if id is None else \
        NewEvent("Msg", {"n": n}, {"from": "test"}, id)


async def waiting(store: EventStore, stream: str) -> list[int]:
    return [m.data["n"] for m in await collect(store.read_inbox(stream))]


class WorkConformance(ConformanceBase):
    """Inboxes and the work index: written with appends, all or nothing."""

    async def test_enqueued_messages_wait_in_order(self, store: EventStore) -> None:
        await store.enqueue("a", [message(1), message(2)])
        await store.enqueue("a", [message(3)])
        await store.enqueue("b", [message(9)])
        got = await collect(store.read_inbox("a"))
        assert [m.data["n"] for m in got] == [1, 2, 3]
        assert [m.type for m in got] == ["Msg"] * 3
        assert got[0].metadata == {"from": "test"} and got[0].stream == "a"
        sequences = [m.position for m in got]
        assert sequences == sorted(set(sequences)) and all(m.version == m.position for m in got)
        assert [m.data["n"] for m in await collect(store.read_inbox("a", after=got[0].position))
                ] == [2, 3]
        assert [m.data["n"] for m in await collect(store.read_inbox("a", limit=2))] == [1, 2]
        assert await waiting(store, "nobody") == []
        assert await collect(store.read_all()) == []  # messages are not events

    async def test_a_waiting_id_is_stored_once(self, store: EventStore) -> None:
        id = uuid.uuid4()
        await store.enqueue("a", [message(1, id)])
        await store.enqueue("a", [message(2, id), message(3)])
        await store.enqueue("b", [message(4, id)])  # another inbox: its own
        assert await waiting(store, "a") == [1, 3]
        assert await waiting(store, "b") == [4]

    async def test_enqueue_says_where_the_message_waits(self, store: EventStore) -> None:
        id = uuid.uuid4()
        first = await store.enqueue("a", [message(1), message(2, id)])
        again = await store.enqueue("a", [message(3, id)])  # waiting already: skipped
        other = await store.enqueue("b", [message(4)])
        after = await store.enqueue("a", [message(5)])
        got = await collect(store.read_inbox("a"))
        assert again == Enqueued(0, 0)
        if store.reports_inbox_seq:
            assert first == Enqueued(got[1].position, got[0].position)
            assert other == Enqueued((await collect(store.read_inbox("b")))[0].position, 0)
            assert other.seq > first.seq
            assert after == Enqueued(got[2].position, got[1].position)
            await store.append("a", events(1), acknowledge=[m.id for m in got])
            alone = await store.enqueue("a", [message(6)])
            assert alone.seq > after.seq and alone.previous == 0
        else:
            assert first == other == after == Enqueued(0, 0)

    async def test_inbox_pages(self, store: EventStore) -> None:
        count = store.page_size * 2 + 3
        await store.enqueue("a", [message(n) for n in range(count)])
        assert await waiting(store, "a") == list(range(count))

    async def test_an_append_acknowledges_enqueues_and_sets_the_wake_time(
            self, store: EventStore) -> None:
        first, second = message(1), message(2)
        await store.enqueue("a", [first, second])
        await store.append("a", events(1), acknowledge=[first.id],
                           enqueue=[("b", message(7)), ("c", message(8))], wake_at=1000.5)
        assert await waiting(store, "a") == [2]
        assert await waiting(store, "b") == [7] and await waiting(store, "c") == [8]
        work = {entry.stream: entry for entry in await store.work()}
        assert work["a"] == WorkEntry("a", 1000.5, 1)
        assert work["b"] == WorkEntry("b", None, 1)
        await store.append("a", events(1), acknowledge=[second.id], wake_at=None)
        assert "a" not in {entry.stream for entry in await store.work()}

    async def test_a_failed_append_writes_no_side(self, store: EventStore) -> None:
        first = message(1)
        await store.enqueue("a", [first])
        await store.append("a", events(1))
        with pytest.raises(WrongExpectedVersion):
            await store.append("a", events(1), expected_version=0, acknowledge=[first.id],
                               enqueue=[("b", message(2))], wake_at=5.0)
        with pytest.raises(SerializationError):
            await store.append("a", [NewEvent("E", {"x": float("nan")})], acknowledge=[first.id],
                               enqueue=[("b", message(2))], wake_at=5.0)
        assert await waiting(store, "a") == [1]
        assert await waiting(store, "b") == []
        assert await store.work() == [WorkEntry("a", None, 1)]

    async def test_a_bad_side_is_refused_before_anything_is_written(
            self, store: EventStore) -> None:
        for bad in ({"acknowledge": ["not-a-uuid"]}, {"acknowledge": uuid.uuid4()},
                    {"enqueue": [("", message(1))]}, {"enqueue": [("b", "x")]},
                    {"enqueue": [("b", NewEvent("M", {"f": {1, 2}}))]},
                    {"wake_at": float("inf")}, {"wake_at": "soon"}, {"wake_at": True}):
            with pytest.raises((InvalidArgument, SerializationError)):
                await store.append("a", events(1), **bad)
        assert await collect(store.read("a")) == [] and await store.work() == []
        with pytest.raises(InvalidArgument, match="at least one"):
            await store.enqueue("a", [])
        with pytest.raises(InvalidArgument, match="wake_at"):
            await store.set_wake("a", float("nan"))

    async def test_a_retried_append_writes_its_side_once(self, store: EventStore) -> None:
        batch = events(1)
        first = message(1)
        await store.enqueue("a", [first])
        result = await store.append("a", batch, acknowledge=[first.id],
                                    enqueue=[("b", message(2))])
        await store.enqueue("a", [first])  # no longer waiting: stored again
        again = await store.append("a", batch, acknowledge=[first.id],
                                   enqueue=[("b", message(3))])
        assert again == result
        assert await waiting(store, "a") == [1]
        assert await waiting(store, "b") == [2]

    async def test_set_wake_and_work(self, store: EventStore) -> None:
        await store.set_wake("x", 10.0)
        await store.set_wake("y", 20)
        await store.set_wake("x", 5.0)
        assert await store.work() == [WorkEntry("x", 5.0, 0), WorkEntry("y", 20.0, 0)]
        await store.set_wake("x", None)
        await store.set_wake("never-set", None)
        assert await store.work() == [WorkEntry("y", 20.0, 0)]

    async def test_one_bad_append_in_a_group_fails_alone(self, store: EventStore) -> None:
        await store.append("taken", events(1), expected_version=NO_STREAM)
        outcomes: dict[str, object] = {}

        async def writer(n: int) -> None:
            stream = "taken" if n == 0 else f"s{n}"
            try:
                await store.append(stream, events(1), expected_version=NO_STREAM,
                                   enqueue=[(f"in{n}", message(n))], wake_at=float(n))
                outcomes[stream] = "ok"
            except WrongExpectedVersion:
                outcomes[stream] = "conflict"

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(writer, n)
        assert outcomes.pop("taken") == "conflict" and set(outcomes.values()) == {"ok"}
        work = {entry.stream: entry for entry in await store.work()}
        assert "taken" not in work and "in0" not in work
        assert all(work[f"s{n}"].wake_at == n and work[f"in{n}"].waiting == 1
                   for n in range(1, 20))

    async def test_concurrent_enqueues_to_one_inbox_keep_each_senders_order(
            self, store: EventStore) -> None:
        async def sender(name: int) -> None:
            for n in range(10):
                await store.enqueue("a", [NewEvent("Msg", {"s": name, "n": n})])

        async with trio.open_nursery() as nursery:
            for name in range(5):
                nursery.start_soon(sender, name)
        got = await collect(store.read_inbox("a"))
        assert len(got) == 50
        for name in range(5):
            assert [m.data["n"] for m in got if m.data["s"] == name] == list(range(10))

    async def test_a_message_consumed_and_sent_again_in_one_append_waits_again(
            self, store: EventStore) -> None:
        first, other = message(1), message(2)
        await store.enqueue("a", [first, other])
        [before, _] = await collect(store.read_inbox("a"))
        again = message(3, first.id)  # the same id, sent to itself while consumed
        await store.append("a", events(1), acknowledge=[first.id],
                           enqueue=[("a", again), ("a", message(4, other.id))])
        got = await collect(store.read_inbox("a"))
        assert [m.data["n"] for m in got] == [2, 3]  # other was waiting: skipped
        assert got[1].id == first.id and got[1].position > before.position

    async def test_an_append_that_sends_one_id_twice_stores_it_once(
            self, store: EventStore) -> None:
        id = uuid.uuid4()
        await store.append("a", events(1), enqueue=[("b", message(1, id)), ("b", message(2, id)),
                                                     ("c", message(3, id))])
        assert await waiting(store, "b") == [1] and await waiting(store, "c") == [3]
        assert await store.work() == [WorkEntry("b", None, 1), WorkEntry("c", None, 1)]

    async def test_concurrent_consumers_and_senders_of_one_inbox(
            self, store: EventStore) -> None:
        sent = [message(n) for n in range(20)]
        await store.enqueue("a", sent[:10])

        async def consume(m: NewEvent) -> None:
            await store.append("a", events(1), acknowledge=[m.id], wake_at=float(m.data["n"]))

        async def send(m: NewEvent) -> None:
            await store.append(f"sender{m.data['n']}", events(1), enqueue=[("a", m)])

        async with trio.open_nursery() as nursery:
            for n in range(10):
                nursery.start_soon(consume, sent[n])
                nursery.start_soon(send, sent[10 + n])
        assert sorted(await waiting(store, "a")) == list(range(10, 20))
        [entry] = [e for e in await store.work() if e.stream == "a"]
        assert entry.waiting == 10 and entry.wake_at in {float(n) for n in range(10)}
        assert len(await collect(store.read("a"))) == 10
