"""The on-disk format of ``SQLiteEventStore``: its schema, and the migrations that upgrade a file.

The file's ``PRAGMA user_version`` is its schema version and ``PRAGMA application_id`` marks it as
an event store. Opening a file creates the schema in a new one, upgrades an older one in place
(``MIGRATIONS``, one transaction per version: a migration that fails leaves the file as it was),
and refuses a newer one. A later format adds one entry to ``MIGRATIONS`` and bumps
``SCHEMA_VERSION``.

Version 7 (this one) stores an event's data, when it is a JSON object, as the JSON array of its
top-level values: a ``types`` row is a *shape*, a type name and the JSON array of the data's keys
in order (``fields``), or NULL ``fields`` for data stored as it is (a JSON object, or any other
JSON value). A name has at most ``MAX_SHAPES`` shapes with fields; data of another shape is then
stored as an object. About 28 bytes less per event on the bench's event (the keys). Its
migration only rebuilds the small ``types`` table: every stored event keeps its object data, under
its type's row, whose ``fields`` is NULL.
Version 6 stores each event's type as a small integer, the ``id`` of its name in the
``types`` table (one row per name, never deleted nor renumbered; a name is added in the
transaction of the first append that uses it), and an event without metadata with a NULL
``metadata``: about 30 bytes less per event, the whole of the type name and the ``{}``. Its
migration rebuilds the events table in one transaction (every position, id, version and
recorded_at kept, and the position counter).
Version 5 adds the cluster's tables (``members``: processes with their leases and
heartbeats; ``owners``: which member owns a stream, under which epoch; see ``eventstore._cluster``
and ``eventstore._sqlite_cluster``).
Version 4 adds the consumer offsets (``offsets``: one row per consumer of the global
log, such as a projection; see ``eventstore._offsets``).
Version 3 adds the inboxes (``inbox``: messages waiting for a stream's owner, ``seq``
increasing in commit order across all inboxes) and the work index (``wake``: a stream's wake
time); see ``eventstore._work``.
Version 2: ``recorded_at`` is an INTEGER of microseconds since the Unix epoch (UTC), and no
triggers: the write path checks versions and keeps the ``streams`` table once per batch.
Version 1 stored ``recorded_at`` as ISO 8601 text and checked each row with triggers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from ._errors import EventStoreError, SchemaError

MAX_SHAPES = 16
"""The most shapes with fields a type name gets; data of another shape is stored as an object."""

SCHEMA_VERSION = 7
"""The schema version this library writes; older files are upgraded, newer ones refused."""
APPLICATION_ID = 0x45565354  # "EVST": marks the file as an event store

# Each table's columns in their stored order; a migration that rebuilds a table copies into them.
# The CHECKs cost next to nothing per row, and refuse the ISO 8601 text of a version 1 writer (a
# process of an older release that opened the file before its upgrade) instead of mixing formats.
# The events table of versions 2 to 5, which their migrations build on.
EVENTS_V2 = """
CREATE TABLE events{suffix} (
    position    INTEGER PRIMARY KEY AUTOINCREMENT,
    stream      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    metadata    TEXT    NOT NULL,
    id          BLOB    NOT NULL UNIQUE,
    recorded_at INTEGER NOT NULL CHECK (typeof(recorded_at) = 'integer'),
    UNIQUE (stream, version)
)"""
# An event's type is the id of its name in ``types``; its metadata is NULL when it has none (the
# JSON ``{}``). The type's CHECK refuses the name a writer of an older release would store.
EVENTS = """
CREATE TABLE events{suffix} (
    position    INTEGER PRIMARY KEY AUTOINCREMENT,
    stream      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    type        INTEGER NOT NULL CHECK (typeof(type) = 'integer'),
    data        TEXT    NOT NULL,
    metadata    TEXT,
    id          BLOB    NOT NULL UNIQUE,
    recorded_at INTEGER NOT NULL CHECK (typeof(recorded_at) = 'integer'),
    UNIQUE (stream, version)
)"""
# The event type names of version 6, each once; an id is never reused (a name is never deleted).
TYPES_V6 = """
CREATE TABLE types (
    id   INTEGER PRIMARY KEY,
    name TEXT    NOT NULL UNIQUE
)"""
# The shapes of stored events: a type name and the keys of data stored as the array of its values,
# in order (JSON text), or NULL for data stored as it is; each (name, fields) once, the NULL one
# too (its partial index). A row is never deleted nor renumbered.
TYPES = """
CREATE TABLE types{suffix} (
    id     INTEGER PRIMARY KEY,
    name   TEXT    NOT NULL,
    fields TEXT,
    UNIQUE (name, fields)
)"""
TYPES_OBJECT_INDEX = "CREATE UNIQUE INDEX types_object ON types (name) WHERE fields IS NULL"
SNAPSHOTS = """
CREATE TABLE snapshots{suffix} (
    stream      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL CHECK (typeof(recorded_at) = 'integer'),
    PRIMARY KEY (stream, version)
) WITHOUT ROWID"""
# The inboxes: one table for all, ``seq`` from AUTOINCREMENT (never reused, and in commit order:
# SQLite has one writer at a time). An id waits at most once per inbox; the second index serves
# ``read_inbox`` (by stream, in order); the unique one counts each inbox's messages for ``work()``.
INBOX = """
CREATE TABLE inbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    stream      TEXT    NOT NULL,
    id          BLOB    NOT NULL,
    type        TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    metadata    TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL CHECK (typeof(recorded_at) = 'integer'),
    UNIQUE (stream, id)
)"""
INBOX_INDEX = "CREATE INDEX inbox_by_stream ON inbox (stream, seq)"
# The work index's wake times (seconds since the epoch); a stream without one has no row.
WAKE = """
CREATE TABLE wake (
    stream  TEXT PRIMARY KEY,
    wake_at REAL
) WITHOUT ROWID"""
# Consumer offsets: the last global position each consumer handled, its state and error.
OFFSETS = """
CREATE TABLE offsets (
    name       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    error      TEXT,
    updated_at INTEGER NOT NULL CHECK (typeof(updated_at) = 'integer')
) WITHOUT ROWID"""

# The cluster: its times are seconds since the epoch on the host's clock (every process on the
# host shares it). A member is alive while state = 'alive' and its heartbeat is younger than its
# lease. Owner rows are never deleted, so a stream's epoch never goes down; member is NULL once
# released.
MEMBERS = """
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
) WITHOUT ROWID"""
OWNERS = """
CREATE TABLE owners (
    stream     TEXT    PRIMARY KEY,
    member     TEXT,
    epoch      INTEGER NOT NULL,
    claimed_at REAL
) WITHOUT ROWID"""
OWNERS_INDEX = "CREATE INDEX owners_by_member ON owners (member)"

SCHEMA = f"""{TYPES.format(suffix="")};
{TYPES_OBJECT_INDEX};
{EVENTS.format(suffix="")};
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
{SNAPSHOTS.format(suffix="")};
{INBOX};
{INBOX_INDEX};
{WAKE};
{OFFSETS};
{MEMBERS};
{OWNERS};
{OWNERS_INDEX};
"""
"""The current schema, as one script: what a new file gets."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    """An aware datetime as the stored ``recorded_at``: microseconds since the epoch, UTC."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# -- migrations -----------------------------------------------------------------------------------

