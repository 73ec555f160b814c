"""``PostgresEventStore``'s members and owners (``eventstore._cluster``): the blocking work each
operation runs on a connection, in a worker thread.

A claim is one transaction sent in one round trip: it takes the ``global_position`` row lock that
every append transaction takes first, so claims and appends are serialised and an append's fence
is a plain read. ``lock_timeout`` bounds its wait for that lock. Every time is the server's
``clock_timestamp()``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg

from ._cluster import Claim, Fence, MemberInfo, NotAlive, Ownership
from ._errors import InvalidArgument
from ._postgres_sql import LIVE

Conn = psycopg.Connection[tuple[Any, ...]]

CLAIM_LOCK_TIMEOUT = "2s"
"""How long a claim waits for the position lock before it fails (and is tried again later)."""

_NOW = "extract(epoch FROM clock_timestamp())"


class Statements:
    """The cluster's SQL, with the schema name quoted in once."""

    def __init__(self, s: str) -> None:
        live_m = LIVE.format(m="m")
        self.join = (
            # One clock reading for both times: two column defaults would each read the clock.
            f"INSERT INTO {s}.members (id, host, pid, hosting, lease, state, joined_at, "
            "heartbeat_at) SELECT %s, %s, %s, %s, %s, 'alive', t.now, t.now "
            "FROM (SELECT clock_timestamp() AS now) AS t ON CONFLICT (id) DO NOTHING "
            "RETURNING extract(epoch FROM joined_at)")
        self.beat = (
            f"UPDATE {s}.members AS m SET heartbeat_at = clock_timestamp() "
            f"WHERE id = %s AND {live_m} RETURNING extract(epoch FROM heartbeat_at)")
        self.bury = (f"UPDATE {s}.members SET state = 'dead', ended_at = clock_timestamp() "
                     "WHERE id = %s AND state = 'alive'")
        self.leave = (
            f"WITH gone AS (UPDATE {s}.members SET state = 'left', ended_at = clock_timestamp() "
            "WHERE id = %s AND state = 'alive') "
            f"UPDATE {s}.owners SET member = NULL WHERE member = %s")
        self.lock = f"SELECT position FROM {s}.global_position FOR UPDATE"
        # A claim waits for a fenced offset save holding its row before it takes the position
        # lock, so that it never holds up appends while it waits.
        self.lock_owner = f"SELECT FROM {s}.owners WHERE stream = %(stream)s FOR UPDATE"
        me = f"SELECT FROM {s}.members AS m WHERE id = %(member)s AND {live_m}"
        reaped = (f"UPDATE {s}.members AS m SET state = 'dead', ended_at = clock_timestamp() "
                  f"WHERE state = 'alive' AND NOT ({live_m})")
        upsert = ("ON CONFLICT (stream) DO UPDATE SET member = excluded.member, "
                  "epoch = excluded.epoch, claimed_at = excluded.claimed_at")
        # Declares dead whoever's lease ran out; claims unless another live member owns it (a
        # member that owns it already keeps its epoch: it serves one activation at a time).
        self.claim = f"""
            WITH me AS ({me}), reaped AS ({reaped}), cur AS (
                SELECT o.member, o.epoch, coalesce({live_m}, false) AS live
                FROM {s}.owners o LEFT JOIN {s}.members m ON m.id = o.member
                WHERE o.stream = %(stream)s
            ), claimed AS (
                INSERT INTO {s}.owners (stream, member, epoch, claimed_at)
                SELECT %(stream)s, %(member)s, CASE WHEN (SELECT member FROM cur) = %(member)s
                    THEN (SELECT epoch FROM cur) ELSE coalesce((SELECT epoch FROM cur), 0) + 1
                    END, clock_timestamp()
                WHERE EXISTS (SELECT FROM me)
                    AND NOT EXISTS (SELECT FROM cur WHERE live AND member <> %(member)s)
                {upsert}
                RETURNING epoch
            )
            SELECT EXISTS (SELECT FROM me), (SELECT epoch FROM claimed), (SELECT member FROM cur)
        """
        # Due work nobody alive owns: waiting messages first, then wake times, oldest first.
        self.claim_due = f"""
            WITH me AS ({me}), reaped AS ({reaped}), work AS (
                SELECT stream, min(at) AS at FROM (
                    SELECT stream, wake_at AS at FROM {s}.wake
                    WHERE wake_at <= {_NOW} + %(slack)s
                    UNION ALL SELECT DISTINCT stream, 0 FROM {s}.inbox
                ) AS w
                WHERE EXISTS (SELECT FROM unnest(%(prefixes)s::text[]) AS p(prefix)
                              WHERE left(w.stream, length(p.prefix)) = p.prefix)
                GROUP BY stream
            ), due AS (
                SELECT work.stream, work.at, o.epoch FROM work
                LEFT JOIN {s}.owners o ON o.stream = work.stream
                LEFT JOIN {s}.members m ON m.id = o.member
                WHERE EXISTS (SELECT FROM me) AND NOT coalesce({live_m}, false)
                ORDER BY work.at, work.stream LIMIT %(limit)s
            ), claimed AS (
                INSERT INTO {s}.owners (stream, member, epoch, claimed_at)
                SELECT stream, %(member)s, coalesce(epoch, 0) + 1, clock_timestamp() FROM due
                {upsert}
                RETURNING stream, epoch
            )
            SELECT claimed.stream, claimed.epoch, due.at FROM claimed JOIN due USING (stream)
            UNION ALL SELECT NULL, NULL, NULL WHERE NOT EXISTS (SELECT FROM me)
        """
        self.release = (f"UPDATE {s}.owners SET member = NULL "
                        "WHERE stream = %s AND member = %s AND epoch = %s")
        self.members = f"""
            SELECT m.id, m.host, m.pid, m.hosting, m.lease,
                   CASE WHEN {live_m} THEN 'alive' WHEN m.state = 'alive' THEN 'dead'
                        ELSE m.state END,
                   m.joined_at, m.heartbeat_at,
                   extract(epoch FROM clock_timestamp() - m.heartbeat_at)::float8,
                   (SELECT count(*) FROM {s}.owners o WHERE o.member = m.id)
            FROM {s}.members m ORDER BY m.joined_at, m.id
        """
        owners = f"SELECT stream, member, epoch, claimed_at FROM {s}.owners"
        self.owners = owners
        self.owners_of = f"{owners} WHERE member = %s"
        self.owners_in = f"{owners} WHERE stream = ANY(%s::text[])"
        self.owners_of_in = f"{owners} WHERE member = %s AND stream = ANY(%s::text[])"
        self.now = f"SELECT {_NOW}::float8"


