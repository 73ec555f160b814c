"""A process killed (SIGKILL) while it upgrades a SQLite file leaves a file that opens and upgrades.

Each upgrade step runs in one transaction, so wherever the kill lands the file must be exactly as
one of the committed steps left it, and the next open must finish the upgrade with every event,
snapshot and position kept. A child process (``children/migration_killer.py``) opens an old file
and kills itself just before its writer runs its K-th SQL statement; the test first has it list
the statements of an undisturbed upgrade.

SQLite files: a format-1 file (``test_migrations.build_v1``), which runs every upgrade there is,
and a format-6 file with rows in every table (``test_migrations_shapes.build_v6``). PostgreSQL: a
schema turned back into version 1 (``test_migrations.postgres_to_v1``); the server rolls back the
killed client's open transaction. By default the kill lands at the start, the middle and the
``COMMIT`` of each step's transaction; ``ACTORS_TEST_MIGRATION_KILLS=all`` kills before every
statement in turn.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlite_files import dump
from test_migrations import build_v1, fill_postgres, postgres_state, postgres_to_v1
from test_migrations_shapes import build_v6

import eventstore._postgres_sql as postgres_sql
import eventstore._sqlite_schema as schema
from eventstore.sqlite import SQLiteEventStore

CHILD = Path(__file__).parent / "children" / "migration_killer.py"
EVERY_STATEMENT = os.environ.get("ACTORS_TEST_MIGRATION_KILLS") == "all"


def _v1(path: Path) -> list[tuple[Any, ...]]:
    return list(build_v1(path)["events"])


FILES: dict[str, tuple[int, Callable[[Path], list[tuple[Any, ...]]]]] = {
    "v1": (1, _v1), "v6": (6, build_v6)}


def run_child(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHILD), *map(str, args)],
                          capture_output=True, text=True, timeout=60, check=False)


def committed_states(original: Path, scratch: Path) -> dict[int, tuple[int, list[str]]]:
    """The file as each upgrade step leaves it once committed, by schema version."""
    shutil.copy(original, scratch)
    states = {}
    conn = sqlite3.connect(scratch, isolation_level=None)
    try:
        while True:
            states[conn.execute("PRAGMA user_version").fetchone()[0]] = dump(scratch)
            if schema._step_up(conn, str(scratch)):
                break
    finally:
        conn.close()
    return states


def committed_postgres_states(url: str, name: str) -> dict[int, tuple[Any, ...]]:
    """A schema as each upgrade step leaves it once committed, by version, from version 1 on."""
    import psycopg
    from psycopg import sql

    postgres_to_v1(url, name)
    states = {1: postgres_state(url, name)}
    q = postgres_sql.Statements(sql.Identifier(name).as_string())
    with psycopg.connect(url, autocommit=True) as conn:
        for version in range(1, postgres_sql.SCHEMA_VERSION):
            assert postgres_sql._migrate(conn, q, name, url, version) == version + 1
            states[version + 1] = postgres_state(url, name)
    return states


def kill_points(statements: list[str], begins: list[int]) -> list[int]:
    """The statements to kill before (1-based): every one, or each transaction's first (given:
    ``begins``), middle and ``COMMIT``."""
    if EVERY_STATEMENT:
        return list(range(1, len(statements) + 1))
    commits = [n for n, text in enumerate(statements, 1) if text == "COMMIT"]
    assert len(begins) == len(commits) >= 2, statements
    points = set()
    for begin, commit in zip(begins, commits, strict=True):
        points.update((begin, (begin + commit) // 2, commit))
    return sorted(points)


def _read(e: Any) -> tuple[Any, ...]:
    return (e.stream, e.version, e.position, e.type, e.data, e.metadata, e.id, e.recorded_at)


@pytest.mark.parametrize("name", FILES)
async def test_a_kill_anywhere_in_an_upgrade_loses_nothing(tmp_path: Path, name: str) -> None:
    version, build = FILES[name]
    original = tmp_path / f"{name}.db"
    held = build(original)
    states = committed_states(original, tmp_path / "states.db")
    assert sorted(states) == list(range(version, schema.SCHEMA_VERSION + 1))

    listing = tmp_path / "listing.db"
    shutil.copy(original, listing)
    undisturbed = run_child("sqlite", listing, 0)
    assert undisturbed.returncode == 0, undisturbed.stderr
    statements = undisturbed.stdout.splitlines()
    assert dump(listing) == states[schema.SCHEMA_VERSION]

    landed = set()
    begins = [n for n, text in enumerate(statements, 1) if text.startswith("BEGIN")]
    for point in kill_points(statements, begins):
        path = tmp_path / f"killed-{point}.db"
        shutil.copy(original, path)
        killed = run_child("sqlite", path, point)
        where = f"killed before statement {point} ({statements[point - 1]!r})"
        assert killed.returncode == -signal.SIGKILL, f"{where}: {killed.stderr}"
        at, rows = dump(path)
        assert (at, rows) == states[at], f"{where}: the file is not as a committed step left it"
        landed.add(at)

        async with SQLiteEventStore(path) as store:
            assert [_read(e) async for e in store.read_all()] == held, where
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", where
        finally:
            conn.close()
        assert dump(path) == states[schema.SCHEMA_VERSION], where
    # Kills landed before the first step committed, between steps, and after the last.
    assert landed == set(states), landed


async def test_a_kill_anywhere_in_a_postgres_upgrade_loses_nothing(
        postgres_url: str, postgres_schema: str) -> None:
    from eventstore.postgres import PostgresEventStore

    held = await fill_postgres(postgres_url, postgres_schema)
    current = postgres_state(postgres_url, postgres_schema)
    states = committed_postgres_states(postgres_url, postgres_schema)
    assert states[postgres_sql.SCHEMA_VERSION] == current
    postgres_to_v1(postgres_url, postgres_schema)

    undisturbed = run_child("postgres", postgres_url, postgres_schema, 0)
    assert undisturbed.returncode == 0, undisturbed.stderr
    statements = undisturbed.stdout.splitlines()
    assert postgres_state(postgres_url, postgres_schema) == current
    # Each upgrade's transaction starts by taking the schema's advisory lock.
    begins = [n for n, text in enumerate(statements, 1) if "pg_advisory_xact_lock" in text]
    assert len(begins) == postgres_sql.SCHEMA_VERSION - 1, statements

    landed = set()
    for point in kill_points(statements, begins):
        postgres_to_v1(postgres_url, postgres_schema)
        killed = run_child("postgres", postgres_url, postgres_schema, point)
        where = f"killed before statement {point} ({statements[point - 1]!r})"
        assert killed.returncode == -signal.SIGKILL, f"{where}: {killed.stderr}"
        # What the killed client committed; its open transaction, if any, is not seen.
        state = postgres_state(postgres_url, postgres_schema)
        at = state[0][0]
        assert state == states[at], f"{where}: the schema is not as a committed step left it"
        landed.add(at)
        # Opening waits on the advisory lock until the server has rolled the killed one back.
        async with PostgresEventStore(postgres_url, schema=postgres_schema) as store:
            assert [e async for e in store.read_all()] == held, where
        assert postgres_state(postgres_url, postgres_schema) == current, where
    # Kills landed before the first step committed and between steps (nothing runs after the
    # last step's COMMIT).
    assert landed == set(range(1, postgres_sql.SCHEMA_VERSION)), landed
