"""The SQLite format 5, as it shipped, for the tests of the upgrades from it and from before it.

``V5_SCHEMA`` is ``eventstore._sqlite_schema.SCHEMA`` of format 5, copied as it was.
``sqlite_to_v5`` turns a file of today's format back into format 5, as the v5 store would have
written the same things: event types as names, no metadata as ``{}``, no ``types`` table.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_v6 import sqlite_to_v6

V5_SCHEMA = """
CREATE TABLE events (
    position    INTEGER PRIMARY KEY AUTOINCREMENT,
    stream      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    metadata    TEXT    NOT NULL,
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

V5_EVENTS = V5_SCHEMA[:V5_SCHEMA.index(";")]


def sqlite_to_v5(path: Path) -> None:
    """Rewrite a file of today's format as format 5 (its events table, positions kept)."""
    sqlite_to_v6(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.execute(V5_EVENTS.replace("CREATE TABLE events", "CREATE TABLE events_v5"))
        conn.execute("INSERT INTO events_v5 SELECT position, stream, version, types.name, data, "
                     "coalesce(metadata, '{}'), events.id, recorded_at FROM events "
                     "JOIN types ON types.id = events.type ORDER BY position")
        conn.execute("INSERT INTO sqlite_sequence (name, seq) "
                     "SELECT 'events_v5', seq FROM sqlite_sequence WHERE name = 'events'")
        conn.execute("DROP TABLE events")
        conn.execute("ALTER TABLE events_v5 RENAME TO events")
        conn.execute("DROP TABLE types")
        conn.execute("PRAGMA user_version = 5")
        conn.execute("COMMIT")
    finally:
        conn.close()
