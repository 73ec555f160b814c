"""Opening a store written in an older on-disk format upgrades it in place, or leaves it as it was.

The v1 and v2 files here are built from their schema's own SQL (copied below as it shipped), with
a few streams, deleted events, snapshots and positions past the newest stored event.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio

import eventstore._sqlite_schema as schema
from eventstore import NewEvent, SchemaError
from eventstore.sqlite import SQLiteEventStore

# The schema of version 1, exactly as eventstore/sqlite.py created it.
V1_SCHEMA = """
CREATE TABLE events (
    position    INTEGER PRIMARY KEY AUTOINCREMENT,
    stream      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    metadata    TEXT    NOT NULL,
    id          BLOB    NOT NULL UNIQUE,
    recorded_at TEXT    NOT NULL,
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
CREATE TRIGGER events_follow_stream BEFORE INSERT ON events
WHEN NEW.version <> coalesce((SELECT version FROM streams WHERE stream = NEW.stream), 0) + 1
    OR EXISTS (SELECT 1 FROM deleted_ids WHERE id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'eventstore: the stream moved on, or the event id is taken');
END;
CREATE TRIGGER events_move_stream AFTER INSERT ON events
BEGIN
    INSERT INTO streams (stream, version) VALUES (NEW.stream, NEW.version)
    ON CONFLICT (stream) DO UPDATE SET version = excluded.version;
END;
CREATE TABLE snapshots (
    stream      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    recorded_at TEXT    NOT NULL,
    PRIMARY KEY (stream, version)
) WITHOUT ROWID;
"""

# The schema of version 2, exactly as eventstore/_sqlite_schema.py created it.
V2_SCHEMA = """
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
"""

Row = tuple[str, int, int, str, Any, dict[str, Any], uuid.UUID, datetime]

MOMENTS = [
    datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC),
    datetime(2025, 3, 4, 5, 6, 8, tzinfo=UTC),  # isoformat() writes no fraction for 0 us
    datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1999, 12, 31, 0, 0, 0, 1, tzinfo=UTC),
]


def build_v1(path: Path) -> dict[str, Any]:
    """A v1 file as the v1 store left it; what it holds, as the store should read it back."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(V1_SCHEMA)
    conn.execute("PRAGMA application_id = 1163285332")  # 0x45565354, "EVST"
    conn.execute("PRAGMA user_version = 1")
    batches: list[tuple[str, list[NewEvent]]] = [
        ("a", [NewEvent("Opened", {"n": 1}, id=uuid.uuid4()),
               NewEvent("Added", {"n": 2, "text": "é ☃"}, {"who": "x"}, id=uuid.uuid4())]),
        ("b", [NewEvent("Opened", [1, 2, 3], id=uuid.uuid4())]),
        ("c", [NewEvent("E", {"k": k}, id=uuid.uuid4()) for k in range(4)]),
        ("a", [NewEvent("Added", None, {"trace": [1, None]}, id=uuid.uuid4())]),
        ("gone", [NewEvent("E", k, id=uuid.uuid4()) for k in range(2)]),  # deleted, newest
    ]
    position = 0
    events: list[Row] = []
    results: dict[tuple[str, int], tuple[int, int]] = {}
    conn.execute("BEGIN")
    for n, (stream, batch) in enumerate(batches):
        moment = MOMENTS[n % len(MOMENTS)]
        version = max((v for s, v, *_ in events if s == stream), default=0)
        for event in batch:
            version += 1
            position += 1
            conn.execute(
                "INSERT INTO events (stream, version, type, data, metadata, id, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stream, version, event.type, _json(event.data), _json(event.metadata),
                 event.id.bytes, moment.isoformat()))
            events.append((stream, version, position, event.type, event.data,
                           event.metadata, event.id, moment))
        results[(stream, n)] = (version, position)
    for stream, version in (("c", 2), ("gone", 2)):  # as delete_up_to did it
        conn.execute("INSERT INTO deleted_ids SELECT id, stream, version, position "
                     "FROM events WHERE stream = ? AND version <= ?", (stream, version))
        conn.execute("DELETE FROM events WHERE stream = ? AND version <= ?", (stream, version))
    snapshots = {("a", 2): ('{"total":3}', MOMENTS[2]), ("c", 4): ("[]", MOMENTS[1])}
    for (stream, version), (state, moment) in snapshots.items():
        conn.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?)",
                     (stream, version, state, moment.isoformat()))
    conn.execute("COMMIT")
    conn.close()
    kept = [e for e in events if not (e[0] == "c" and e[1] <= 2) and e[0] != "gone"]
    return {"events": kept, "batches": batches, "results": results, "snapshots": snapshots,
            "versions": {"a": 3, "b": 1, "c": 4, "gone": 2}, "last_position": position}


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def dump(path: Path) -> tuple[int, list[str]]:
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        return version, list(conn.iterdump())
    finally:
        conn.close()