Step = str | Callable[[sqlite3.Connection], None]
"""One step of a migration: a SQL statement, or a function of the connection."""


def _iso_to_micros(text: object) -> int:
    """SQL function for the v1 -> v2 migration: v1's ISO 8601 ``recorded_at`` as microseconds."""
    if not isinstance(text, str):
        raise ValueError(f"recorded_at {text!r} is not ISO 8601 text")
    moment = datetime.fromisoformat(text)
    if moment.utcoffset() is None:
        raise ValueError(f"recorded_at {text!r} has no UTC offset")
    return micros(moment)


def _copy_events(conn: sqlite3.Connection) -> None:
    # Exact to the microsecond, which julianday() in SQL is not; an unreadable value fails the
    # statement, and with it the migration.
    conn.create_function("eventstore_iso_to_micros", 1, _iso_to_micros, deterministic=True)
    conn.execute("INSERT INTO events_v2 SELECT position, stream, version, type, data, metadata, "
                 "id, eventstore_iso_to_micros(recorded_at) FROM events ORDER BY position")
    _keep_counter(conn, "events_v2")


def _keep_counter(conn: sqlite3.Connection, table: str) -> None:
    """Positions are never reused: ``table``, the events' new table, continues from the old one's
    AUTOINCREMENT counter, which is past the highest stored position when the newest events
    were deleted."""
    conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
    conn.execute("INSERT INTO sqlite_sequence (name, seq) "
                 "SELECT ?, seq FROM sqlite_sequence WHERE name = 'events'", (table,))


