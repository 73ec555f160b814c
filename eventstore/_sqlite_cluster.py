"""The cluster on SQLite: members, owners, claims and the fence check (see ``eventstore._cluster``).

Every time is the host's clock, read in SQL (``NOW``), so that every process on the host reads
the same one; a transaction reads it once and uses that value throughout. Claims run in a
``BEGIN IMMEDIATE`` transaction: SQLite's write lock serialises them with every append of every
process on the file, which is what makes the fence of an append (``fence_holds``, run in the
append's own write transaction) a plain read. The functions here take a connection and run in the
store's worker threads; ``SQLiteHeartbeat`` owns a connection of its own, for a thread of its own,
and so does ``InboxWatcher``, which polls the inboxes for the messages other processes store.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import trio

from ._cluster import Claim, Fence, MemberInfo, MemberState, NotAlive, Ownership
from ._errors import EventStoreError, InvalidArgument
from ._watcher import Watcher

NOW = "(julianday('now') - 2440587.5) * 86400.0"
"""The host's clock in SQL: seconds since the Unix epoch (to the millisecond)."""

SELECT_NOW = f"SELECT {NOW}"
# Live members as of ?1 (a time read once per transaction).
LIVE = "state = 'alive' AND heartbeat_at > ?1 - lease"
REAP = f"UPDATE members SET state = 'dead', ended_at = ?1 WHERE state = 'alive' AND NOT ({LIVE})"
IS_LIVE = f"SELECT 1 FROM members WHERE id = ?2 AND {LIVE}"
JOIN = ("INSERT INTO members (id, host, pid, hosting, lease, state, joined_at, heartbeat_at) "
        "VALUES (?, ?, ?, ?, ?, 'alive', ?, ?)")
LEAVE = ("UPDATE members SET state = 'left', ended_at = coalesce(ended_at, ?) "
         "WHERE id = ? AND state <> 'left'")
RELEASE_ALL = "UPDATE owners SET member = NULL WHERE member = ?"
OWNER = "SELECT member, epoch FROM owners WHERE stream = ?"
# Once members found dead are declared dead, a live owner is one whose state is 'alive'.
LIVE_OWNER = "SELECT 1 FROM members WHERE id = ? AND state = 'alive'"
# A member that owns the stream already keeps its epoch (one activation at a time per member).
TAKE = ("INSERT INTO owners (stream, member, epoch, claimed_at) VALUES (?1, ?2, 1, ?3) "
        "ON CONFLICT (stream) DO UPDATE SET member = excluded.member, "
        "epoch = owners.epoch + (owners.member IS NOT excluded.member), "
        "claimed_at = excluded.claimed_at")
# Streams with due work (waiting messages count as a wake time of 0) under one of the prefixes
# (?3, a JSON array), that no live member owns, earliest work first.
DUE = (
    "WITH due (stream, at) AS ("
    "SELECT stream, 0.0 FROM inbox GROUP BY stream "
    "UNION ALL SELECT stream, wake_at FROM wake WHERE wake_at <= ?1 + ?2) "
    "SELECT stream FROM due "
    "WHERE EXISTS (SELECT 1 FROM json_each(?3) AS p "
    "WHERE substr(due.stream, 1, length(p.value)) = p.value) "
    "AND NOT EXISTS (SELECT 1 FROM owners JOIN members ON members.id = owners.member "
    "WHERE owners.stream = due.stream AND members.state = 'alive') "
    "GROUP BY stream ORDER BY min(at), stream LIMIT ?4")
RELEASE = "UPDATE owners SET member = NULL WHERE stream = ? AND member = ? AND epoch = ?"
# Dead once the lease ran out, even before anyone declared it.
MEMBERS = (
    "SELECT id, host, pid, hosting, lease, "
    "CASE WHEN state = 'alive' AND heartbeat_at <= ?1 - lease THEN 'dead' ELSE state END, "
    "joined_at, heartbeat_at, ?1 - heartbeat_at, "
    "(SELECT count(*) FROM owners WHERE owners.member = members.id) "
    "FROM members ORDER BY joined_at, id")