def join(conn: Conn, q: Statements, member: str, lease: float, hosting: bool, host: str,
         pid: int) -> float:
    row = conn.execute(q.join, (member, host, pid, hosting, lease)).fetchone()
    if row is None:
        raise InvalidArgument(f"member {member!r} joined before; a member id is used once: "
                              "join under a new one")
    return float(row[0])


def beat(conn: Conn, q: Statements, member: str) -> float | None:
    row = conn.execute(q.beat, (member,)).fetchone()
    if row is None:
        conn.execute(q.bury, (member,))  # never revived: its lease ran out
        return None
    return float(row[0])


def leave(conn: Conn, q: Statements, member: str) -> None:
    conn.execute(q.leave, (member, member))


def _locked(conn: Conn, q: Statements, statement: str, params: dict[str, Any],
            first: str | None = None) -> list[tuple[Any, ...]]:
    """Run ``statement`` in a transaction that takes the position lock first (after ``first``),
    in one round trip (so a client paused half way cannot hold the lock)."""
    with conn.pipeline():
        conn.execute("BEGIN")
        conn.execute(f"SET LOCAL lock_timeout = '{CLAIM_LOCK_TIMEOUT}'")
        if first is not None:
            conn.execute(first, params)
        conn.execute(q.lock)
        cursor = conn.execute(statement, params)
        conn.execute("COMMIT")
    return cursor.fetchall()


def claim(conn: Conn, q: Statements, stream: str, member: str) -> Claim:
    [(alive, epoch, owner)] = _locked(conn, q, q.claim, {"stream": stream, "member": member},
                                      q.lock_owner)
    if not alive:
        raise NotAlive(member)
    if epoch is not None:
        return Claim(stream, int(epoch), member)
    return Claim(stream, None, owner)


def claim_due(conn: Conn, q: Statements, member: str, prefixes: tuple[str, ...], limit: int,
              slack: float) -> list[Claim]:
    rows = _locked(conn, q, q.claim_due, {"member": member, "prefixes": list(prefixes),
                                          "limit": limit, "slack": slack})
    if any(stream is None for stream, _, _ in rows):
        raise NotAlive(member)
    rows.sort(key=lambda row: (row[2], row[0]))
    return [Claim(stream, int(epoch), member) for stream, epoch, _ in rows]


def release(conn: Conn, q: Statements, stream: str, fence: Fence) -> bool:
    return conn.execute(q.release, (stream, fence.member, fence.epoch)).rowcount > 0


def members(conn: Conn, q: Statements) -> list[MemberInfo]:
    return [MemberInfo(id, host, pid, hosting, lease, state, joined, beat_at, max(age, 0.0),
                       int(owned))
            for id, host, pid, hosting, lease, state, joined, beat_at, age, owned
            in conn.execute(q.members).fetchall()]


def owners(conn: Conn, q: Statements, member: str | None,
           streams: list[str] | None) -> list[Ownership]:
    if member is None and streams is None:
        cursor = conn.execute(q.owners)
    elif streams is None:
        cursor = conn.execute(q.owners_of, (member,))
    elif member is None:
        cursor = conn.execute(q.owners_in, (streams,))
    else:
        cursor = conn.execute(q.owners_of_in, (member, streams))
    return [Ownership(stream, owner, int(epoch), at) for stream, owner, epoch, at in cursor]


def now(conn: Conn, q: Statements) -> float:
    row = conn.execute(q.now).fetchone()
    assert row is not None
    return float(row[0])


class Heartbeat:
    """A member's heartbeat on a connection of its own (``EventStore.heartbeat``)."""

    def __init__(self, connect: Callable[[], Conn], q: Statements, member: str,
                 failure: Callable[[psycopg.Error, Conn], Exception]) -> None:
        self._connect = connect
        self._q = q
        self._member = member
        self._failure = failure
        self._conn: Conn | None = None
        self._lock = threading.Lock()

    def beat(self) -> float | None:
        with self._lock:
            if self._conn is None or self._conn.broken or self._conn.closed:
                self._conn = self._connect()
            conn = self._conn
            try:
                return beat(conn, self._q, self._member)
            except psycopg.Error as exc:
                conn.close()
                self._conn = None
                raise self._failure(exc, conn) from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