async def test_a_v1_file_is_upgraded_in_place_and_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    held = build_v1(path)
    async with SQLiteEventStore(path) as store:
        read = [(e.stream, e.version, e.position, e.type, e.data, e.metadata, e.id, e.recorded_at)
                async for e in store.read_all()]
        assert read == held["events"]
        for event in read:
            assert event[7].tzinfo is not None and event[7].utcoffset().total_seconds() == 0
        for stream, version in held["versions"].items():
            assert await store.last_version(stream) == version
        for (stream, version), (state, moment) in held["snapshots"].items():
            snapshot = await store.load_snapshot(stream)
            assert snapshot is not None
            assert (snapshot.version, snapshot.state, snapshot.recorded_at) == (
                version, json.loads(state), moment)

        # A retry of an old batch, stored or deleted, is still recognised by its ids.
        for n, (stream, batch) in enumerate(held["batches"]):
            if stream in ("b", "gone"):
                result = await store.append(stream, batch, expected_version=0)
                assert (result.version, result.position) == held["results"][(stream, n)]

        # Appends go on at the right versions, and at positions never handed out before (the
        # newest stored position is below the newest handed out: those events were deleted).
        after = await store.append("a", [NewEvent("Added", 4)], expected_version=3)
        assert (after.version, after.position) == (4, held["last_position"] + 1)
        gone = await store.append("gone", [NewEvent("E", 9)], expected_version=2)
        assert (gone.version, gone.position) == (3, held["last_position"] + 2)
        await store.save_snapshot("b", 1, {"fresh": True})
        assert (await store.load_snapshot("b")).state == {"fresh": True}  # type: ignore[union-attr]

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
                        ).fetchone()[0] == 0
    assert {kind for (kind,) in conn.execute("SELECT typeof(recorded_at) FROM events "
                                             "UNION SELECT typeof(recorded_at) FROM snapshots")
            } == {"integer"}
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # A v1 writer that opened the file before the upgrade cannot mix its format in.
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("INSERT INTO events (stream, version, type, data, metadata, id, recorded_at)"
                     " VALUES ('a', 5, 'E', '1', '{}', ?, ?)",
                     (uuid.uuid4().bytes, MOMENTS[0].isoformat()))
    conn.close()

    async with SQLiteEventStore(path) as store:  # opening again changes nothing
        assert [e.id async for e in store.read_all()][:len(held["events"])] == [
            e[6] for e in held["events"]]