_V1_TO_V2: tuple[Step, ...] = (
    "DROP TRIGGER events_follow_stream",
    "DROP TRIGGER events_move_stream",
    EVENTS_V2.format(suffix="_v2"),
    _copy_events,
    "DROP TABLE events",
    "ALTER TABLE events_v2 RENAME TO events",
    SNAPSHOTS.format(suffix="_v2"),
    "INSERT INTO snapshots_v2 SELECT stream, version, state, "
    "eventstore_iso_to_micros(recorded_at) FROM snapshots",
    "DROP TABLE snapshots",
    "ALTER TABLE snapshots_v2 RENAME TO snapshots",
)

_V2_TO_V3: tuple[Step, ...] = (INBOX, INBOX_INDEX, WAKE)

_V3_TO_V4: tuple[Step, ...] = (OFFSETS,)

_V4_TO_V5: tuple[Step, ...] = (MEMBERS, OWNERS, OWNERS_INDEX)


def _copy_events_v6(conn: sqlite3.Connection) -> None:
    # Names numbered in the order of their first event; the rows in position order, so that the
    # new table is written from start to end.
    conn.execute("INSERT INTO types (name) SELECT type FROM events GROUP BY type "
                 "ORDER BY min(position)")
    conn.execute("INSERT INTO events_v6 SELECT position, stream, version, "
                 "(SELECT id FROM types WHERE name = events.type), data, "
                 "nullif(metadata, '{}'), id, recorded_at FROM events ORDER BY position")
    _keep_counter(conn, "events_v6")


_V5_TO_V6: tuple[Step, ...] = (
    TYPES_V6,
    EVENTS.format(suffix="_v6"),
    _copy_events_v6,
    "DROP TABLE events",
    "ALTER TABLE events_v6 RENAME TO events",
)

# Every id kept, each name's row holding its events' data as stored: fields NULL.
_V6_TO_V7: tuple[Step, ...] = (
    TYPES.format(suffix="_v7"),
    "INSERT INTO types_v7 (id, name, fields) SELECT id, name, NULL FROM types ORDER BY id",
    "DROP TABLE types",
    "ALTER TABLE types_v7 RENAME TO types",
    TYPES_OBJECT_INDEX,
)

MIGRATIONS: dict[int, tuple[Step, ...]] = {1: _V1_TO_V2, 2: _V2_TO_V3, 3: _V3_TO_V4,
                                           4: _V4_TO_V5, 5: _V5_TO_V6, 6: _V6_TO_V7}
"""The steps that upgrade a file from each version to the next, run in one transaction."""


# -- opening a file -------------------------------------------------------------------------------

