"""``MemoryEventStore``: the whole contract in one process's memory, for tests and examples."""

from __future__ import annotations

import bisect
from datetime import UTC, datetime

import attrs
import trio

from ._cluster import Fence
from ._codec import Codec
from ._errors import InvalidArgument, OffsetConflict, WrongExpectedVersion
from ._model import AppendResult, Expected, RecordedEvent
from ._offsets import ConsumerOffset, Statement
from ._store import EventStore, decode_row
from ._validate import EncodedEvent, StoredAt, retried, version_matches
from ._work import KEEP, Side, WorkEntry


@attrs.frozen
class _Row:
    stream: str
    version: int
    position: int
    event: EncodedEvent
    recorded_at: datetime

    def decode(self) -> RecordedEvent:
        e = self.event
        return decode_row(self.stream, self.version, self.position, e.type, e.data, e.metadata,
                          e.id, self.recorded_at)


@attrs.define
class _Stream:
    rows: list[_Row] = attrs.Factory(list)
    version: int = 0


class MemoryEventStore(EventStore):
    """Keeps every stream in memory; events are stored as JSON text, like the durable backends.

    Appends are atomic because they run without a checkpoint on the trio thread. Every call
    is a checkpoint first, then runs to its end without one, so a page, say, is read whole.
    """

    reports_inbox_seq = True

    def __init__(self, *, codec: Codec | None = None, page_size: int = 500,
                 poll_interval: float = 0.5) -> None:
        super().__init__(codec=codec, page_size=page_size, poll_interval=poll_interval)
        self._streams: dict[str, _Stream] = {}
        self._log: list[_Row] = []  # every live row, in position order
        self._ids: dict[object, StoredAt] = {}  # id -> (stream, version, position)
        self._snapshots: dict[str, dict[int, tuple[str, datetime]]] = {}
        self._position = 0
        self._inboxes: dict[str, dict[bytes, _Row]] = {}  # stream -> id -> message, in order
        self._wake: dict[str, float] = {}
        self._sequence = 0
        self._consumers: dict[str, ConsumerOffset] = {}

    async def _append(self, stream: str, events: list[EncodedEvent], expected: Expected,
                      side: Side) -> AppendResult:
        if side.fence is not None:
            raise self._no_cluster()
        await trio.lowlevel.checkpoint()  # before any change: a cancelled append writes nothing
        state = self._streams.get(stream)
        actual = 0 if state is None else state.version
        if events:
            retry = retried(stream, events, [self._ids.get(event.id) for event in events])
            if retry is not None:
                return retry
        if not version_matches(expected, actual):
            raise WrongExpectedVersion(stream, expected, actual)
        if side.acknowledge:
            inbox = self._inboxes.get(stream, {})
            for id in side.acknowledge:
                inbox.pop(id, None)
        now = datetime.now(UTC)
        seq = previous = 0  # of the last message enqueued, if stored; of the one before it
        for target, message in side.enqueue:
            inbox = self._inboxes.setdefault(target, {})
            if message.id.bytes not in inbox:
                previous = next(reversed(inbox.values())).position if inbox else 0
                self._sequence += 1
                seq = self._sequence
                inbox[message.id.bytes] = _Row(target, self._sequence, self._sequence, message,
                                               now)
            else:
                seq = 0
        if side.wake_at is not KEEP:
            self._set_wake_now(stream, side.wake_at)
        if not events:
            return AppendResult(previous, seq) if side.enqueue else \
                AppendResult(actual, self._position)
        if state is None:
            state = self._streams[stream] = _Stream()
        for event in events:
            self._position += 1
            state.version += 1
            row = _Row(stream, state.version, self._position, event,
                       now if event.recorded_at is None else event.recorded_at.astimezone(UTC))
            state.rows.append(row)
            self._log.append(row)
            self._ids[event.id] = (stream, state.version, self._position)
        self._notify_appended()
        return AppendResult(state.version, self._position)

    async def _read_page(self, stream: str, first: int, last: int | None,
                         size: int) -> list[RecordedEvent]:
        await trio.lowlevel.checkpoint()
        state = self._streams.get(stream)
        if state is None:
            return []
        rows = state.rows
        start = bisect.bisect_left(rows, first, key=lambda r: r.version)
        page = []
        for row in rows[start:start + size]:
            if last is not None and row.version > last:
                break
            page.append(row.decode())
        return page

    async def _read_all_page(self, after: int, size: int,
                             types: frozenset[str] | None) -> list[RecordedEvent]:
        await trio.lowlevel.checkpoint()
        start = bisect.bisect_right(self._log, after, key=lambda r: r.position)
        page = []
        for row in self._log[start:]:
            if types is None or row.event.type in types:
                page.append(row.decode())
                if len(page) == size:
                    break
        return page

    async def _last_version(self, stream: str) -> int:
        await trio.lowlevel.checkpoint()
        state = self._streams.get(stream)
        return 0 if state is None else state.version

    async def _delete_up_to(self, stream: str, version: int) -> None:
        await trio.lowlevel.checkpoint()
        state = self._streams.get(stream)
        if state is None:
            return
        gone = {id(row) for row in state.rows if row.version <= version}
        if gone:
            state.rows = [row for row in state.rows if id(row) not in gone]
            self._log = [row for row in self._log if id(row) not in gone]

    async def _save_snapshot(self, stream: str, version: int, state: str) -> None:
        await trio.lowlevel.checkpoint()
        self._snapshots.setdefault(stream, {})[version] = (state, datetime.now(UTC))

    async def _load_snapshot(self, stream: str,
                             max_version: int | None) -> tuple[int, str, datetime] | None:
        await trio.lowlevel.checkpoint()
        saved = self._snapshots.get(stream, {})
        versions = [v for v in saved if max_version is None or v <= max_version]
        if not versions:
            return None
        version = max(versions)
        state, recorded_at = saved[version]
        return version, state, recorded_at

    async def _read_inbox_page(self, stream: str, after: int,
                               size: int) -> list[RecordedEvent]:
        await trio.lowlevel.checkpoint()
        rows = [row for row in self._inboxes.get(stream, {}).values() if row.position > after]
        return [row.decode() for row in rows[:size]]

    async def _set_wake(self, stream: str, wake_at: float | None) -> None:
        await trio.lowlevel.checkpoint()
        self._set_wake_now(stream, wake_at)

    def _set_wake_now(self, stream: str, wake_at: float | None) -> None:
        if wake_at is None:
            self._wake.pop(stream, None)
        else:
            self._wake[stream] = wake_at

    async def _work(self) -> list[WorkEntry]:
        await trio.lowlevel.checkpoint()
        streams = sorted({*self._wake, *(s for s, inbox in self._inboxes.items() if inbox)})
        return [WorkEntry(s, self._wake.get(s), len(self._inboxes.get(s, ()))) for s in streams]

    async def _load_offset(self, name: str) -> ConsumerOffset | None:
        await trio.lowlevel.checkpoint()
        return self._consumers.get(name)

    async def _list_offsets(self) -> list[ConsumerOffset]:
        await trio.lowlevel.checkpoint()
        return list(self._consumers.values())

    async def _save_offset(self, name: str, position: int, expected: int | None, state: str,
                           error: str | None, statements: list[Statement],
                           fence: Fence | None) -> None:
        if fence is not None:
            raise self._no_cluster()
        await trio.lowlevel.checkpoint()
        if statements:
            raise InvalidArgument(
                "the memory store has no SQL database, so it cannot run statements with an "
                "offset; keep the read model in memory (a handler without `tx`), or use "
                "SQLiteEventStore or PostgresEventStore")
        stored = self._consumers.get(name)
        actual = 0 if stored is None else stored.position
        if expected is not None and expected != actual:
            raise OffsetConflict(name, expected, actual)
        self._consumers[name] = ConsumerOffset(name, position, state, error, datetime.now(UTC))

    async def _head_position(self) -> int:
        await trio.lowlevel.checkpoint()
        return self._position

    async def _aclose(self) -> None:
        pass
