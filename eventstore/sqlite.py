"""``SQLiteEventStore``: the embedded, durable backend on one SQLite file (stdlib ``sqlite3``).

One writer connection commits every append through group commit; reads run on the store's one
reader thread, on its own connection, fed through a queue (no thread hop per page); every call
into SQLite runs off trio's thread, so trio never waits on the database. The file is in WAL
mode, so readers never block the writer, and several processes may share it: SQLite's write lock
and the busy timeout serialise their writers.

A batch of appends is written in one of two ways. The fast way plans each append's versions on the
trio thread, from the versions this store last saw, and writes the whole batch in one transaction:
one ``INSERT`` statement checks the planned streams' versions under the write lock and writes the
events. The worker thread then spends the whole commit inside SQLite, without the GIL, while trio
runs the callers. A stale plan, a reused event id or a retry writes nothing. Those appends, and any
the plan cannot vouch for, are then written the careful way: one ``BEGIN IMMEDIATE`` transaction, a
savepoint per append, the idempotent-retry and expected-version checks against the stored ids and
versions, so that each append succeeds or fails on its own. A batch whose appends also write
inboxes or wake times (see ``eventstore._work``) is planned the same way, and its plan written in
one transaction: the ``INSERT``, then a statement per kind of side write. The file's format and
its upgrades live in ``_sqlite_schema``. A fenced append always goes the careful way, where its
fence is checked in its own savepoint; the cluster's members, owners and claims live in
``_sqlite_cluster``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import pathlib
import sqlite3
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypeVar

import msgspec
import trio

from . import _sqlite_cluster as cluster
from . import _sqlite_offsets as offsets
from . import _validate as check
from ._cluster import Claim, Fence, Heartbeat, MemberInfo, Ownership
from ._codec import ArrayDecoder, Codec
from ._errors import (
    DecodeError,
    EventStoreError,
    InvalidArgument,
    StoreClosed,
)
from ._group_commit import AppendRequest, GroupCommitter
from ._model import (
    AppendResult,
    Expected,
    RecordedEvent,
    Typed,
    recorded_event,
)
from ._offsets import ConsumerOffset, Statement
from ._reader import ReaderThread
from ._rows import Held, RowPage
from ._sqlite_schema import SCHEMA as SCHEMA
from ._sqlite_schema import SCHEMA_VERSION as SCHEMA_VERSION
from ._sqlite_schema import micros, prepare
from ._sqlite_shapes import ShapeBook, rebuild
from ._sqlite_write import (
    CLEAR_WAKE,
    EVENT_WIDTH,
    RETURNING,
    ROWS_PER_INSERT,
    SET_WAKE,
    STORED_VERSION,
    Row,
    commit_batch,
    plan_batch,
    store_error,
)
from ._store import EventStore, PageRead, decode_json, decode_row
from ._validate import EncodedEvent
from ._work import Side, WorkEntry

__all__ = ["SCHEMA", "SCHEMA_VERSION", "SQLiteEventStore"]


def _same(value: bytes | None) -> bytes | None:
    return value


def _bind_without_adapting() -> None:
    """Spare ``bytes`` and ``None`` parameters sqlite3's search for an adapter.

    Python 3.11's ``sqlite3`` looks for an adapter for every parameter that is not an int,
    float, str or bytearray; for ``bytes`` (event ids) and ``None`` it raises and formats two
    ``AttributeError``s each time, about a microsecond per parameter on the writer's thread.
    An identity adapter is found at once and changes no value. Registered only for a type the
    program has not registered an adapter of its own for.
    """
    for kind in (bytes, type(None)):
        if (kind, sqlite3.PrepareProtocol) not in sqlite3.adapters:
            sqlite3.register_adapter(kind, _same)


_bind_without_adapting()

T = TypeVar("T")

SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
LAST = 2**63 - 1  # the highest version SQLite can store: "no upper bound"
VERSIONS_REMEMBERED = 65_536  # streams whose version the writer keeps in mind
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

LAST_VERSION = "SELECT " + STORED_VERSION.format("?1")
# An event's type name comes from ``types`` (a LEFT JOIN keeps events as the outer loop, in the
# index's order, and a row whose type id has no name: its decoding then fails, naming it).
# Metadata is NULL when there is none; a shape's fields, when its data is stored as the array of
# the values of those keys (see ``_sqlite_shapes``).
ROW_COLUMNS = ("version, position, types.name, data, metadata, events.id, recorded_at, "
               "types.fields FROM events LEFT JOIN types ON types.id = events.type")
READ_STREAM = ("SELECT " + ROW_COLUMNS + " WHERE stream = ? AND version >= ? AND version <= ? "
               "ORDER BY version LIMIT ?")
READ_ALL = ("SELECT stream, " + ROW_COLUMNS + " WHERE position > ? {types}"
            "ORDER BY position LIMIT ?")
TYPES_IN = "AND events.type IN (SELECT id FROM types WHERE name IN ({})) "
# A message's sequence number is both its version and its position.
READ_INBOX = ("SELECT seq, seq, type, data, nullif(metadata, '{}'), id, recorded_at, NULL "
              "FROM inbox "
              "WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?")
# Every stream with a wake time or waiting messages: the wake table's rows and the inbox's
# counts per stream (counted on its (stream, id) index, not the table).
WORK = ("SELECT stream, max(wake_at), sum(waiting) FROM ("
        "SELECT stream, wake_at, 0 AS waiting FROM wake WHERE wake_at IS NOT NULL "
        "UNION ALL SELECT stream, NULL, count(*) FROM inbox GROUP BY stream"
        ") GROUP BY stream ORDER BY stream")


class SQLiteEventStore(EventStore):
    """An event store in one SQLite file, durable by default, shareable between processes.

    The constructor only checks its arguments; the file is opened (and created, with its schema)
    on first use, or when entering ``async with store:``. Nothing here blocks trio: every SQLite
    call runs in a worker thread.

    Args:
        path: the database file, created if missing; a relative path is taken from the current
            directory when the store is made (``store.path`` is absolute).
        synchronous: SQLite's ``synchronous`` setting: ``"FULL"`` (the default) makes every commit
            durable through a power loss; ``"NORMAL"`` may lose the last commits on power loss
            (never on a process crash) and is faster; ``"OFF"`` and ``"EXTRA"`` as in SQLite.
        codec: turns objects into events and back; a fresh ``Codec()`` by default.
        page_size: events per query when reading.
        poll_interval: seconds between looks for events written by other processes, while a
            subscription waits.
        busy_timeout: seconds to wait for another process's write lock before failing.
        create: False to never create, upgrade or convert the file: a missing file, one without
            an event store, or an older one is an error on first use (what read-only tools want).

    Raises:
        InvalidArgument: an argument is out of range or of the wrong type.
    """

    reports_inbox_seq = RETURNING  # SQLite 3.35 and later
    positional_data = True  # data objects are stored as arrays of their values (format 7)

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL",
                 codec: Codec | None = None, page_size: int = 500, poll_interval: float = 0.5,
                 busy_timeout: float = 30.0, create: bool = True) -> None:
        super().__init__(codec=codec, page_size=page_size, poll_interval=poll_interval)
        self.create = bool(create)
        if not isinstance(path, str | os.PathLike):
            raise InvalidArgument(f"path must be a str or os.PathLike, got {path!r}")
        name = os.fspath(path)
        if not isinstance(name, str) or not name or name == ":memory:" or "\x00" in name:
            raise InvalidArgument(
                f"path must name a database file, got {path!r}; "
                "for an in-memory store use eventstore.memory.MemoryEventStore")
        if not isinstance(synchronous, str) or synchronous.upper() not in SYNCHRONOUS:
            raise InvalidArgument(
                f"synchronous must be one of {', '.join(SYNCHRONOUS)}, got {synchronous!r}")
        if (isinstance(busy_timeout, bool) or not isinstance(busy_timeout, int | float)
                or not math.isfinite(busy_timeout) or busy_timeout < 0):
            raise InvalidArgument(
                f"busy_timeout must be a finite number of seconds >= 0, got {busy_timeout!r}")
        self.path = os.path.abspath(name)
        self.synchronous = synchronous.upper()
        self.busy_timeout = float(busy_timeout)
        self._writer: sqlite3.Connection | None = None
        self._reader_conn: sqlite3.Connection | None = None  # the reader thread's own
        self._reader: ReaderThread = ReaderThread(f"eventstore reader {self.path}",
                                    finish=self._close_reader,
                                    closed=lambda: StoreClosed(type(self).__name__))
        self._shut = False  # set once the connections are being closed
        self._open_lock = trio.Lock()
        self._write_limiter = trio.CapacityLimiter(1)
        self._committer = GroupCommitter(self._write_batch, after_commit=self._notify_appended)
        self._versions: dict[str, int] = {}  # stream -> version last seen: a hint, checked
        self._shapes = ShapeBook()  # the file's shapes the writer knows committed
        self._rows_per_insert = ROWS_PER_INSERT
        self._inbox_watcher: cluster.InboxWatcher | None = None  # see watch_inboxes

    def __repr__(self) -> str:
        return f"SQLiteEventStore({self.path!r}, synchronous={self.synchronous!r})"

    async def __aenter__(self) -> Self:
        """Open the file (creating it and its schema if needed) and return the store.

        A checkpoint. If it fails or is cancelled, the store is closed and nothing stays open.

        Raises:
            SchemaError: the file was written by a newer version of this library, is not an
                event store, or its upgrade from an older format failed (it is then unchanged).
            EventStoreError: SQLite cannot open the file.
        """
        self._check_open()
        try:
            await trio.lowlevel.checkpoint()
            await self._connect()
        except BaseException:
            await self.aclose()
            raise
        return self

    # -- connections -----------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        # Without ``create``, mode=rw: a missing file is an error instead of a new file.
        target = self.path if self.create else f"{pathlib.Path(self.path).as_uri()}?mode=rw"
        conn = sqlite3.connect(target, timeout=self.busy_timeout, isolation_level=None,
                               check_same_thread=False, cached_statements=64,
                               uri=not self.create)
        try:
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            # Savepoints and multi-row statements journal the pages they change; in a temporary
            # file that doubles the cost of an insert.
            conn.execute("PRAGMA temp_store = MEMORY")
        except BaseException:
            conn.close()
            raise
        return conn

    async def _connect(self) -> None:
        """Open the writer connection and the schema once; later calls return at once."""
        if self._writer is not None:
            return
        async with self._open_lock:
            if self._writer is None:
                self._check_open()
                await trio.to_thread.run_sync(self._open_sync, limiter=self._write_limiter)

    def _open_sync(self) -> None:
        try:
            conn = self._connection()
        except sqlite3.Error as exc:
            raise store_error(exc, f"cannot open {self.path!r}") from exc
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self._rows_per_insert = min(
            ROWS_PER_INSERT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // EVENT_WIDTH)
        self._writer = conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL and create the schema, or upgrade or check the one that is there."""
        try:
            prepare(conn, self.path, create=self.create)
        except sqlite3.Error as exc:
            raise store_error(exc, f"cannot open {self.path!r} as an event store") from exc

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the reader connection, on the store's reader thread."""
        await self._connect()
        return await self._reader.run(functools.partial(self._with_reader, work))

    def _with_reader(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """On the reader thread: run ``work`` on its connection, opened on first use."""
        if self._shut:
            raise StoreClosed(type(self).__name__)
        try:
            conn = self._reader_conn
            if conn is None:
                conn = self._connection()
                try:
                    conn.execute("PRAGMA query_only = 1")
                except BaseException:
                    conn.close()
                    raise
                self._reader_conn = conn
            return work(conn)
        except sqlite3.Error as exc:
            raise store_error(exc, f"cannot read {self.path!r}") from exc

    def _close_reader(self) -> None:
        """On the reader thread, as it ends: close its connection."""
        conn, self._reader_conn = self._reader_conn, None
        if conn is not None:
            conn.close()

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the writer connection in a worker thread (never two at once)."""
        await self._connect()
        return await trio.to_thread.run_sync(self._with_writer, work,
                                             limiter=self._write_limiter)

    def _with_writer(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._writer
        if conn is None or self._shut:
            raise StoreClosed(type(self).__name__)
        try:
            return work(conn)
        except sqlite3.Error as exc:
            raise store_error(exc, f"cannot write to {self.path!r}; nothing was written") from exc
        finally:
            if conn.in_transaction:
                # SQLite rolls back by itself after some errors (a full disk, an I/O error);
                # otherwise nothing of a failed transaction may stay.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")

    # -- appends ---------------------------------------------------------------------------------

    async def _append(self, stream: str, events: list[EncodedEvent], expected: Expected,
                      side: Side) -> AppendResult:
        if self._writer is None:
            await self._connect()
        return await self._committer.submit(stream, events, expected, side)

    async def _write_batch(self, requests: list[AppendRequest]) -> None:
        recorded_at = micros(datetime.now(UTC))
        plans, careful = plan_batch(requests, self._versions, self._shapes, recorded_at,
                                    self._rows_per_insert)
        outcomes, versions = await self._write(
            lambda conn: commit_batch(conn, plans, careful, recorded_at,
                                       self._rows_per_insert, self.path, self._shapes))
        if len(self._versions) + len(versions) > VERSIONS_REMEMBERED:
            self._versions.clear()
        self._versions.update(versions)
        for request, outcome in outcomes:
            request.settle(outcome)

    # -- reads -----------------------------------------------------------------------------------

    async def _read_page(self, stream: str, first: int, last: int | None,
                         size: int) -> list[RecordedEvent]:
        return await self._read(_stream_page(stream, first, last, size,
                                             _typers(self.codec)))

    async def _read_all_page(self, after: int, size: int,
                             types: frozenset[str] | None) -> list[RecordedEvent]:
        return await self._read(_all_page(after, size, types, _typers(self.codec)))

    def _page_read(self, stream: str, first: int, last: int | None, size: int) -> PageRead:
        return functools.partial(self._with_reader, _stream_page(stream, first, last, size,
                                                                  _typers(self.codec)))

    def _all_page_read(self, after: int, size: int, types: frozenset[str] | None) -> PageRead:
        return functools.partial(self._with_reader, _all_page(after, size, types,
                                                               _typers(self.codec)))

    def _row_pages(self, stream: str, *, from_version: int = 1,
                   to_version: int | None = None) -> AsyncGenerator[RowPage, None]:
        self._check_open()
        name = check.stream_name(stream)
        first = check.whole(from_version, "from_version", minimum=0)
        last = check.optional_whole(to_version, "to_version", minimum=0)
        codec = self.codec
        return self._pages(
            max(first, 1), last, None,
            lambda cursor, size: self._read(
                _stream_rows(name, cursor, last, size, _typers(codec))),
            lambda cursor, size: functools.partial(
                self._with_reader, _stream_rows(name, cursor, last, size, _typers(codec))),
            lambda page: page.rows[-1][0] + 1)

    async def _last_version(self, stream: str) -> int:
        def work(conn: sqlite3.Connection) -> int:
            value = conn.execute(LAST_VERSION, (stream,)).fetchone()[0]
            if type(value) is not int:
                raise EventStoreError(f"the stored version of stream {stream!r} is {value!r}, "
                                      "not an integer: the file was changed outside this "
                                      "library; restore it from a backup")
            return value

        return await self._read(work)

    async def _delete_up_to(self, stream: str, version: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            # Their ids stay taken, so a late retry of a deleted batch is still recognised.
            conn.execute("INSERT INTO deleted_ids SELECT id, stream, version, position "
                         "FROM events WHERE stream = ? AND version <= ?", (stream, version))
            # The stream's version must not drop when its newest events go: keep a floor.
            conn.execute("INSERT INTO streams (stream, version) SELECT stream, max(version) "
                         "FROM events WHERE stream = ? AND version <= ? GROUP BY stream "
                         "ON CONFLICT (stream) DO UPDATE "
                         "SET version = max(version, excluded.version)", (stream, version))
            conn.execute("DELETE FROM events WHERE stream = ? AND version <= ?",
                         (stream, version))
            conn.execute("COMMIT")

        await self._write(work)

    # -- inboxes and the work index --------------------------------------------------------------

    async def _read_inbox_page(self, stream: str, after: int,
                               size: int) -> list[RecordedEvent]:
        args = (stream, after, size)
        typers = _typers(self.codec)
        return await self._read(lambda conn: _decode(
            zip(itertools.repeat(stream), conn.execute(READ_INBOX, args).fetchall()), typers))

    async def _set_wake(self, stream: str, wake_at: float | None) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if wake_at is None:
                conn.execute(CLEAR_WAKE, (stream,))
            else:
                conn.execute(SET_WAKE, (stream, wake_at))

        await self._write(work)

    async def _work(self) -> list[WorkEntry]:
        def work(conn: sqlite3.Connection) -> list[WorkEntry]:
            return [WorkEntry(stream, None if wake_at is None else float(wake_at), int(waiting))
                    for stream, wake_at, waiting in conn.execute(WORK).fetchall()]

        return await self._read(work)

    # -- snapshots -------------------------------------------------------------------------------

    async def _save_snapshot(self, stream: str, version: int, state: str) -> None:
        recorded_at = micros(datetime.now(UTC))

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO snapshots (stream, version, state, recorded_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (stream, version) DO UPDATE "
                "SET state = excluded.state, recorded_at = excluded.recorded_at",
                (stream, version, state, recorded_at))
            conn.execute("COMMIT")

        await self._write(work)

    async def _load_snapshot(self, stream: str,
                             max_version: int | None) -> tuple[int, str, datetime] | None:
        def work(conn: sqlite3.Connection) -> tuple[int, str, datetime] | None:
            row = conn.execute(
                "SELECT version, state, recorded_at FROM snapshots "
                "WHERE stream = ? AND version <= ? ORDER BY version DESC LIMIT 1",
                (stream, LAST if max_version is None else max_version)).fetchone()
            if row is None:
                return None
            version, state, recorded_at = row
            return version, state, _moment(recorded_at)

        return await self._read(work)

    # -- consumer offsets ------------------------------------------------------------------------

    async def _load_offset(self, name: str) -> ConsumerOffset | None:
        return await self._read(lambda conn: offsets.load(conn, name))

    async def _list_offsets(self) -> list[ConsumerOffset]:
        return await self._read(offsets.load_all)

    async def _save_offset(self, name: str, position: int, expected: int | None, state: str,
                           error: str | None, statements: list[Statement],
                           fence: Fence | None) -> None:
        await self._write(lambda conn: offsets.save(conn, name, position, expected, state,
                                                    error, statements, fence))

    async def _head_position(self) -> int:
        return await self._read(offsets.head)

    # -- the cluster (see eventstore._cluster and _sqlite_cluster) --------------------------------

    async def _join(self, member: str, lease_seconds: float, hosting: bool, host: str,
                    pid: int) -> float:
        return await self._write(lambda conn: cluster.join(conn, member, lease_seconds, hosting,
                                                           host, pid))

    def _heartbeat(self, member: str) -> Heartbeat:
        return cluster.SQLiteHeartbeat(member, self._connection, store_error)

    async def _leave(self, member: str) -> None:
        await self._write(lambda conn: cluster.leave(conn, member))

    async def _claim(self, stream: str, member: str) -> Claim:
        return await self._write(lambda conn: cluster.claim(conn, stream, member))

    async def _claim_due(self, member: str, prefixes: tuple[str, ...], limit: int,
                         slack: float) -> list[Claim]:
        return await self._write(lambda conn: cluster.claim_due(conn, member, prefixes, limit,
                                                                slack))

    async def _release(self, stream: str, fence: Fence) -> bool:
        return await self._write(lambda conn: cluster.release(conn, stream, fence))

    async def _members(self) -> list[MemberInfo]:
        return await self._read(cluster.members)

    async def _owners(self, member: str | None, streams: list[str] | None) -> list[Ownership]:
        return await self._read(lambda conn: cluster.owners(conn, member, streams))

    async def _database_time(self) -> float:
        return await self._read(cluster.now)

    def _watch_inboxes(self, callback: Callable[[list[str] | None], None] | None) -> bool:
        watcher = self._inbox_watcher
        if callback is None:
            if watcher is not None:
                watcher.stop()
                self._inbox_watcher = None
        elif watcher is not None:
            watcher.callback = callback
        elif not self._shut:
            self._inbox_watcher = cluster.InboxWatcher(self._connection, self.poll_interval,
                                                       callback)
            self._inbox_watcher.start()
        return True

    # -- closing ---------------------------------------------------------------------------------

    async def _aclose(self) -> None:
        # Shielded: closing must finish even when the caller is being cancelled. It waits for the
        # writer's batch in flight, if any, which then commits or fails as a whole.
        with trio.CancelScope(shield=True):
            self._shut = True
            watcher, self._inbox_watcher = self._inbox_watcher, None
            if watcher is not None:
                watcher.stop()
                await trio.to_thread.run_sync(watcher.join)
            await self._reader.stop()  # after the reads queued so far, which then fail
            async with self._open_lock:
                await trio.to_thread.run_sync(self._close_sync, limiter=self._write_limiter)

    def _close_sync(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()


Page = Callable[[sqlite3.Connection], list[RecordedEvent]]
Typers = tuple[Mapping[str, Callable[[str | bytes], Any]], Mapping[str, ArrayDecoder]]
"""A codec's ``typed_decoders`` and ``typed_array_decoders``, taken together."""


def _typers(codec: Codec) -> Typers:
    return codec.typed_decoders, codec.typed_array_decoders


def _stream_page(stream: str, first: int, last: int | None, size: int, typers: Typers) -> Page:
    """Reads a page of ``stream`` on a reader connection."""
    args = (stream, first, LAST if last is None else last, size)
    # The stream's name is not read back: one str fewer to build per row.
    return lambda conn: _decode(zip(itertools.repeat(stream),
                                    conn.execute(READ_STREAM, args).fetchall()), typers)


def _all_page(after: int, size: int, types: frozenset[str] | None, typers: Typers) -> Page:
    """Reads a page of every stream (of ``types``) on a reader connection."""
    args: tuple[object, ...]
    if types is None:
        sql, args = READ_ALL.format(types=""), (after, size)
    else:
        marks = ", ".join("?" * len(types))
        sql, args = READ_ALL.format(types=TYPES_IN.format(marks)), (after, *types, size)
    return lambda conn: _decode(((row[0], row[1:]) for row in conn.execute(sql, args).fetchall()),
                                typers)


def _stream_rows(stream: str, first: int, last: int | None, size: int,
                 typers: Typers) -> Callable[[sqlite3.Connection], RowPage]:
    """Reads a page of ``stream`` as a ``RowPage`` on a reader connection."""
    args = (stream, first, LAST if last is None else last, size)

    def read(conn: sqlite3.Connection) -> RowPage:
        rows = conn.execute(READ_STREAM, args).fetchall()
        return _Rows(stream, rows, _typed_events(rows, typers), typers[0])

    return read


# The stored recorded_at values (microseconds since the epoch) that make a datetime.
_EARLIEST = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_LATEST = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def _typed_events(rows: list[Row], typers: Typers) -> list[Any]:
    """The event of each row as its class's typed decoder decodes it, or None.

    Only for a row that ``_decode``'s fast path takes as it is (no metadata, a 16-byte id, a
    recorded_at in range), so that its ``RecordedEvent``, built later, cannot fail. Data stored
    positionally under the fields of its class is decoded by the class's ``ArrayDecoder``, a
    page's rows of a type at once.
    """
    typer, arrays, earliest, latest = typers[0].get, typers[1].get, _EARLIEST, _LATEST
    events: list[Any] = []
    append = events.append
    positional: dict[str, tuple[ArrayDecoder, list[int], list[Any]]] = {}  # by type name
    for n, (_, _, kind, data, metadata, id, at, fields) in enumerate(rows):
        event = None
        if (metadata is None and type(id) is bytes and len(id) == 16 and type(at) is int
                and earliest <= at <= latest):
            if fields is None:
                to_class = typer(kind)
                if to_class is not None:
                    try:
                        event = to_class(data)
                    except (msgspec.DecodeError, TypeError):  # refused: decoded the usual way
                        event = None
            else:
                group = positional.get(kind)
                if group is None:
                    array = arrays(kind)
                    if array is not None:
                        group = positional[kind] = (array, [], [])
                if group is not None and group[0].fields == fields:
                    group[1].append(n)
                    group[2].append(data)
        append(event)
    for array, places, texts in positional.values():
        for n, event in zip(places, _decode_many(array, texts), strict=True):
            events[n] = event
    return events


def _decode_many(array: ArrayDecoder, texts: list[Any]) -> list[Any]:
    """``array.decode_many(texts)``; if it refuses some text, each text's event, or None."""
    try:
        return array.decode_many(texts)
    except (msgspec.DecodeError, TypeError):
        return [_decode_one(array, text) for text in texts]


def _decode_one(array: ArrayDecoder, text: Any) -> Any:
    try:
        return array.decode(text)
    except (msgspec.DecodeError, TypeError):  # refused: decoded the usual way
        return None


class _Rows(RowPage):
    """A ``RowPage`` of ``READ_STREAM`` rows."""

    __slots__ = ()

    @staticmethod
    def build(stream: str, row: Row) -> RecordedEvent:
        return _decode(((stream, row),), _NO_TYPED)[0]

    def decode(self, row: Row, codec: Codec) -> tuple[Any, RecordedEvent | Held]:
        _, _, kind, data, metadata, id, at, fields = row
        if fields is None:
            to_class = codec.typed_decoders.get(kind)
        else:
            array = codec.typed_array_decoders.get(kind)
            to_class = array.decode if array is not None and array.fields == fields else None
        if (to_class is not None and metadata is None and type(id) is bytes and len(id) == 16
                and type(at) is int and _EARLIEST <= at <= _LATEST):
            try:
                return to_class(data), (self.build, self.stream, row)
            except (msgspec.DecodeError, TypeError):
                pass
        recorded = self.build(self.stream, row)
        return codec.decode(recorded), recorded


_NO_TYPED: Typers = ({}, {})


def _moment(stored: int, stream: str | None = None, version: int | None = None) -> datetime:
    """A stored ``recorded_at`` (microseconds since the epoch, UTC) as an aware UTC datetime."""
    if type(stored) is not int:
        raise DecodeError(f"stored recorded_at {stored!r} is not an integer of microseconds",
                          stream=stream, version=version)
    try:
        return _EPOCH + timedelta(microseconds=stored)
    except OverflowError:
        raise DecodeError(f"stored recorded_at {stored!r} is out of range",
                          stream=stream, version=version) from None


def _decode(rows: Iterable[tuple[str, Row]], typers: Typers) -> list[RecordedEvent]:
    """(stream, (version, position, type, data, metadata, id, recorded_at, fields)) rows as
    events.

    The fast path parses JSON with msgspec, shares one datetime per commit, keeps each id's 16
    bytes for the event to make a UUID of when it is read, and builds events without their
    constructor's checks. An event of schema version 1 (no metadata: NULL) whose type has a
    decoder in ``typers`` (``Codec.typed_decoders``, or for data stored positionally under the
    class's fields, ``Codec.typed_array_decoders``) is decoded straight into its class; its data
    dict is built only if someone reads it. Data stored positionally is otherwise rebuilt as
    the object of its fields. Any row the fast path does not accept (JSON msgspec refuses, an
    id that is not 16 bytes, no type name, values that do not fit the fields, ...) goes through
    ``_decode_row``, which decodes it the slow way or raises ``DecodeError`` naming its stream
    and version.
    """
    decode, make, typer, arrays = decode_json, recorded_event, typers[0].get, typers[1].get
    moments: dict[str, datetime] = {}
    page: list[RecordedEvent] = []
    append = page.append
    for stream, (version, position, kind, data, metadata, id, text, fields) in rows:
        moment = moments.get(text)
        if moment is None:
            moment = moments[text] = _moment(text, stream, version)
        try:
            if type(id) is not bytes or len(id) != 16 or kind is None:
                raise ValueError
            if metadata is None:
                extra: dict[str, Any] = {}
                value: Any
                if fields is None:
                    to_class = typer(kind)
                    if to_class is not None:
                        try:
                            value = Typed(to_class(data), data)
                        except msgspec.ValidationError:
                            value = decode(data)  # cattrs may still take it, or say what's wrong
                    else:
                        value = decode(data)
                else:
                    array = arrays(kind)
                    if array is not None and array.fields == fields:
                        try:
                            value = Typed(array.decode(data), data, array.keys)
                        except msgspec.ValidationError:
                            value = rebuild(fields, decode(data))
                    else:
                        value = rebuild(fields, decode(data))
            else:
                value = decode(data)
                if fields is not None:
                    value = rebuild(fields, value)
                extra = decode(metadata)
                if type(extra) is not dict:
                    raise ValueError
            append(make(stream, version, position, kind, value, extra, id, moment))
        except (ValueError, TypeError):
            append(_decode_row(stream, version, position, kind, data, metadata, id, moment,
                               fields))
    return page


def _decode_row(stream: str, version: int, position: int, kind: str | None, data: str | bytes,
                metadata: str | bytes | None, id: bytes, moment: datetime,
                fields: str | None) -> RecordedEvent:
    """``decode_row`` for a stored row: a NULL type name (its id names no row of ``types``)
    fails as corrupt, NULL metadata is none, and data stored under ``fields`` is rebuilt as
    their object."""
    if kind is None:
        raise DecodeError("its type id names no event type of the types table: the file was "
                          "changed outside this library; restore it from a backup",
                          stream=stream, version=version)
    recorded = decode_row(stream, version, position, kind, data,
                          "{}" if metadata is None else metadata, id, moment)
    if fields is None:
        return recorded
    try:
        value = rebuild(fields, recorded.data)
    except ValueError as exc:
        raise DecodeError(f"stored data does not fit its type's fields ({exc}): the file was "
                          "changed outside this library; restore it from a backup",
                          stream=stream, version=version, type=kind) from None
    return recorded_event(stream, version, position, kind, value, recorded.metadata,
                          recorded.id, moment)
