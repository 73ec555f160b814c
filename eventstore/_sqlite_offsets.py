"""``SQLiteEventStore``'s consumer offsets: the blocking work each operation runs on a connection.

``save`` runs on the writer connection, in the store's writer thread, as one short ``BEGIN
IMMEDIATE`` transaction: the caller's statements were collected beforehand (a projection's
handler has already returned), so the write lock is never held while user code awaits anything.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from ._cluster import Fence, Fenced
from ._errors import EventStoreError, OffsetConflict
from ._offsets import ConsumerOffset, Statement
from ._sqlite_cluster import fence_holds
from ._sqlite_schema import micros

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = "name, position, state, error, updated_at"


def _offset(row: tuple[str, int, str, str | None, int]) -> ConsumerOffset:
    name, position, state, error, updated_at = row
    return ConsumerOffset(name, int(position), state, error,
                          _EPOCH + timedelta(microseconds=updated_at))


def load(conn: sqlite3.Connection, name: str) -> ConsumerOffset | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM offsets WHERE name = ?", (name,)).fetchone()
    return None if row is None else _offset(row)


def load_all(conn: sqlite3.Connection) -> list[ConsumerOffset]:
    return [_offset(row) for row in conn.execute(f"SELECT {_COLUMNS} FROM offsets")]


def head(conn: sqlite3.Connection) -> int:
    """The highest position ever given (AUTOINCREMENT's counter: deleted events count too)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return 0 if row is None else int(row[0])


def save(conn: sqlite3.Connection, name: str, position: int, expected: int | None, state: str,
         error: str | None, statements: list[Statement], fence: Fence | None = None) -> None:
    """One transaction: check ``fence`` and ``expected``, run ``statements``, store the
    offset."""
    conn.execute("BEGIN IMMEDIATE")
    # Under the write lock that claims take too: the fence is a plain read.
    if fence is not None and not fence_holds(conn, name, fence):
        raise Fenced(name, fence.member, fence.epoch)
    if expected is not None:
        row = conn.execute("SELECT position FROM offsets WHERE name = ?", (name,)).fetchone()
        actual = 0 if row is None else int(row[0])
        if actual != expected:
            raise OffsetConflict(name, expected, actual)
    for index, (sql, params) in enumerate(statements):
        try:
            conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise EventStoreError(
                f"statement {index} of consumer {name!r} failed: "
                f"{getattr(exc, 'sqlite_errorname', type(exc).__name__)} ({exc}): {sql!r}; "
                "nothing was written, the offset is unchanged") from exc
        except (ValueError, TypeError, OverflowError) as exc:  # parameters sqlite3 refuses
            raise EventStoreError(
                f"statement {index} of consumer {name!r} has parameters SQLite cannot take "
                f"({exc}): {sql!r}; nothing was written, the offset is unchanged") from exc
    if conn.in_transaction is False:
        raise EventStoreError(f"a statement of consumer {name!r} ended the transaction (COMMIT "
                              "or ROLLBACK in a statement); the offset was not stored")
    conn.execute(
        f"INSERT INTO offsets ({_COLUMNS}) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
        "SET position = excluded.position, state = excluded.state, error = excluded.error, "
        "updated_at = excluded.updated_at",
        (name, position, state, error, micros(datetime.now(UTC))))
    conn.execute("COMMIT")
