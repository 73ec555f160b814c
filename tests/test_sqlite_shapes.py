"""SQLite format 7's shapes: data objects stored as the arrays of their values, read back exactly.

Every data value reads back equal to the appended one, and a dict with its keys in the same
order: whatever its keys and values (hypothesis), however many shapes its type has (past
``MAX_SHAPES`` they are stored as objects), whichever store object wrote the shape (each keeps
its own book of known shapes), and when an append that added a shape fails.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import attrs
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore import EventStoreError, NewEvent, _sqlite_shapes
from eventstore._sqlite_schema import MAX_SHAPES
from eventstore.sqlite import SQLiteEventStore

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(st.characters(exclude_categories=["Cs"]), max_size=4), inner, max_size=3),
    max_leaves=8)
data_dicts = st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=6),
                             json_values, max_size=6)


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def exact(value: Any) -> Any:
    """``value`` with each dict's key order made visible, for comparing order too."""
    if isinstance(value, dict):
        return [(key, exact(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [exact(item) for item in value]
    return value


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B"]), data_dicts | json_values),
                min_size=1, max_size=12))
def test_any_data_reads_back_exactly(events: list[tuple[str, Any]]) -> None:
    async def main(path: Path) -> None:
        async with SQLiteEventStore(path) as store:
            for n, (kind, data) in enumerate(events):  # alone (careful way), then batched
                await store.append("s", [NewEvent(kind, data)] * 1 if n % 2 else
                                   [NewEvent(kind, data), NewEvent(kind, data)])
        async with SQLiteEventStore(path) as store:  # a new store: a new book of shapes
            await store.append("s", [NewEvent(kind, data) for kind, data in events])
            read = [(e.type, exact(e.data)) async for e in store.read("s")]
        expected = [(kind, exact(data)) for n, (kind, data) in enumerate(events)
                    for _ in range(1 if n % 2 else 2)]
        assert read == expected + [(kind, exact(data)) for kind, data in events]

    for bound in (MAX_SHAPES, 1):  # and with most shapes past the bound: stored as objects
        with tempfile.TemporaryDirectory() as directory, \
                mock.patch.object(_sqlite_shapes, "MAX_SHAPES", bound):
            trio.run(main, Path(directory) / "s.db")


async def test_shapes_past_the_bound_are_stored_as_objects(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    shapes = [{f"k{n}": n, "v": [n]} for n in range(MAX_SHAPES + 4)]
    async with SQLiteEventStore(path) as store:
        for data in shapes:
            await store.append("s", [NewEvent("E", data)])
        await store.append("s", [NewEvent("E", data) for data in shapes])  # all known now
        await store.append("s", [NewEvent("E", 1), NewEvent("F", {"a": 1})])
        read = [exact(e.data) async for e in store.read("s")]
    assert read == [exact(data) for data in shapes * 2] + [1, [("a", 1)]]
    assert rows(path, "SELECT count(*), count(fields) FROM types WHERE name = 'E'") == [
        (MAX_SHAPES + 1, MAX_SHAPES)]
    objects = rows(path, "SELECT data FROM events JOIN types ON types.id = events.type "
                         "WHERE fields IS NULL AND name = 'E' ORDER BY position")
    assert objects == [('{"k16":16,"v":[16]}',), ('{"k17":17,"v":[17]}',),
                       ('{"k18":18,"v":[18]}',), ('{"k19":19,"v":[19]}',)] * 2 + [("1",)]


async def test_a_shape_another_store_added_is_read_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with SQLiteEventStore(path) as one, SQLiteEventStore(path) as other:
        await one.append("s", [NewEvent("E", {"a": 1})])
        assert [e.data async for e in other.read("s")] == [{"a": 1}]  # other's first look
        await other.append("s", [NewEvent("E", {"b": 2}), NewEvent("E", {"a": 3})])
        await one.append("s", [NewEvent("E", {"b": 4})])  # a shape one's book lacks
        expected = [{"a": 1}, {"b": 2}, {"a": 3}, {"b": 4}]
        assert [e.data async for e in one.read("s")] == expected
        assert [e.data async for e in other.read_all()] == expected
    assert rows(path, "SELECT name, fields FROM types ORDER BY id") == [
        ("E", '["a"]'), ("E", '["b"]')]


async def test_a_failed_append_leaves_no_shape_behind(tmp_path: Path) -> None:
    """An append SQLite refuses after its new shape was added (a value over the length limit)
    takes the shape with it; appends of that shape in the same transaction add it again."""
    path = tmp_path / "s.db"
    async with SQLiteEventStore(path) as store:
        await store.append("s", [NewEvent("E", {})])
        assert store._writer is not None
        store._writer.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000)

        async def failing() -> None:
            with pytest.raises(EventStoreError, match="refused"):
                await store.append("s", [NewEvent("New", {"x": 1}),
                                         NewEvent("E", {"big": "y" * 2000})])

        async def succeeding(n: int) -> None:
            await store.append(f"t{n}", [NewEvent("New", {"x": n})])

        async with trio.open_nursery() as nursery:  # in one batch: one careful transaction
            nursery.start_soon(failing)
            for n in range(3):
                nursery.start_soon(succeeding, n)
        await store.append("t9", [NewEvent("New", {"x": 9})])  # the book's shape, planned
        assert sorted([e.data["x"] async for e in store.read_all(types=["New"])]) == [0, 1, 2, 9]
    assert rows(path, "SELECT name, fields FROM types ORDER BY id") == [
        ("E", "[]"), ("New", '["x"]')]
    assert rows(path, "PRAGMA integrity_check") == [("ok",)]


@attrs.frozen
class Moved:
    src: str
    dst: str
    count: int


@attrs.frozen
class Tagged:
    name: str
    extra: int = 0

    def __attrs_post_init__(self) -> None:
        pass


async def test_typed_reads_of_positional_data(tmp_path: Path) -> None:
    """A plain class decodes from the array when the stored fields are its own, in order; data
    of other keys or order decodes the usual way, and so does data the class refuses."""
    async with SQLiteEventStore(tmp_path / "s.db") as store:
        codec = store.codec
        codec.register(Moved, "Moved")
        codec.register(Tagged, "Tagged")
        await store.append("s", [codec.new_event(Moved("a", "b", 1)),
                                 NewEvent("Moved", {"dst": "d", "src": "c", "count": 2}),
                                 NewEvent("Moved", {"src": "e", "dst": "f", "count": "3"}),
                                 codec.new_event(Tagged("t", 1))])
        for _ in range(2):  # the codec learns the classes on the first read
            read = [e async for e in store.read("s")]
            assert [codec.decode(e) for e in read[:2]] == [Moved("a", "b", 1),
                                                            Moved("c", "d", 2)]
            assert codec.decode(read[3]) == Tagged("t", 1)
            assert [list(e.data) for e in read] == [
                ["src", "dst", "count"], ["dst", "src", "count"], ["src", "dst", "count"],
                ["name", "extra"]]
            assert read[2].data == {"src": "e", "dst": "f", "count": "3"}
        array = codec.typed_array_decoders["Moved"]
        fields, keys = array.fields, array.keys
        assert (fields, keys) == ('["src","dst","count"]', ("src", "dst", "count"))


class _Float(float):
    pass


class _Int(int):
    pass


@pytest.mark.parametrize("value", [_Float(2.5), _Int(7), [_Float(-0.0)], {"n": _Int(1)}])
async def test_values_the_stdlib_encodes_are_stored_as_arrays_too(tmp_path: Path,
                                                                   value: Any) -> None:
    # msgspec refuses subclasses of float and int, which the stdlib path takes: the array of
    # values is encoded the same way as the object was.
    async with SQLiteEventStore(tmp_path / "e.db") as store:
        await store.append("s", [NewEvent("T", {"a": value, "b": 1})])
        read = [event.data async for event in store.read("s")]
    assert read[0] == {"a": value, "b": 1} and list(read[0]) == ["a", "b"]
