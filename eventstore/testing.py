"""The event store contract as reusable pytest tests, for every backend and backend author.

Subclass ``StoreConformance`` in a test module and give it a ``store`` fixture that yields a fresh,
empty store (and closes it afterwards)::

    class TestMyStore(StoreConformance):
        @pytest.fixture
        async def store(self):
            async with MyStore(...) as store:
                yield store

Override ``corrupt_event`` and ``corrupt_snapshot`` to run the corruption cases; they are skipped
otherwise. A store that cannot coordinate processes sets ``coordinates = False`` on its subclass:
the cluster cases then check that it refuses every cluster call. Needs pytest, pytest-trio
(``trio_mode = true``) and hypothesis.
"""

from __future__ import annotations

import contextlib
import math
import uuid

import pytest
import trio

from . import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    DuplicateEventId,
    EventStore,
    NewEvent,
    RecordedEvent,
    SerializationError,
    WrongExpectedVersion,
)
from ._conformance import collect as collect
from ._conformance import events as events
from ._conformance import versions
from ._conformance_cluster import ClusterConformance
from ._conformance_data import DataConformance
from ._conformance_fences import FenceConformance
from ._conformance_offsets import OffsetConformance
from ._conformance_work import WorkConformance

__all__ = ["StoreConformance", "collect", "events"]


