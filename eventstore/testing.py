"""The event store contract as reusable pytest tests, for every backend and backend author.

Subclass ``StoreConformance`` in a test module and give it a ``store`` fixture that yields a fresh,
empty store (and closes it afterwards)::

    class TestMyStore(StoreConformance):
        @pytest.fixture
        async def store(self):
            async with MyStore(...) as store:
                yield store

Override ``corrupt_event`` and ``corrupt_snapshot`` to run the corruption cases; they are skipped
otherwise. Needs pytest, pytest-trio (``trio_mode = true``) and hypothesis.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    DecodeError,
    DuplicateEventId,
    EventStore,
    EventStoreError,
    InvalidArgument,
    NewEvent,
    RecordedEvent,
    SerializationError,
    StoreClosed,
    WrongExpectedVersion,
)
from ._validate import MAX_STREAM_LENGTH, MAX_TYPE_LENGTH

__all__ = ["StoreConformance", "collect", "events"]


def events(count: int, type: str = "Happened", **data: Any) -> list[NewEvent]:
    """``count`` new events numbered from 1 in their data."""
    return [NewEvent(type, {"n": n, **data}) for n in range(1, count + 1)]


async def collect(iterator: AsyncGenerator[RecordedEvent, None]) -> list[RecordedEvent]:
    """Every event ``iterator`` gives, closing it even if reading fails midway."""
    async with contextlib.aclosing(iterator) as events:
        return [event async for event in events]


def versions(recorded: list[RecordedEvent]) -> list[int]:
    return [event.version for event in recorded]


# Any text, lone surrogates included, under str, int, bool and None keys: what users may pass.
_ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=6)
_ANY_DATA = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                          allow_infinity=False) | _ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        _ANY_TEXT | st.integers(-3, 3) | st.booleans() | st.none(), inner, max_size=3),
    max_leaves=8)


def _storable(value: Any) -> bool:
    """The rule, said plainly: str keys only, and text that UTF-8 can encode."""
    if isinstance(value, str):
        return all(not 0xD800 <= ord(char) <= 0xDFFF for char in value)
    if isinstance(value, list):
        return all(_storable(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _storable(key) and _storable(item)
                   for key, item in value.items())
    return True


class StoreConformance:
    """The contract every ``EventStore`` backend passes."""

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        raise NotImplementedError("a conformance subclass provides the store fixture")
        yield

    async def corrupt_event(self, store: EventStore, stream: str, version: int) -> None:
        """Overwrite the stored data of one event with invalid JSON."""
        pytest.skip(f"{type(self).__name__} does not implement corrupt_event")

    async def corrupt_snapshot(self, store: EventStore, stream: str, version: int) -> None:
        """Overwrite the stored state of one snapshot with invalid JSON."""
        pytest.skip(f"{type(self).__name__} does not implement corrupt_snapshot")

    async def filled(self, store: EventStore, stream: str = "s", count: int = 5) -> EventStore:
        await store.append(stream, events(count), expected_version=NO_STREAM)
        return store

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

    # -- serialisation ---------------------------------------------------------------------------

    async def test_data_metadata_and_ids_round_trip(self, store: EventStore) -> None:
        data = {"text": "naïve ✓ \"quoted\"", "nested": {"list": [1, 2.5, None, True]},
                "big": 2**53}
        metadata = {"correlation": "abc", "causation": ["x"], "n": 1}
        event = NewEvent("Rich", data, metadata=metadata)
        await store.append("s", [event])
        [recorded] = await collect(store.read("s"))
        assert (recorded.type, recorded.data, recorded.metadata, recorded.id) == (
            "Rich", data, metadata, event.id)
        assert recorded.recorded_at.utcoffset() is not None
        assert recorded.recorded_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]

    async def test_json_values_of_every_kind_round_trip(self, store: EventStore) -> None:
        values = ["text", 3, 1.5, None, True, [1, "two"], {}]
        await store.append("s", [NewEvent("V", value) for value in values])
        assert [e.data for e in await collect(store.read("s"))] == values

    async def test_a_corrupt_row_fails_alone(self, store: EventStore) -> None:
        await self.filled(store, "bad", 3)
        await self.filled(store, "good", 2)
        await self.corrupt_event(store, "bad", 2)
        with pytest.raises(DecodeError) as caught:
            await collect(store.read("bad"))
        assert caught.value.stream == "bad" and caught.value.version == 2
        assert "'bad'" in str(caught.value) and "version 2" in str(caught.value)
        assert versions(await collect(store.read("bad", to_version=1))) == [1]
        assert versions(await collect(store.read("good"))) == [1, 2]

    # -- bad input -------------------------------------------------------------------------------

    @pytest.mark.parametrize("stream", [
        "", None, 3, b"s", "a\x00b", "lone \ud800 surrogate", "\udcff",
        "s" * (MAX_STREAM_LENGTH + 1)])
    async def test_bad_stream_names(self, store: EventStore, stream: Any) -> None:
        for call in [
            lambda: store.append(stream, events(1)),
            lambda: store.last_version(stream),
            lambda: store.delete_up_to(stream, 1),
            lambda: store.save_snapshot(stream, 1, {}),
            lambda: store.load_snapshot(stream),
        ]:
            with pytest.raises(InvalidArgument, match="stream"):
                await call()  # type: ignore[no-untyped-call]
        with pytest.raises(InvalidArgument, match="stream"):
            store.read(stream)
        assert await collect(store.read_all()) == []

    async def test_the_longest_stream_and_type_names_are_stored(self, store: EventStore) -> None:
        for char in ["s", "é", "\U0001f600"]:  # 1, 2 and 4 bytes of UTF-8
            stream, kind = char * MAX_STREAM_LENGTH, char * MAX_TYPE_LENGTH
            await store.append(stream, [NewEvent(kind, {}), NewEvent(kind, {})])
            await store.save_snapshot(stream, 1, {"at": 1})
            await store.delete_up_to(stream, 1)
            [recorded] = await collect(store.read(stream))
            assert (recorded.stream, recorded.version, recorded.type) == (stream, 2, kind)
            assert [e.type for e in await collect(store.read_all(types=[kind]))] == [kind]
            snapshot = await store.load_snapshot(stream)
            assert snapshot is not None and snapshot.stream == stream

    @pytest.mark.parametrize("kind", [
        "", "A\x00B", "lone \ud800", "\udfff", "T" * (MAX_TYPE_LENGTH + 1), None, 1])
    async def test_bad_type_names(self, store: EventStore, kind: Any) -> None:
        with pytest.raises(InvalidArgument, match=r"events\[1\]\.type"):
            await store.append("s", [NewEvent("Good", {}), NewEvent(kind, {})])
        if isinstance(kind, str) and kind:
            with pytest.raises(InvalidArgument, match=r"types\[0\]"):
                store.read_all(types=[kind])
        assert await store.last_version("s") == 0

    @pytest.mark.parametrize(("data", "metadata", "where"), [
        ({"text": "lone \ud800"}, {}, r"data\['text'\] .*lone surrogate"),
        ({"list": ["ok", "\udc80"]}, {}, r"data\['list'\]\[1\] .*lone surrogate"),
        ({"key \ud83d": 1}, {}, r"data\['key \\ud83d'\] .*lone surrogate"),
        ("\ud800", {}, r"data .*lone surrogate"),
        ({}, {"message_id": "\ud800"}, r"metadata\['message_id'\] .*lone surrogate"),
        ({}, {"\ud800": "x"}, r"metadata\['\\ud800'\] .*lone surrogate"),
        ({1: "a", "1": "b"}, {}, r"data\[1\] .*key of type int"),
        ({"counts": {1: 2}}, {}, r"data\['counts'\]\[1\] .*key of type int"),
        ([{"a": {True: 1}}], {}, r"data\[0\]\['a'\]\[True\] .*key of type bool"),
        ({"t": ({None: 1},)}, {}, r"data\['t'\]\[0\]\[None\] .*key of type NoneType"),
        ({"f": {1.5: 1}}, {}, r"data\['f'\]\[1.5\] .*key of type float"),
        ({}, {"m": {2: 1}}, r"metadata\['m'\]\[2\] .*key of type int"),
    ])
    async def test_data_some_backend_cannot_store_is_refused(
            self, store: EventStore, data: Any, metadata: dict[str, Any], where: str) -> None:
        batch = [*events(1), NewEvent("Bad", data, metadata=metadata)]
        with pytest.raises(SerializationError, match=r"events\[1\]\." + where):
            await store.append("s", batch)
        with pytest.raises(SerializationError):
            await store.save_snapshot("s", 1, {"state": data, "metadata": metadata})
        assert await store.last_version("s") == 0
        assert await collect(store.read_all()) == []
        assert await store.load_snapshot("s") is None

    async def test_data_is_refused_or_round_trips_exactly(self, store: EventStore) -> None:
        """Never stored changed: a key that JSON would turn into a string, say, is refused."""

        async def append(data: Any) -> None:
            stream = f"h-{uuid.uuid4()}"
            if _storable(data):
                await store.append(stream, [NewEvent("H", data, metadata={"m": data})])
                [recorded] = await collect(store.read(stream))
                assert (recorded.data, recorded.metadata) == (data, {"m": data})
            else:
                with pytest.raises(SerializationError, match=r"events\[0\]\.(data|metadata)"):
                    await store.append(stream, [NewEvent("H", data, metadata={"m": data})])
                assert await store.last_version(stream) == 0

        # Hypothesis drives the examples from a worker thread, so that they share the store
        # fixture of this one trio run.
        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(data=_ANY_DATA)
        def examples(data: Any) -> None:
            trio.from_thread.run(append, data)

        await trio.to_thread.run_sync(examples)

    async def test_nul_characters_in_data_round_trip(self, store: EventStore) -> None:
        data = {"text": "a\x00b", "key\x00": ["\x00"]}
        metadata = {"note": "\x00", "\x00": 0}
        await store.append("s", [NewEvent("Nul", data, metadata=metadata)])
        [recorded] = await collect(store.read("s"))
        assert (recorded.data, recorded.metadata) == (data, metadata)
        await store.save_snapshot("s", 1, data)
        snapshot = await store.load_snapshot("s")
        assert snapshot is not None and snapshot.state == data

    async def test_a_bad_request_in_a_concurrent_batch_fails_alone(
            self, store: EventStore) -> None:
        bad: list[tuple[str, list[NewEvent], type[Exception]]] = [
            ("s\ud800", events(1), InvalidArgument),
            ("s" * (MAX_STREAM_LENGTH + 1), events(1), InvalidArgument),
            ("bad-type", [NewEvent("A\x00", {})], InvalidArgument),
            ("bad-data", [NewEvent("A", {"x": "\udfff"})], SerializationError),
            ("bad-key", [NewEvent("A", {1: "a", "1": "b"})], SerializationError),
            ("bad-metadata", [NewEvent("A", {}, metadata={"id": "\ud800"})],
             SerializationError),
        ]
        outcomes: dict[str, object] = {}

        async def append(stream: str, batch: list[NewEvent]) -> None:
            try:
                outcomes[stream] = await store.append(stream, batch)
            except EventStoreError as exc:
                outcomes[stream] = exc

        async with trio.open_nursery() as nursery:  # all start before any commits: one batch
            for n in range(3):
                nursery.start_soon(append, f"good-{n}", events(2))
                stream, batch, _ = bad[n * 2]
                nursery.start_soon(append, stream, batch)
                stream, batch, _ = bad[n * 2 + 1]
                nursery.start_soon(append, stream, batch)
        for stream, _, error in bad:
            assert type(outcomes[stream]) is error, outcomes[stream]
        assert all(isinstance(outcomes[f"good-{n}"], AppendResult) for n in range(3))
        assert sorted(e.stream for e in await collect(store.read_all())) == [
            "good-0", "good-0", "good-1", "good-1", "good-2", "good-2"]

    async def test_bad_versions_and_limits(self, store: EventStore) -> None:
        for call, name in [
            (lambda: store.read("s", from_version=-1), "from_version"),
            (lambda: store.read("s", to_version=-1), "to_version"),
            (lambda: store.read("s", limit=-1), "limit"),
            (lambda: store.read("s", limit=1.5), "limit"),  # type: ignore[arg-type]
            (lambda: store.read_all(after_position=-1), "after_position"),
            (lambda: store.read_all(limit=-2), "limit"),
            (lambda: store.read_all(types="A"), "types"),
            (lambda: store.subscribe(after_position=-1), "after_position"),
        ]:
            with pytest.raises(InvalidArgument, match=name):
                call()  # type: ignore[no-untyped-call]
        for bad in [-1, "1", None, True, 1.0]:
            with pytest.raises(InvalidArgument, match="expected_version"):
                await store.append("s", events(1), expected_version=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="version"):
            await store.delete_up_to("s", -1)
        with pytest.raises(InvalidArgument, match="version"):
            await store.save_snapshot("s", 0, {})
        with pytest.raises(InvalidArgument, match="max_version"):
            await store.load_snapshot("s", max_version=-1)
        assert await store.last_version("s") == 0

    async def test_bad_batches(self, store: EventStore) -> None:
        for batch in [[], NewEvent("A", {}), [{"type": "A"}], "events", None]:
            with pytest.raises(InvalidArgument):
                await store.append("s", batch)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="type"):
            await store.append("s", [NewEvent("", {})])
        assert await store.last_version("s") == 0

    async def test_a_closed_store_refuses_everything(self, store: EventStore) -> None:
        await store.append("s", events(1))
        await store.aclose()
        await store.aclose()  # idempotent
        assert store.closed
        with pytest.raises(StoreClosed):
            await store.append("s", events(1))
        with pytest.raises(StoreClosed):
            store.read("s")
        with pytest.raises(StoreClosed):
            store.read_all()
        with pytest.raises(StoreClosed):
            store.subscribe()
        with pytest.raises(StoreClosed):
            await store.last_version("s")
        with pytest.raises(StoreClosed):
            await store.save_snapshot("s", 1, {})
        with pytest.raises(StoreClosed):
            await store.load_snapshot("s")
        with pytest.raises(StoreClosed):
            await store.delete_up_to("s", 1)
