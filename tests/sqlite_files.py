"""What the migration tests read of a SQLite file, from outside the store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any


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
