"""What the migration tests read of a SQLite file, from outside the store, and the checks
they run on every format's upgrade."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import eventstore._sqlite_schema as schema
from eventstore import SchemaError
from eventstore.sqlite import SQLiteEventStore


def compact_json(value: Any) -> str:
    """``value`` as the stores write JSON: no spaces, non-ASCII kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def dump(path: Path) -> tuple[int, list[str]]:
    """The file's schema version and its whole content as SQL: equal only if nothing changed."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0], list(conn.iterdump())
    finally:
        conn.close()


def tables(path: Path) -> list[tuple[str, str]]:
    """Every table's and index's name and SQL, sorted; a table rebuilt by an upgrade reads as
    renamed (``"events_v6"`` -> ``events``)."""
    conn = sqlite3.connect(path)
    try:
        return sorted((name, sql.replace('"', "")) for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
    finally:
        conn.close()


async def assert_upgrades_to_a_new_files_schema(old: Path, new: Path) -> None:
    """Opening ``old`` (an older format) upgrades it to the tables a new file at ``new`` gets."""
    async with SQLiteEventStore(old), SQLiteEventStore(new):
        pass
    assert tables(old) == tables(new)


async def assert_a_failing_upgrade_changes_nothing(path: Path, version: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The upgrade of ``path`` from ``version``, made to fail after its last step, raises
    ``SchemaError`` saying the file is still at ``version``, and leaves it as it was."""
    before = dump(path)
    monkeypatch.setitem(schema.MIGRATIONS, version,
                        (*schema.MIGRATIONS[version], "DROP TABLE no_such"))
    with pytest.raises(SchemaError, match=rf"from event store schema version {version} to "
                                          rf"{version + 1}.*still at"):
        async with SQLiteEventStore(path):
            pass
    assert dump(path) == before
    monkeypatch.undo()
