"""Rows as the SQLite store keeps them, for the peers that write its tables with plain sqlite3.

An event's type is stored as the id of its name in the ``types`` table, and no metadata as
NULL (see ``eventstore._sqlite_schema``): a raw peer registers its names once, as the store
does on the first append of each, and writes the ids. It writes data objects as they are (the
name's shape without fields), not as the arrays of their values.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable


def type_ids(conn: sqlite3.Connection, names: Iterable[str]) -> dict[str, int]:
    """The id of each name in the file's ``types`` table, adding those it lacks."""
    ids: dict[str, int] = {}
    for name in names:
        conn.execute("INSERT INTO types (name) VALUES (?) ON CONFLICT DO NOTHING", (name,))
        (ids[name],) = conn.execute("SELECT id FROM types WHERE name = ? AND fields IS NULL",
                                    (name,)).fetchone()
    return ids
