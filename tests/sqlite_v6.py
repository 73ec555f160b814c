"""The SQLite format 6, as it shipped, for the tests of the upgrades from it and from before it.

``V6_SCHEMA`` is ``eventstore._sqlite_schema.SCHEMA`` of format 6, copied as it was.
``sqlite_to_v6`` turns a file of today's format back into format 6, as the v6 store would have
written the same things: each type name once in ``types`` (no shapes), every event's data as it
is (an object rather than the array of its values).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

V6_SCHEMA = """
CREATE TABLE types (
    id   INTEGER PRIMARY KEY,
    name TEXT    NOT NULL UNIQUE
);

CREATE TABLE events (
    position    INTEGER PRIMARY KEY AUTOINCREMENT,
    stream      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    type        INTEGER NOT NULL CHECK (typeof(type) = 'integer'),
    data        TEXT    NOT NULL,
    metadata    TEXT,
    id          BLOB    NOT NULL UNIQUE,
    recorded_at INTEGER NOT NULL CHECK (typeof(recorded_at) = 'integer'),
    UNIQUE (stream, version)
);
CREATE TABLE streams (
    stream  TEXT PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE deleted_ids (
    id       BLOB    PRIMARY KEY,
    stream   TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    position INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE snapshots (
    stream      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL CHECK (typeof(recorded_at) = 'integer'),
    PRIMARY KEY (stream, version)
) WITHOUT ROWID;

CREATE TABLE inbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    stream      TEXT    NOT NULL,
    id          BLOB    NOT NULL,
    type        TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    metadata    TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL CHECK (typeof(recorded_at) = 'integer'),
    UNIQUE (stream, id)
);
CREATE INDEX inbox_by_stream ON inbox (stream, seq);

CREATE TABLE wake (
    stream  TEXT PRIMARY KEY,
    wake_at REAL
) WITHOUT ROWID;

CREATE TABLE offsets (
    name       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    error      TEXT,
    updated_at INTEGER NOT NULL CHECK (typeof(updated_at) = 'integer')
) WITHOUT ROWID;

CREATE TABLE members (
    id           TEXT    PRIMARY KEY,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    hosting      INTEGER NOT NULL,
    lease        REAL    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('alive', 'dead', 'left')),
    joined_at    REAL    NOT NULL,
    heartbeat_at REAL    NOT NULL,
    ended_at     REAL
) WITHOUT ROWID;

CREATE TABLE owners (
    stream     TEXT    PRIMARY KEY,
    member     TEXT,
    epoch      INTEGER NOT NULL,
    claimed_at REAL
) WITHOUT ROWID;
CREATE INDEX owners_by_member ON owners (member);
"""

V6_TYPES = V6_SCHEMA[:V6_SCHEMA.index(";")]


def sqlite_to_v6(path: Path) -> None:
    """Rewrite a file of today's format as format 6: its data objects, and its types by name
    (each name under the lowest id of its shapes; positions, ids and counters kept)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        shapes = {id: (name, fields) for id, name, fields in conn.execute(
            "SELECT id, name, fields FROM types ORDER BY id")}
        names: dict[str, int] = {}
        for id, (name, _) in shapes.items():
            names.setdefault(name, id)
        for position, type, data in conn.execute(
                "SELECT position, type, data FROM events").fetchall():
            name, fields = shapes[type]
            if fields is not None:
                data = json.dumps(dict(zip(json.loads(fields), json.loads(data), strict=True)),
                                  separators=(",", ":"), ensure_ascii=False)
            conn.execute("UPDATE events SET type = ?, data = ? WHERE position = ?",
                         (names[name], data, position))
        conn.execute("DROP TABLE types")
        conn.execute(V6_TYPES)
        conn.executemany("INSERT INTO types (id, name) VALUES (?, ?)",
                         [(id, name) for name, id in names.items()])
        conn.execute("PRAGMA user_version = 6")
        conn.execute("COMMIT")
    finally:
        conn.close()