class StoreConformance(DataConformance, WorkConformance, OffsetConformance,
                       ClusterConformance, FenceConformance):
    """The contract every ``EventStore`` backend passes."""

    # -- replay bounds (after Akka's journal TCK) -----------------------------------------------

    async def test_replay_all_events(self, store: EventStore) -> None:
        await self.filled(store)
        recorded = await collect(store.read("s"))
        assert versions(recorded) == [1, 2, 3, 4, 5]
        assert [e.data["n"] for e in recorded] == [1, 2, 3, 4, 5]

    async def test_replay_from_a_lower_bound(self, store: EventStore) -> None:
        await self.filled(store)
        assert versions(await collect(store.read("s", from_version=3))) == [3, 4, 5]

    async def test_replay_to_an_upper_bound(self, store: EventStore) -> None:
        await self.filled(store)
        assert versions(await collect(store.read("s", to_version=3))) == [1, 2, 3]

    async def test_replay_with_a_limit(self, store: EventStore) -> None:
        await self.filled(store)
        assert versions(await collect(store.read("s", limit=2))) == [1, 2]

    async def test_replay_with_bounds_and_limit(self, store: EventStore) -> None:
        await self.filled(store)
        assert versions(await collect(store.read("s", from_version=2, to_version=4,
                                                 limit=2))) == [2, 3]

    async def test_replay_a_single_event(self, store: EventStore) -> None:
        await self.filled(store)
        assert versions(await collect(store.read("s", from_version=3, to_version=3))) == [3]

    async def test_replay_nothing_when_from_is_above_to(self, store: EventStore) -> None:
        await self.filled(store)
        assert await collect(store.read("s", from_version=4, to_version=2)) == []

    async def test_replay_nothing_with_limit_zero(self, store: EventStore) -> None:
        await self.filled(store)
        assert await collect(store.read("s", limit=0)) == []

    async def test_replay_nothing_past_the_end(self, store: EventStore) -> None:
        await self.filled(store)
        assert await collect(store.read("s", from_version=6)) == []

    async def test_replay_nothing_for_an_unknown_stream(self, store: EventStore) -> None:
        await self.filled(store)
        assert await collect(store.read("unknown")) == []
        assert await store.last_version("unknown") == 0

    async def test_highest_version_without_replay(self, store: EventStore) -> None:
        await self.filled(store)
        assert await store.last_version("s") == 5

    async def test_replay_crosses_pages(self, store: EventStore) -> None:
        store.page_size = 3
        await store.append("s", events(10))
        await store.append("t", events(4))
        assert versions(await collect(store.read("s"))) == list(range(1, 11))
        assert versions(await collect(store.read("s", from_version=2, limit=7))) == list(
            range(2, 9))
        assert len(await collect(store.read_all())) == 14
        assert len(await collect(store.read_all(limit=5))) == 5

    async def test_read_pages_gives_what_read_gives_in_pages(self, store: EventStore) -> None:
        store.page_size = 3
        await store.append("s", events(10))
        pages = [page async for page in store.read_pages("s", from_version=2, limit=7)]
        assert [len(page) for page in pages] == [3, 3, 1]
        assert [e for page in pages for e in page] == await collect(
            store.read("s", from_version=2, limit=7))
        assert [page async for page in store.read_pages("s", from_version=11)] == []
        assert [page async for page in store.read_pages("s", from_version=10)] != [[]]

    async def test_streams_are_independent(self, store: EventStore) -> None:
        await store.append("a", events(2, "A"))
        await store.append("b", events(3, "B"))
        assert [e.type for e in await collect(store.read("a"))] == ["A", "A"]
        assert versions(await collect(store.read("b"))) == [1, 2, 3]

    # -- deletion --------------------------------------------------------------------------------

    async def test_delete_up_to_keeps_the_rest_and_the_version(self, store: EventStore) -> None:
        await self.filled(store)
        await store.delete_up_to("s", 3)
        assert versions(await collect(store.read("s"))) == [4, 5]
        assert await store.last_version("s") == 5
        assert [e.version for e in await collect(store.read_all())] == [4, 5]

    async def test_deleting_everything_never_lowers_the_version(self, store: EventStore) -> None:
        await self.filled(store)
        await store.delete_up_to("s", 100)
        assert await collect(store.read("s")) == []
        assert await store.last_version("s") == 5
        with pytest.raises(WrongExpectedVersion):
            await store.append("s", events(1), expected_version=NO_STREAM)
        result = await store.append("s", events(1), expected_version=5)
        assert result.version == 6

    async def test_delete_of_an_unknown_stream_is_harmless(self, store: EventStore) -> None:
        await store.delete_up_to("nothing", 3)
        assert await store.last_version("nothing") == 0

    # -- atomicity -------------------------------------------------------------------------------

    async def test_a_batch_is_stored_whole(self, store: EventStore) -> None:
        result = await store.append("s", events(3))
        assert result.version == 3
        recorded = await collect(store.read("s"))
        assert versions(recorded) == [1, 2, 3]
        assert result.position == recorded[-1].position

    async def test_an_unserialisable_event_writes_nothing(self, store: EventStore) -> None:
        batch = [*events(2), NewEvent("Bad", {"x": object()}), *events(1)]
        with pytest.raises(SerializationError, match=r"events\[2\]"):
            await store.append("s", batch)
        with pytest.raises(SerializationError):
            await store.append("s", [NewEvent("Bad", {"x": math.nan})])
        with pytest.raises(SerializationError):
            await store.append("s", [NewEvent("Bad", {}, metadata={"m": {1, 2}})])
        assert await store.last_version("s") == 0
        assert await collect(store.read_all()) == []

    async def test_a_conflict_writes_nothing(self, store: EventStore) -> None:
        await self.filled(store)
        with pytest.raises(WrongExpectedVersion):
            await store.append("s", events(3), expected_version=2)
        assert await store.last_version("s") == 5
        assert len(await collect(store.read_all())) == 5

    async def test_duplicate_ids_in_one_batch_are_rejected(self, store: EventStore) -> None:
        same = uuid.uuid4()
        with pytest.raises(DuplicateEventId):
            await store.append("s", [NewEvent("A", {}, id=same), NewEvent("B", {}, id=same)])
        assert await store.last_version("s") == 0

    async def test_a_retry_with_the_same_ids_is_idempotent(self, store: EventStore) -> None:
        await store.append("s", events(2))
        batch = events(3)
        first = await store.append("s", batch, expected_version=2)
        again = await store.append("s", batch, expected_version=2)
        assert again == first
        assert await store.last_version("s") == 5
        assert len(await collect(store.read_all())) == 5

    async def test_an_id_stored_elsewhere_is_rejected(self, store: EventStore) -> None:
        batch = events(2)
        await store.append("s", batch)
        with pytest.raises(DuplicateEventId):
            await store.append("t", batch)
        with pytest.raises(DuplicateEventId):
            await store.append("s", [batch[1], *events(1)])
        assert await store.last_version("t") == 0
        assert await store.last_version("s") == 2

    # -- global order ----------------------------------------------------------------------------

    async def test_positions_strictly_increase_across_streams(self, store: EventStore) -> None:
        results = []
        for n in range(6):
            results.append(await store.append(f"s{n % 3}", events(2)))
        recorded = await collect(store.read_all())
        positions = [e.position for e in recorded]
        assert positions == sorted(set(positions))
        assert len(positions) == 12
        assert [r.position for r in results] == positions[1::2]

    async def test_read_all_after_a_position_with_limit_and_types(self, store: EventStore) -> None:
        await store.append("a", events(3, "A"))
        await store.append("b", events(3, "B"))
        everything = await collect(store.read_all())
        third = everything[2].position
        assert await collect(store.read_all(after_position=third)) == everything[3:]
        assert await collect(store.read_all(after_position=third, limit=2)) == everything[3:5]
        only_b = await collect(store.read_all(types=["B"]))
        assert [e.type for e in only_b] == ["B", "B", "B"]
        assert await collect(store.read_all(types={"C"})) == []

    # -- the expected-version vocabulary ---------------------------------------------------------

    async def test_no_stream(self, store: EventStore) -> None:
        assert (await store.append("s", events(1), expected_version=NO_STREAM)).version == 1
        with pytest.raises(WrongExpectedVersion) as caught:
            await store.append("s", events(1), expected_version=NO_STREAM)
        assert (caught.value.stream, caught.value.expected, caught.value.actual) == (
            "s", NO_STREAM, 1)

    async def test_stream_exists(self, store: EventStore) -> None:
        with pytest.raises(WrongExpectedVersion) as caught:
            await store.append("s", events(1), expected_version=STREAM_EXISTS)
        assert caught.value.actual == 0
        await store.append("s", events(1))
        assert (await store.append("s", events(1), expected_version=STREAM_EXISTS)).version == 2

    async def test_exact_versions(self, store: EventStore) -> None:
        assert (await store.append("s", events(2), expected_version=0)).version == 2
        assert (await store.append("s", events(1), expected_version=2)).version == 3
        with pytest.raises(WrongExpectedVersion) as caught:
            await store.append("s", events(1), expected_version=2)
        assert (caught.value.expected, caught.value.actual) == (2, 3)
        assert "'s'" in str(caught.value) and "3" in str(caught.value)

    async def test_any(self, store: EventStore) -> None:
        await store.append("s", events(1), expected_version=ANY)
        assert (await store.append("s", events(1), expected_version=ANY)).version == 2

    # -- concurrency -----------------------------------------------------------------------------

    async def test_racing_writers_lose_only_with_wrong_expected_version(
            self, store: EventStore) -> None:
        won = 0
        lost = 0

        async def writer(name: int) -> None:
            nonlocal won, lost
            for n in range(15):
                version = await store.last_version("counter")
                try:
                    await store.append("counter", [NewEvent("Inc", {"w": name, "n": n})],
                                       expected_version=version)
                    won += 1
                except WrongExpectedVersion:
                    lost += 1
                await trio.sleep(0)

        async with trio.open_nursery() as nursery:
            for name in range(4):
                nursery.start_soon(writer, name)
        assert won + lost == 60
        assert await store.last_version("counter") == won
        assert versions(await collect(store.read("counter"))) == list(range(1, won + 1))

    async def test_concurrent_appends_to_many_streams_all_succeed(
            self, store: EventStore) -> None:
        results: dict[str, AppendResult] = {}

        async def writer(stream: str) -> None:
            results[stream] = await store.append(stream, events(2), expected_version=NO_STREAM)

        async with trio.open_nursery() as nursery:
            for n in range(50):
                nursery.start_soon(writer, f"s{n}")
        assert all(r.version == 2 for r in results.values())
        positions = sorted(r.position for r in results.values())
        assert len(set(positions)) == 50
        assert len(await collect(store.read_all())) == 100

    # -- subscriptions ---------------------------------------------------------------------------

    async def test_subscribe_catches_up_then_goes_live(self, store: EventStore) -> None:
        await self.filled(store, count=3)
        seen: list[RecordedEvent] = []
        with trio.fail_after(10):
            async with contextlib.aclosing(store.subscribe()) as subscription:
                async for event in subscription:
                    seen.append(event)
                    if len(seen) == 3:
                        await store.append("s", events(2))
                    if len(seen) == 5:
                        break
        assert versions(seen) == [1, 2, 3, 4, 5]

    async def test_subscribe_after_a_position_with_types(self, store: EventStore) -> None:
        await store.append("a", events(2, "A"))
        await store.append("b", events(2, "B"))
        first = (await collect(store.read_all(limit=1)))[0].position
        seen: list[RecordedEvent] = []
        with trio.fail_after(10):
            async with contextlib.aclosing(
                    store.subscribe(after_position=first, types=["A"])) as subscription:
                async for event in subscription:
                    seen.append(event)
                    if len(seen) == 1:
                        await store.append("a", events(1, "A"))
                    if len(seen) == 2:
                        break
        assert [(e.stream, e.version) for e in seen] == [("a", 2), ("a", 3)]

    async def test_a_subscriber_never_skips_or_repeats_while_writers_race(
            self, store: EventStore) -> None:
        per_writer = 25
        seen: list[RecordedEvent] = []

        async def writer(name: int) -> None:
            for n in range(per_writer):
                await store.append(f"w{name}", [NewEvent("E", {"n": n})])
                if n % 3 == 0:
                    await trio.sleep(0)

        async def subscriber() -> None:
            async with contextlib.aclosing(store.subscribe()) as subscription:
                async for event in subscription:
                    seen.append(event)
                    if len(seen) == 4 * per_writer:
                        return

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(subscriber)
                for name in range(4):
                    nursery.start_soon(writer, name)
        positions = [e.position for e in seen]
        assert positions == sorted(set(positions))
        assert [e.position for e in await collect(store.read_all())] == positions
        for name in range(4):
            assert [e.data["n"] for e in seen if e.stream == f"w{name}"] == list(range(per_writer))

    # -- snapshots -------------------------------------------------------------------------------

    async def test_snapshots(self, store: EventStore) -> None:
        assert await store.load_snapshot("s") is None
        await store.save_snapshot("s", 3, {"total": 3})
        await store.save_snapshot("s", 7, {"total": 7, "names": ["a", "é"]})
        latest = await store.load_snapshot("s")
        assert latest is not None
        assert (latest.stream, latest.version, latest.state) == (
            "s", 7, {"total": 7, "names": ["a", "é"]})
        assert latest.recorded_at.tzinfo is not None
        bounded = await store.load_snapshot("s", max_version=6)
        assert bounded is not None and (bounded.version, bounded.state) == (3, {"total": 3})
        assert await store.load_snapshot("s", max_version=2) is None
        assert await store.load_snapshot("other") is None

    async def test_a_snapshot_at_the_same_version_overwrites(self, store: EventStore) -> None:
        await store.save_snapshot("s", 3, {"v": "old"})
        await store.save_snapshot("s", 3, {"v": "new"})
        latest = await store.load_snapshot("s")
        assert latest is not None and latest.state == {"v": "new"}

    async def test_an_unserialisable_snapshot_is_rejected(self, store: EventStore) -> None:
        with pytest.raises(SerializationError):
            await store.save_snapshot("s", 1, {"x": object()})
        assert await store.load_snapshot("s") is None

    async def test_an_undecodable_snapshot_is_missing_with_a_warning(
            self, store: EventStore) -> None:
        await store.save_snapshot("s", 2, {"ok": True})
        await store.save_snapshot("s", 4, {"ok": False})
        await self.corrupt_snapshot(store, "s", 4)
        with pytest.warns(RuntimeWarning, match="'s'.*version 4"):
            assert await store.load_snapshot("s") is None
