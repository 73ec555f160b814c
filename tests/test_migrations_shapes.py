"""The SQLite format 6 -> 7 upgrade: ``types`` rows become shapes, stored data stays as it is.

The v6 file is built from format 6's own SQL (``sqlite_v6.V6_SCHEMA``) with rows in every table:
events of several types (data objects, other JSON values, metadata or none), a deleted event,
snapshots, inbox messages, wake times, an offset, a member and an owner. The upgrade must keep
every one of them to the row, and new appends to the same streams must read back exactly.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlite_files import (
    assert_a_failing_upgrade_changes_nothing,
    assert_upgrades_to_a_new_files_schema,
    compact_json,
)
from sqlite_v6 import V6_SCHEMA

import eventstore._sqlite_schema as schema
from eventstore import NewEvent
from eventstore.sqlite import SQLiteEventStore

MOMENT = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
# Every table but types, as the upgrade must leave it.
KEPT = ("events", "streams", "deleted_ids", "snapshots", "inbox", "wake", "offsets", "members",
        "owners", "sqlite_sequence")
NAMES = ("shop:Opened", "shop:Added", "E")


def build_v6(path: Path) -> list[tuple[Any, ...]]:
    """A v6 file as the v6 store left it; its events as ``read_all`` should give them."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(V6_SCHEMA)
    conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 6")
    at = schema.micros(MOMENT)
    rows = [("a", 1, 1, {"n": 1, "é": [1, {"x": None}]}, None),
            ("a", 2, 2, {"z": 2, "a": 1}, {"who": "x"}), ("b", 1, 1, [1, 2], None),
            ("b", 2, 3, None, None), ("a", 3, 2, "é ☃", None), ("c", 1, 3, {}, {"t": [1]}),
            ("gone", 1, 3, {"k": 0}, None)]
    events = []
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO types (id, name) VALUES (?, ?)", enumerate(NAMES, start=1))
    for position, (stream, version, kind, data, metadata) in enumerate(rows, start=1):
        id = uuid.uuid4()
        conn.execute(
            "INSERT INTO events (stream, version, type, data, metadata, id, recorded_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (stream, version, kind, compact_json(data),
             None if metadata is None else compact_json(metadata),
             id.bytes, at + position))
        events.append((stream, version, position, NAMES[kind - 1], data, metadata or {}, id,
                       MOMENT + timedelta(microseconds=position)))
    # As delete_up_to did it: gone's only event, the newest position.
    conn.execute("INSERT INTO deleted_ids SELECT id, stream, version, position FROM events "
                 "WHERE stream = 'gone'")
    conn.execute("INSERT INTO streams (stream, version) VALUES ('gone', 1)")
    conn.execute("DELETE FROM events WHERE stream = 'gone'")
    conn.execute("INSERT INTO snapshots VALUES ('a', 2, '{\"total\":3}', ?)", (at,))
    for n in range(3):  # three messages, the first one consumed: seq goes on from 3
        conn.execute("INSERT INTO inbox (stream, id, type, data, metadata, recorded_at) "
                     "VALUES (?, ?, 'Msg', ?, ?, ?)",
                     ("b" if n else "a", uuid.uuid4().bytes, compact_json({"n": n}),
                      "{}" if n < 2 else '{"message_id":"m"}', at))
    conn.execute("DELETE FROM inbox WHERE seq = 1")
    conn.execute("INSERT INTO wake VALUES ('a', 12.5)")
    conn.execute("INSERT INTO offsets VALUES ('p', 3, '{\"s\":1}', NULL, ?)", (at,))
    conn.execute("INSERT INTO members VALUES ('m1', 'host', 42, 1, 10.0, 'alive', 1.0, 2.0, "
                 "NULL)")
    conn.execute("INSERT INTO owners VALUES ('a', 'm1', 3, 1.5)")
    conn.execute("COMMIT")
    conn.close()
    return [e for e in events if e[0] != "gone"]


def table_rows(path: Path, tables: tuple[str, ...] = KEPT) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
                for table in tables}
    finally:
        conn.close()


def _read(e: Any) -> tuple[Any, ...]:
    return (e.stream, e.version, e.position, e.type, e.data, e.metadata, e.id, e.recorded_at)


async def test_a_v6_file_is_upgraded_in_place_and_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "v6.db"
    held = build_v6(path)
    kept = table_rows(path)
    async with SQLiteEventStore(path) as store:
        read = [_read(e) async for e in store.read_all()]
        assert read == held
        assert [list(e[4]) for e in read if isinstance(e[4], dict)] == [
            ["n", "é"], ["z", "a"], []]  # key order as stored
        assert [e.position async for e in store.read_all(types=["shop:Added"])] == [2, 5]
        assert [await store.last_version(s) for s in ("a", "b", "c", "gone")] == [3, 2, 1, 1]
        snapshot = await store.load_snapshot("a")
        assert snapshot is not None and (snapshot.version, snapshot.state) == (2, {"total": 3})
        assert [(m.position, m.data, m.metadata) async for m in store.read_inbox("b")] == [
            (2, {"n": 1}, {}), (3, {"n": 2}, {"message_id": "m"})]
        offset = await store.load_offset("p")
        assert offset is not None and offset.position == 3
        assert [o.stream for o in await store.owners()] == ["a"]
    assert table_rows(path) == kept  # to the row, sequence counters included
    assert table_rows(path, ("types",)) == {"types": [(1, "shop:Opened", None),
                                                       (2, "shop:Added", None), (3, "E", None)]}

    new = [("a", NewEvent("shop:Added", {"z": 3, "a": [4], "ü": None})),
           ("b", NewEvent("E", {"n": 1}, {"m": 1})), ("c", NewEvent("E", [5])),
           ("gone", NewEvent("shop:Opened", {}))]
    async with SQLiteEventStore(path) as store:
        for stream, event in new:
            await store.append(stream, [event])
        after = [e async for e in store.read_all(after_position=7)]
        assert [(e.stream, e.position, e.type, e.data, e.metadata) for e in after] == [
            (stream, position, event.type, event.data, event.metadata)
            for position, (stream, event) in enumerate(new, start=8)]
        assert [list(e.data) for e in after if isinstance(e.data, dict)] == [
            ["z", "a", "ü"], ["n"], []]
        assert [_read(e) async for e in store.read_all()][:len(held)] == held
        assert [e.version async for e in store.read("gone")] == [2]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 7
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT data FROM events WHERE position > 7 ORDER BY position"
                            ).fetchall() == [('[3,[4],null]',), ('[1]',), ('[5]',), ('[]',)]
    finally:
        conn.close()


async def test_the_v7_upgrade_matches_a_new_files_schema(tmp_path: Path) -> None:
    build_v6(tmp_path / "old.db")
    await assert_upgrades_to_a_new_files_schema(tmp_path / "old.db", tmp_path / "new.db")


async def test_a_v6_upgrade_that_fails_midway_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v6.db"
    held = build_v6(path)
    # After the old types table is dropped.
    await assert_a_failing_upgrade_changes_nothing(path, 6, monkeypatch)
    async with SQLiteEventStore(path) as store:
        assert [_read(e) async for e in store.read_all()] == held
