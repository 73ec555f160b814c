"""Child process for tests/test_migration_kills.py: opens a store, killing itself midway.

Usage: ``migration_killer.py sqlite DB K`` or ``migration_killer.py postgres URL SCHEMA K``.
Opens the store, which upgrades an older file or schema in place, and sends itself SIGKILL just
before the K-th SQL statement of the connection that upgrades it (counting from 1). On SQLite
each statement a trigger runs counts too; on PostgreSQL the ``COMMIT`` at the end of each
transaction counts as a statement. With K = 0 it never kills itself: it prints each statement's
first line, one per line, as it runs, and exits once the store is open.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterator
from typing import Any

import trio


def tracer(kill_at: int) -> Callable[[str], None]:
    """Called before each statement: kills the process before the ``kill_at``-th."""
    count = 0

    def traced(statement: str) -> None:
        nonlocal count
        count += 1
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if not kill_at:
            print(statement.strip().splitlines()[0], flush=True)

    return traced


def open_sqlite(path: str, kill_at: int) -> None:
    from eventstore.sqlite import SQLiteEventStore

    connect = SQLiteEventStore._connection
    traced = tracer(kill_at)
    connections = 0

    def connection(store: SQLiteEventStore) -> sqlite3.Connection:
        nonlocal connections
        conn = connect(store)
        connections += 1
        # The first connection is the writer's, which upgrades the file (the reader's opens
        # later, on its own thread, and only reads).
        if connections == 1:
            conn.set_trace_callback(traced)
        return conn

    SQLiteEventStore._connection = connection  # type: ignore[method-assign]

    async def open_store() -> None:
        async with SQLiteEventStore(path):
            pass

    trio.run(open_store)


class Traced:
    """A psycopg connection whose statements and commits go through ``traced`` first."""

    def __init__(self, conn: Any, traced: Callable[[str], None]) -> None:
        self._conn = conn
        self._traced = traced

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        self._traced(str(query))
        return self._conn.execute(query, *args, **kwargs)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._conn.transaction():
            yield
            self._traced("COMMIT")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def open_postgres(url: str, schema: str, kill_at: int) -> None:
    import eventstore.postgres as postgres

    install = postgres.install_schema
    traced = tracer(kill_at)

    def install_traced(conn: Any, *args: Any, **kwargs: Any) -> None:
        install(Traced(conn, traced), *args, **kwargs)

    postgres.install_schema = install_traced  # type: ignore[assignment]

    async def open_store() -> None:
        async with postgres.PostgresEventStore(url, schema=schema) as store:
            await store.last_version("a")  # the schema is installed on first use

    trio.run(open_store)


if __name__ == "__main__":
    if sys.argv[1] == "sqlite":
        open_sqlite(sys.argv[2], int(sys.argv[3]))
    else:
        open_postgres(sys.argv[2], sys.argv[3], int(sys.argv[4]))
