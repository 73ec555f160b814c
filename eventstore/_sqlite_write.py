"""The write path of ``SQLiteEventStore``: a batch of appends planned, then committed.

The fast way plans each append's versions from the versions the store last saw and writes the
whole plan with one statement, its own transaction: an ``INSERT`` whose rows carry their own check
(that each stream's first planned version follows its stored version, and that no event id is a
deleted one), made once per statement; a failed check writes nothing. One statement matters: the
worker thread then spends the whole commit inside SQLite, without the GIL, instead of waiting for
the GIL again after each of several statements while trio runs the callers. A stream's stored
version is its newest event's, or the ``streams`` table's floor if higher (kept by deletions), so
an append writes no other table. What the plan cannot vouch for (an event of a shape the store
does not know yet: see ``_sqlite_shapes``), or what SQLite refuses, is written the careful way:
one ``BEGIN IMMEDIATE`` transaction and a savepoint per append, with the idempotent-retry and
expected-version checks against the stored ids and versions. A row SQLite refuses fails its own
append alone. When SQLite fails otherwise (a full disk, an I/O error), the
appends not yet committed are looked up by their event ids before they are reported: an error then
means that nothing of the append is stored. Everything here runs in the writer's worker thread.

An append with a side (messages to acknowledge or enqueue, a wake time: see ``eventstore._work``)
is planned too; a plan holding one is written in one ``BEGIN IMMEDIATE`` transaction of a few
statements: the plan's ``INSERT`` as above, then every acknowledgement, every enqueued message and
the wake times, a statement for each kind (``_Plan.takes`` keeps out of a plan an append whose
side would then come out otherwise than one append after the other). A stale plan, a retry (its
ids are stored) or a row SQLite refuses writes nothing of it, events or sides, and its appends go
the careful way, each side in its append's savepoint after its events. An ``enqueue`` is an append
without events: if SQLite fails before its transaction's ``COMMIT`` is sent, nothing of it is
stored and it gets the error; if the ``COMMIT`` itself fails, its messages are looked up in their
inboxes (``checked_enqueue``): all waiting means done, otherwise ``AppendOutcomeUnknown``, since a
stored message may have been consumed since, leaving no trace.

A fenced append (``Side.fence``: see ``eventstore._cluster``) always goes the careful way: in its
savepoint, after the idempotent-retry check (a retry returns its first result even once the fence
no longer holds) and before the expected-version check, its fence is read in the same write
transaction (``_sqlite_cluster.fence_holds``); a fence that no longer holds fails that append alone
with ``Fenced``, writing nothing of it. A fenced wake time alone (``set_wake(..., fence=)``) is an
append without events or messages: if its ``COMMIT`` fails, its outcome is unknown.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import attrs

from ._cluster import Fenced
from ._errors import AppendOutcomeUnknown, DuplicateEventId, EventStoreError, WrongExpectedVersion
from ._group_commit import AppendRequest, checked_enqueue, checked_outcome
from ._model import AppendResult, ExpectedVersion
from ._sqlite_cluster import fence_holds
from ._sqlite_schema import micros
from ._sqlite_shapes import Shape, ShapeBook, Stored, data_text, resolve, shape_of
from ._validate import EncodedEvent, StoredAt, retried, version_matches
from ._work import KEEP, NO_SIDE, Side

ID_CHUNK = 500  # values per IN (...) list, well under SQLite's bound-parameter limit
ROWS_PER_INSERT = 1000  # the most rows one INSERT statement takes (fewer on an old SQLite)
EVENT_WIDTH = 7  # values per row of INSERT_EVENT

# A row's values: its type the id of its shape in ``types`` (see ``_sqlite_shapes``), its data
# the text that shape says, its metadata JSON text, stored NULL when there is none (``{}``).
STORED_COLUMNS = "type, data, nullif(metadata, '{{}}'), id, recorded_at"
INSERT_EVENT = ("WITH rows (stream, version, type, data, metadata, id, recorded_at) AS "
                "(VALUES {}) INSERT INTO events (stream, version, type, data, metadata, id, "
                "recorded_at) SELECT stream, version, " + STORED_COLUMNS + " FROM rows")
MESSAGE_WIDTH = 6  # values per row of ENQUEUE
# A message whose id is waiting in that inbox already is skipped (so is a repeat in one statement).
ENQUEUE = ("INSERT INTO inbox (stream, id, type, data, metadata, recorded_at) VALUES {} "
           "ON CONFLICT (stream, id) DO NOTHING")
# The same, giving back the sequence number of each message it stored (SQLite 3.35 and later).
ENQUEUE_RETURNING = ENQUEUE + " RETURNING stream, id, seq"
RETURNING = sqlite3.sqlite_version_info >= (3, 35)
PREVIOUS = "SELECT max(seq) FROM inbox WHERE stream = ? AND seq < ?"
Seqs = dict[tuple[str, bytes], tuple[int, int]]
"""The sequence numbers of the messages a transaction stored, by (inbox, id), each with the one
of the message waiting before it in that inbox (0: none)."""
ACKNOWLEDGE = "DELETE FROM inbox WHERE stream = ? AND id IN ({})"
# Messages by (stream, id) pairs, each found through the unique index (a row value IN a VALUES
# list would scan the table).
ACKNOWLEDGE_PAIRS = ("DELETE FROM inbox WHERE seq IN (SELECT inbox.seq FROM (VALUES {}) AS v "
                     "CROSS JOIN inbox ON inbox.stream = v.column1 AND inbox.id = v.column2)")
SET_WAKE = ("INSERT INTO wake (stream, wake_at) VALUES (?, ?) "
            "ON CONFLICT (stream) DO UPDATE SET wake_at = excluded.wake_at")
CLEAR_WAKE = "DELETE FROM wake WHERE stream = ?"
SET_WAKES = ("INSERT INTO wake (stream, wake_at) VALUES {} "
             "ON CONFLICT (stream) DO UPDATE SET wake_at = excluded.wake_at")
CLEAR_WAKES = "DELETE FROM wake WHERE stream IN ({})"
# A stream's stored version: its newest event's, or the floor its deletions left, if higher.
STORED_VERSION = ("max(coalesce((SELECT max(version) FROM events WHERE stream = {0}), 0), "
                  "coalesce((SELECT version FROM streams WHERE stream = {0}), 0))")
SELECT_VERSIONS = ("SELECT json_group_object(value, " + STORED_VERSION.format("value") + ") "
                   "FROM json_each(?)")
# A plan's rows, each with a NULL version unless the whole plan passes its check, evaluated once
# before the first row goes in (the SELECT reads the table it inserts into, so SQLite computes it
# in full first). A NULL version breaks NOT NULL and aborts the statement: all rows or none.
INSERT_PLAN = (
    "WITH rows (stream, version, type, data, metadata, id, recorded_at) AS (VALUES {}) "
    "INSERT INTO events (stream, version, type, data, metadata, id, recorded_at) "
    "SELECT stream, CASE WHEN (SELECT NOT EXISTS ("
    "SELECT 1 FROM (SELECT stream, min(version) - 1 AS base FROM rows GROUP BY stream) AS plan "
    "WHERE base <> " + STORED_VERSION.format("plan.stream") + ") "
    "AND NOT EXISTS (SELECT 1 FROM deleted_ids WHERE id IN (SELECT id FROM rows))"
    ") THEN version END, " + STORED_COLUMNS + " FROM rows")

# SQLite's primary result codes for a row it will not take: a constraint (a stored id, a
# taken version), a value over SQLITE_LIMIT_LENGTH, a datatype mismatch, a bad parameter.
REFUSALS = frozenset({sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_MISMATCH,
                      sqlite3.SQLITE_RANGE})

Row = tuple[Any, ...]
Outcome = tuple[AppendRequest, AppendResult | Exception]


def refused(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused a row of the statement (rather than failing to write at all)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.IntegrityError) or (
        code is not None and code & 0xFF in REFUSALS)


@attrs.define
class _Plan:
    """Appends to write with one ``INSERT`` statement, at the versions the plan gives them."""

    requests: list[AppendRequest] = attrs.Factory(list)
    versions: list[int] = attrs.Factory(list)  # each append's last version
    values: list[object] = attrs.Factory(list)  # the statement's values, row after row
    side: bool = False
    """Some append of the plan has a side: the plan is then one transaction of a few statements
    (``_write_side_plan``)."""
    queued: set[tuple[str, bytes]] = attrs.Factory(set)  # (inbox, id) its appends enqueue

    @property
    def rows(self) -> int:
        return len(self.values) // EVENT_WIDTH

    def takes(self, stream: str, side: Side) -> bool:
        """Whether an append of ``stream`` with ``side`` can join the plan (and note its side).

        A plan deletes every acknowledged message first, then stores every enqueued one (in
        order, each skipped if its id waits in that inbox), then sets the last wake time of each
        stream: the outcome of its appends one by one, in order, unless an append acknowledges a
        message that an earlier one enqueues. Such an append is written the careful way.
        """
        if side.empty:
            return True
        if self.queued and any((stream, id) in self.queued for id in side.acknowledge):
            return False
        self.queued.update((target, message.id.bytes) for target, message in side.enqueue)
        self.side = True
        return True


def plan_batch(requests: list[AppendRequest], known: dict[str, int], shapes: ShapeBook,
               recorded_at: int, most: int) -> tuple[list[_Plan], list[AppendRequest]]:
    """Split ``requests`` into plans of at most ``most`` rows, and appends to write carefully.

    An append is planned on the version ``known`` gives its stream, or on the one its expected
    version names; it goes the careful way when it cannot be planned (``STREAM_EXISTS`` on an
    unknown stream, more than ``most`` events, an event of a shape ``shapes`` does not know, a
    side that clashes with the plan's: see ``_Plan.takes``) or is likely to conflict. An
    ``enqueue`` (no events) is planned as it is: it has no version to check.
    """
    plans = [_Plan()]
    careful = []
    planned: dict[str, int] = {}
    for request in requests:
        stream, expected, count = request.stream, request.expected, len(request.events)
        if request.side.fence is not None:  # its fence is checked on the careful way
            careful.append(request)
            continue
        if not count:  # an enqueue: a side alone
            if not plans[-1].takes(stream, request.side):
                careful.append(request)
                continue
            plans[-1].requests.append(request)
            plans[-1].versions.append(0)
            continue
        version = planned.get(stream)
        if version is None:
            version = known.get(stream)
        if expected is ExpectedVersion.ANY:
            actual: int | None = 0 if version is None else version
        elif isinstance(expected, int):
            actual = expected if version is None or version == expected else None
        elif version is not None:
            actual = version if version_matches(expected, version) else None
        else:
            actual = 0 if expected is not ExpectedVersion.STREAM_EXISTS else None
        if actual is None or count > most:
            careful.append(request)
            continue
        rows = _rows(request, actual, recorded_at, shapes)
        if rows is None:  # a shape new to the store: the careful way finds or adds it
            careful.append(request)
            continue
        plan = plans[-1]
        if plan.rows + count > most:
            plan = _Plan()
            plans.append(plan)
        if request.side is not NO_SIDE and not plan.takes(stream, request.side):
            careful.append(request)
            continue
        plan.values += rows
        planned[stream] = actual + count
        plan.requests.append(request)
        plan.versions.append(actual + count)
    return [plan for plan in plans if plan.requests], careful


def _rows(request: AppendRequest, version: int, recorded_at: int,
          shapes: ShapeBook) -> list[object] | None:
    """The values of ``request``'s rows after ``version``, or None: a shape ``shapes`` lacks."""
    stream = request.stream
    if len(request.events) == 1:  # the usual append: spare it the loop
        event = request.events[0]
        stored = shapes.stored(event)
        if stored is None:
            return None
        at = event.recorded_at
        return [stream, version + 1, stored[0], stored[1], event.metadata, event.id.bytes,
                recorded_at if at is None else micros(at)]
    values: list[object] = []
    for n, event in enumerate(request.events, start=version + 1):
        stored = shapes.stored(event)
        if stored is None:
            return None
        values += (stream, n, stored[0], stored[1], event.metadata, event.id.bytes,
                   recorded_at if event.recorded_at is None else micros(event.recorded_at))
    return values


def commit_batch(conn: sqlite3.Connection, plans: list[_Plan], careful: list[AppendRequest],
                 recorded_at: int, most: int, path: str,
                 shapes: ShapeBook) -> tuple[list[Outcome], dict[str, int]]:
    """Write the plans, then the careful appends; each append's outcome, and versions seen.

    ``shapes`` learns the shapes the careful appends found or added, once they commit.

    Each plan is one transaction; a plan that is stale, or that SQLite refuses, wrote nothing,
    and its appends are written the careful way. If SQLite fails otherwise (a full disk, a lock
    held past the busy timeout), the appends not yet committed are looked up by their event ids:
    those found stored succeed, the others get that error (an enqueue's, see ``_checked``).
    """
    outcomes: list[Outcome] = []
    versions: dict[str, int] = {}
    everyone = [request for plan in plans for request in plan.requests] + careful
    progress = _Progress()
    try:
        for plan in plans:
            seqs: Seqs = {}
            last = (_write_side_plan(conn, plan, recorded_at, most, progress, seqs) if plan.side
                    else _write_plan(conn, plan))
            if last is None:
                careful.extend(plan.requests)
                continue
            position = last - plan.rows
            for request, version in zip(plan.requests, plan.versions, strict=True):
                position += len(request.events)
                if request.events:
                    outcomes.append((request, AppendResult(version, position)))
                    versions[request.stream] = version
                else:  # an enqueue: where its last message waits (see ``enqueued``)
                    outcomes.append((request, enqueued(request, seqs)))
        if careful:
            outcomes += _write_each(conn, careful, recorded_at, versions, most, progress,
                                    shapes)
    except sqlite3.Error as exc:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        failure = store_error(exc, f"cannot write to {path!r}; nothing of this append was written")
        failure.__cause__ = exc
        settled = {id(request) for request, _ in outcomes}
        outcomes += _checked(conn, [request for request in everyone if id(request) not in settled],
                             failure, progress.committing)
    return outcomes, versions


@attrs.define
class _Progress:
    committing: set[int] = attrs.Factory(set)
    """The appends (``id()``) of the transaction whose ``COMMIT`` is under way: a failure before
    it wrote nothing of them."""


def _commit(conn: sqlite3.Connection, requests: list[AppendRequest], progress: _Progress) -> None:
    progress.committing = {id(request) for request in requests}
    conn.execute("COMMIT")
    progress.committing = set()


def _write_plan(conn: sqlite3.Connection, plan: _Plan) -> int | None:
    """Write a plan with one statement; its last position, or None if it wrote nothing.

    Nothing is written when a stream's stored version is not the one the plan starts from
    (another writer moved it on, or the store's hint was stale), when an event id belongs to a
    deleted event, or when SQLite refuses a row (a stored id, a value too big).
    """
    try:
        last = conn.execute(_values(INSERT_PLAN, EVENT_WIDTH, plan.rows), plan.values).lastrowid
    except sqlite3.Error as exc:
        if not refused(exc):
            raise
        return None
    assert last is not None
    return last


def _write_side_plan(conn: sqlite3.Connection, plan: _Plan, recorded_at: int, most: int,
                     progress: _Progress, seqs: Seqs) -> int | None:
    """Write a plan whose appends carry sides in one transaction: its events with one statement
    (as ``_write_plan``), then every acknowledgement, every enqueued message and the wake times,
    each kind with a statement (see ``_Plan.takes``); its last position (0 without events), or
    None if it wrote nothing (a stale plan, a stored id, a row SQLite refuses)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        last = conn.execute(_values(INSERT_PLAN, EVENT_WIDTH, plan.rows), plan.values
                            ).lastrowid if plan.rows else 0
        acks = [value for request in plan.requests for id in request.side.acknowledge
                for value in (request.stream, id)]
        for start in range(0, len(acks), ID_CHUNK):
            chunk = acks[start:start + ID_CHUNK]
            conn.execute(_values(ACKNOWLEDGE_PAIRS, 2, len(chunk) // 2), chunk)
        messages = [(target, message) for request in plan.requests
                    for target, message in request.side.enqueue]
        _enqueue(conn, messages, recorded_at, most, seqs)
        wakes = {request.stream: request.side.wake_at for request in plan.requests
                 if request.side.wake_at is not KEEP}  # the last one of each stream
        cleared = [stream for stream, at in wakes.items() if at is None]
        for start in range(0, len(cleared), ID_CHUNK):
            streams = cleared[start:start + ID_CHUNK]
            conn.execute(CLEAR_WAKES.format(", ".join("?" * len(streams))), streams)
        woken = [value for stream, at in wakes.items() if at is not None
                 for value in (stream, at)]
        for start in range(0, len(woken), ID_CHUNK):
            pairs = woken[start:start + ID_CHUNK]
            conn.execute(_values(SET_WAKES, 2, len(pairs) // 2), pairs)
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        if not refused(exc):
            raise
        return None
    _commit(conn, plan.requests, progress)
    assert last is not None
    return last


def _stream_versions(conn: sqlite3.Connection, streams: list[str]) -> dict[str, int]:
    """Each stream's stored version (0 for a new stream), in one query."""
    [(versions,)] = conn.execute(SELECT_VERSIONS, (json.dumps(streams),)).fetchall()
    found: dict[str, int] = json.loads(versions)
    return found


def _checked(conn: sqlite3.Connection, requests: list[AppendRequest],
             failure: EventStoreError, committing: set[int]) -> list[Outcome]:
    """Each append's outcome after a failed write, from where its event ids are stored now; an
    enqueue's (no events) from whether the failure came from its transaction's ``COMMIT``
    (``committing``; otherwise nothing of it was written), and then from whether its messages
    wait in their inboxes."""
    unsent = [request for request in requests
              if not request.events and id(request) not in committing]
    if unsent:
        settled: list[Outcome] = [(request, failure) for request in unsent]
        rest = [request for request in requests
                if request.events or id(request) in committing]
        return settled + _checked(conn, rest, failure, committing) if rest else settled
    try:
        found = [_stored_ids(conn, request) for request in requests]
        waiting = [_waiting(conn, request.side) if not request.events else set()
                   for request in requests]
    except sqlite3.Error as exc:
        unknown: list[Outcome] = []
        for request in requests:
            error = AppendOutcomeUnknown(
                request.stream, len(request.events),
                f"{failure}; and reading its event ids back failed too ({exc})")
            error.__cause__ = failure
            unknown.append((request, error))
        return unknown
    return [(request, checked_outcome(request, [ids.get(event.id.bytes)
                                                for event in request.events], failure)
             if request.events else checked_enqueue(request, messages, failure))
            for request, ids, messages in zip(requests, found, waiting, strict=True)]


def _waiting(conn: sqlite3.Connection, side: Side) -> set[tuple[str, bytes]]:
    """Which of the (stream, id) pairs ``side`` enqueues wait in their inboxes."""
    found: set[tuple[str, bytes]] = set()
    for target, message in side.enqueue:
        if conn.execute("SELECT 1 FROM inbox WHERE stream = ? AND id = ?",
                        (target, message.id.bytes)).fetchone() is not None:
            found.add((target, message.id.bytes))
    return found


def _write_each(conn: sqlite3.Connection, requests: list[AppendRequest], recorded_at: int,
                versions: dict[str, int], most: int, progress: _Progress,
                shapes: ShapeBook) -> list[Outcome]:
    """Write appends one by one in one transaction, each under a savepoint, each alone: a
    retry returns its first result; then a stale fence, then a wrong expected version, fail it.

    ``versions`` receives every stream version read or written, and ``shapes`` every shape
    found or added, once the transaction commits: what a transaction that fails saw is no hint
    for the next batch (a shape it added is gone).
    """
    staged: dict[Shape, Stored] = {}  # the shapes of the appends written so far
    conn.execute("BEGIN IMMEDIATE")
    seen = _stream_versions(conn, list({request.stream: None for request in requests}))
    outcomes: list[Outcome] = []
    for request in requests:
        stream = request.stream
        actual = seen[stream]
        conn.execute("SAVEPOINT append")
        outcome: AppendResult | Exception
        try:
            found_ids = _stored_ids(conn, request)
            retry = retried(request.stream, request.events,
                            [found_ids.get(event.id.bytes) for event in request.events])
            if retry is not None:
                outcome = retry  # stored already, side and all: nothing more to write
            elif request.side.fence is not None and not fence_holds(conn, stream,
                                                                    request.side.fence):
                outcome = Fenced(stream, request.side.fence.member, request.side.fence.epoch)
            elif not version_matches(request.expected, actual):
                outcome = WrongExpectedVersion(stream, request.expected, actual)
            else:
                seqs: Seqs = {}
                found = dict(staged)
                position = _insert(conn, request, actual, recorded_at, most, shapes,
                                   found) if request.events else 0
                _write_side(conn, stream, request.side, recorded_at, most, seqs)
                staged = found
                seen[stream] = actual + len(request.events)
                outcome = AppendResult(actual + len(request.events), position) if (
                    request.events) else enqueued(request, seqs)
        except sqlite3.Error as exc:
            if not refused(exc):
                raise
            conn.execute("ROLLBACK TO append")
            outcome = EventStoreError(
                f"SQLite refused the append of {len(request.events)} event(s) to stream "
                f"{stream!r} ({getattr(exc, 'sqlite_errorname', type(exc).__name__)}: {exc}); "
                "nothing of it was written")
        except DuplicateEventId as exc:
            outcome = exc
        conn.execute("RELEASE append")
        outcomes.append((request, outcome))
    _commit(conn, requests, progress)
    versions.update(seen)
    shapes.learn(staged)
    return outcomes


def _insert(conn: sqlite3.Connection, request: AppendRequest, version: int, recorded_at: int,
            most: int, shapes: ShapeBook, found: dict[Shape, Stored]) -> int:
    """Insert the request's events after ``version``; the last one's position.

    A shape neither ``shapes`` nor ``found`` (those of this transaction) holds is found or added
    (``resolve``) and kept in ``found``.
    """
    last = None
    events = request.events
    for start in range(0, len(events), most):
        values: list[object] = []
        for n, event in enumerate(events[start:start + most], start=version + start + 1):
            stored = shapes.stored(event)
            if stored is None:
                shape = shape_of(event)
                where = found.get(shape)
                if where is None:
                    where = found[shape] = resolve(conn, shape)
                stored = where[0], data_text(event, where[1])
            values += (request.stream, n, stored[0], stored[1], event.metadata,
                       event.id.bytes, recorded_at if event.recorded_at is None
                       else micros(event.recorded_at))
        last = conn.execute(_values(INSERT_EVENT, EVENT_WIDTH, len(values) // EVENT_WIDTH),
                            values).lastrowid
    assert last is not None
    return last


def _write_side(conn: sqlite3.Connection, stream: str, side: Side, recorded_at: int,
                most: int, seqs: Seqs) -> None:
    """Write what an append of ``stream`` carries besides its events: acknowledgements first
    (a message consumed and sent again in one append is stored again), then the messages it
    enqueues (in order), then its wake time."""
    if side.acknowledge:
        for start in range(0, len(side.acknowledge), ID_CHUNK):
            chunk = side.acknowledge[start:start + ID_CHUNK]
            conn.execute(ACKNOWLEDGE.format(", ".join("?" * len(chunk))), (stream, *chunk))
    _enqueue(conn, list(side.enqueue), recorded_at, most, seqs)
    if side.wake_at is None:
        conn.execute(CLEAR_WAKE, (stream,))
    elif side.wake_at is not KEEP:
        conn.execute(SET_WAKE, (stream, side.wake_at))


def _enqueue(conn: sqlite3.Connection, messages: list[tuple[str, EncodedEvent]],
             recorded_at: int, most: int, seqs: Seqs) -> None:
    """Store (inbox, message) pairs in order, each skipped if its id waits in that inbox; the
    sequence number of each one stored goes into ``seqs``."""
    sql = ENQUEUE_RETURNING if RETURNING else ENQUEUE
    for start in range(0, len(messages), most):
        values: list[object] = []
        for target, message in messages[start:start + most]:
            values += (target, message.id.bytes, message.type, message.data, message.metadata,
                       recorded_at)
        cursor = conn.execute(_values(sql, MESSAGE_WIDTH, len(values) // MESSAGE_WIDTH), values)
        if RETURNING:
            for target, id, seq in cursor.fetchall():
                [(previous,)] = conn.execute(PREVIOUS, (target, seq)).fetchall()
                seqs[(target, id)] = (seq, previous or 0)


def enqueued(request: AppendRequest, seqs: Seqs) -> AppendResult:
    """The outcome of an enqueue (an append without events): the sequence number of its last
    message as the position (0 if it was skipped, its id waiting already, or SQLite is too old
    to say), and the one of the message waiting before it as the version."""
    if not request.side.enqueue:
        return AppendResult(0, 0)
    target, message = request.side.enqueue[-1]
    seq, previous = seqs.get((target, message.id.bytes), (0, 0))
    return AppendResult(previous, seq)


@functools.lru_cache(maxsize=64)
def _values(sql: str, width: int, rows: int) -> str:
    row = f"({', '.join('?' * width)})"
    return sql.format(", ".join([row] * rows))


def _stored_ids(conn: sqlite3.Connection, request: AppendRequest) -> dict[bytes, StoredAt]:
    """Where the request's event ids are or were stored (deleted events keep their ids)."""
    ids = [event.id.bytes for event in request.events]
    return {id: (stream, version, position)
            for table in ("events", "deleted_ids")
            for id, stream, version, position in _select_in(
                conn, f"SELECT id, stream, version, position FROM {table} WHERE id IN ({{}})",
                ids)}


def _select_in(conn: sqlite3.Connection, sql: str, values: Sequence[object]) -> list[Row]:
    """Rows of ``sql`` whose ``IN ({})`` list is ``values``, queried in chunks."""
    rows: list[Row] = []
    for start in range(0, len(values), ID_CHUNK):
        chunk = values[start:start + ID_CHUNK]
        rows.extend(conn.execute(sql.format(", ".join("?" * len(chunk))), chunk).fetchall())
    return rows


# -- SQLite's errors, for every connection of the store -------------------------------------------

ADVICE = (
    ("SQLITE_FULL", "free disk space (or raise the size limit) and retry"),
    ("SQLITE_BUSY", "another connection held the lock for longer than busy_timeout; retry, or "
                    "raise busy_timeout"),
    ("SQLITE_LOCKED", "another connection held the lock; retry"),
    ("SQLITE_IOERR", "the disk reported an I/O error; check the disk and retry"),
    ("SQLITE_READONLY", "make the file and its directory writable"),
    ("SQLITE_CANTOPEN", "check that the directory exists and is writable"),
    ("SQLITE_NOTADB", "the file is not a SQLite database; use a new file"),
    ("SQLITE_CORRUPT", "the file is damaged; restore it from a backup"),
)


def store_error(exc: sqlite3.Error, doing: str) -> EventStoreError:
    """An ``EventStoreError`` that says what failed, SQLite's reason, and what to do."""
    code = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    advice = next((advice for prefix, advice in ADVICE if code.startswith(prefix)), None)
    message = f"{doing}: SQLite failed with {code} ({exc})"
    return EventStoreError(f"{message}; {advice}" if advice else message)
