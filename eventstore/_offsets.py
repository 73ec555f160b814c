"""Consumer offsets: where a reader of the global log (a projection) has got to.

An offset is kept per consumer name in a table of its own, not as events (which would feed back
into ``read_all``). ``EventStore.save_offset`` moves it, optionally only from an ``expected``
position (so that a stale runner cannot move it back), and on the SQL backends runs the
consumer's own SQL statements in the same transaction: a read model in the store's database is
then updated exactly once per event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeAlias

import attrs

from . import _validate as check
from ._cluster import Fence, checked_fence
from ._errors import EventStoreError, InvalidArgument

Params: TypeAlias = Sequence[Any] | Mapping[str, Any]
"""A statement's parameters, in the driver's style: a sequence for positional placeholders
(``?`` in SQLite, ``%s`` in PostgreSQL), a mapping for named ones (``:name``, ``%(name)s``)."""
Statement: TypeAlias = tuple[str, Params]

MAX_STATE_LENGTH = 100
"""The longest ``state`` text an offset may carry."""
MAX_ERROR_LENGTH = 10_000
"""An offset's ``error`` text is cut to this many characters."""


@attrs.frozen
class ConsumerOffset:
    """A consumer's stored offset: the last global position it has handled, and its state."""

    name: str
    position: int
    """The last global position handled (0: none yet); the consumer resumes after it."""
    state: str
    """Free text the consumer sets: ``running``, ``paused``, ``failed``, ``rebuild``, ..."""
    error: str | None
    """Why the consumer stopped, if it failed."""
    updated_at: datetime
    """When the offset was last saved (UTC)."""


def consumer_name(name: object) -> str:
    """``name`` if it is a storable consumer name (the rules of a stream name)."""
    return check.stream_name(name, "consumer name")


def state_text(state: object) -> str:
    if not isinstance(state, str) or not state or len(state) > MAX_STATE_LENGTH or (
            "\x00" in state):
        raise InvalidArgument(
            f"state must be a non-empty string of at most {MAX_STATE_LENGTH} characters "
            f"without NUL, got {state!r}")
    return check.stream_name(state, "state")


def error_text(error: object) -> str | None:
    if error is None:
        return None
    if not isinstance(error, str):
        raise InvalidArgument(f"error must be a string or None, got {error!r}")
    text = error[:MAX_ERROR_LENGTH].replace("\x00", "\\0")
    return text.encode("utf-8", "backslashreplace").decode()


def checked_statements(value: object) -> list[Statement]:
    """The ``(sql, params)`` pairs of ``value``, checked; a bare string is a statement with no
    parameters."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidArgument(
            f"statements must be an iterable of (sql, params) pairs, got {value!r}")
    found: list[Statement] = []
    for index, item in enumerate(value):
        if isinstance(item, str):
            item = (item, ())
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise InvalidArgument(
                f"statement {index} must be a (sql, params) pair, got {item!r}")
        sql, params = item
        if not isinstance(sql, str) or not sql.strip():
            raise InvalidArgument(f"statement {index}'s SQL must be a non-empty string, "
                                  f"got {sql!r}")
        if isinstance(params, str | bytes) or not isinstance(params, Sequence | Mapping):
            raise InvalidArgument(
                f"statement {index}'s parameters must be a sequence or a mapping, "
                f"got {params!r}")
        found.append((sql, params))
    return found


class OffsetStore:
    """The consumer-offset operations of ``EventStore`` (mixed into it)."""

    def _check_open(self) -> None:
        raise NotImplementedError  # pragma: no cover - EventStore provides it

    async def load_offset(self, name: str) -> ConsumerOffset | None:
        """The stored offset of consumer ``name``, or None if it has none. A checkpoint."""
        self._check_open()
        return await self._load_offset(consumer_name(name))

    async def offsets(self) -> list[ConsumerOffset]:
        """Every stored consumer offset, by name. A checkpoint."""
        self._check_open()
        return sorted(await self._list_offsets(), key=lambda offset: offset.name)

    async def save_offset(self, name: str, position: int, *, expected: int | None = None,
                          state: str = "running", error: str | None = None,
                          statements: Iterable[Statement | str] = (),
                          fence: Fence | None = None) -> None:
        """Store ``position`` (and ``state``, ``error``) as consumer ``name``'s offset.

        With ``expected``, only if the stored position is ``expected`` (0 when there is none):
        a compare-and-set that keeps a stale runner from moving an offset back. ``statements``,
        ``(sql, params)`` pairs in the database driver's parameter style, run first, in the same
        transaction: all of them and the offset are stored, or nothing is. Only the SQL backends
        take statements; on PostgreSQL they run with the store's schema first on the
        ``search_path``. They must not touch the store's own tables.

        With ``fence`` (a claim of the consumer's name, in a cluster: see ``EventStore.claim``),
        only if that member still owns it under that epoch, checked in the same transaction.

        A checkpoint. If cancelled midway, the transaction is committed whole or not at all;
        load the offset to know which.

        Raises:
            OffsetConflict: the stored position is not ``expected``; nothing was written.
            Fenced: ``fence`` no longer owns the consumer; nothing was written.
            InvalidArgument: a bad name, position, state or statement; or statements given to a
                store without SQL (the memory store).
            EventStoreError: a statement failed; nothing was written.
        """
        self._check_open()
        consumer = consumer_name(name)
        at = check.whole(position, "position", minimum=0)
        before = check.optional_whole(expected, "expected", minimum=0)
        sql = checked_statements(statements)
        await self._save_offset(consumer, at, before, state_text(state), error_text(error), sql,
                                checked_fence(fence))

    async def head_position(self) -> int:
        """The highest global position committed so far (0 for an empty store). A checkpoint."""
        self._check_open()
        return await self._head_position()

    # -- what a backend implements (a store without offsets, such as a read-only one, need not) --

    def _no_offsets(self) -> EventStoreError:
        return EventStoreError(f"{type(self).__name__} keeps no consumer offsets")

    async def _load_offset(self, name: str) -> ConsumerOffset | None:
        raise self._no_offsets()

    async def _list_offsets(self) -> list[ConsumerOffset]:
        raise self._no_offsets()

    async def _save_offset(self, name: str, position: int, expected: int | None, state: str,
                           error: str | None, statements: list[Statement],
                           fence: Fence | None) -> None:
        """Store the offset (checking ``expected``: ``OffsetConflict``; ``fence``: ``Fenced``)
        after ``statements``, in one transaction."""
        raise self._no_offsets()

    async def _head_position(self) -> int:
        raise self._no_offsets()
