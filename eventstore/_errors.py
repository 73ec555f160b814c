"""The errors the event store raises: one root, structured fields, messages built from them.

Each error passes its fields to ``Exception.__init__`` and builds its message in ``__str__``, so
it survives a pickle round trip (to another process, say) with its type, fields and message.
"""

from __future__ import annotations

from typing import Any


class EventStoreError(Exception):
    """Root of every error the ``eventstore`` package raises itself."""


class InvalidArgument(EventStoreError, ValueError):
    """A public function was called with an argument it cannot accept."""


class StoreClosed(EventStoreError, RuntimeError):
    """The store was used after ``aclose()``."""

    def __init__(self, store: str) -> None:
        super().__init__(store)
        self.store = store

    def __str__(self) -> str:
        return f"{self.store} is closed; open a new store to keep reading or writing"


class WrongExpectedVersion(EventStoreError):
    """An append's ``expected_version`` did not match the stream; nothing was written."""

    def __init__(self, stream: str, expected: Any, actual: int) -> None:
        super().__init__(stream, expected, actual)
        self.stream = stream
        self.expected = expected
        self.actual = actual

    def __str__(self) -> str:
        return (
            f"stream {self.stream!r} is at version {self.actual}, but the append expected "
            f"{self.expected}; nothing was written: read the stream again and retry against its "
            "current version"
        )


class DuplicateEventId(EventStoreError, ValueError):
    """An event id is already stored elsewhere, or appears twice in one batch."""

    def __init__(self, stream: str, event_id: Any, reason: str) -> None:
        super().__init__(stream, event_id, reason)
        self.stream = stream
        self.event_id = event_id
        self.reason = reason

    def __str__(self) -> str:
        return (
            f"event id {self.event_id} appended to stream {self.stream!r} {self.reason}; give "
            "every new event a fresh id (the default), reuse ids only to retry the same batch"
        )


class SerializationError(EventStoreError, TypeError):
    """Data that cannot be stored as JSON, or an object the codec cannot encode."""


class DecodeError(EventStoreError):
    """A stored event or value could not be decoded; names where it came from."""

    def __init__(self, message: str, stream: str | None = None, version: int | None = None,
                 type: str | None = None) -> None:
        super().__init__(message, stream, version, type)
        self.message = message
        self.stream = stream
        self.version = version
        self.type = type

    def __str__(self) -> str:
        where = []
        if self.stream is not None:
            where.append(f"stream {self.stream!r}")
        if self.version is not None:
            where.append(f"version {self.version}")
        if self.type is not None:
            where.append(f"type {self.type!r}")
        prefix = f"cannot decode {', '.join(where)}: " if where else "cannot decode: "
        return prefix + self.message


class SchemaError(EventStoreError):
    """The store's on-disk schema is newer than this library, or otherwise unusable."""


class AppendOutcomeUnknown(EventStoreError):
    """An append may or may not be stored, and the store could not find out in time.

    Raised only after a commit whose outcome was ambiguous (the connection was lost while the
    transaction was committing) when reading the stream's event ids back kept failing for the
    store's whole time bound. Every other error of ``append`` means nothing was written. An
    ``enqueue`` (no events: ``count`` is 0) whose commit was ambiguous raises it unless every one
    of its messages is found waiting in its inbox: a consumed message leaves no trace.

    Attributes:
        stream: the stream appended to.
        count: how many events the append held.
        reason: what went wrong, and why checking failed.
    """

    def __init__(self, stream: str, count: int, reason: str) -> None:
        super().__init__(stream, count, reason)
        self.stream = stream
        self.count = count
        self.reason = reason

    def __str__(self) -> str:
        return (f"the append of {self.count} event(s) to stream {self.stream!r} may or may not be "
                f"stored: {self.reason}; retry it with the same event ids (safe: a stored batch "
                "returns its first result and is not written twice), or read the stream to see")


class OffsetConflict(EventStoreError):
    """A consumer offset was not at the position the writer expected; nothing was written.

    Another runner of the same consumer moved it, or a rebuild reset it: read it again
    (``load_offset``) and carry on from there.
    """

    def __init__(self, name: str, expected: int, actual: int) -> None:
        super().__init__(name, expected, actual)
        self.name = name
        self.expected = expected
        self.actual = actual

    def __str__(self) -> str:
        return (f"the offset of consumer {self.name!r} is at position {self.actual}, but the "
                f"writer expected {self.expected}; nothing was written: load the offset again "
                "and carry on from there (is the consumer running twice?)")
