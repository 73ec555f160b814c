"""The consumer offsets' format upgrades: SQLite 3 -> 4 and PostgreSQL 2 -> 3 keep everything."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio
from sqlite_files import tables
from sqlite_v5 import sqlite_to_v5

import eventstore._sqlite_schema as schema
from eventstore import NewEvent
from eventstore.sqlite import SQLiteEventStore


def sqlite_to_v3(path: Path) -> None:
    """Turn a file back into format 3, as the v3 store wrote it: no offsets table (and none of
    the cluster's, which came later)."""
    sqlite_to_v5(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TABLE offsets")
        conn.execute("DROP TABLE owners")
        conn.execute("DROP TABLE members")
        conn.execute("PRAGMA user_version = 3")
    finally:
        conn.close()


async def test_a_v3_sqlite_file_gets_the_offsets_table(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    async with SQLiteEventStore(path) as store:
        await store.append("a", [NewEvent("E", {"n": n}) for n in range(3)])
        held = [e async for e in store.read_all()]
    sqlite_to_v3(path)
    async with SQLiteEventStore(path) as store:
        assert [e async for e in store.read_all()] == held
        assert await store.offsets() == []
        await store.save_offset("p", 3, expected=0)
        assert (await store.load_offset("p")).position == 3  # type: ignore[union-attr]
    async with SQLiteEventStore(tmp_path / "new.db"):
        pass
    assert tables(path) == tables(tmp_path / "new.db")
    assert schema.SCHEMA_VERSION >= 4 and 3 in schema.MIGRATIONS


def postgres_to_v2(url: str, schema_name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute(f'DROP TABLE "{schema_name}".offsets')
        conn.execute(f'DROP TABLE "{schema_name}".members')
        conn.execute(f'DROP TABLE "{schema_name}".owners')
        conn.execute(f'UPDATE "{schema_name}".schema_version SET version = 2')


def postgres_columns(url: str, schema_name: str) -> list[tuple[str, str]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                            "WHERE table_schema = %s ORDER BY 1, 2", (schema_name,)).fetchall()


@pytest.mark.postgres
async def test_a_v2_postgres_schema_gets_the_offsets_table(
        postgres_url: str, postgres_schema: str) -> None:
    from eventstore.postgres import PostgresEventStore

    async with PostgresEventStore(postgres_url, schema=postgres_schema) as store:
        await store.append("a", [NewEvent("E", {"n": n}) for n in range(3)])
        held = [e async for e in store.read_all()]
    columns = await trio.to_thread.run_sync(postgres_columns, postgres_url, postgres_schema)
    await trio.to_thread.run_sync(postgres_to_v2, postgres_url, postgres_schema)
    async with PostgresEventStore(postgres_url, schema=postgres_schema) as store:
        assert [e async for e in store.read_all()] == held
        assert await store.offsets() == []
        await store.save_offset("p", 3, expected=0)
        assert (await store.load_offset("p")).position == 3  # type: ignore[union-attr]
    assert await trio.to_thread.run_sync(postgres_columns, postgres_url,
                                         postgres_schema) == columns
