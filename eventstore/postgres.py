"""``PostgresEventStore``: the event store on a PostgreSQL server, through psycopg 3.

psycopg's async API is asyncio-only, so every statement runs on a synchronous connection in a
worker thread (``trio.to_thread``); trio is never blocked. One writer connection serves the group
committer, a small pool serves reads, and one listener thread turns ``LISTEN/NOTIFY`` into wake-ups
for subscribers. Install the driver with ``pip install 'trio-actors[postgres]'``.

Gap-safe global order: every append transaction first locks the single row of the
``global_position`` table and only then reads versions and allocates positions from it. The row
lock is held until commit, so transactions that write events commit one after the other, in
position order; a reader's snapshot that sees a position also sees every lower one, and no lower
position can commit later. Inbox sequence numbers come from the same row (``inbox_seq``), and
only append transactions write inboxes, so they are gap-safe too; an append's inbox and wake-time
writes are made by its own append statement, for the appends it accepts. See
``docs/postgresql.md``.

Honest outcomes: when the connection is lost while a batch commits, the batch may or may not be
stored. Before anyone is answered, the writer makes sure the lost connection's server process has
ended (so nothing of it can still commit) and looks the batch's event ids up; if the server stays
out of reach for ``resolve_timeout`` seconds, the callers get ``AppendOutcomeUnknown``.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import attrs
import trio

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "eventstore.postgres needs psycopg 3: pip install 'trio-actors[postgres]'") from exc

from . import _postgres_cluster as cluster
from . import _postgres_offsets as offsets
from ._cluster import Claim, Fence, Heartbeat, MemberInfo, Ownership
from ._codec import Codec
from ._errors import AppendOutcomeUnknown, EventStoreError, InvalidArgument
from ._group_commit import AppendRequest, GroupCommitter, checked_enqueue, checked_outcome
from ._model import AppendResult, Expected, RecordedEvent
from ._offsets import ConsumerOffset, Statement
from ._postgres_conn import Listener, aborted, describe_error, hung_up
from ._postgres_sql import SCHEMA_VERSION as SCHEMA_VERSION
from ._postgres_sql import (
    Backend,
    Conn,
    Request,
    Statements,
    append_outcomes,
    append_rounds,
    end_backend,
    install_schema,
    stored_at,
    waiting,
    who_am_i,
    with_side,
)
from ._store import EventStore, decode_row
from ._validate import EncodedEvent
from ._work import Side, WorkEntry

__all__ = ["SCHEMA_VERSION", "ConnectionFailed", "PostgresEventStore"]

_T = TypeVar("_T")
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
_NOTHING = "nothing was written"
_CHECKED = "nothing was written (its event ids were looked up after the failure)"
# SQLSTATE classes of an error about the data of a row (data exception, integrity constraint,
# program limit exceeded): the append that holds the row fails alone.
_ROW_ERRORS = ("22", "23", "54")
_MAX_PAYLOAD = 7000  # bytes; PostgreSQL refuses a notification payload of 8000
_KEEPALIVES = {"keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "2",
               "keepalives_count": "3"}
IDLE_IN_TRANSACTION_TIMEOUT = "10s"
"""Every transaction of the store is sent in one go; one left open (its client paused or cut off
mid-send) is ended by the server after this long, so it cannot hold the position lock and stall
every append, or a failover."""


class ConnectionFailed(EventStoreError, ConnectionError):
    """The server could not be reached, refused the login, or dropped the connection.

    The store discards the broken connection; the next call opens a new one.
    """

    def __init__(self, server: str, reason: str, doing: str | None = None,
                 outcome: str | None = None) -> None:
        super().__init__(server, reason, doing, outcome)
        self.server = server
        self.reason = reason
        self.doing = doing
        self.outcome = outcome

    def __reduce__(self) -> tuple[Any, ...]:
        # OSError reads its arguments as (errno, strerror, filename, ...) and keeps only some in
        # ``args``, so the default would rebuild the error from the wrong ones.
        return type(self), (self.server, self.reason, self.doing, self.outcome), self.__dict__

    def __str__(self) -> str:
        if self.doing is None:
            return (f"cannot connect to PostgreSQL ({self.server}): {self.reason}; check that the "
                    "server is running and reachable and that the URL's user, password and "
                    "database name are right")
        return (f"lost the connection to PostgreSQL ({self.server}) while trying to {self.doing}: "
                f"{self.reason}; {self.outcome + '; ' if self.outcome else ''}the next call "
                "reconnects")


@attrs.define(eq=False)
class _Slot:
    """A connection handed to a worker thread; the thread fills it in if it has to connect."""

    conn: Conn | None
    fresh: bool = False
    backend: Backend | None = None
    """For the writer: the server process behind ``conn``."""


@attrs.frozen
class _Unknown:
    """An append whose commit may or may not have gone through."""

    reason: str
    error: EventStoreError
    """What to report if none of its events is stored."""


class PostgresEventStore(EventStore):
    """The event store in a PostgreSQL schema, shared safely by any number of processes.

    The constructor only checks its arguments; the first call connects and creates (or checks)
    the schema. Each statement runs in a worker thread: cancelling a call takes effect when its
    current statement returns, so a connection is never left mid-statement.

    Args:
        conninfo: a ``postgresql://`` URL or a libpq ``key=value`` string.
        schema: the PostgreSQL schema holding the tables; several stores can share a database.
        readers: how many connections serve reads, snapshots and deletions at once.
        connect_timeout: seconds to wait for a new connection before giving up.
        max_batch: the most appends committed in one transaction.
        resolve_timeout: seconds to keep trying to find out whether a batch whose commit was
            cut off (a lost connection) is stored, before its appends raise
            ``AppendOutcomeUnknown``; every other append waits meanwhile.
        create: False to never create or upgrade the schema: a missing or older one is a
            ``SchemaError`` on first use (what read-only tools want).

    Raises:
        InvalidArgument: a malformed ``conninfo``, an unsafe ``schema`` name or a bad number.
    """

    def __init__(self, conninfo: str, *, schema: str = "eventstore", codec: Codec | None = None,
                 page_size: int = 500, poll_interval: float = 0.5, readers: int = 4,
                 connect_timeout: float = 10, max_batch: int = 1000,
                 resolve_timeout: float = 30.0, create: bool = True) -> None:
        super().__init__(codec=codec, page_size=page_size, poll_interval=poll_interval)
        self.create = bool(create)
        if not isinstance(conninfo, str):
            raise InvalidArgument(f"conninfo must be a postgresql:// URL, got {conninfo!r}")
        try:
            params = conninfo_to_dict(conninfo)
            if "application_name" not in params:  # name our connections in pg_stat_activity
                conninfo = make_conninfo(conninfo, application_name="trio-actors")
            # A peer that vanished (a host lost, a cable cut) is noticed within ~11 s, not hours.
            keepalives = {key: value for key, value in _KEEPALIVES.items() if key not in params}
            if keepalives:
                conninfo = make_conninfo(conninfo, **keepalives)
        except (psycopg.Error, ValueError) as exc:  # UnicodeError is a ValueError
            raise InvalidArgument(
                f"conninfo is not a valid PostgreSQL URL: {describe_error(exc)}") from None
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema) or (
                schema.lower().startswith("pg_")):
            raise InvalidArgument(
                "schema must be 1 to 48 letters, digits or underscores, not starting with a digit "
                f"or 'pg_', got {schema!r}")
        self.readers = _whole(readers, "readers")
        self.max_batch = _whole(max_batch, "max_batch")
        if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, int | float) or (
                not 0 < connect_timeout < math.inf):
            raise InvalidArgument(
                f"connect_timeout must be a positive number of seconds, got {connect_timeout!r}")
        if isinstance(resolve_timeout, bool) or not isinstance(resolve_timeout, int | float) or (
                not 0 <= resolve_timeout < math.inf):
            raise InvalidArgument(
                f"resolve_timeout must be a number of seconds >= 0, got {resolve_timeout!r}")
        self.schema = schema
        self.connect_timeout = float(connect_timeout)
        self.resolve_timeout = float(resolve_timeout)
        self._conninfo = conninfo
        self._server = " ".join(f"{key}={params[key]}" for key in ("host", "port", "dbname", "user")
                                if params.get(key)) or "the default server"
        self._channel = f"{schema}_appended"
        self._token = uuid.uuid4().hex  # NOTIFY payload: our listener skips our own appends
        self._sql = Statements(sql.Identifier(schema).as_string())
        self._cluster_sql = cluster.Statements(self._sql.schema)
        self._ready = False
        self._ready_lock = trio.Lock()
        self._idle: list[Conn] = []
        self._reader_slots = trio.Semaphore(self.readers)
        self._writer: Conn | None = None
        self._backend: Backend | None = None  # the writer's server process
        self._listener: Listener | None = None
        self._committer = GroupCommitter(self._write_batch, max_batch=self.max_batch,
                                     after_commit=self._notify_appended)

    def __repr__(self) -> str:
        return f"<PostgresEventStore {self._server} schema={self.schema}>"

    # -- connections ----------------------------------------------------------------------------

    def _connect(self) -> Conn:
        """Open a connection (in a worker thread), in autocommit mode and UTC."""
        seconds = max(1, min(round(self.connect_timeout), 2**31 - 1))  # what libpq accepts
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=seconds)
        except psycopg.Error as exc:
            raise ConnectionFailed(self._server, describe_error(exc)) from exc
        try:
            # Every statement here is an index lookup or an ordered walk of an index. Ruling out
            # the other scans keeps it so even where the statistics are missing or stale, as on
            # a new, fast-growing table (where a plan may otherwise sort a whole stream for each
            # page, or a cached one scan a table that has since grown). JIT would take the huge
            # costs of the ruled-out scans for a reason to compile.
            conn.execute("SET TIME ZONE 'UTC'; SET enable_seqscan = off; "
                         "SET enable_bitmapscan = off; SET jit = off; "
                         "SET idle_in_transaction_session_timeout = "
                         f"'{IDLE_IN_TRANSACTION_TIMEOUT}'")
        except psycopg.Error as exc:
            conn.close()
            raise ConnectionFailed(self._server, describe_error(exc)) from exc
        return conn

    def _failure(self, exc: psycopg.Error, conn: Conn, doing: str,
                 outcome: str | None = None) -> EventStoreError:
        if conn.broken or conn.closed:
            return ConnectionFailed(self._server, describe_error(exc), doing=doing, outcome=outcome)
        return EventStoreError(
            f"PostgreSQL ({self._server}) failed to {doing}: {describe_error(exc)}"
            + (f"; {outcome}" if outcome else ""))

    def _keep(self, conn: Conn | None) -> Conn | None:
        """``conn`` if it can serve another call, else None (and it is closed)."""
        if conn is None:
            return None
        if self._closed or conn.broken or conn.closed:
            conn.close()
            return None
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()  # a statement failed half way through a transaction
            return None
        return conn

    def _run(self, slot: _Slot, work: Callable[[Conn], _T], doing: str) -> _T:
        """In a worker thread: connect if needed, then ``work``; errors become EventStoreErrors."""
        if slot.conn is not None and hung_up(slot.conn):
            slot.conn.close()
            slot.conn = None
        if slot.conn is None:
            slot.conn = self._connect()
            slot.fresh = True
        conn = slot.conn
        try:
            return work(conn)
        except psycopg.Error as exc:
            raise self._failure(exc, conn, doing) from exc
        except UnicodeEncodeError as exc:
            raise InvalidArgument(f"cannot {doing}: text must be valid UTF-8 ({exc})") from None

    async def _on_reader(self, doing: str, work: Callable[[Conn], _T]) -> _T:
        """Run ``work`` on a pooled connection; retry once if a pooled one turns out dead.

        Every reader job is idempotent, so the retry is safe.
        """
        async with self._reader_slots:
            for attempt in range(2):
                slot = _Slot(self._idle.pop() if self._idle else None)
                try:
                    return await trio.to_thread.run_sync(self._run, slot, work, doing)
                except ConnectionFailed:
                    if attempt or slot.fresh or slot.conn is None:
                        raise
                finally:
                    kept = self._keep(slot.conn)
                    if kept is not None:
                        self._idle.append(kept)
            raise AssertionError("unreachable")  # pragma: no cover

    async def _read(self, doing: str, work: Callable[[Conn], _T]) -> _T:
        await self._prepare()
        return await self._on_reader(doing, work)

    # -- the schema -----------------------------------------------------------------------------

    async def _prepare(self) -> None:
        """Create or check the schema once, on first use."""
        if self._ready:
            return
        async with self._ready_lock:
            if not self._ready:
                await self._on_reader(f"create or check schema {self.schema!r}", self._install)
                self._ready = True

    def _install(self, conn: Conn) -> None:
        install_schema(conn, self._sql, self.schema, self._server, create=self.create)

    # -- appends --------------------------------------------------------------------------------

    async def _append(self, stream: str, events: list[EncodedEvent], expected: Expected,
                      side: Side) -> AppendResult:
        await self._prepare()
        return await self._committer.submit(stream, events, expected, side)

    async def _write_batch(self, requests: list[AppendRequest]) -> None:
        batch = [(r.stream, r.events, r.expected, r.side) for r in requests]
        slot = self._take_writer()
        try:
            outcomes = await trio.to_thread.run_sync(self._commit, slot, batch)
        finally:
            self._put_writer(slot)
        unsure = []
        for request, outcome in zip(requests, outcomes, strict=True):
            if isinstance(outcome, _Unknown):
                unsure.append((request, outcome))
            else:
                request.settle(outcome)
        if unsure:
            await self._settle_unsure(unsure, slot.backend)

    def _take_writer(self) -> _Slot:
        slot = _Slot(self._writer, backend=self._backend)
        self._writer = None
        return slot

    def _put_writer(self, slot: _Slot) -> None:
        self._writer = self._keep(slot.conn)
        self._backend = slot.backend

    def _writer_conn(self, slot: _Slot) -> Conn:
        """In a worker thread: the slot's writer connection, (re)opened if needed."""
        if slot.conn is not None and hung_up(slot.conn):
            slot.conn.close()  # the server closed it while it sat idle: start afresh
            slot.conn = None
        if slot.conn is None:
            conn = self._connect()
            try:
                # The append statement's plan does not depend on its arrays: make it once.
                conn.execute("SET plan_cache_mode = force_generic_plan")
                slot.backend = who_am_i(conn)
            except psycopg.Error as exc:
                conn.close()
                raise ConnectionFailed(self._server, describe_error(exc)) from exc
            slot.conn = conn
        return slot.conn

    def _commit(self, slot: _Slot, batch: list[Request]
                ) -> list[AppendResult | EventStoreError | _Unknown]:
        """In a worker thread: settle and write a whole batch in one transaction, one round trip.

        The transaction locks the ``global_position`` row first, so the versions and ids its
        statements read next cannot change before it commits. The server settles each append
        (a conflict fails alone) and writes the accepted ones; appends that share a stream or an
        event id go in successive statements, so each one sees the writes of those before it.
        """
        conn, q = self._writer_conn(slot), self._sql
        rounds = append_rounds(batch)
        side = with_side(batch)
        payload = self._payload(batch) if side else self._token
        try:
            try:
                rows = self._send(conn, q.append_with_side if side else q.append, rounds,
                                  payload)
            except psycopg.errors.UniqueViolation as exc:
                if exc.diag.constraint_name != "event_ids" or conn.broken:
                    raise
                conn.execute("ROLLBACK")  # an id is stored: a retry, or a clash to report
                rows = self._send(conn, q.append_with_side_checking_ids if side
                                  else q.append_checking_ids, rounds, payload)
            return [*append_outcomes(batch, rows)]
        except psycopg.Error as exc:
            if not aborted(conn):
                # The COMMIT may have gone out with the rest and been applied.
                failure = self._failure(exc, conn, "append", _CHECKED)
                failure.__cause__ = exc
                conn.close()
                return [_Unknown(describe_error(exc), failure)] * len(batch)
            # The server refused a statement, so it skipped the COMMIT: nothing was written.
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")
            if len(batch) > 1 and (exc.sqlstate or "")[:2] in _ROW_ERRORS:
                # A row it refused: find the append that holds it, so that one fails alone. On
                # a new connection: psycopg may take statements skipped in the aborted pipeline
                # for prepared ones (then "prepared statement does not exist").
                conn.close()
                slot.conn = None
                half = len(batch) // 2
                return self._commit(slot, batch[:half]) + self._commit(slot, batch[half:])
            if len(batch) == 1:
                stream, events, _, _ = batch[0]
                doing = f"append {len(events)} event(s) to stream {stream!r}"
            else:
                doing = "append"
            refused = self._failure(exc, conn, doing, _NOTHING)
            refused.__cause__ = exc
            return [refused] * len(batch)
        except Exception as exc:  # unexpected, perhaps after the COMMIT went out
            failure = EventStoreError(f"the append failed unexpectedly ({exc!r}); {_CHECKED}")
            failure.__cause__ = exc
            conn.close()
            return [_Unknown(repr(exc), failure)] * len(batch)

    async def _settle_unsure(self, unsure: list[tuple[AppendRequest, _Unknown]],
                             backend: Backend | None) -> None:
        """Settle appends whose commit was cut off, from where their event ids are stored.

        Retries with backoff for ``resolve_timeout`` seconds (of trio's clock) while the server
        is out of reach; what is still unknown then, or when cancelled or closed meanwhile,
        becomes ``AppendOutcomeUnknown``.
        """
        deadline = trio.current_time() + self.resolve_timeout
        ids = [event.id for request, _ in unsure for event in request.events]
        # An enqueue (no events) is settled by whether its messages wait in their inboxes.
        pairs = [(target, message.id) for request, _ in unsure if not request.events
                 for target, message in request.side.enqueue]
        delay = 0.05
        why = "the store was closed"
        try:
            while not self._closed:
                slot = self._take_writer()
                try:
                    found, queued = await trio.to_thread.run_sync(self._look_up, slot, backend,
                                                                  ids, pairs)
                except EventStoreError as exc:
                    why = f"looking its event ids up failed for {self.resolve_timeout:g} s ({exc})"
                else:
                    for request, unknown in unsure:
                        request.settle(checked_outcome(
                            request, [found.get(event.id) for event in request.events],
                            unknown.error) if request.events else checked_enqueue(
                            request, queued, unknown.error))
                    return
                finally:
                    self._put_writer(slot)
                remaining = deadline - trio.current_time()
                if remaining <= 0:
                    break
                await trio.sleep(min(delay, remaining))  # the last try is at the deadline
                delay = min(2 * delay, 1.0)
        except BaseException:
            why = "the writer was cancelled while looking its event ids up"
            raise
        finally:
            for request, unknown in unsure:
                if request.result is None:
                    error = AppendOutcomeUnknown(request.stream, len(request.events),
                                                 f"{unknown.reason}; {why}")
                    error.__cause__ = unknown.error.__cause__
                    request.settle(error)

    def _look_up(self, slot: _Slot, backend: Backend | None, ids: list[uuid.UUID],
                 pairs: list[tuple[str, uuid.UUID]],
                 ) -> tuple[dict[uuid.UUID, tuple[str, int, int]], set[tuple[str, bytes]]]:
        """In a worker thread: end the lost connection's server process, then find ``ids``
        (where they are stored) and ``pairs`` (which messages wait in their inboxes)."""
        conn = self._writer_conn(slot)
        doing = "look up the event ids of an append whose commit was cut off"
        try:
            if backend is not None and not end_backend(conn, backend):
                raise EventStoreError(
                    f"the server process of the lost connection (pid {backend[0]}) has not ended "
                    "yet, so it may still commit")
            return (stored_at(conn, self._sql, ids),
                    waiting(conn, self._sql, pairs) if pairs else set())
        except psycopg.Error as exc:
            raise self._failure(exc, conn, doing) from exc

    def _payload(self, batch: list[Request]) -> str:
        """The batch's notification: our token, then the inboxes it stores messages in (as a
        JSON list; ``*`` when too many to name)."""
        targets = sorted({target for _, _, _, side in batch for target, _ in side.enqueue})
        if not targets:
            return self._token
        named = json.dumps(targets)
        return f"{self._token} {named if len(named.encode()) < _MAX_PAYLOAD else '*'}"

    def _send(self, conn: Conn, statement: str, rounds: list[tuple[list[Any], ...]],
              payload: str) -> list[tuple[Any, ...]]:
        """Run one append transaction in one round trip; the rows of its rounds."""
        with conn.pipeline():
            conn.execute("BEGIN")
            conn.execute(self._sql.lock_position)
            cursors = [conn.execute(statement, params) for params in rounds]
            conn.execute("SELECT pg_notify(%s, %s)", (self._channel, payload))
            conn.execute("COMMIT")
        return [row for cursor in cursors for row in cursor.fetchall()]

    # -- reads and the rest ---------------------------------------------------------------------

    async def _read_page(self, stream: str, first: int, last: int | None,
                         size: int) -> list[RecordedEvent]:
        def work(conn: Conn) -> list[RecordedEvent]:
            if last is None:
                cursor = conn.execute(self._sql.read_stream, (stream, first, size))
            else:
                cursor = conn.execute(self._sql.read_stream_to, (stream, first, last, size))
            return [decode_row(stream, *row) for row in cursor.fetchall()]
        return await self._read(f"read stream {stream!r}", work)

    async def _read_all_page(self, after: int, size: int,
                             types: frozenset[str] | None) -> list[RecordedEvent]:
        def work(conn: Conn) -> list[RecordedEvent]:
            if types is None:
                cursor = conn.execute(self._sql.read_all, (after, size))
            else:
                cursor = conn.execute(self._sql.read_all_types, (after, list(types), size))
            return [decode_row(*row) for row in cursor.fetchall()]
        return await self._read("read all streams", work)

    async def _read_inbox_page(self, stream: str, after: int,
                               size: int) -> list[RecordedEvent]:
        def work(conn: Conn) -> list[RecordedEvent]:
            cursor = conn.execute(self._sql.read_inbox, (stream, after, size))
            return [decode_row(stream, *row) for row in cursor.fetchall()]
        return await self._read(f"read the inbox of stream {stream!r}", work)

    async def _set_wake(self, stream: str, wake_at: float | None) -> None:
        def work(conn: Conn) -> None:
            if wake_at is None:
                conn.execute(self._sql.clear_wake, (stream,))
            else:
                conn.execute(self._sql.set_wake, (stream, wake_at))
        await self._read(f"set the wake time of stream {stream!r}", work)

    async def _work(self) -> list[WorkEntry]:
        def work(conn: Conn) -> list[WorkEntry]:
            rows = conn.execute(self._sql.work).fetchall()
            # Sorted here: the server's collation need not order names as Python does.
            return sorted((WorkEntry(stream, wake_at, int(count))
                           for stream, wake_at, count in rows), key=lambda entry: entry.stream)
        return await self._read("list the streams with work", work)

    async def _last_version(self, stream: str) -> int:
        def work(conn: Conn) -> int:
            row = conn.execute(self._sql.last_version, (stream, stream)).fetchone()
            return 0 if row is None else int(row[0])
        return await self._read(f"read the version of stream {stream!r}", work)

    async def _delete_up_to(self, stream: str, version: int) -> None:
        def work(conn: Conn) -> None:
            conn.execute(self._sql.delete_up_to, (stream, version, stream))
        await self._read(f"delete events of stream {stream!r}", work)

    async def _save_snapshot(self, stream: str, version: int, state: str) -> None:
        def work(conn: Conn) -> None:
            conn.execute(self._sql.save_snapshot, (stream, version, state))
        await self._read(f"save a snapshot of stream {stream!r}", work)

    async def _load_snapshot(self, stream: str,
                             max_version: int | None) -> tuple[int, str, datetime] | None:
        def work(conn: Conn) -> tuple[int, str, datetime] | None:
            if max_version is None:
                cursor = conn.execute(self._sql.load_snapshot, (stream,))
            else:
                cursor = conn.execute(self._sql.load_snapshot_to, (stream, max_version))
            row = cursor.fetchone()
            return None if row is None else (row[0], row[1], row[2])
        return await self._read(f"load a snapshot of stream {stream!r}", work)

    # -- consumer offsets -----------------------------------------------------------------------

    async def _load_offset(self, name: str) -> ConsumerOffset | None:
        return await self._read(f"load the offset of consumer {name!r}",
                                lambda conn: offsets.load(conn, self._sql.schema, name))

    async def _list_offsets(self) -> list[ConsumerOffset]:
        return await self._read("list the consumer offsets",
                                lambda conn: offsets.load_all(conn, self._sql.schema))

    async def _save_offset(self, name: str, position: int, expected: int | None, state: str,
                           error: str | None, statements: list[Statement],
                           fence: Fence | None) -> None:
        def work(conn: Conn) -> None:
            offsets.save(conn, self._sql.schema, name, position, expected, state, error,
                         statements, fence)

        # Not retried on a lost connection, as reads are: the commit may have gone through.
        await self._prepare()
        async with self._reader_slots:
            slot = _Slot(self._idle.pop() if self._idle else None)
            try:
                await trio.to_thread.run_sync(self._run, slot, work,
                                              f"save the offset of consumer {name!r}")
            finally:
                kept = self._keep(slot.conn)
                if kept is not None:
                    self._idle.append(kept)

    async def _head_position(self) -> int:
        return await self._read("read the head position",
                                lambda conn: offsets.head(conn, self._sql.schema))

    # -- members and owners ---------------------------------------------------------------------

    async def _join(self, member: str, lease_seconds: float, hosting: bool, host: str,
                    pid: int) -> float:
        return await self._read(f"join member {member!r}", lambda conn: cluster.join(
            conn, self._cluster_sql, member, lease_seconds, hosting, host, pid))

    def _heartbeat(self, member: str) -> Heartbeat:
        return cluster.Heartbeat(self._connect, self._cluster_sql, member,
                                 lambda exc, conn: self._failure(
                                     exc, conn, f"renew the lease of member {member!r}"))

    async def _leave(self, member: str) -> None:
        await self._read(f"let member {member!r} leave",
                         lambda conn: cluster.leave(conn, self._cluster_sql, member))

    async def _claim(self, stream: str, member: str) -> Claim:
        return await self._read(f"claim stream {stream!r}",
                                lambda conn: cluster.claim(conn, self._cluster_sql, stream, member))

    async def _claim_due(self, member: str, prefixes: tuple[str, ...], limit: int,
                         slack: float) -> list[Claim]:
        return await self._read("claim due work", lambda conn: cluster.claim_due(
            conn, self._cluster_sql, member, prefixes, limit, slack))

    async def _release(self, stream: str, fence: Fence) -> bool:
        return await self._read(f"release stream {stream!r}", lambda conn: cluster.release(
            conn, self._cluster_sql, stream, fence))

    async def _members(self) -> list[MemberInfo]:
        return await self._read("list the members",
                                lambda conn: cluster.members(conn, self._cluster_sql))

    async def _owners(self, member: str | None, streams: list[str] | None) -> list[Ownership]:
        return await self._read("list the owners", lambda conn: cluster.owners(
            conn, self._cluster_sql, member, streams))

    async def _database_time(self) -> float:
        return await self._read("read the database clock",
                                lambda conn: cluster.now(conn, self._cluster_sql))

    # -- subscriptions and closing --------------------------------------------------------------

    async def _wait_for_append(self, seen: trio.Event) -> None:
        self._listen()
        await super()._wait_for_append(seen)

    def _listen(self) -> Listener | None:
        if self._listener is None and not self._closed:
            self._listener = Listener(self._connect, self._channel, self._token,
                                       self._notify_appended, min(self.poll_interval, 1.0))
            self._listener.start()
        return self._listener

    def _watch_inboxes(self, callback: Callable[[list[str] | None], None] | None) -> bool:
        listener = self._listen()
        if listener is not None:
            listener.inboxes = callback
        return True

    async def _aclose(self) -> None:
        # Connections in use are closed by whoever holds them, when they see the store closed.
        conns = [*self._idle, *([self._writer] if self._writer is not None else [])]
        self._idle.clear()
        self._writer = None
        listener, self._listener = self._listener, None
        with trio.CancelScope(shield=True):
            if listener is not None:
                listener.stop()
                if conns:  # wake it now rather than at the end of its current wait
                    with trio.move_on_after(self.connect_timeout):
                        await trio.to_thread.run_sync(listener.wake_up, conns[0])
                with trio.move_on_after(self.connect_timeout):
                    await trio.to_thread.run_sync(listener.join, abandon_on_cancel=True)
            for conn in conns:
                conn.close()


def _whole(value: object, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{argument} must be an int >= 1, got {value!r}")
    return value
