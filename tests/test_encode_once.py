"""Encode once, decode straight into the class: the JSON text an event carries from emit to the
store, the refusals on that fast path, lazily built ids, and the SQLite reader thread."""

from __future__ import annotations

import contextlib
import copy
import enum
import math
import pickle
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import msgspec
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import EventStore, SerializationError, StoreClosed
from eventstore._codec import Codec
from eventstore._model import NewEvent, RecordedEvent, recorded_event
from eventstore._validate import encode_events, json_text
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore

ID = uuid.UUID(int=7)


class Mood(enum.Enum):
    UP = "up"


@attrs.frozen
class Inner:
    label: str
    weights: list[float]


@attrs.frozen
class Nested:
    name: str
    count: int
    inner: Inner
    table: dict[str, list[int]]
    numbered: dict[int, str]
    maybe: Inner | None = None


@attrs.frozen
class Loose:
    anything: Any


# -- the text an event carries --------------------------------------------------------------------


def test_new_event_carries_the_text_the_store_writes() -> None:
    codec = Codec()
    event = codec.new_event(Nested("n", 2**70, Inner("é\x00", [0.5, -0.0]), {"a": [1]}, {3: "x"}))
    assert event.data_json is not None
    assert msgspec.json.decode(event.data_json) == event.data
    [encoded] = encode_events("s", [event])
    assert encoded.data is event.data_json  # not encoded again
    # Its metadata is encoded at append: a caller may add to it first (a remote ask does).
    tagged = codec.new_event(Inner("a", [1.5]), metadata={"message_id": "m-1"})
    tagged.metadata["reply"] = True
    [encoded] = encode_events("s", [tagged])
    assert msgspec.json.decode(encoded.metadata) == {"message_id": "m-1", "reply": True}


def test_a_hand_built_event_is_encoded_at_append_and_equals_the_codecs() -> None:
    codec = Codec()
    made = codec.new_event(Inner("a", [1.5]), id=ID)
    by_hand = NewEvent(made.type, made.data, made.metadata, ID)
    assert by_hand.data_json is None
    assert by_hand == made
    [encoded] = encode_events("s", [by_hand])
    assert msgspec.json.decode(encoded.data) == made.data


def test_evolve_drops_the_carried_text() -> None:
    made = Codec().new_event(Inner("a", [1.5]))
    changed = attrs.evolve(made, data={"label": "b", "weights": []})
    assert changed.data_json is None
    [encoded] = encode_events("s", [changed])
    assert msgspec.json.decode(encoded.data) == {"label": "b", "weights": []}


# What msgspec writes without complaint but the store must refuse, with where and why.
REFUSED = [
    (float("nan"), "is not JSON-compatible"),
    ({"a": float("inf")}, r"is not JSON-compatible"),
    ({"a": [1, {"b": -math.inf}]}, r"is not JSON-compatible"),
    ({1: "a", "1": "b"}, r"\[1\] \(type 't'\) is a dict key of type int"),
    ({"x": {2: "a"}}, r"\['x'\]\[2\] \(type 't'\) is a dict key of type int"),
    ({"a": "lone \ud800"}, r"\['a'\] \(type 't'\) holds text with a lone surrogate"),
    ({"a": uuid.UUID(int=1)}, "is not JSON-compatible"),
    ({"a": Mood.UP}, "is not JSON-compatible"),
    ({"a": b"bytes"}, "is not JSON-compatible"),
    ({"a": {1, 2}}, "is not JSON-compatible"),
]


@pytest.mark.parametrize(("data", "message"), [
    (float("nan"), r"data is not JSON-compatible \(Out of range float"),
    ([1, {"b": -math.inf}], r"data is not JSON-compatible \(Out of range float"),
    ({1: "a", "1": "b"}, r"data\['anything'\]\[1\] is a dict key of type int"),
    ({"x": {2: "a"}}, r"data\['anything'\]\['x'\]\[2\] is a dict key of type int"),
    ({"a": "lone \ud800"}, r"data\['anything'\]\['a'\] holds text with a lone surrogate"),
])
def test_the_fast_encoder_keeps_every_refusal_at_emit(data: Any, message: str) -> None:
    # (The converter turns UUIDs, enums, bytes and sets into JSON data before the check.)
    with pytest.raises(SerializationError, match="'test_encode_once:Loose' " + message):
        Codec().new_event(Loose(data))