OWNERS = "SELECT stream, member, epoch, claimed_at FROM owners"
FENCE = (f"SELECT 1 FROM owners JOIN members ON members.id = owners.member "
         f"WHERE owners.stream = ?3 AND owners.member = ?2 AND owners.epoch = ?4 AND {LIVE}")
BEAT = f"UPDATE members SET heartbeat_at = ?1 WHERE id = ?2 AND {LIVE}"
BURY = "UPDATE members SET state = 'dead', ended_at = ?1 WHERE id = ?2 AND state = 'alive'"


def now(conn: sqlite3.Connection) -> float:
    """The host's clock, as SQLite reads it."""
    value: float = conn.execute(SELECT_NOW).fetchone()[0]
    return value


def moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def fence_holds(conn: sqlite3.Connection, stream: str, fence: Fence) -> bool:
    """Whether ``fence`` owns ``stream`` and its member is live; in the caller's transaction."""
    return conn.execute(FENCE, (now(conn), fence.member, stream, fence.epoch)
                        ).fetchone() is not None


def join(conn: sqlite3.Connection, member: str, lease: float, hosting: bool, host: str,
         pid: int) -> float:
    conn.execute("BEGIN IMMEDIATE")
    at = now(conn)
    try:
        conn.execute(JOIN, (member, host, pid, int(hosting), lease, at, at))
    except sqlite3.IntegrityError:
        raise InvalidArgument(f"member {member!r} joined before: a member id is used once; "
                              "join under a new id") from None
    conn.execute("COMMIT")
    return at


def leave(conn: sqlite3.Connection, member: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(LEAVE, (now(conn), member))
    conn.execute(RELEASE_ALL, (member,))
    conn.execute("COMMIT")


def _claimer(conn: sqlite3.Connection, member: str) -> float:
    """Open the claim's transaction: declare the dead, check that ``member`` is live; the time.

    Raises:
        NotAlive: ``member`` is not live (the transaction is left to the caller to roll back).
    """
    conn.execute("BEGIN IMMEDIATE")
    at = now(conn)
    if conn.execute(IS_LIVE, (at, member)).fetchone() is None:
        raise NotAlive(member)
    conn.execute(REAP, (at,))
    return at


def _take(conn: sqlite3.Connection, stream: str, member: str, at: float) -> Claim:
    """Claim ``stream`` for ``member`` in the claim's transaction, unless another live member
    owns it; a member that owns it already keeps its epoch."""
    row = conn.execute(OWNER, (stream,)).fetchone()
    if row is not None and row[0] is not None and row[0] != member and \
            conn.execute(LIVE_OWNER, (row[0],)).fetchone() is not None:
        return Claim(stream, None, row[0])
    conn.execute(TAKE, (stream, member, at))
    epoch = 1 if row is None else row[1] if row[0] == member else row[1] + 1
    return Claim(stream, epoch, member)


def claim(conn: sqlite3.Connection, stream: str, member: str) -> Claim:
    at = _claimer(conn, member)
    claimed = _take(conn, stream, member, at)
    conn.execute("COMMIT")
    return claimed


def claim_due(conn: sqlite3.Connection, member: str, prefixes: tuple[str, ...], limit: int,
              slack: float) -> list[Claim]:
    at = _claimer(conn, member)
    streams = [stream for (stream,) in conn.execute(
        DUE, (at, slack, json.dumps(prefixes), limit)).fetchall()]
    claims = [_take(conn, stream, member, at) for stream in streams]
    conn.execute("COMMIT")
    return claims


def release(conn: sqlite3.Connection, stream: str, fence: Fence) -> bool:
    return conn.execute(RELEASE, (stream, fence.member, fence.epoch)).rowcount == 1


def members(conn: sqlite3.Connection) -> list[MemberInfo]:
    found = []
    for id, host, pid, hosting, lease, state, joined, beat, age, owned in conn.execute(
            MEMBERS, (now(conn),)).fetchall():
        status: MemberState = state
        found.append(MemberInfo(id, host, pid, bool(hosting), lease, status, moment(joined),
                                moment(beat), max(age, 0.0), owned))
    return found


def owners(conn: sqlite3.Connection, member: str | None,
           streams: list[str] | None) -> list[Ownership]:
    where, args = [], []
    if member is not None:
        where.append("member = ?")
        args.append(member)
    if streams is not None:
        where.append("stream IN (SELECT value FROM json_each(?))")
        args.append(json.dumps(streams))
    sql = OWNERS + (" WHERE " + " AND ".join(where) if where else "")
    return [Ownership(stream, owner, epoch, moment(at))
            for stream, owner, epoch, at in conn.execute(sql, args).fetchall()]


class SQLiteHeartbeat:
    """A member's heartbeat on a connection of its own, opened on the first ``beat()``.

    Args:
        member: the member whose lease it renews.
        connect: opens a connection to the store's file (in autocommit mode).
        error: turns a ``sqlite3.Error`` into the store's ``EventStoreError``.
    """

    def __init__(self, member: str, connect: Callable[[], sqlite3.Connection],
                 error: Callable[[sqlite3.Error, str], EventStoreError]) -> None:
        self.member = member
        self._connect = connect
        self._error = error
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._lock = threading.Lock()  # one beat at a time; close waits for it

    def beat(self) -> float | None:
        """Renew the lease: the host's clock when renewed, or None (the member is declared
        dead now, if it was still marked alive: it never comes back)."""
        with self._lock:
            if self._closed:
                raise EventStoreError(f"the heartbeat of member {self.member!r} is closed: "
                                      "make a new one with store.heartbeat(member)")
            try:
                if self._conn is None:
                    self._conn = self._connect()
                return self._beat(self._conn)
            except sqlite3.Error as exc:
                raise self._error(exc, f"cannot renew the lease of member {self.member!r}"
                                  ) from exc

    def _beat(self, conn: sqlite3.Connection) -> float | None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            at = now(conn)
            renewed = conn.execute(BEAT, (at, self.member)).rowcount == 1
            if not renewed:
                conn.execute(BURY, (at, self.member))
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
        return at if renewed else None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


# The highest inbox sequence number handed out (AUTOINCREMENT keeps it), and the inboxes that got
# messages since a given one.
INBOX_HIGH = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'inbox'), 0)"
INBOXES_SINCE = "SELECT DISTINCT stream FROM inbox WHERE seq > ?"


