"""Argument checks shared by every backend, so every backend rejects bad input the same way."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any, Final

import attrs
import msgspec

from ._errors import DuplicateEventId, InvalidArgument, SerializationError
from ._model import AppendResult, Expected, ExpectedVersion, NewEvent


@attrs.frozen
class EncodedEvent:
    """A validated ``NewEvent`` with its data and metadata already turned into JSON text."""

    type: str
    data: str
    metadata: str
    id: uuid.UUID
    recorded_at: datetime | None = None
    """The event's own recording time (a copied log's), or None for the append's."""
    fields: tuple[str, ...] | None = attrs.field(default=None, kw_only=True)
    """The keys of ``data`` in order, when it is a JSON object and the backend asked for its
    positional form (``values``); else None."""
    values: str | None = attrs.field(default=None, kw_only=True)
    """The JSON array of ``data``'s values, in the order of ``fields``; else None."""


MAX_STREAM_LENGTH: Final = 512
"""The longest stream name, in characters. At 4 UTF-8 bytes a character at most, a name fits
every backend's index (a PostgreSQL B-tree entry holds about 2,700 bytes)."""

MAX_TYPE_LENGTH: Final = 512
"""The longest event type name, in characters."""


def _utf8(text: str) -> bool:
    """Whether ``text`` can be stored as UTF-8: it holds no lone surrogate."""
    if text.isascii():  # O(1) in CPython: only non-ASCII text can hold a surrogate
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _name(value: object, limit: int, argument: str, *where: object) -> str:
    """``value`` if it is a storable name, else ``InvalidArgument``.

    ``argument`` is formatted with ``where`` only when the name is refused, so that a valid name
    costs no string formatting.
    """
    if isinstance(value, str) and value and len(value) <= limit and "\x00" not in value and (
            _utf8(value)):
        return value
    what = argument.format(*where)
    if not isinstance(value, str) or not value:
        problem = f"must be a non-empty string, got {value!r}"
    elif len(value) > limit:
        problem = (f"must be at most {limit} characters, got {len(value)} starting "
                   f"{value[:40]!r}; use a shorter name")
    elif "\x00" in value:
        problem = f"must not contain NUL characters, got {value!r}"
    else:
        problem = (f"must not contain lone surrogates (text that cannot be encoded as UTF-8, as "
                   f"from errors='surrogateescape'), got {value!r}")
    raise InvalidArgument(f"{what} {problem}")


def stream_name(stream: object, argument: str = "stream") -> str:
    """``stream`` if every backend can store it as a stream name, else ``InvalidArgument``.

    A stream name is a non-empty string of at most ``MAX_STREAM_LENGTH`` characters, without NUL
    characters or lone surrogates.
    """
    # ASCII text holds no lone surrogate: the usual name passes here without the calls of _name
    if (type(stream) is str and stream.isascii() and 0 < len(stream) <= MAX_STREAM_LENGTH
            and "\x00" not in stream):
        return stream
    return _name(stream, MAX_STREAM_LENGTH, argument)


def type_name(kind: object, argument: str, *where: object) -> str:
    """``kind`` if it is a storable event type name (the rules of a stream name, up to
    ``MAX_TYPE_LENGTH`` characters), else ``InvalidArgument`` naming ``argument.format(*where)``.
    """
    return _name(kind, MAX_TYPE_LENGTH, argument, *where)


LARGEST = 2**63 - 1  # what SQLite and PostgreSQL store as an integer; the same for every backend


def whole(value: object, argument: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{argument} must be an int >= {minimum}, got {value!r}")
    if not minimum <= value <= LARGEST:
        raise InvalidArgument(f"{argument} must be between {minimum} and {LARGEST}, got {value}")
    return value


def optional_whole(value: object, argument: str, *, minimum: int) -> int | None:
    return None if value is None else whole(value, argument, minimum=minimum)


def expected_version(value: object) -> Expected:
    if isinstance(value, ExpectedVersion):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LARGEST:
        raise InvalidArgument(
            f"expected_version must be ANY, NO_STREAM, STREAM_EXISTS or an int in 0..{LARGEST}, "
            f"got {value!r}"
        )
    return value


def version_matches(expected: Expected, actual: int) -> bool:
    if expected is ExpectedVersion.ANY:
        return True
    if expected is ExpectedVersion.NO_STREAM:
        return actual == 0
    if expected is ExpectedVersion.STREAM_EXISTS:
        return actual > 0
    return expected == actual


def type_filter(types: object) -> frozenset[str] | None:
    if types is None:
        return None
    if isinstance(types, str) or not isinstance(types, Iterable):
        raise InvalidArgument(
            f"types must be a collection of type names or None, got {types!r}"
        )
    items = list(types)  # checked before hashing: a list inside would raise TypeError
    if not items:
        raise InvalidArgument("types must hold at least one type name (or be None for all)")
    return frozenset(type_name(name, "types[{}]", index) for index, name in enumerate(items))


# -- JSON text ------------------------------------------------------------------------------------

_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
                                allow_nan=False).encode


