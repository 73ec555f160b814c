"""The conformance cases about data: what round-trips, what is refused, and bad arguments."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import (
    AppendResult,
    DecodeError,
    EventStore,
    EventStoreError,
    InvalidArgument,
    NewEvent,
    SerializationError,
    StoreClosed,
)
from ._conformance import ConformanceBase, collect, events, versions
from ._validate import MAX_STREAM_LENGTH, MAX_TYPE_LENGTH

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


class DataConformance(ConformanceBase):
    """The contract about data and arguments every ``EventStore`` backend passes."""

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