class InboxWatcher(Watcher):
    """A thread that looks at the inboxes every ``interval`` seconds and tells ``callback``, on
    trio's thread, which streams got messages since its last look (SQLite has no notifications:
    this is ``watch_inboxes`` on SQLite). Messages stored and consumed between two looks are not
    told: their owner consumed them. It stops with ``stop()``, or when trio's run ends.

    Args:
        connect: opens a connection to the store's file (in autocommit mode).
        interval: seconds between looks.
        callback: told the streams, a list of names.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], interval: float,
                 callback: Callable[[list[str] | None], None]) -> None:
        self.callback = callback
        self._connect = connect
        self._interval = interval
        super().__init__(self._watch, "eventstore inbox watch")

    def _watch(self) -> None:
        conn: sqlite3.Connection | None = None
        seen: int | None = None
        try:
            while not self.stopping.is_set():
                try:
                    if conn is None:
                        conn = self._connect()
                        conn.execute("PRAGMA query_only = 1")
                    high: int = conn.execute(INBOX_HIGH).fetchone()[0]
                    if seen is not None and high > seen:
                        streams = [stream for (stream,) in
                                   conn.execute(INBOXES_SINCE, (seen,)).fetchall()]
                        if streams:
                            self.trio_token.run_sync_soon(self._tell, streams)
                    seen = high
                except sqlite3.Error:
                    if conn is not None:
                        conn.close()
                    conn = None  # connect again at the next look; ``seen`` stays
                except trio.RunFinishedError:
                    return
                self.stopping.wait(self._interval)
        finally:
            if conn is not None:
                conn.close()

    def _tell(self, streams: list[str]) -> None:
        if not self.stopping.is_set():
            self.callback(streams)
