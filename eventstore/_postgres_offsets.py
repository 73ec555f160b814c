"""``PostgresEventStore``'s consumer offsets: the blocking work each operation runs on a
connection (in a worker thread).

``save`` is one transaction on a connection of its own (from the store's pool): it locks the
consumer's row (``FOR UPDATE``) before checking ``expected``, runs the caller's statements with
the store's schema first on the ``search_path``, and stores the offset.
"""

from __future__ import annotations

from typing import Any

import psycopg

from ._cluster import Fence, Fenced
from ._errors import EventStoreError, OffsetConflict
from ._offsets import ConsumerOffset, Statement
from ._postgres_sql import LIVE

Conn = psycopg.Connection[tuple[Any, ...]]
_COLUMNS = "name, position, state, error, updated_at"


def load(conn: Conn, schema: str, name: str) -> ConsumerOffset | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM {schema}.offsets WHERE name = %s",
                       (name,)).fetchone()
    return None if row is None else ConsumerOffset(*row)


def load_all(conn: Conn, schema: str) -> list[ConsumerOffset]:
    return [ConsumerOffset(*row)
            for row in conn.execute(f"SELECT {_COLUMNS} FROM {schema}.offsets").fetchall()]


def head(conn: Conn, schema: str) -> int:
    """The highest position given: committed, since the counter moves in the appends' own
    transactions."""
    row = conn.execute(f"SELECT position FROM {schema}.global_position").fetchone()
    return 0 if row is None else int(row[0])


def save(conn: Conn, schema: str, name: str, position: int, expected: int | None, state: str,
         error: str | None, statements: list[Statement], fence: Fence | None = None) -> None:
    if not statements and expected is not None and fence is None:
        # The common move of an offset with nothing else to write: one statement, one round
        # trip (the connection is in autocommit mode).
        moved = conn.execute(
            f"UPDATE {schema}.offsets SET position = %s, state = %s, error = %s, "
            "updated_at = statement_timestamp() WHERE name = %s AND position = %s RETURNING 1",
            (position, state, error, name, expected)).fetchone()
        if moved is not None:
            return
    with conn.transaction():
        if fence is not None:
            # The owner row, locked until the commit: a claim of it waits for this transaction.
            owned = conn.execute(
                f"SELECT FROM {schema}.owners o JOIN {schema}.members m ON m.id = o.member "
                f"WHERE o.stream = %s AND o.member = %s AND o.epoch = %s AND {LIVE.format(m='m')} "
                "FOR SHARE OF o", (name, fence.member, fence.epoch)).fetchone()
            if owned is None:
                raise Fenced(name, fence.member, fence.epoch)
        row = conn.execute(f"SELECT position FROM {schema}.offsets WHERE name = %s FOR UPDATE",
                           (name,)).fetchone()
        if expected is not None:
            actual = 0 if row is None else int(row[0])
            if actual != expected:
                raise OffsetConflict(name, expected, actual)
        if statements:
            conn.execute(f"SET LOCAL search_path TO {schema}, public")
            for index, (text, params) in enumerate(statements):
                try:
                    conn.execute(text, params)
                except psycopg.Error as exc:
                    raise EventStoreError(
                        f"statement {index} of consumer {name!r} failed: "
                        f"{type(exc).__name__}: {exc}: {text!r}; nothing was written, the "
                        "offset is unchanged") from exc
        if row is None:
            # Two runners saving a consumer's first offset at once: the second finds the row.
            inserted = conn.execute(
                f"INSERT INTO {schema}.offsets AS o (name, position, state, error) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO "
                + ("NOTHING" if expected is not None else
                   "UPDATE SET position = excluded.position, state = excluded.state, "
                   "error = excluded.error, updated_at = excluded.updated_at")
                + " RETURNING name", (name, position, state, error)).fetchone()
            if inserted is None and expected is not None:
                (actual,) = conn.execute(f"SELECT position FROM {schema}.offsets "
                                         "WHERE name = %s", (name,)).fetchone() or (0,)
                raise OffsetConflict(name, expected, int(actual))
        else:
            conn.execute(f"UPDATE {schema}.offsets SET position = %s, state = %s, error = %s, "
                         "updated_at = statement_timestamp() WHERE name = %s",
                         (position, state, error, name))