@pytest.mark.parametrize(("data", "message"), REFUSED)
async def test_the_fast_encoder_keeps_every_refusal_at_append(data: Any, message: str) -> None:
    async with MemoryEventStore() as store:
        with pytest.raises(SerializationError, match=r"events\[1\]\.data") as info:
            await store.append("s", [NewEvent("t", {}), NewEvent("t", data)])
        assert info.match(message)
        with pytest.raises(SerializationError, match=r"events\[0\]\.metadata"):
            await store.append("s", [NewEvent("t", {}, {"m": data})])
        assert await store.last_version("s") == 0


@pytest.mark.parametrize(("data", "back"), [
    (2**64, 2**64), (-(2**70), -(2**70)), ({"a": (1, 2)}, {"a": [1, 2]}),
    ([1e16, 5e-324, -0.0], [1e16, 5e-324, -0.0]), ({"\x00": "é\x00"}, {"\x00": "é\x00"}),
    ({"a": None, "b": 1.5}, {"a": None, "b": 1.5}), ([None, "null", {"d": [None]}],) * 2,
])
def test_values_at_the_edges_of_the_fast_encoder_come_back_exactly(data: Any, back: Any) -> None:
    assert msgspec.json.decode(json_text(data)) == back


# -- round trips through every store --------------------------------------------------------------

leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                 st.floats(allow_nan=False, allow_infinity=False),
                 st.text(st.characters(exclude_categories=("Cs",))))
values = st.recursive(
    leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(st.characters(exclude_categories=("Cs",)), max_size=5), inner, max_size=4),
    max_leaves=12)
inners = st.builds(Inner, st.text(st.characters(exclude_categories=("Cs",))),
                   st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=4))
nested = st.builds(
    Nested, st.text(st.characters(exclude_categories=("Cs",))), st.integers(), inners,
    st.dictionaries(st.text(max_size=4), st.lists(st.integers(), max_size=3), max_size=3),
    st.dictionaries(st.integers(), st.text(max_size=4), max_size=3), st.none() | inners)
events = st.lists(st.one_of(nested, st.builds(Loose, values)), min_size=1, max_size=5)


@contextlib.asynccontextmanager
async def open_store(kind: str, folder: Path) -> AsyncIterator[EventStore]:
    if kind == "memory":
        async with MemoryEventStore(page_size=2) as store:
            yield store
    else:
        async with SQLiteEventStore(folder / f"{uuid.uuid4().hex}.db", synchronous="OFF",
                                    page_size=2) as store:
            yield store


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=events)
def test_any_event_round_trips_through_the_store(kind: str, tmp_path: Path,
                                                 batch: list[Any]) -> None:
    async def main() -> None:
        async with open_store(kind, tmp_path) as store:
            codec = store.codec
            await store.append("s", [codec.new_event(event) for event in batch])
            decoded = [codec.decode(recorded) async for recorded in store.read("s")]
            assert decoded == batch
            assert [type(event) for event in decoded] == [type(event) for event in batch]

    trio.run(main)


# -- ids built when first read --------------------------------------------------------------------

NOW = datetime(2024, 1, 2, tzinfo=UTC)


def _pair(raw: bytes) -> tuple[RecordedEvent, RecordedEvent]:
    lazy = recorded_event("s", 1, 1, "t", {"a": 1}, {}, raw, NOW)
    eager = RecordedEvent("s", 1, 1, "t", {"a": 1}, {}, uuid.UUID(bytes=raw), NOW)
    return lazy, eager


def test_a_lazily_built_id_equals_the_eager_one() -> None:
    raw = uuid.uuid4().bytes
    lazy, eager = _pair(raw)
    assert lazy == eager and eager == lazy
    assert repr(lazy) == repr(eager)
    assert type(lazy.id) is uuid.UUID and lazy.id == uuid.UUID(bytes=raw)
    assert lazy.id is lazy.id  # made once
    for other, made in ((pickle.loads(pickle.dumps(_pair(raw)[0])), eager),
                        (copy.deepcopy(_pair(raw)[0]), eager),
                        (attrs.evolve(_pair(raw)[0], version=2), attrs.evolve(eager, version=2))):
        assert other == made and type(other.id) is uuid.UUID
    assert attrs.asdict(_pair(raw)[0]) == attrs.asdict(eager)
    lazy_first, _ = _pair(raw)
    assert eager == lazy_first  # compared before its id was read
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        lazy.id = uuid.uuid4()  # type: ignore[misc]


