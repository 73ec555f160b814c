"""SQLite's ``types`` table: an event's type stored as the id of its name (format 6), and of its
data's keys (its shape, format 7: see ``test_sqlite_shapes``).

A shape new to the file is added by the first append that uses it, in that append's own
transaction: the plan leaves out an append of a shape the store does not know, and the append
goes the careful way, which finds or adds it. A failed append adds no shape.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from eventstore import DecodeError, NewEvent, WrongExpectedVersion
from eventstore.sqlite import SQLiteEventStore


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_each_name_is_stored_once_and_events_hold_its_id(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with SQLiteEventStore(path) as store:
        await store.append("a", [NewEvent("m:Opened", {}), NewEvent("m:Added", {"n": 1})])

        async def appender(k: int) -> None:  # one batch: some plans meet a new name
            await store.append(f"s{k}", [NewEvent("m:Added" if k % 2 else f"m:New{k % 3}",
                                                  {"k": k}, {"k": k} if k % 4 else {})])

        async with trio.open_nursery() as nursery:
            for k in range(20):
                nursery.start_soon(appender, k)
        read = [(e.stream, e.type, e.data, e.metadata) async for e in store.read_all()]
        assert read[:2] == [("a", "m:Opened", {}, {}), ("a", "m:Added", {"n": 1}, {})]
        assert sorted(read[2:]) == sorted(
            (f"s{k}", "m:Added" if k % 2 else f"m:New{k % 3}", {"k": k},
             {"k": k} if k % 4 else {}) for k in range(20))
        assert sorted([e.stream async for e in store.read_all(types=["m:New1", "None"])]) == [
            "s10", "s16", "s4"]
    names = rows(path, "SELECT name, fields FROM types ORDER BY name, fields")
    assert names == [("m:Added", '["k"]'), ("m:Added", '["n"]'), ("m:New0", '["k"]'),
                     ("m:New1", '["k"]'), ("m:New2", '["k"]'), ("m:Opened", "[]")]
    assert rows(path, "SELECT DISTINCT typeof(type) FROM events") == [("integer",)]
    assert rows(path, "SELECT count(*) FROM events WHERE metadata IS NULL") == [(2 + 5,)]


async def test_a_failed_append_adds_no_name(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with SQLiteEventStore(path) as store:
        await store.append("a", [NewEvent("Known", {})])
        with pytest.raises(WrongExpectedVersion):
            await store.append("a", [NewEvent("Unheard", {})], expected_version=5)
        assert [e.type async for e in store.read_all()] == ["Known"]
    assert rows(path, "SELECT name FROM types") == [("Known",)]


async def test_a_type_id_without_a_name_fails_its_read_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with SQLiteEventStore(path) as store:
        await store.append("a", [NewEvent("E", {}), NewEvent("E", {})])
    rows(path, "UPDATE events SET type = 99 WHERE version = 2")
    async with SQLiteEventStore(path) as store:
        with pytest.raises(DecodeError, match=r"stream 'a', version 2: .*types table"):
            [e async for e in store.read("a")]