def build_v2(path: Path) -> dict[str, Any]:
    """A v2 file as the v2 store left it: two streams, one of them partly deleted, a snapshot,
    and a position handed out past the newest stored event."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(V2_SCHEMA)
    conn.execute("PRAGMA application_id = 1163285332")  # 0x45565354, "EVST"
    conn.execute("PRAGMA user_version = 2")
    moment = MOMENTS[0]
    micros = schema.micros(moment)
    rows = [("a", 1, "Opened", {"n": 1}, {}), ("a", 2, "Added", {"n": 2}, {"who": "x"}),
            ("b", 1, "Opened", [1, 2], {}), ("b", 2, "E", None, {}), ("c", 1, "E", 0, {})]
    events: list[Row] = []
    conn.execute("BEGIN")
    for position, (stream, version, kind, data, metadata) in enumerate(rows, start=1):
        id = uuid.uuid4()
        conn.execute(
            "INSERT INTO events (stream, version, type, data, metadata, id, recorded_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (stream, version, kind, _json(data), _json(metadata), id.bytes, micros))
        events.append((stream, version, position, kind, data, metadata, id, moment))
    # As delete_up_to did it: b's first event, and c's only one (the newest position).
    for stream, version in (("b", 1), ("c", 1)):
        conn.execute("INSERT INTO deleted_ids SELECT id, stream, version, position "
                     "FROM events WHERE stream = ? AND version <= ?", (stream, version))
        conn.execute("INSERT INTO streams (stream, version) VALUES (?, ?)", (stream, version))
        conn.execute("DELETE FROM events WHERE stream = ? AND version <= ?", (stream, version))
    conn.execute("INSERT INTO snapshots VALUES ('a', 2, '{\"total\":3}', ?)", (micros,))
    conn.execute("COMMIT")
    conn.close()
    kept = [e for e in events if (e[0], e[1]) not in (("b", 1), ("c", 1))]
    return {"events": kept, "last_position": len(rows)}


async def test_a_v2_file_is_upgraded_in_place_and_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    held = build_v2(path)
    async with SQLiteEventStore(path) as store:
        read = [(e.stream, e.version, e.position, e.type, e.data, e.metadata, e.id, e.recorded_at)
                async for e in store.read_all()]
        assert read == held["events"]
        assert [await store.last_version(s) for s in "abc"] == [2, 2, 1]
        snapshot = await store.load_snapshot("a")
        assert snapshot is not None and snapshot.state == {"total": 3}
        assert await store.work() == []
        message = NewEvent("Msg", {"hello": 1})
        after = await store.append("a", [NewEvent("Added", 3)], expected_version=2,
                                   enqueue=[("b", message)], wake_at=7.5)
        assert (after.version, after.position) == (3, held["last_position"] + 1)
        [waiting] = [m async for m in store.read_inbox("b")]
        assert (waiting.id, waiting.data, waiting.position) == (message.id, {"hello": 1}, 1)
        assert [(e.stream, e.wake_at, e.waiting) for e in await store.work()] == [
            ("a", 7.5, 0), ("b", None, 1)]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


async def test_a_v2_upgrade_that_fails_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v2.db"
    build_v2(path)
    before = dump(path)
    monkeypatch.setitem(schema.MIGRATIONS, 2, (*schema.MIGRATIONS[2], "DROP TABLE no_such_table"))
    with pytest.raises(SchemaError, match="from event store schema version 2 to 3"):
        async with SQLiteEventStore(path):
            pass
    assert dump(path) == before


@pytest.mark.parametrize("build", [build_v1, build_v2])
async def test_the_upgrade_matches_a_new_files_schema(tmp_path: Path, build: Any) -> None:
    build(tmp_path / "old.db")
    async with SQLiteEventStore(tmp_path / "old.db"), SQLiteEventStore(tmp_path / "new.db"):
        pass

    def tables(path: Path) -> list[tuple[str, str]]:
        conn = sqlite3.connect(path)
        try:
            # The table's name in CREATE TABLE reads as renamed ("events_v2" -> "events").
            return sorted((name, " ".join(sql.replace('"', "").split()))
                          for name, sql in conn.execute(
                              "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
        finally:
            conn.close()

    assert tables(tmp_path / "old.db") == tables(tmp_path / "new.db")


async def test_processes_opening_a_v1_file_at_once_upgrade_it_once(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    held = build_v1(path)
    counts: list[int] = []

    async def open_and_count() -> None:
        async with SQLiteEventStore(path) as store:
            counts.append(len([e async for e in store.read_all()]))

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(open_and_count)
    assert counts == [len(held["events"])] * 4


async def test_a_migration_that_fails_midway_leaves_the_file_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v1.db"
    held = build_v1(path)
    before = dump(path)
    steps = list(schema.MIGRATIONS[1])
    steps[1] = "DROP TRIGGER no_such_trigger"  # the second statement fails
    monkeypatch.setitem(schema.MIGRATIONS, 1, tuple(steps))
    with pytest.raises(SchemaError) as failed:
        async with SQLiteEventStore(path):
            pass
    message = str(failed.value)
    assert str(path) in message and "from event store schema version 1 to 2" in message
    assert "no_such_trigger" in message and "still at version 1" in message
    assert dump(path) == before

    monkeypatch.undo()  # the real migration then runs on the untouched file
    async with SQLiteEventStore(path) as store:
        assert len([e async for e in store.read_all()]) == len(held["events"])


async def test_an_unreadable_v1_time_fails_the_upgrade_and_changes_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    build_v1(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE events SET recorded_at = 'yesterday' WHERE position = 3")
    conn.close()
    before = dump(path)
    with pytest.raises(SchemaError, match="still at version 1"):
        async with SQLiteEventStore(path):
            pass
    assert dump(path) == before


async def test_a_version_without_an_in_place_upgrade_names_the_way_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v1.db"
    build_v1(path)
    before = dump(path)
    monkeypatch.delitem(schema.MIGRATIONS, 1)
    with pytest.raises(SchemaError, match=r"cannot upgrade in place.*python -m actors export"):
        async with SQLiteEventStore(path):
            pass
    assert dump(path) == before


# -- PostgreSQL: the real upgrade from version 1, and the framework (on a made-up version 3) ----

async def fill_postgres(url: str, schema_name: str) -> list[Any]:
    from eventstore.postgres import PostgresEventStore

    async with PostgresEventStore(url, schema=schema_name) as store:
        await store.append("a", [NewEvent("E", {"n": n}) for n in range(3)])
        await store.append("b", [NewEvent("E", None, {"m": 1})])
        await store.delete_up_to("a", 1)
        await store.save_snapshot("a", 3, {"total": 3})
        return [e async for e in store.read_all()]


def postgres_state(url: str, schema_name: str) -> tuple[Any, ...]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return (
            conn.execute(f'SELECT version FROM "{schema_name}".schema_version').fetchone(),
            conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                         "WHERE table_schema = %s ORDER BY 1, 2", (schema_name,)).fetchall(),
            conn.execute(f'SELECT * FROM "{schema_name}".events ORDER BY position').fetchall(),
        )


def drop_schema(url: str, schema_name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema_name}" CASCADE')


def postgres_to_v1(url: str, schema_name: str) -> None:
    """Turn a schema back into version 1, as the v1 store created it: no inboxes, no wake times,
    no consumer offsets, no members or owners."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        s = f'"{schema_name}"'
        conn.execute(f"DROP TABLE {s}.inbox")
        conn.execute(f"DROP TABLE {s}.wake")
        conn.execute(f"DROP TABLE {s}.offsets")
        conn.execute(f"DROP TABLE {s}.members")
        conn.execute(f"DROP TABLE {s}.owners")
        conn.execute(f"ALTER TABLE {s}.global_position DROP COLUMN inbox_seq")
        conn.execute(f"UPDATE {s}.schema_version SET version = 1")