async def test_events_read_from_sqlite_carry_the_ids_appended(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "ids.db") as store:
        sent = [store.codec.new_event(Inner(str(n), [])) for n in range(3)]
        await store.append("s", sent)
        read = [event async for event in store.read("s")]
        assert [event.id for event in read] == [event.id for event in sent]
        assert read == [event async for event in store.read("s")]


# -- the SQLite reader thread ---------------------------------------------------------------------


def reader_threads(store: SQLiteEventStore) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"eventstore reader {store.path}"]


def all_tasks() -> list[trio.lowlevel.Task]:
    found, todo = [], [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        assert task is not None
        found.append(task)
        todo.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return found


async def filled(path: Path, n: int, *, page_size: int) -> SQLiteEventStore:
    store = SQLiteEventStore(path, synchronous="OFF", page_size=page_size)
    await store.append("s", [store.codec.new_event(Inner(str(k), [])) for k in range(n)])
    return store


async def test_reads_run_on_one_reader_thread_that_stops_on_aclose(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await filled(tmp_path / "r.db", 10, page_size=3)
    assert reader_threads(store) == []  # started lazily
    hops = []
    real = trio.to_thread.run_sync

    async def counted(*args: Any, **kwargs: Any) -> Any:
        hops.append(args[0])
        return await real(*args, **kwargs)

    monkeypatch.setattr(trio.to_thread, "run_sync", counted)
    async with trio.open_nursery() as nursery:
        for _ in range(3):  # concurrent readers share the one thread
            nursery.start_soon(lambda: store.last_version("s"))
        assert len([event async for event in store.read("s")]) == 10
    assert [event.version async for event in store.read_all(after_position=4)] == [5, 6, 7, 8, 9,
                                                                                   10]
    assert hops == []  # no thread hop per page
    assert len(reader_threads(store)) == 1
    await store.aclose()
    assert reader_threads(store) == []
    assert store._reader_conn is None


async def test_a_read_abandoned_mid_page_leaves_no_task(tmp_path: Path) -> None:
    store = await filled(tmp_path / "a.db", 10, page_size=2)
    await trio.testing.wait_all_tasks_blocked()
    before = len(all_tasks())
    async with contextlib.aclosing(store.read("s")) as events:
        async for event in events:  # the next page is queued on the reader thread now
            assert event.version == 1
            break
    assert len(all_tasks()) == before
    with trio.move_on_after(0) as scope:  # cancelled while its page is read
        async for _ in store.read("s"):
            pass  # pragma: no cover - cancelled before the first page arrives
    assert scope.cancelled_caught
    await trio.testing.wait_all_tasks_blocked()
    assert len(all_tasks()) == before
    assert [event.version async for event in store.read("s", from_version=9)] == [9, 10]
    await store.aclose()
    assert reader_threads(store) == []


async def test_a_read_after_aclose_fails_without_starting_a_thread(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "c.db")
    await store.aclose()
    with pytest.raises(StoreClosed):
        await store.last_version("s")
    assert reader_threads(store) == []


@pytest.mark.parametrize(("value", "stored"), [
    ({"branch": [1, 2], "at": 1.5}, True),
    ({"branch": [], "name": "x", "n": None}, True),
    ({"xs": [[1], 2], "s": "y"}, True),
    ({"xs": [1.0, float("nan")]}, False),
    ({"xs": [float("inf")], "n": 1}, False),
    ({"xs": ["a", "\udc80"]}, False),
    # Nested dicts (a message inside a Received): the same fast path, the same refusals.
    ({"seq": 1, "data": {"a": [1, {"b": 2.5}], "c": "d"}}, True),
    ({"data": {"a": None, "f": 1.5}}, True),
    ({"data": {"a": {"b": float("nan")}}}, False),
    ({"data": {"x": {2: "a"}}}, False),
    ({"data": {"s": "\ud800"}}, False),
])
def test_lists_of_leaves_take_the_fast_path_without_losing_a_refusal(value: Any,
                                                                     stored: bool) -> None:
    from eventstore._validate import Unstorable, json_text

    if not stored:
        with pytest.raises(Unstorable):
            json_text(value)
        return
    assert msgspec.json.decode(json_text(value)) == value
