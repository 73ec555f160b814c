"""Events as they go into the store and as they come out of it."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, TypeAlias

import attrs
import msgspec

from ._errors import InvalidArgument
from ._ids import uuid7


class ExpectedVersion(enum.Enum):
    """The symbolic ``expected_version`` values an append understands."""

    ANY = "any"
    """No check: append at the end, whatever the version."""
    NO_STREAM = "no stream"
    """The stream must be empty (version 0)."""
    STREAM_EXISTS = "stream exists"
    """The stream must hold at least one event."""

    def __repr__(self) -> str:
        return self.name

    __str__ = __repr__


ANY: Final = ExpectedVersion.ANY
NO_STREAM: Final = ExpectedVersion.NO_STREAM
STREAM_EXISTS: Final = ExpectedVersion.STREAM_EXISTS

Expected: TypeAlias = "int | ExpectedVersion"
"""What ``append(..., expected_version=...)`` takes: a symbol or an exact version."""


def _metadata(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"metadata must be a dict of str keys or None, got {value!r}")
    return dict(value)


@attrs.frozen
class NewEvent:
    """An event to append: a type name, JSON-compatible data and metadata, and a unique id.

    Retrying an append with the same ids is safe: the store recognises the batch and returns the
    first result without writing anything. The default id is a time-ordered UUID (version 7).

    ``recorded_at`` is normally None: the store records the time of the append. Give an aware
    datetime to keep an event's original recording time when copying a log between stores
    (what ``python -m actors import`` does).
    """

    type: str
    data: Any
    metadata: dict[str, Any] = attrs.field(factory=dict, converter=_metadata)
    id: uuid.UUID = attrs.field(factory=uuid7)
    recorded_at: datetime | None = attrs.field(default=None, kw_only=True)
    data_json: str | None = attrs.field(default=None, init=False, eq=False, repr=False)
    """``data`` as the JSON text the store writes, when ``Codec.new_event`` made the event (it
    encodes and checks once, at emit); None for an event built by hand, which ``append``
    encodes. Not an argument, so ``attrs.evolve`` drops it and the changed event is encoded
    again."""
    metadata_json: str | None = attrs.field(default=None, init=False, eq=False, repr=False)
    """``metadata`` as JSON text, when whoever made the event encoded it already (a cluster
    member stamps the same member and epoch on every event); None: ``append`` encodes it."""


def encoded_new_event(type: str, data: Any, metadata: dict[str, Any], id: uuid.UUID | None,
                      data_json: str) -> NewEvent:
    """A ``NewEvent`` that carries ``data_json``, checked JSON text of ``data`` (the codec's)."""
    event = NewEvent(type, data, metadata) if id is None else NewEvent(type, data, metadata, id)
    object.__setattr__(event, "data_json", data_json)
    return event


@attrs.frozen
class RecordedEvent:
    """An event as stored: where it is (stream, version, global position) and what it is."""

    stream: str
    version: int
    position: int
    type: str
    data: Any
    metadata: dict[str, Any]
    id: uuid.UUID
    recorded_at: datetime


def _fast_recorded_event() -> Callable[..., RecordedEvent]:
    """``RecordedEvent``'s constructor for the stores' read paths, without the frozen ``__init__``.

    attrs' frozen ``__init__`` sets each field through a cached ``object.__setattr__`` call; this
    sets the slots directly, at about two thirds of the cost. The class stays a frozen attrs class
    for users: only the stores, which pass checked values of the right types, call this. The id
    may be given as its 16 stored bytes, which become a UUID when ``id`` is first read.
    """
    new = object.__new__
    (stream, version, position, type_, data, metadata, id_, recorded_at) = (
        RecordedEvent.__dict__[field.name].__set__ for field in attrs.fields(RecordedEvent))

    def make(s: str, v: int, p: int, t: str, d: Any, m: dict[str, Any], i: uuid.UUID | bytes,
             r: datetime) -> RecordedEvent:
        event: RecordedEvent = new(RecordedEvent)
        stream(event, s)
        version(event, v)
        position(event, p)
        type_(event, t)
        data(event, d)
        metadata(event, m)
        id_(event, i)
        recorded_at(event, r)
        return event

    return make


recorded_event: Final = _fast_recorded_event()


def _fast_uuid() -> Callable[[bytes], uuid.UUID]:
    """``uuid.UUID(bytes=...)`` for 16 stored bytes, at a third of the cost of its checks."""
    new = object.__new__
    set_int = uuid.UUID.__dict__["int"].__set__
    set_safe = uuid.UUID.__dict__["is_safe"].__set__
    unknown = uuid.SafeUUID.unknown
    from_bytes = int.from_bytes

    def make(raw: bytes) -> uuid.UUID:
        if len(raw) != 16:
            raise ValueError("bytes is not a 16-char string")
        value: uuid.UUID = new(uuid.UUID)
        set_int(value, from_bytes(raw))
        set_safe(value, unknown)
        return value

    return make


uuid_from_bytes: Final = _fast_uuid()


def _lazy_id() -> None:
    """Let a ``RecordedEvent`` keep its id's 16 stored bytes until ``id`` is first read.

    A replay reads the id of few events, and building a UUID costs as much as decoding a small
    event's JSON. ``id`` becomes a property over the attrs slot, so every reader (equality,
    hash, repr, pickle, ``attrs.evolve``) still sees a UUID; the frozen ``__setattr__`` still
    refuses assignments, and ``__init__`` (which bypasses it) stores through the property.
    """
    slot = RecordedEvent.__dict__["id"]
    get, put = slot.__get__, slot.__set__
    make = uuid_from_bytes

    def read(event: RecordedEvent) -> uuid.UUID:
        value = get(event)
        if type(value) is bytes:
            value = make(value)
            put(event, value)
        return value  # type: ignore[no-any-return]

    setattr(RecordedEvent, "id", property(read, put, doc="The event's unique id."))  # noqa: B010


_lazy_id()


class Typed:
    """A stored event's data text, and the event the codec's typed decoder made of it.

    The SQLite reader decodes the text of an event whose class allows it straight into the class
    (``Codec`` keeps those decoders) and keeps it here, in the ``RecordedEvent``'s ``data`` slot;
    ``Codec.decode`` then takes the event without building the data dict first. ``data`` is
    parsed from ``text`` when it is first read: the object it holds, or with ``keys`` (data
    stored positionally), the object of those keys and the values of the array it holds.
    """

    __slots__ = ("event", "keys", "text")

    def __init__(self, event: Any, text: str | bytes,
                 keys: tuple[str, ...] | None = None) -> None:
        self.event = event
        self.text = text
        self.keys = keys


def _lazy_data() -> Callable[[RecordedEvent], Any]:
    """Let a ``RecordedEvent``'s ``data`` slot hold a ``Typed`` until ``data`` is first read;
    return the function that reads the slot as it is (for ``Codec.decode``).

    As with the id, ``data`` becomes a property over the attrs slot, so every reader (equality,
    hash, repr, pickle, ``attrs.evolve``) sees the decoded data. The text was valid JSON for the
    typed decoder, so reading it again cannot fail.
    """
    slot = RecordedEvent.__dict__["data"]
    get, put = slot.__get__, slot.__set__
    parse = msgspec.json.Decoder().decode

    def read(event: RecordedEvent) -> Any:
        value = get(event)
        if type(value) is Typed:
            keys = value.keys
            value = parse(value.text)
            if keys is not None:
                value = dict(zip(keys, value, strict=True))
            put(event, value)
        return value

    setattr(RecordedEvent, "data", property(read, put, doc="The event's JSON-compatible data."))  # noqa: B010
    return get  # type: ignore[no-any-return]


stored_data: Final = _lazy_data()
"""A ``RecordedEvent``'s data slot as it is: the data, or a ``Typed``."""


@attrs.frozen
class AppendResult:
    """The stream version and the global position of the last event of an append."""

    version: int
    position: int


@attrs.frozen
class Snapshot:
    """A saved state of a stream at a version, as JSON-compatible data."""

    stream: str
    version: int
    state: Any
    recorded_at: datetime
