"""Child process for tests/test_migration_kills.py: opens a store, killing itself midway.

Usage: ``migration_killer.py DB K``. Opens ``SQLiteEventStore(DB)``, which upgrades an older
file in place, and sends itself SIGKILL just before its writer connection runs its K-th SQL
statement (counting from 1; each statement a trigger runs counts too). With K = 0 it never
kills itself: it prints each statement's first line, one per line, as it runs, and exits once
the store is open.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys

import trio

from eventstore.sqlite import SQLiteEventStore


def main(path: str, kill_at: int) -> None:
    count = 0

    def traced(statement: str) -> None:
        nonlocal count
        count += 1
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if not kill_at:
            print(statement.strip().splitlines()[0], flush=True)

    connect = SQLiteEventStore._connection

    def connection(store: SQLiteEventStore) -> sqlite3.Connection:
        conn = connect(store)
        # The first connection is the writer's, which upgrades the file (the reader's opens
        # later, on its own thread, and only reads).
        if not count:
            conn.set_trace_callback(traced)
        return conn

    SQLiteEventStore._connection = connection  # type: ignore[method-assign]

    async def open_store() -> None:
        async with SQLiteEventStore(path):
            pass

    trio.run(open_store)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
