"""The SQL of ``PostgresEventStore``: its statements, its schema, and the append's rounds.

Every statement is written once here, with the store's schema name quoted in. The schema is
created, or its version checked, on the store's first use. A batch of appends is sent as one or
more rounds of one statement, each round's appends independent of one another; the rows the
rounds return give each append's outcome.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from datetime import datetime
from typing import Any

import psycopg

from ._cluster import Fenced
from ._errors import DuplicateEventId, EventStoreError, SchemaError, WrongExpectedVersion
from ._model import ANY, NO_STREAM, STREAM_EXISTS, AppendResult, Expected
from ._validate import EncodedEvent, StoredAt, retried
from ._work import KEEP, Side

SCHEMA_VERSION = 4
"""The schema version this library writes; it upgrades older ones and refuses a higher one."""

# Version 2: the inboxes and the work index (see ``eventstore._work``). A message's ``seq`` comes
# from ``global_position.inbox_seq``, taken under the row lock every append transaction holds, so
# sequence numbers commit in order, as positions do; ``inbox_by_stream`` serves ``read_inbox``.
_V1_TO_V2 = (
    "ALTER TABLE {s}.global_position ADD COLUMN inbox_seq bigint NOT NULL DEFAULT 0",
    """CREATE TABLE {s}.inbox (
        seq bigint PRIMARY KEY,
        stream text NOT NULL,
        id uuid NOT NULL,
        type text NOT NULL,
        data text NOT NULL,
        metadata text NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT statement_timestamp(),
        CONSTRAINT inbox_ids UNIQUE (stream, id))""",
    "CREATE INDEX inbox_by_stream ON {s}.inbox (stream, seq)",
    "CREATE TABLE {s}.wake (stream text PRIMARY KEY, wake_at double precision)",
)

# Version 3: the consumer offsets (see ``eventstore._offsets``).
_V2_TO_V3 = (
    """CREATE TABLE {s}.offsets (
        name text PRIMARY KEY,
        position bigint NOT NULL,
        state text NOT NULL,
        error text,
        updated_at timestamptz NOT NULL DEFAULT statement_timestamp())""",
)

# Version 4: members and owners (see ``eventstore._cluster``). Owner rows are never deleted, so an
# epoch never goes down; a released row has no member.
_V3_TO_V4 = (
    """CREATE TABLE {s}.members (
        id text PRIMARY KEY,
        host text NOT NULL,
        pid integer NOT NULL,
        hosting boolean NOT NULL,
        lease double precision NOT NULL,
        state text NOT NULL,
        joined_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        ended_at timestamptz)""",
    """CREATE TABLE {s}.owners (
        stream text PRIMARY KEY,
        member text,
        epoch bigint NOT NULL,
        claimed_at timestamptz NOT NULL DEFAULT clock_timestamp())""",
    "CREATE INDEX owners_by_member ON {s}.owners (member)",
)

MIGRATIONS: dict[int, tuple[str, ...]] = {1: _V1_TO_V2, 2: _V2_TO_V3, 3: _V3_TO_V4}
"""The statements that upgrade a schema from each version to the next, run in one transaction;
``{s}`` in them is the quoted schema name."""

Conn = psycopg.Connection[tuple[Any, ...]]
Request = tuple[str, list[EncodedEvent], Expected, Side]


class Statements:
    """Every SQL statement, with the schema name quoted in once."""

    def __init__(self, s: str) -> None:
        self.schema = s
        columns = "version, position, type, data, metadata, id, recorded_at"
        live = LIVE.format(m="m")
        self.create_schema = [
            f"CREATE SCHEMA IF NOT EXISTS {s}",
            f"""CREATE TABLE IF NOT EXISTS {s}.schema_version (
                only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
                version integer NOT NULL)""",
        ]
        self.create_tables = [
            f"""CREATE TABLE {s}.global_position (
                only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
                position bigint NOT NULL)""",
            f"INSERT INTO {s}.global_position (position) VALUES (0)",
            # A stream's version is its newest event's, or the newest deleted one's if higher.
            f"CREATE TABLE {s}.deleted (stream text PRIMARY KEY, version bigint NOT NULL)",
            f"""CREATE TABLE {s}.events (
                position bigint PRIMARY KEY,
                stream text NOT NULL,
                version bigint NOT NULL,
                type text NOT NULL,
                data text NOT NULL,
                metadata text NOT NULL,
                id uuid NOT NULL CONSTRAINT event_ids UNIQUE,
                recorded_at timestamptz NOT NULL DEFAULT statement_timestamp(),
                UNIQUE (stream, version))""",
            f"""CREATE TABLE {s}.snapshots (
                stream text NOT NULL,
                version bigint NOT NULL,
                state text NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT statement_timestamp(),
                PRIMARY KEY (stream, version))""",
            # a new schema is the upgraded one
            *(step.format(s=s) for steps in (_V1_TO_V2, _V2_TO_V3, _V3_TO_V4)
              for step in steps),
        ]
        self.schema_version = f"SELECT version FROM {s}.schema_version"
        self.set_schema_version = f"INSERT INTO {s}.schema_version (version) VALUES (%s)"
        self.lock_schema_version = f"SELECT version FROM {s}.schema_version FOR UPDATE"
        self.move_schema_version = f"UPDATE {s}.schema_version SET version = %s"
        self.lock_position = f"SELECT position FROM {s}.global_position FOR UPDATE"
        # One round of a batch: appends to distinct streams with distinct event ids. Each is
        # checked against its stream's version (expected: -1 ANY, -2 STREAM_EXISTS, else exact);
        # the ids of those that fail are looked up, since a failure may be a retry (found). The
        # accepted ones (ok) get consecutive positions in batch order.
        append = f"""
            WITH req AS (
                SELECT * FROM unnest(%b::int[], %b::text[], %b::bigint[], %b::int[], %b::text[],
                                     %b::bigint[])
                    AS r(idx, stream, expected, n, fence_member, fence_epoch)
            ), ev AS (
                SELECT * FROM unnest(%b::int[], %b::int[], %b::text[], %b::text[], %b::text[],
                                     %b::uuid[], %b::timestamptz[])
                    AS e(idx, rank, type, data, metadata, id, recorded_at)
            ){{inputs}}, cur AS (
                SELECT req.*, (req.fence_member IS NOT NULL AND NOT EXISTS (
                    SELECT FROM {s}.owners o JOIN {s}.members m ON m.id = o.member
                    WHERE o.stream = req.stream AND o.member = req.fence_member
                        AND o.epoch = req.fence_epoch AND {live})) AS fenced,
                    coalesce(greatest(
                    (SELECT max(version) FROM {s}.events WHERE stream = req.stream),
                    (SELECT version FROM {s}.deleted WHERE stream = req.stream)), 0) AS actual
                FROM req
            ), passed AS (
                SELECT * FROM cur
                WHERE NOT fenced
                    AND (expected = -1 OR expected = actual OR (expected = -2 AND actual > 0))
            ), hits AS (
                SELECT ev.idx, s.* FROM ev CROSS JOIN LATERAL (
                    SELECT id, stream, version, position FROM {s}.events WHERE id = ev.id OFFSET 0
                ) AS s
                WHERE {{which}}
            ), found AS (
                SELECT idx, array_agg(id) AS ids, array_agg(stream) AS streams,
                       array_agg(version) AS versions, array_agg(position) AS positions
                FROM hits GROUP BY idx
            ), ok AS (
                SELECT idx, stream, n, actual, sum(n) OVER (ORDER BY idx) - n
                    + (SELECT position FROM {s}.global_position) AS base
                FROM passed WHERE NOT EXISTS (SELECT FROM found WHERE found.idx = passed.idx)
            ), inserted AS (
                INSERT INTO {s}.events (position, stream, version, type, data, metadata, id,
                                        recorded_at)
                SELECT ok.base + ev.rank, ok.stream, ok.actual + ev.rank, ev.type, ev.data,
                       ev.metadata, ev.id, coalesce(ev.recorded_at, statement_timestamp())
                FROM ok JOIN ev USING (idx)
            ){{side}}, moved AS (
                UPDATE {s}.global_position
                SET position = position + (SELECT coalesce(sum(n), 0) FROM ok){{count}}
            )
            SELECT cur.idx, cur.actual, ok.actual + ok.n, ok.base + ok.n,
                   found.ids, found.streams, found.versions, found.positions, cur.fenced
            FROM cur LEFT JOIN ok USING (idx) LEFT JOIN found USING (idx)
        """
        plain = append.replace("{inputs}", "").replace("{side}", "").replace("{count}", "")
        # The same with each accepted append's side (see ``eventstore._work``), written by the
        # same statement: what it acknowledges (ack: its own stream's inbox rows by id), the
        # messages it enqueues (msg, in order, each skipped when its id waits in that inbox
        # already), its wake time (wk: set, or cleared when ``clear``). A message both
        # acknowledged and enqueued again to the same stream by one append is stored again, as
        # a new row would be: its row is not deleted but updated, since one statement cannot
        # delete a row and insert its key again. Within a round, no two appends touch the same
        # message (an inbox's (stream, id): ``append_rounds``), and no append enqueues one twice
        # (``_round``); messages to one inbox get sequence numbers in batch order.
        with_side = append.replace("{inputs}", """, ack AS (
                SELECT * FROM unnest(%b::int[], %b::uuid[]) AS a(idx, id)
            ), msg AS (
                SELECT * FROM unnest(%b::int[], %b::int[], %b::text[], %b::text[], %b::text[],
                                     %b::text[], %b::uuid[])
                    AS m(idx, rank, stream, type, data, metadata, id)
            ), wk AS (
                SELECT * FROM unnest(%b::int[], %b::bool[], %b::float8[])
                    AS w(idx, clear, wake_at)
            )""").replace("{side}", f""", again AS (
                SELECT ok.idx, ack.id FROM ok JOIN ack USING (idx)
                WHERE EXISTS (SELECT FROM msg WHERE msg.idx = ack.idx
                              AND msg.stream = ok.stream AND msg.id = ack.id)
            ), acked AS (
                DELETE FROM {s}.inbox USING ok, ack
                WHERE ack.idx = ok.idx AND inbox.stream = ok.stream AND inbox.id = ack.id
                    AND NOT EXISTS (SELECT FROM again
                                    WHERE again.idx = ack.idx AND again.id = ack.id)
            ), queued AS (
                INSERT INTO {s}.inbox AS inbox (seq, stream, id, type, data, metadata)
                SELECT (SELECT inbox_seq FROM {s}.global_position)
                           + row_number() OVER (ORDER BY msg.idx, msg.rank),
                       msg.stream, msg.id, msg.type, msg.data, msg.metadata
                FROM ok JOIN msg USING (idx)
                ON CONFLICT (stream, id) DO UPDATE
                SET seq = excluded.seq, type = excluded.type, data = excluded.data,
                    metadata = excluded.metadata, recorded_at = excluded.recorded_at
                WHERE EXISTS (SELECT FROM again JOIN ok USING (idx)
                              WHERE ok.stream = inbox.stream AND again.id = inbox.id)
            ), woken AS (
                INSERT INTO {s}.wake (stream, wake_at)
                SELECT ok.stream, wk.wake_at FROM ok JOIN wk USING (idx) WHERE NOT wk.clear
                ON CONFLICT (stream) DO UPDATE SET wake_at = excluded.wake_at
            ), cleared AS (
                DELETE FROM {s}.wake USING ok, wk
                WHERE wk.idx = ok.idx AND wk.clear AND wake.stream = ok.stream
            )""").replace(
            "{count}", ", inbox_seq = inbox_seq + (SELECT count(*) FROM ok JOIN msg USING (idx))")
        # A fenced append (its member and epoch; NULL for none) passes only if that member owns
        # the stream under that epoch and its lease holds, read after the position lock (which
        # claims take too): a plain read, by key, that no claim can change before this
        # transaction commits.
        # Retries are rare: an accepted append's ids are not looked up, the unique constraint
        # on ids catches one stored already (an ANY retry, a clash), and then the batch is sent
        # again looking up every id.
        which = "NOT EXISTS (SELECT FROM passed WHERE passed.idx = ev.idx)"
        self.append = plain.replace("{which}", which)
        self.append_checking_ids = plain.replace("{which}", "true")
        self.append_with_side = with_side.replace("{which}", which)
        self.append_with_side_checking_ids = with_side.replace("{which}", "true")
        # Where a batch's event ids are stored: how an ambiguous commit is settled.
        self.stored_ids = (f"SELECT id, stream, version, position FROM {s}.events "
                           "WHERE id = ANY(%s::uuid[])")
        # Which (stream, id) pairs wait in their inboxes: how an ambiguous enqueue is settled.
        self.waiting = (f"SELECT stream, id FROM {s}.inbox WHERE (stream, id) IN "
                        "(SELECT * FROM unnest(%s::text[], %s::uuid[]))")
        self.read_inbox = (f"SELECT seq, seq, type, data, metadata, id, recorded_at "
                           f"FROM {s}.inbox WHERE stream = %s AND seq > %s ORDER BY seq LIMIT %s")
        self.set_wake = (f"INSERT INTO {s}.wake (stream, wake_at) VALUES (%s, %s) "
                         "ON CONFLICT (stream) DO UPDATE SET wake_at = excluded.wake_at")
        self.clear_wake = f"DELETE FROM {s}.wake WHERE stream = %s"
        self.work = (
            "SELECT stream, max(wake_at), sum(waiting)::bigint FROM ("
            f"SELECT stream, wake_at, 0 AS waiting FROM {s}.wake WHERE wake_at IS NOT NULL "
            f"UNION ALL SELECT stream, NULL, count(*) FROM {s}.inbox GROUP BY stream"
            ") AS w GROUP BY stream")
        self.read_stream = (f"SELECT {columns} FROM {s}.events WHERE stream = %s "
                            "AND version >= %s ORDER BY version LIMIT %s")
        self.read_stream_to = (f"SELECT {columns} FROM {s}.events WHERE stream = %s "
                               "AND version >= %s AND version <= %s ORDER BY version LIMIT %s")
        self.read_all = (f"SELECT stream, {columns} FROM {s}.events WHERE position > %s "
                         "ORDER BY position LIMIT %s")
        self.read_all_types = (f"SELECT stream, {columns} FROM {s}.events WHERE position > %s "
                               "AND type = ANY(%s::text[]) ORDER BY position LIMIT %s")
        self.last_version = (
            f"SELECT coalesce(greatest((SELECT max(version) FROM {s}.events WHERE stream = %s),"
            f" (SELECT version FROM {s}.deleted WHERE stream = %s)), 0)")
        self.delete_up_to = (
            f"WITH gone AS (DELETE FROM {s}.events WHERE stream = %s AND version <= %s "
            "RETURNING version) "
            f"INSERT INTO {s}.deleted (stream, version) SELECT %s, max(version) FROM gone "
            "HAVING count(*) > 0 ON CONFLICT (stream) DO UPDATE "
            "SET version = greatest(deleted.version, excluded.version)")
        self.save_snapshot = (
            f"INSERT INTO {s}.snapshots (stream, version, state) VALUES (%s, %s, %s) "
            "ON CONFLICT (stream, version) DO UPDATE "
            "SET state = excluded.state, recorded_at = excluded.recorded_at")
        snapshot = f"SELECT version, state, recorded_at FROM {s}.snapshots WHERE stream = %s"
        self.load_snapshot = f"{snapshot} ORDER BY version DESC LIMIT 1"
        self.load_snapshot_to = f"{snapshot} AND version <= %s ORDER BY version DESC LIMIT 1"


LIVE = ("{m}.state = 'alive' "
        "AND {m}.heartbeat_at > clock_timestamp() - {m}.lease * interval '1 second'")
"""Whether member row ``{m}`` is alive: its lease holds on the database clock."""

Backend = tuple[int, datetime]
"""A server process: its pid and start time, so a later process reusing the pid is not it."""


def who_am_i(conn: Conn) -> Backend | None:
    """The server process serving ``conn``."""
    row = conn.execute("SELECT pid, backend_start FROM pg_stat_activity "
                       "WHERE pid = pg_backend_pid()").fetchone()
    return None if row is None else (row[0], row[1])


def end_backend(conn: Conn, backend: Backend, wait_ms: int = 1000) -> bool:
    """Terminate ``backend`` if it still runs, waiting up to ``wait_ms``; whether it has ended.

    A lost connection's process may live on (a network cut, a client-side failure) and could
    still commit its transaction; once it has exited, nothing of it can.
    """
    pid, started = backend
    alive = ("FROM pg_stat_activity WHERE pid = %s AND backend_start = %s "
             "AND pid <> pg_backend_pid()")
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):  # then only wait for it
        conn.execute(f"SELECT pg_terminate_backend(pid, %s) {alive}", (wait_ms, pid, started))
    return conn.execute(f"SELECT 1 {alive}", (pid, started)).fetchone() is None


def stored_at(conn: Conn, q: Statements, ids: list[uuid.UUID]) -> dict[uuid.UUID, StoredAt]:
    """Where each of ``ids`` that is stored is: (stream, version, position)."""
    rows = conn.execute(q.stored_ids, (ids,)).fetchall()
    return {id: (stream, version, position) for id, stream, version, position in rows}


def waiting(conn: Conn, q: Statements,
            pairs: list[tuple[str, uuid.UUID]]) -> set[tuple[str, bytes]]:
    """Which of the (stream, message id) pairs wait in their inboxes (ids as 16 bytes)."""
    rows = conn.execute(q.waiting, ([stream for stream, _ in pairs],
                                    [id for _, id in pairs])).fetchall()
    return {(stream, id.bytes) for stream, id in rows}


def install_schema(conn: Conn, q: Statements, schema: str, server: str, *,
                   create: bool = True) -> None:
    """Create the schema and its tables if missing, else upgrade or check the schema's version.

    Args:
        create: False to only check: a missing or older schema is then an error.

    Raises:
        SchemaError: the schema is newer than this library, or an upgrade failed (the schema is
            then as it was); without ``create``, it is missing or older than this library.
    """
    try:
        row = conn.execute(q.schema_version).fetchone()
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        row = None
    if row is None and not create:
        raise SchemaError(
            f"schema {schema!r} on PostgreSQL ({server}) holds no event store: check the URL's "
            "database and ?schema= (nothing was created)")
    if row is None:
        with conn.transaction():
            # Serialises processes that create the same schema at once.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
            for statement in q.create_schema:
                conn.execute(statement)
            row = conn.execute(q.schema_version).fetchone()
            if row is None:
                for statement in q.create_tables:
                    conn.execute(statement)
                conn.execute(q.set_schema_version, (SCHEMA_VERSION,))
                row = (SCHEMA_VERSION,)
    found = row[0]
    if found > SCHEMA_VERSION:
        raise SchemaError(
            f"schema {schema!r} on PostgreSQL ({server}) has version {found}, but "
            f"this library only understands versions up to {SCHEMA_VERSION}: upgrade "
            "trio-actors (a newer release wrote it), or use another schema")
    if found < SCHEMA_VERSION and not create:
        raise SchemaError(
            f"schema {schema!r} on PostgreSQL ({server}) has version {found}, older than this "
            f"library's {SCHEMA_VERSION}: open it once with create=True (any program that writes "
            "to it) to upgrade it; it was left as it is")
    while found < SCHEMA_VERSION:
        found = _migrate(conn, q, schema, server, found)


def _lock_key(schema: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"eventstore {schema}".encode(),
                                          digest_size=8).digest(), "big", signed=True)


def _migrate(conn: Conn, q: Statements, schema: str, server: str, version: int) -> int:
    """Upgrade the schema from ``version`` by one, in one transaction; the version it is at now.

    The version is read again under the row lock, so of several processes upgrading at once,
    one does it and the others find it done.
    """
    steps = MIGRATIONS.get(version)
    if steps is None:
        # Every upgrade so far runs in place; this names the way out should one ever not.
        raise SchemaError(
            f"schema {schema!r} on PostgreSQL ({server}) has version {version}, which this "
            f"library ({SCHEMA_VERSION}) cannot upgrade in place; export it with an older "
            "release (python -m actors export) and import it into a new schema")
    quoted = q.schema
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
            (current,) = conn.execute(q.lock_schema_version).fetchone() or (version,)
            if current != version:
                return int(current)
            for step in steps:
                conn.execute(step.format(s=quoted))
            conn.execute(q.move_schema_version, (version + 1,))
    except psycopg.Error as exc:
        raise SchemaError(
            f"cannot upgrade schema {schema!r} on PostgreSQL ({server}) from version {version} "
            f"to {version + 1}: {type(exc).__name__}: {exc}; nothing was changed, the schema is "
            f"still at version {version}; fix the cause and open the store again") from exc
    return version + 1


def with_side(batch: list[Request]) -> bool:
    """Whether an append of ``batch`` writes inboxes or a wake time: then it takes the
    ``append_with_side`` SQL (a fence alone does not need it)."""
    return any(side.writes for _, _, _, side in batch)


def append_rounds(batch: list[Request]) -> list[tuple[list[Any], ...]]:
    """The parameters of the append statement for each round of a batch, in order.

    An append goes in the round after the last one holding its stream, any of its event ids, or
    any message (stream, id) it acknowledges or enqueues, so every round's appends are
    independent and later rounds see the earlier ones' writes. Usually they are all
    independent, and there is one round. With ``with_side(batch)``, each round's parameters
    include the appends' sides.
    """
    side = with_side(batch)
    ids = [event.id for _, events, _, _ in batch for event in events]
    if not side and len({stream for stream, _, _, _ in batch}) == len(batch) and (
            len(set(ids)) == len(ids)):
        return [_round(list(enumerate(batch)), side)]
    rounds: list[list[tuple[int, Request]]] = []
    last_round: dict[object, int] = {}
    for idx, request in enumerate(batch):
        side_of = request[3]
        keys = [request[0], *(event.id for event in request[1]),
                *((target, message.id.bytes) for target, message in side_of.enqueue),
                *((request[0], id) for id in side_of.acknowledge)]
        number = 1 + max(last_round.get(key, -1) for key in keys)
        for key in keys:
            last_round[key] = number
        if number == len(rounds):
            rounds.append([])
        rounds[number].append((idx, request))
    return [_round(requests, side) for requests in rounds]


def _round(requests: list[tuple[int, Request]], side: bool) -> tuple[list[Any], ...]:
    events = [(idx, rank, event) for idx, (_, batch, _, _) in requests
              for rank, event in enumerate(batch, 1)]
    params: tuple[list[Any], ...] = (
        [idx for idx, _ in requests],
        [stream for _, (stream, _, _, _) in requests],
        [-1 if expected is ANY else -2 if expected is STREAM_EXISTS
         else 0 if expected is NO_STREAM else expected for _, (_, _, expected, _) in requests],
        [len(batch) for _, (_, batch, _, _) in requests],
        [None if s.fence is None else s.fence.member for _, (_, _, _, s) in requests],
        [None if s.fence is None else s.fence.epoch for _, (_, _, _, s) in requests],
        [idx for idx, _, _ in events],
        [rank for _, rank, _ in events],
        [event.type for _, _, event in events],
        [event.data for _, _, event in events],
        [event.metadata for _, _, event in events],
        [event.id for _, _, event in events],
        [event.recorded_at for _, _, event in events])
    if not side:
        return params
    acks = [(idx, uuid.UUID(bytes=id)) for idx, (_, _, _, s) in requests for id in s.acknowledge]
    messages = []
    for idx, (_, _, _, s) in requests:
        # A (stream, id) enqueued twice by one append: the first is stored, as a retry would
        # skip the second (and one statement cannot write a row twice).
        first: dict[tuple[str, uuid.UUID], tuple[str, EncodedEvent]] = {}
        for target, message in s.enqueue:
            first.setdefault((target, message.id), (target, message))
        messages += [(idx, rank, target, message)
                     for rank, (target, message) in enumerate(first.values(), 1)]
    wakes = [(idx, s.wake_at) for idx, (_, _, _, s) in requests if s.wake_at is not KEEP]
    return (*params,
            [idx for idx, _ in acks], [id for _, id in acks],
            [idx for idx, _, _, _ in messages], [rank for _, rank, _, _ in messages],
            [target for _, _, target, _ in messages],
            [message.type for _, _, _, message in messages],
            [message.data for _, _, _, message in messages],
            [message.metadata for _, _, _, message in messages],
            [message.id for _, _, _, message in messages],
            [idx for idx, _ in wakes], [at is None for _, at in wakes],
            [0.0 if at is None else at for _, at in wakes])


def append_outcomes(batch: list[Request], rows: list[tuple[Any, ...]]
              ) -> list[AppendResult | EventStoreError]:
    """Each append's result from the rows the append statements returned, in batch order."""
    by_idx = {row[0]: row for row in rows}
    outcomes: list[AppendResult | EventStoreError] = []
    for idx, (stream, events, expected, side) in enumerate(batch):
        _, actual, version, position, ids, streams, versions, positions, fenced = by_idx[idx]
        if version is not None:
            outcomes.append(AppendResult(version, position))
        elif ids is not None:
            stored = dict(zip(ids, zip(streams, versions, positions, strict=True), strict=True))
            try:
                result = retried(stream, events, [stored.get(e.id) for e in events])
            except DuplicateEventId as clash:
                outcomes.append(clash)
            else:
                assert result is not None  # some ids are stored, so it is a retry or a clash
                outcomes.append(result)
        elif fenced:
            assert side.fence is not None
            outcomes.append(Fenced(stream, side.fence.member, side.fence.epoch))
        else:
            outcomes.append(WrongExpectedVersion(stream, expected, actual))
    return outcomes