async def test_postgres_upgrades_a_v1_schema_in_place_and_keeps_its_events(
        postgres_url: str, postgres_schema: str) -> None:
    from eventstore.postgres import SCHEMA_VERSION, PostgresEventStore

    held = await fill_postgres(postgres_url, postgres_schema)
    fresh = f"{postgres_schema}_new"
    try:
        async with PostgresEventStore(postgres_url, schema=fresh) as store:
            await store.work()
        postgres_to_v1(postgres_url, postgres_schema)
        assert postgres_state(postgres_url, postgres_schema)[0] == (1,)
        async with PostgresEventStore(postgres_url, schema=postgres_schema) as store, \
                PostgresEventStore(postgres_url, schema=postgres_schema) as other:
            assert [e async for e in store.read_all()] == held
            assert [e async for e in other.read_all()] == held
            assert await other.work() == []
            message = NewEvent("Msg", {"hello": 1})
            after = await store.append("a", [NewEvent("E", 9)], expected_version=3,
                                       enqueue=[("b", message)], wake_at=7.5)
            assert (after.version, after.position) == (4, held[-1].position + 1)
            [waiting] = [m async for m in other.read_inbox("b")]
            assert (waiting.id, waiting.data, waiting.position) == (message.id, {"hello": 1}, 1)
            assert [(e.stream, e.wake_at, e.waiting) for e in await other.work()] == [
                ("a", 7.5, 0), ("b", None, 1)]
        version, columns, _ = postgres_state(postgres_url, postgres_schema)
        assert version == (SCHEMA_VERSION,)
        assert columns == postgres_state(postgres_url, fresh)[1]  # as a new schema has them
    finally:
        await trio.to_thread.run_sync(drop_schema, postgres_url, fresh)


