"""The SQLite format 5 -> 6 upgrade: event types become ids into ``types``, no metadata NULL.

The v5 file is built from format 5's own SQL (``sqlite_v5.V5_SCHEMA``) with rows in every table:
events of several types, with and without metadata, deleted events (their ids, a stream's floor,
positions past the newest stored event), snapshots, inbox messages, wake times, an offset, a
member and owners. The upgrade must keep every one of them, and the counters of positions and
inbox sequence numbers.
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
    dump,
)
from sqlite_v5 import V5_SCHEMA

import eventstore._sqlite_schema as schema
from eventstore import NewEvent, SchemaError
from eventstore.sqlite import SQLiteEventStore

MOMENT = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
# Every table but events and types, as the upgrade must leave it.
KEPT = ("streams", "deleted_ids", "snapshots", "inbox", "wake", "offsets", "members", "owners",
        "sqlite_sequence")


def build_v5(path: Path) -> list[tuple[Any, ...]]:
    """A v5 file as the v5 store left it; its events as ``read_all`` should give them."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(V5_SCHEMA)
    conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 5")
    at = schema.micros(MOMENT)
    rows = [("a", 1, "shop:Opened", {"n": 1}, {}), ("a", 2, "shop:Added", {"n": 2}, {"who": "x"}),
            ("b", 1, "shop:Opened", [1, 2], {}), ("b", 2, "E", None, {}),
            ("a", 3, "shop:Added", "é ☃", {}), ("c", 1, "E", 0, {"trace": [1, None]}),
            ("gone", 1, "Gone", {}, {})]
    events = []
    conn.execute("BEGIN")
    for position, (stream, version, kind, data, metadata) in enumerate(rows, start=1):
        id = uuid.uuid4()
        conn.execute(
            "INSERT INTO events (stream, version, type, data, metadata, id, recorded_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (stream, version, kind, compact_json(data), compact_json(metadata), id.bytes,
             at + position))
        events.append((stream, version, position, kind, data, metadata, id,
                       MOMENT + timedelta(microseconds=position)))
    # As delete_up_to did it: b's first event, and gone's only one (the newest position).
    for stream, version in (("b", 1), ("gone", 1)):
        conn.execute("INSERT INTO deleted_ids SELECT id, stream, version, position "
                     "FROM events WHERE stream = ? AND version <= ?", (stream, version))
        conn.execute("INSERT INTO streams (stream, version) VALUES (?, ?)", (stream, version))
        conn.execute("DELETE FROM events WHERE stream = ? AND version <= ?", (stream, version))
    conn.execute("INSERT INTO snapshots VALUES ('a', 2, '{\"total\":3}', ?)", (at,))
    for n in range(3):  # three messages, the first one consumed: seq goes on from 3
        conn.execute("INSERT INTO inbox (stream, id, type, data, metadata, recorded_at) "
                     "VALUES (?, ?, 'Msg', ?, ?, ?)",
                     ("b" if n else "a", uuid.uuid4().bytes, compact_json({"n": n}),
                      "{}" if n < 2 else '{"message_id":"m"}', at))
    conn.execute("DELETE FROM inbox WHERE seq = 1")
    conn.execute("INSERT INTO wake VALUES ('a', 12.5), ('c', 99.0)")
    conn.execute("INSERT INTO offsets VALUES ('p', 3, '{\"s\":1}', NULL, ?)", (at,))
    conn.execute("INSERT INTO members VALUES ('m1', 'host', 42, 1, 10.0, 'alive', 1.0, 2.0, "
                 "NULL)")
    conn.execute("INSERT INTO owners VALUES ('a', 'm1', 3, 1.5), ('b', NULL, 1, 2.5)")
    conn.execute("COMMIT")
    conn.close()
    return [e for e in events if (e[0], e[1]) not in (("b", 1), ("gone", 1))]


def snapshot_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
                for table in KEPT}
    finally:
        conn.close()


async def test_a_v5_file_is_upgraded_in_place_and_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    held = build_v5(path)
    kept = snapshot_tables(path)
    async with SQLiteEventStore(path) as store:
        read = [(e.stream, e.version, e.position, e.type, e.data, e.metadata, e.id, e.recorded_at)
                async for e in store.read_all()]
        assert read == held
        assert [e.position async for e in store.read_all(types=["shop:Added", "E"])] == [2, 4, 5, 6]
        assert [e.version async for e in store.read("a")] == [1, 2, 3]
        assert [await store.last_version(s) for s in ("a", "b", "c", "gone")] == [3, 2, 1, 1]
        snapshot = await store.load_snapshot("a")
        assert snapshot is not None and (snapshot.version, snapshot.state) == (2, {"total": 3})
        assert [(m.position, m.data, m.metadata) async for m in store.read_inbox("b")] == [
            (2, {"n": 1}, {}), (3, {"n": 2}, {"message_id": "m"})]
        offset = await store.load_offset("p")
        assert offset is not None and offset.position == 3
        assert [o.stream for o in await store.owners()] == ["a", "b"]
    assert snapshot_tables(path) == kept  # to the row, sequence counters included

    async with SQLiteEventStore(path) as store:  # appends go on past every position handed out
        after = await store.append("a", [NewEvent("shop:Added", 4)], expected_version=3)
        assert (after.version, after.position) == (4, 8)
        fresh = await store.append("gone", [NewEvent("New", {}, {"m": 1})], expected_version=1)
        assert (fresh.version, fresh.position) == (2, 9)
        assert [(e.type, e.metadata) async for e in store.read_all(after_position=7)] == [
            ("shop:Added", {}), ("New", {"m": 1})]

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT name FROM types ORDER BY id").fetchall() == [
            ("shop:Opened",), ("shop:Added",), ("E",), ("New",)]
        assert conn.execute("SELECT count(*) FROM events WHERE metadata IS NULL").fetchone() == (
            4,)
        # A v5 writer that opened the file before the upgrade cannot mix its format in.
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute("INSERT INTO events (stream, version, type, data, metadata, id, "
                         "recorded_at) VALUES ('z', 1, 'E', '1', '{}', ?, 1)",
                         (uuid.uuid4().bytes,))
    finally:
        conn.close()


async def test_the_v6_upgrade_matches_a_new_files_schema(tmp_path: Path) -> None:
    build_v5(tmp_path / "old.db")
    await assert_upgrades_to_a_new_files_schema(tmp_path / "old.db", tmp_path / "new.db")


async def test_a_v5_upgrade_that_fails_midway_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v5.db"
    held = build_v5(path)
    # After the rows are copied and the old table dropped.
    await assert_a_failing_upgrade_changes_nothing(path, 5, monkeypatch)
    async with SQLiteEventStore(path) as store:
        assert len([e async for e in store.read_all()]) == len(held)


async def test_a_v5_file_is_refused_without_create(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    build_v5(path)
    before = dump(path)
    with pytest.raises(SchemaError, match=f"older than this library's {schema.SCHEMA_VERSION}"):
        async with SQLiteEventStore(path, create=False) as store:
            await store.last_version("a")
    assert dump(path) == before