def prepare(conn: sqlite3.Connection, path: str, *, create: bool = True) -> None:
    """Put the file in WAL mode and create its schema, or upgrade or check the one there.

    Args:
        conn: an open connection in autocommit mode (``isolation_level=None``).
        path: the file's path, for messages.
        create: False to only check, writing nothing: a file that is not an event store in WAL
            mode at this schema version is then a ``SchemaError``.

    Raises:
        SchemaError: the file is not an event store, is newer than this library, or an upgrade
            failed (the file is then as it was).
        EventStoreError: the file cannot be put in WAL mode.
        sqlite3.Error: SQLite failed otherwise.
    """
    if not create:
        _check_only(conn, path)
        return
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise EventStoreError(
            f"SQLite cannot put {path!r} in WAL mode (it stays in {mode!r} mode); "
            "use a file on a local disk")
    while not _step_up(conn, path):
        pass


def _check_only(conn: sqlite3.Connection, path: str) -> None:
    """``prepare`` without writing: the file must be an event store of this version, in WAL."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    app = conn.execute("PRAGMA application_id").fetchone()[0]
    if app != APPLICATION_ID:
        raise SchemaError(f"{path!r} is not an event store (application_id {app}): check the "
                          "path (nothing was created in it)")
    if version != SCHEMA_VERSION:
        newer = version > SCHEMA_VERSION
        raise SchemaError(
            f"{path!r} has event store schema version {version}, "
            + (f"newer than this library's {SCHEMA_VERSION}; upgrade the library to open it"
               if newer else f"older than this library's {SCHEMA_VERSION}; open it once with "
               "write access (any program that writes to it) to upgrade it"))
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() != "wal":
        raise SchemaError(f"{path!r} is in {mode!r} journal mode, not WAL: open it once with "
                          "write access to switch it")


def _step_up(conn: sqlite3.Connection, path: str) -> bool:
    """Create, check, or upgrade the file by one version in one transaction; whether it is done.

    The version is read inside the write transaction, so of several processes opening an old
    file at once, one upgrades it and the others find it upgraded.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        if version == 0 and app == 0:
            _create(conn, path)
        elif app != APPLICATION_ID:
            raise SchemaError(
                f"{path!r} is a SQLite database but not an event store "
                f"(application_id {app}); use a new file")
        elif version > SCHEMA_VERSION:
            raise SchemaError(
                f"{path!r} has event store schema version {version}, newer than "
                f"this library's {SCHEMA_VERSION}; upgrade the library to open it")
        elif version < SCHEMA_VERSION:
            _migrate(conn, path, version)
        conn.execute("COMMIT")
        return version in (0, SCHEMA_VERSION)
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _create(conn: sqlite3.Connection, path: str) -> None:
    tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    if tables:
        raise SchemaError(
            f"{path!r} is a SQLite database that holds other tables, not an event store; "
            "use a new file")
    for statement in statements(SCHEMA):
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _migrate(conn: sqlite3.Connection, path: str, version: int) -> None:
    """Run the migration from ``version`` to the next, inside the caller's transaction."""
    steps = MIGRATIONS.get(version)
    if steps is None:
        # Every upgrade so far runs in place; this names the way out should one ever not.
        raise SchemaError(
            f"{path!r} has event store schema version {version}, which this library "
            f"({SCHEMA_VERSION}) cannot upgrade in place; export it with an older release "
            "(python -m actors export) and import it into a new file")
    try:
        for step in steps:
            if isinstance(step, str):
                conn.execute(step)
            else:
                step(conn)
        conn.execute(f"PRAGMA user_version = {version + 1}")
    except sqlite3.Error as exc:
        raise SchemaError(
            f"cannot upgrade {path!r} from event store schema version {version} to "
            f"{version + 1}: SQLite failed with "
            f"{getattr(exc, 'sqlite_errorname', type(exc).__name__)} ({exc}); nothing was "
            f"changed, the file is still at version {version}; fix the cause (free disk space, "
            "make the file writable) and open it again") from exc


def statements(script: str) -> list[str]:
    """The SQL statements of ``script`` (a trigger's body holds semicolons of its own)."""
    found, pending = [], ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip("; \n"):
                found.append(pending.strip())
            pending = ""
    return found