async def test_postgres_upgrades_a_schema_in_place(
        postgres_url: str, postgres_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import eventstore._postgres_sql as sql
    from eventstore.postgres import PostgresEventStore

    held = await fill_postgres(postgres_url, postgres_schema)
    current = sql.SCHEMA_VERSION  # a made-up next version
    monkeypatch.setattr(sql, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(sql.MIGRATIONS, current, (
        "ALTER TABLE {s}.events ADD COLUMN note text",
        "UPDATE {s}.events SET note = 'migrated'",
    ))
    async with PostgresEventStore(postgres_url, schema=postgres_schema) as store, \
            PostgresEventStore(postgres_url, schema=postgres_schema) as other:
        assert [e async for e in store.read_all()] == held
        assert [e async for e in other.read_all()] == held  # the second one found it upgraded
        assert await store.last_version("a") == 3
        snapshot = await store.load_snapshot("a")
        assert snapshot is not None and snapshot.state == {"total": 3}
        after = await store.append("a", [NewEvent("E", 9)], expected_version=3)
        assert (after.version, after.position) == (4, held[-1].position + 1)
    version, columns, rows = postgres_state(postgres_url, postgres_schema)
    assert version == (current + 1,) and ("events", "note") in columns
    assert [row[-1] for row in rows] == ["migrated"] * len(held) + [None]


async def test_a_postgres_migration_that_fails_midway_changes_nothing(
        postgres_url: str, postgres_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import eventstore._postgres_sql as sql
    from eventstore.postgres import PostgresEventStore

    await fill_postgres(postgres_url, postgres_schema)
    before = postgres_state(postgres_url, postgres_schema)
    current = sql.SCHEMA_VERSION  # a made-up next version
    monkeypatch.setattr(sql, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(sql.MIGRATIONS, current, (
        "ALTER TABLE {s}.events ADD COLUMN note text",
        "UPDATE {s}.no_such_table SET note = 'x'",  # the second statement fails
    ))
    with pytest.raises(SchemaError) as failed:
        async with PostgresEventStore(postgres_url, schema=postgres_schema) as store:
            await store.last_version("a")
    message = str(failed.value)
    assert f"from version {current} to {current + 1}" in message
    assert f"still at version {current}" in message
    assert "no_such_table" in message
    assert postgres_state(postgres_url, postgres_schema) == before

    monkeypatch.delitem(sql.MIGRATIONS, current)
    with pytest.raises(SchemaError, match=r"cannot upgrade in place.*python -m actors export"):
        async with PostgresEventStore(postgres_url, schema=postgres_schema) as store:
            await store.last_version("a")
    assert postgres_state(postgres_url, postgres_schema) == before
