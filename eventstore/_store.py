"""The ``EventStore`` interface and the behaviour every backend shares.

A backend implements the ``_``-prefixed primitives; this class validates arguments, pages reads,
decodes rows and runs subscriptions, so every backend behaves the same way at its public surface.
"""

from __future__ import annotations

import abc
import builtins
import contextlib
import json
import uuid
import warnings
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sized
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import msgspec
import trio

from . import _validate as check
from ._cluster import ClusterStore, Fence, checked_fence
from ._codec import Codec
from ._errors import DecodeError, InvalidArgument, StoreClosed
from ._model import (
    ANY,
    AppendResult,
    Expected,
    NewEvent,
    RecordedEvent,
    Snapshot,
    recorded_event,
)
from ._offsets import OffsetStore
from ._reader import Pending, ReaderThread
from ._rows import RowPage
from ._validate import EncodedEvent
from ._work import (
    KEEP,
    NO_SIDE,
    NOT_REPORTED,
    Enqueued,
    Side,
    WakeAt,
    WorkEntry,
    distinct,
    side,
    wake_time,
)

P = TypeVar("P", bound=Sized)

decode_json: Final[Callable[[str | bytes], Any]] = msgspec.json.Decoder().decode
"""msgspec's JSON decoder: several times the speed of ``json.loads``, and as exact (ints of any
size). It refuses what the stdlib reads leniently (``1e400``, escaped lone surrogates), which is
left to ``parse_json``'s fallback."""


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` for the JSON the stores write, at several times its speed.

    msgspec parses the text; anything it refuses goes through ``json.loads``, which reads it as
    it always did or raises the usual ``ValueError``.
    """
    try:
        return decode_json(text)
    except ValueError:  # msgspec.DecodeError is one
        return json.loads(text)


def decode_row(stream: str, version: int, position: int, type: str, data: str | bytes,
               metadata: str | bytes, id: uuid.UUID | str | bytes,
               recorded_at: datetime) -> RecordedEvent:
    """Build a ``RecordedEvent`` from stored JSON text; a corrupt row names stream and version."""
    try:
        decoded_data = parse_json(data)
        decoded_metadata = {} if metadata == "{}" else parse_json(metadata)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"stored JSON is invalid ({exc})", stream=stream, version=version,
                          type=type) from None
    event_id: uuid.UUID | bytes
    try:
        if isinstance(id, bytes):
            if len(id) != 16:
                raise ValueError("not 16 bytes")
            event_id = id  # the event builds its UUID when ``id`` is first read
        elif isinstance(id, str):
            event_id = uuid.UUID(id)
        elif isinstance(id, uuid.UUID):
            event_id = id
        else:
            raise TypeError(f"a {builtins.type(id).__name__}")
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"stored event id {id!r} is not a UUID ({exc})", stream=stream,
                          version=version, type=type) from None
    return recorded_event(stream, version, position, type, decoded_data, decoded_metadata,
                          event_id, recorded_at)


PageRead = Callable[[], list[RecordedEvent]]
"""Reads one page, blocking: run on the store's reader thread."""


class EventStore(OffsetStore, ClusterStore, abc.ABC):
    """An append-only log of streams, read in pages, with snapshots and live subscriptions.

    Use it as ``async with store:``; every method is called from trio. Backends subclass this and
    implement the ``_``-prefixed primitives.
    """

    codec: Codec
    page_size: int
    reports_inbox_seq: bool = False
    """Whether ``enqueue`` says where it stored a message (``Enqueued``). A backend that does
    sets it, and its ``_append`` of an enqueue (no events) returns the last message's sequence
    number (0 if skipped) as the position of its ``AppendResult``, and the sequence number of
    the message waiting before it in that inbox (0: none) as its version."""
    positional_data: bool = False
    """Whether ``_append`` wants each data dict's values as a JSON array too
    (``EncodedEvent.values``): a backend that stores them so (SQLite) sets it."""
    poll_interval: float
    _reader: ReaderThread | None = None
    """The thread a backend reads on, if it reads ahead: ``read`` and ``read_all`` then fetch
    the next page there (``_page_read``, ``_all_page_read``) while the caller consumes one."""

    def __init__(self, *, codec: Codec | None = None, page_size: int = 500,
                 poll_interval: float = 0.5) -> None:
        self.codec = Codec() if codec is None else codec
        self.page_size = check.whole(page_size, "page_size", minimum=1)
        if not isinstance(poll_interval, int | float) or not poll_interval > 0:
            raise InvalidArgument(
                f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
        self.poll_interval = float(poll_interval)
        self._closed = False
        self._appended = trio.Event()

    # -- the public surface ---------------------------------------------------------------------

    async def append(self, stream: str, events: Iterable[NewEvent], *,
                     expected_version: Expected = ANY, acknowledge: Iterable[uuid.UUID] = (),
                     enqueue: Iterable[tuple[str, NewEvent]] = (),
                     wake_at: WakeAt = KEEP, fence: Fence | None = None) -> AppendResult:
        """Append ``events`` to ``stream`` atomically: all of them or none.

        In the same transaction, and only if the events are stored: ``acknowledge`` deletes
        those messages (by id) from the stream's inbox, ``enqueue`` stores ``(stream, message)``
        pairs in other streams' inboxes (as ``enqueue()`` does), and ``wake_at`` sets the
        stream's wake time in the work index (seconds since the epoch, None for none; ``KEEP``,
        the default, leaves it). An idempotent retry does none of them again. With ``fence``
        (``eventstore.Fence``), the append is stored only if that member still owns the stream
        under that epoch and its lease holds (see ``join`` and ``claim``).

        A checkpoint. Concurrent appends are committed together (group commit), each succeeding or
        failing alone. If cancelled midway the batch may or may not be stored; retrying it with the
        same event ids is safe (an idempotent retry returns the first result).

        Raises:
            WrongExpectedVersion: the stream's version did not match; nothing was written.
            Fenced: ``fence`` no longer owns the stream; nothing was written.
            DuplicateEventId: an id appears twice in the batch, or is stored elsewhere.
            InvalidArgument: the stream or a type name breaks the rules for names (empty, over
                ``MAX_STREAM_LENGTH`` / ``MAX_TYPE_LENGTH`` characters, NUL, lone surrogates),
                or the batch is malformed; nothing was written.
            SerializationError: data or metadata is not JSON-compatible, has a dict key that is
                not a ``str``, or a lone surrogate in a string; nothing was written.
            AppendOutcomeUnknown: the commit was cut off and the store could not find out in
                time whether it went through; any other ``EventStoreError`` means nothing
                was written.
        """
        self._check_open()
        name = check.stream_name(stream)
        expected = check.expected_version(expected_version)
        encoded = check.encode_events(name, events, positional=self.positional_data)
        if acknowledge == () and enqueue == () and wake_at is KEEP and fence is None:
            return await self._append(name, encoded, expected, NO_SIDE)
        return await self._append(name, encoded, expected,
                                  side(acknowledge, enqueue, wake_at, fence))

    # -- inboxes and the work index -----------------------------------------------------------

    async def enqueue(self, stream: str, messages: Iterable[NewEvent]) -> Enqueued:
        """Store ``messages`` in ``stream``'s inbox, in order, atomically: all or none.

        A message whose id is already waiting in that inbox is skipped, so a retry is safe
        (a consumed message is no longer waiting: de-duplicating beyond that is the consumer's
        job). Messages are validated like events. A checkpoint; if cancelled midway, the
        messages may or may not be stored, and retrying is safe.

        Returns:
            Where the last message waits (``Enqueued``): its sequence number and the one of the
            message waiting before it, if this call stored it and the backend says
            (``reports_inbox_seq``); else ``Enqueued(0, 0)``.
        """
        self._check_open()
        name = check.stream_name(stream)
        if isinstance(messages, Iterable) and not isinstance(messages, NewEvent | str | bytes):
            messages = distinct(messages)  # (else encode_events says what is wrong)
        encoded = check.encode_events(name, messages)
        result = await self._append(name, [], ANY,
                                    Side(enqueue=tuple((name, m) for m in encoded)))
        if not (encoded and self.reports_inbox_seq and result.position):
            return NOT_REPORTED
        return Enqueued(result.position, result.version)

    def read_inbox(self, stream: str, *, after: int = 0,
                   limit: int | None = None) -> AsyncGenerator[RecordedEvent, None]:
        """The messages waiting in ``stream``'s inbox, oldest first, after sequence ``after``.

        Each message comes as a ``RecordedEvent`` whose ``version`` and ``position`` are its
        sequence number: increasing in the order messages were stored, across all inboxes.
        Reads in pages; safe to abandon, as ``read`` is.
        """
        self._check_open()
        name = check.stream_name(stream)
        first = check.whole(after, "after", minimum=0)
        most = check.optional_whole(limit, "limit", minimum=0)
        return self._events(self._pages(
            first, None, most,
            lambda cursor, size: self._read_inbox_page(name, cursor, size),
            lambda cursor, size: None,
            lambda page: page[-1].position))

    async def set_wake(self, stream: str, wake_at: float | None, *,
                       fence: Fence | None = None) -> None:
        """Set ``stream``'s wake time in the work index (None clears it). A checkpoint.

        Raises:
            Fenced: ``fence`` no longer owns the stream (as for ``append``); nothing was written.
        """
        self._check_open()
        name = check.stream_name(stream)
        wake = wake_time(wake_at)
        checked = checked_fence(fence)
        if checked is None:
            await self._set_wake(name, wake)
        else:  # an append of no events: fenced in the append's transaction
            await self._append(name, [], ANY, Side(wake_at=wake, fence=checked))

    async def work(self) -> list[WorkEntry]:
        """Every stream with messages waiting in its inbox or a wake time, by stream name."""
        self._check_open()
        return await self._work()

    def read(self, stream: str, *, from_version: int = 1, to_version: int | None = None,
             limit: int | None = None) -> AsyncGenerator[RecordedEvent, None]:
        """Iterate ``stream``'s events from ``from_version`` to ``to_version`` (inclusive).

        Reads in pages of ``page_size``, so memory stays bounded on any log length. Each page is a
        checkpoint, an empty read too. Safe to abandon: a reader that stops early or is cancelled
        leaves no task behind; close it with ``contextlib.aclosing`` (see
        ``docs/async-semantics.md``) so that it lets go of its page at once.
        """
        return self._events(self.read_pages(stream, from_version=from_version,
                                             to_version=to_version, limit=limit))

    def read_pages(self, stream: str, *, from_version: int = 1, to_version: int | None = None,
                   limit: int | None = None) -> AsyncGenerator[list[RecordedEvent], None]:
        """``read``, a page at a time: lists of up to ``page_size`` events, never empty.

        For a loop over many events that does little per event (a replay, a recovery): it pays
        the asynchronous iteration once per page instead of once per event. Each page is a
        checkpoint, an empty read too; safe to abandon, as ``read`` is.
        """
        self._check_open()
        name = check.stream_name(stream)
        first = check.whole(from_version, "from_version", minimum=0)
        last = check.optional_whole(to_version, "to_version", minimum=0)
        most = check.optional_whole(limit, "limit", minimum=0)
        return self._pages(
            max(first, 1), last, most,
            lambda cursor, size: self._read_page(name, cursor, last, size),
            lambda cursor, size: self._page_read(name, cursor, last, size),
            lambda page: page[-1].version + 1)

    def read_all(self, *, after_position: int = 0, limit: int | None = None,
                 types: Iterable[str] | None = None) -> AsyncGenerator[RecordedEvent, None]:
        """Iterate every stream's events in global order, after ``after_position``.

        ``types`` keeps only events of those type names. Reads in pages; each is a checkpoint,
        an empty read too. Safe to abandon, as ``read`` is.
        """
        self._check_open()
        after = check.whole(after_position, "after_position", minimum=0)
        most = check.optional_whole(limit, "limit", minimum=0)
        kinds = check.type_filter(types)
        return self._events(self._pages(
            after, None, most,
            lambda cursor, size: self._read_all_page(cursor, size, kinds),
            lambda cursor, size: self._all_page_read(cursor, size, kinds),
            lambda page: page[-1].position))

    def subscribe(self, *, after_position: int = 0,
                  types: Iterable[str] | None = None) -> AsyncGenerator[RecordedEvent, None]:
        """Deliver every event after ``after_position`` in global order, then new ones as they come.

        Never skips and never repeats an event. It runs until the caller stops iterating or is
        cancelled; each page and each wait is a checkpoint. New events written by this process
        arrive at once, those written by other processes within ``poll_interval``. Safe to
        abandon, as ``read`` is; close it with ``contextlib.aclosing``.
        """
        self._check_open()
        after = check.whole(after_position, "after_position", minimum=0)
        return self._subscription(after, check.type_filter(types))

    async def last_version(self, stream: str) -> int:
        """The stream's version: 0 when it has no events; deletion never lowers it. A checkpoint."""
        self._check_open()
        return await self._last_version(check.stream_name(stream))

    async def delete_up_to(self, stream: str, version: int) -> None:
        """Delete the stream's events up to ``version`` (inclusive); its version stays.

        A checkpoint. If cancelled midway, the deletion is done whole or not at all.
        """
        self._check_open()
        name = check.stream_name(stream)
        await self._delete_up_to(name, check.whole(version, "version", minimum=0))

    async def save_snapshot(self, stream: str, version: int, state: Any) -> None:
        """Store ``state`` (JSON-compatible) as the stream's state at ``version``.

        A snapshot saved again at the same version replaces the earlier one. A checkpoint. If
        cancelled midway, the snapshot is saved whole or not at all.

        Raises:
            SerializationError: ``state`` breaks the rules for stored JSON (see ``append``).
        """
        self._check_open()
        name = check.stream_name(stream)
        at = check.whole(version, "version", minimum=1)
        text = check.to_json(state, f"snapshot state of {name!r}")
        await self._save_snapshot(name, at, text)

    async def load_snapshot(self, stream: str, *,
                            max_version: int | None = None) -> Snapshot | None:
        """The newest snapshot at or below ``max_version``, or None.

        A snapshot that cannot be decoded is reported as missing with a ``RuntimeWarning``: it is
        only an optimisation, the caller replays the log instead. A checkpoint; it changes
        nothing, so cancelling it leaves nothing behind.
        """
        self._check_open()
        name = check.stream_name(stream)
        most = check.optional_whole(max_version, "max_version", minimum=0)
        try:
            row = await self._load_snapshot(name, most)
        except DecodeError as exc:
            warnings.warn(f"the snapshot of stream {name!r} cannot be decoded ({exc}); replaying "
                          "the log instead", RuntimeWarning, stacklevel=2)
            return None
        if row is None:
            return None
        version, text, recorded_at = row
        try:
            state = json.loads(text)
        except (TypeError, ValueError) as exc:
            warnings.warn(f"snapshot of stream {name!r} at version {version} cannot be decoded "
                          f"({exc}); replaying the log instead", RuntimeWarning, stacklevel=2)
            return None
        return Snapshot(stream=name, version=version, state=state, recorded_at=recorded_at)

    async def aclose(self) -> None:
        """Close the store; later calls raise ``StoreClosed``. Idempotent.

        A checkpoint, also on a closed store. If cancelled, the store is closed all the same,
        then ``trio.Cancelled`` is raised.
        """
        if not self._closed:
            self._closed = True
            self._appended.set()
            await self._aclose()
        await trio.lowlevel.checkpoint()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> Self:
        """Return the store (a checkpoint); leaving the block closes it."""
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    # -- shared machinery -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(type(self).__name__)

    def _notify_appended(self) -> None:
        """Wake local subscribers; backends call it on the trio thread after each commit."""
        self._appended.set()
        self._appended = trio.Event()

    async def _wait_for_append(self, seen: trio.Event) -> None:
        """Wait until ``seen`` fires or ``poll_interval`` passes (other processes may write)."""
        with trio.move_on_after(self.poll_interval):
            await seen.wait()

    async def _pages(self, cursor: int, last: int | None, most: int | None,
                     read: Callable[[int, int], Awaitable[P]],
                     read_in_thread: Callable[[int, int], Callable[[], P] | None],
                     after: Callable[[P], int],
                     ) -> AsyncGenerator[P, None]:
        """Up to ``most`` events, in pages (never empty): ``read(cursor, size)`` reads a page
        from ``cursor`` (up to ``last``, if given), ``after(page)`` is the cursor past a page.

        The next page is read ahead (``read_in_thread``) while the caller consumes one.
        """
        remaining = most
        more = remaining != 0 and (last is None or cursor <= last)
        if not more:
            await trio.lowlevel.checkpoint()  # an empty read is a checkpoint too
        ahead: Pending[P] | None = None
        size = self._page_for(remaining)
        while more:
            self._check_open()
            if ahead is None:
                page = await read(cursor, size)
            else:
                page, ahead = await ahead.result(), None
            more = len(page) == size  # a full page: more may follow
            if more:
                cursor = after(page)
                if remaining is not None:
                    remaining -= size
                more = remaining != 0 and (last is None or cursor <= last)
                size = self._page_for(remaining)
                if more:
                    ahead = self._ahead(read_in_thread(cursor, size))
            if page:
                yield page

    @staticmethod
    async def _events(pages: AsyncGenerator[list[RecordedEvent], None],
                      ) -> AsyncGenerator[RecordedEvent, None]:
        """The events of ``pages``, one by one; closing this closes ``pages``."""
        async with contextlib.aclosing(pages):
            async for page in pages:
                for event in page:
                    yield event

    def _page_for(self, remaining: int | None) -> int:
        """How many events to ask for when ``remaining`` are wanted (None: all)."""
        return self.page_size if remaining is None else min(self.page_size, remaining)

    def _ahead(self, read: Callable[[], P] | None) -> Pending[P] | None:
        """Queue ``read`` of the next page if this backend reads ahead."""
        if read is None or self._reader is None:
            return None
        return self._reader.submit(read)

    async def _subscription(self, after: int,
                            types: frozenset[str] | None) -> AsyncGenerator[RecordedEvent, None]:
        while True:
            self._check_open()
            seen = self._appended
            page = await self._read_all_page(after, self.page_size, types)
            for event in page:
                yield event
                after = event.position
            if len(page) < self.page_size:
                await self._wait_for_append(seen)

    # -- what a backend implements --------------------------------------------------------------

    @abc.abstractmethod
    async def _append(self, stream: str, events: list[EncodedEvent], expected: Expected,
                      side: Side) -> AppendResult:
        """Store a validated batch and its ``side`` atomically, or raise; handles idempotent
        retries by id (a retry writes no side). ``events`` is empty only for ``enqueue``, whose
        result is not used."""

    @abc.abstractmethod
    async def _read_inbox_page(self, stream: str, after: int,
                               size: int) -> list[RecordedEvent]:
        """Up to ``size`` waiting messages of ``stream`` with sequence ``> after``, in order."""

    @abc.abstractmethod
    async def _set_wake(self, stream: str, wake_at: float | None) -> None: ...

    @abc.abstractmethod
    async def _work(self) -> list[WorkEntry]: ...

    @abc.abstractmethod
    async def _read_page(self, stream: str, first: int, last: int | None,
                         size: int) -> list[RecordedEvent]:
        """Up to ``size`` events of ``stream`` with ``first <= version <= last``, in order."""

    @abc.abstractmethod
    async def _read_all_page(self, after: int, size: int,
                             types: frozenset[str] | None) -> list[RecordedEvent]:
        """Up to ``size`` events with ``position > after`` (of ``types``), in position order.

        Must be gap-safe: never return a position while a lower one may still commit.
        """

    def _page_read(self, stream: str, first: int, last: int | None,
                   size: int) -> PageRead | None:
        """``_read_page`` as a blocking call for the reader thread, if the backend reads ahead."""
        return None

    def _all_page_read(self, after: int, size: int,
                       types: frozenset[str] | None) -> PageRead | None:
        """``_read_all_page`` as a blocking call for the reader thread, if it reads ahead."""
        return None

    def _row_pages(self, stream: str, *, from_version: int = 1,
                   to_version: int | None = None) -> AsyncGenerator[RowPage, None] | None:
        """``read_pages`` as ``RowPage``\\ s (for a replay), or None if the backend has none."""
        return None

    @abc.abstractmethod
    async def _last_version(self, stream: str) -> int: ...

    @abc.abstractmethod
    async def _delete_up_to(self, stream: str, version: int) -> None: ...

    @abc.abstractmethod
    async def _save_snapshot(self, stream: str, version: int, state: str) -> None: ...

    @abc.abstractmethod
    async def _load_snapshot(self, stream: str,
                             max_version: int | None) -> tuple[int, str, datetime] | None:
        """The newest (version, JSON text, recorded_at) at or below ``max_version``."""

    @abc.abstractmethod
    async def _aclose(self) -> None: ...