def _refuse(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder behind ``_encode_json``, made once rather than per call, and without the check for
# circular references (a circular value fails on the recursion limit instead): half the cost.
_encode_fast: Callable[[Any, int], tuple[str, ...]] = c_make_encoder(
    None, _refuse, encode_basestring, None, ":", ",", False, False, False)

_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_LEAVES: Final = frozenset({str, int, float, bool, type(None)})
_STR: Final = frozenset({str})

Path = tuple[Any, ...]
"""Where in a value something is: the dict keys and list indexes that lead to it."""


class Unstorable(Exception):
    """A value that is not storable as JSON text on every backend, and where in it the fault is.

    Internal: callers turn it into a ``SerializationError`` that names what the value was.
    """

    def __init__(self, problem: str, advice: str, path: Path = ()) -> None:
        super().__init__(problem, advice, path)
        self.problem = problem
        self.advice = advice
        self.path = path

    def message(self, what: str, note: str = "") -> str:
        """The error message for the value called ``what`` (``events[0].data``, say).

        ``note`` follows the path to the fault: `` (type 'Deposited')``, say.
        """
        where = "".join(f"[{step!r}]" for step in self.path)
        return f"{what}{where}{note} {self.problem}; {self.advice}"


_encode_msgspec: Final = msgspec.json.Encoder().encode
_decode_msgspec: Final = msgspec.json.Decoder().decode
_ENCODE_FAILED: Final = (TypeError, ValueError, RecursionError, msgspec.MsgspecError)


def json_text(value: Any) -> str:
    """``value`` as compact JSON text that every backend stores and gives back unchanged.

    The rules: JSON-compatible values only (dict, list, tuple, str, int, finite float, bool,
    None), every dict key a ``str`` (JSON would turn other keys into strings, so ``{1: "a"}``
    would come back as ``{"1": "a"}`` and ``{1: "a", "1": "b"}`` would lose an entry), and no
    lone surrogate in any string (it cannot be encoded as UTF-8). NUL characters are fine: JSON
    writes them as ``\\u0000``.

    Raises:
        Unstorable: the value breaks a rule; says which, and where.
    """
    # msgspec encodes in C at several times the speed of the stdlib, but it is lenient: it
    # writes NaN and infinities as null, int keys as strings (two "1" keys for {1: .., "1": ..}),
    # and UUIDs, datetimes, enums and the like as their JSON forms. So its text is kept only
    # when it is known to read back as ``value``; anything else takes the stdlib path below,
    # which accepts or refuses exactly as before and says why.
    try:
        raw = _encode_msgspec(value)
    except _ENCODE_FAILED:
        return _stdlib_text(value)
    if _reads_back(value, raw):
        return raw.decode()
    return _stdlib_text(value)


def _reads_back(value: Any, raw: bytes) -> bool:
    """Whether ``raw``, msgspec's text of ``value``, decodes to a value equal to ``value``."""
    # The common event: a flat dict of str keys and plain leaves.
    if type(value) is dict and _STR.issuperset(map(type, value)) and _flat(value.values(), raw):
        return True
    # Nested dicts and lists of those leaves (a message inside a ``Received``, say) are known
    # good the same way, walked in Python: cheaper than decoding the text to compare.
    plain = _plain(value, 0)
    if plain == _PLAIN or (plain == _PLAIN_FLOAT and b"null" not in raw):
        return True
    try:
        return bool(_decode_msgspec(raw) == value)
    except Exception:  # a value whose == fails is for the stdlib path to judge
        return False


_NOT_PLAIN, _PLAIN, _PLAIN_FLOAT = 0, 1, 2
_DEEPEST = 32  # deeper values are compared the slow way


def _plain(value: Any, depth: int) -> int:
    """Whether ``value`` holds only dicts with str keys, lists and ``_LEAVES``; and a float?"""
    kind = type(value)
    if kind is dict:
        if not _STR.issuperset(map(type, value)):
            return _NOT_PLAIN
        items: Any = value.values()
    elif kind is list:
        items = value
    elif kind in _LEAVES:
        return _PLAIN_FLOAT if kind is float else _PLAIN
    else:
        return _NOT_PLAIN
    if depth >= _DEEPEST:
        return _NOT_PLAIN
    found = _PLAIN
    for item in items:
        kind = type(item)
        if kind is float:
            found = _PLAIN_FLOAT
        elif kind not in _LEAVES:
            inner = _plain(item, depth + 1)
            if inner == _NOT_PLAIN:
                return _NOT_PLAIN
            found = max(found, inner)
    return found


def _stdlib_text(value: Any) -> str:
    """``json_text`` with the stdlib encoder, which knows every refusal and says where."""
    try:
        text = "".join(_encode_fast(value, 0))
    except (TypeError, ValueError, RecursionError):
        try:  # the full encoder says why in its usual words, and catches circular values
            text = _encode_json(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise Unstorable(
                f"is not JSON-compatible ({exc})",
                "store dicts with str keys, lists, str, int, finite float, bool and None only, "
                "or encode the object with the store's codec") from None
    if not text.isascii() and not _utf8(text):
        raise Unstorable(
            "holds text with a lone surrogate, which cannot be encoded as UTF-8",
            "remove it (text decoded with errors='surrogateescape' holds them)",
            _path_to(value, _bad_text))
    flat = (type(value) is dict and _STR.issuperset(map(type, value))
            and _LEAVES.issuperset(map(type, value.values())))
    if not flat and not _str_keys(value, text):
        path = _path_to(value, _bad_key)
        raise Unstorable(
            f"is a dict key of type {type(path[-1]).__name__}, not str",
            "JSON stores every key as a string, so {1: 'a'} would come back as {'1': 'a'}: "
            "make the keys str, or store the pairs as a list", path)
    return text


def _str_keys(value: Any, text: str) -> bool:
    """Whether every dict key in ``value``, which encodes as ``text``, is a str."""
    # Other keys come back as str keys, so a value that comes back equal has none; one that does
    # not (it holds a tuple, say, which comes back as a list) is walked to be sure.
    return _scan(text, 0)[0] == value or not _path_to(value, _bad_key)


def _bad_key(item: Any, is_key: bool) -> bool:
    return is_key and not isinstance(item, str)


def _bad_text(item: Any, is_key: bool) -> bool:
    return isinstance(item, str) and not _utf8(item)


def _path_to(value: Any, bad: Callable[[Any, bool], bool]) -> Path:
    """The path to the first key or value in ``value`` for which ``bad(item, is_key)`` holds."""
    steps: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        for key in value:
            if bad(key, True):
                return (key,)
        steps = value.items()
    elif isinstance(value, list | tuple):
        steps = enumerate(value)
    else:
        return ()
    for step, item in steps:
        if bad(item, False):
            return (step,)
        found = _path_to(item, bad)
        if found:
            return (step, *found)
    return ()


def values_text(data: dict[str, Any]) -> str:
    """The JSON array of the values of ``data``, a dict ``json_text`` took, as ``json_text``
    writes it: reads back as the list of those values."""
    values = list(data.values())
    try:
        raw = _encode_msgspec(values)
    except _ENCODE_FAILED:  # a value msgspec does not take (a float subclass, say)
        return json_text(values)
    return raw.decode() if _flat(values, raw) else json_text(values)


def _flat(values: Iterable[Any], raw: bytes) -> bool:
    """Whether msgspec's text ``raw`` of a container of ``values`` reads back as it: known
    good in C set operations when every value is a plain leaf; only a float may have become
    null."""
    kinds = set(map(type, values))
    return _LEAVES.issuperset(kinds) and (float not in kinds or b"null" not in raw)


def to_json(value: Any, what: str) -> str:
    """``json_text(value)``, or a ``SerializationError`` that names ``what`` the value is.

    Raises:
        SerializationError: the value breaks a rule of ``json_text``; nothing was written.
    """
    try:
        return json_text(value)
    except Unstorable as exc:
        raise SerializationError(exc.message(what)) from None


_storable_types: set[str] = set()
"""Type names found storable, so that the many events of a few types are checked once."""


def _event_type(kind: object, index: int) -> str:
    name = type_name(kind, "events[{}].type", index)
    if len(_storable_types) >= 1024:
        _storable_types.clear()  # bounded, for programs that make up type names
    _storable_types.add(name)
    return name


def encode_events(stream: str, events: object, *,
                  positional: bool = False) -> list[EncodedEvent]:
    """Validate a batch and turn it into JSON text before anything is written.

    Every backend appends through this, before a request joins a group commit, so a request with
    data some backend cannot store fails alone, the same way on every backend. ``positional``
    (a backend that stores data objects as arrays, SQLite) adds each data dict's keys and the
    text of its values (``EncodedEvent.fields`` and ``values``), made from the dict while it is
    the one just checked.
    """
    if type(events) is list:  # the usual argument: spare it the ABC check and the copy
        batch: list[Any] = events
    else:
        if isinstance(events, NewEvent):
            raise InvalidArgument(
                "events must be a list of NewEvent; wrap a single event in a list")
        if not isinstance(events, Iterable):
            raise InvalidArgument(f"events must be a list of NewEvent, got {events!r}")
        batch = list(events)
    if not batch:
        raise InvalidArgument(f"events for stream {stream!r} must hold at least one NewEvent")
    encoded = []
    seen: set[uuid.UUID] = set()
    for index, event in enumerate(batch):
        if not isinstance(event, NewEvent):
            raise InvalidArgument(
                f"events[{index}] must be a NewEvent, got {type(event).__name__}; "
                "encode objects with store.codec.new_event(obj)"
            )
        kind = event.type
        if type(kind) is not str or kind not in _storable_types:
            kind = _event_type(kind, index)
        id = event.id
        if not isinstance(id, uuid.UUID):
            raise InvalidArgument(f"events[{index}].id must be a uuid.UUID, got {id!r}")
        if index:  # a batch of one cannot repeat an id: spare it the set
            if not seen:
                seen.add(batch[0].id)
            if id in seen:
                raise DuplicateEventId(stream, id, "appears twice in one batch")
            seen.add(id)
        metadata, part = event.metadata, "metadata"
        try:
            metadata_text = event.metadata_json or (json_text(metadata) if metadata else "{}")
            part = "data"
            data_text = event.data_json  # the codec's text, checked when it was made
            data = event.data
            if data_text is None:
                data_text = json_text(data)
            values = values_text(data) if positional and type(data) is dict else None
        except Unstorable as exc:
            raise SerializationError(
                exc.message(f"events[{index}].{part}", f" (type {kind!r})")) from None
        at = event.recorded_at
        if at is not None and (not isinstance(at, datetime) or at.utcoffset() is None):
            raise InvalidArgument(f"events[{index}].recorded_at must be None or an aware "
                                  f"datetime, got {at!r}")
        if values is not None:
            encoded.append(EncodedEvent(kind, data_text, metadata_text, id, at,
                                        fields=tuple(data), values=values))
        else:
            encoded.append(EncodedEvent(kind, data_text, metadata_text, id, at))
    return encoded


StoredAt = tuple[str, int, int]
"""Where an event id is stored: (stream, version, position)."""


def retried(stream: str, events: list[EncodedEvent],
            found: list[StoredAt | None]) -> AppendResult | None:
    """The first result if this batch is already stored (an idempotent retry), else None.

    ``found`` says where each of the batch's event ids is stored, if anywhere.

    Raises:
        DuplicateEventId: some ids are stored, but not as this whole batch on this stream.
    """
    if all(where is None for where in found):
        return None
    first = found[0]
    if first is not None and first[0] == stream and all(
        where is not None and where[0] == stream and where[1] == first[1] + n
        for n, where in enumerate(found)
    ):
        last = found[-1]
        assert last is not None
        return AppendResult(last[1], last[2])
    clash = next(event.id for event, where in zip(events, found, strict=True)
                 if where is not None)
    raise DuplicateEventId(stream, clash, "is already stored as part of another batch")
