"""The cluster's format upgrade: a SQLite file of format 4 gets the members and owners tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_files import tables
from sqlite_v5 import sqlite_to_v5

import eventstore._sqlite_schema as schema
from eventstore import NewEvent, SchemaError, WorkEntry
from eventstore.sqlite import SQLiteEventStore


def sqlite_to_v4(path: Path) -> None:
    """Turn a file back into format 4, as the v4 store wrote it: no cluster tables."""
    sqlite_to_v5(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TABLE owners")  # and its index
        conn.execute("DROP TABLE members")
        conn.execute("PRAGMA user_version = 4")
    finally:
        conn.close()


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        return version
    finally:
        conn.close()


async def v4_file(path: Path) -> list[object]:
    """A format 4 file with events, a message, a wake time and an offset; its events."""
    async with SQLiteEventStore(path) as store:
        await store.append("a", [NewEvent("E", {"n": n}) for n in range(3)], wake_at=5.0,
                           enqueue=[("b", NewEvent("Msg", {}))])
        await store.save_offset("p", 1)
        held = [e async for e in store.read_all()]
    sqlite_to_v4(path)
    return held


async def test_a_v4_sqlite_file_gets_the_cluster_tables(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    held = await v4_file(path)
    assert user_version(path) == 4
    async with SQLiteEventStore(path) as store:
        assert [e async for e in store.read_all()] == held
        assert await store.work() == [WorkEntry("a", 5.0, 0), WorkEntry("b", None, 1)]
        assert (await store.load_offset("p")).position == 1  # type: ignore[union-attr]
        assert await store.members() == [] and await store.owners() == []
        await store.join("m", lease_seconds=60)
        [claim] = await store.claim_due("m", prefixes=["a", "b"], limit=1)
        assert claim.stream == "b" and claim.epoch == 1
        result = await store.append("a", [NewEvent("E", {})], fence=(
            await store.claim("a", "m")).fence())
        assert result.version == 4
    async with SQLiteEventStore(tmp_path / "new.db"):
        pass
    assert tables(path) == tables(tmp_path / "new.db")
    assert user_version(path) == schema.SCHEMA_VERSION


async def test_a_v4_upgrade_that_fails_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v4.db"
    await v4_file(path)
    before = tables(path)
    monkeypatch.setitem(schema.MIGRATIONS, 4, (*schema.MIGRATIONS[4], "DROP TABLE no_such_table"))
    with pytest.raises(SchemaError, match="from event store schema version 4 to 5"):
        async with SQLiteEventStore(path):
            pass
    assert tables(path) == before and user_version(path) == 4


async def test_a_v4_file_is_refused_without_create(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    await v4_file(path)
    with pytest.raises(SchemaError, match="version 4, older"):
        async with SQLiteEventStore(path, create=False) as store:
            await store.members()
    assert user_version(path) == 4
