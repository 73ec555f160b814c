"""Argument checks shared by every backend, so every backend rejects bad input the same way."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

import attrs

from ._errors import DuplicateEventId, InvalidArgument, SerializationError
from ._model import AppendResult, Expected, ExpectedVersion, NewEvent


@attrs.frozen
class EncodedEvent:
    """A validated ``NewEvent`` with its data and metadata already turned into JSON text."""

    type: str
    data: str
    metadata: str
    id: uuid.UUID


def stream_name(stream: object, argument: str = "stream") -> str:
    if not isinstance(stream, str) or not stream:
        raise InvalidArgument(f"{argument} must be a non-empty string, got {stream!r}")
    if "\x00" in stream:
        raise InvalidArgument(f"{argument} must not contain NUL characters, got {stream!r}")
    return stream


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
    if not items or not all(isinstance(name, str) and name for name in items):
        raise InvalidArgument(
            f"types must hold at least one non-empty type name (or be None for all), got {types!r}"
        )
    return frozenset(items)


_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
                                allow_nan=False).encode


def _refuse(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder behind ``_encode_json``, made once rather than per call, and without the check for
# circular references (a circular value fails on the recursion limit instead): half the cost.
_encode_fast: Callable[[Any, int], tuple[str, ...]] = c_make_encoder(
    None, _refuse, encode_basestring, None, ":", ",", False, False, False)


def _dict_json(value: Any) -> str | None:
    """``value`` as compact JSON text if it is a JSON-compatible dict, else None."""
    if type(value) is dict:
        try:
            return "".join(_encode_fast(value, 0))
        except (TypeError, ValueError, RecursionError):
            pass  # the full encoder says why, in its usual words
    return None


def to_json(value: Any, what: str) -> str:
    """Turn ``value`` into compact JSON text, or say clearly why it is not JSON-compatible."""
    text = _dict_json(value)
    if text is not None:
        return text
    try:
        return _encode_json(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(
            f"{what} is not JSON-compatible ({exc}); store dicts, lists, str, int, finite float, "
            "bool and None only, or encode the object with the store's codec"
        ) from None


def encode_events(stream: str, events: object) -> list[EncodedEvent]:
    """Validate a batch and turn it into JSON text before anything is written."""
    if isinstance(events, NewEvent):
        raise InvalidArgument("events must be a list of NewEvent; wrap a single event in a list")
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
        kind, id = event.type, event.id
        if not isinstance(kind, str) or not kind:
            raise InvalidArgument(f"events[{index}].type must be a non-empty string")
        if not isinstance(id, uuid.UUID):
            raise InvalidArgument(f"events[{index}].id must be a uuid.UUID, got {id!r}")
        if index:  # a batch of one cannot repeat an id: spare it the set
            if not seen:
                seen.add(batch[0].id)
            if id in seen:
                raise DuplicateEventId(stream, id, "appears twice in one batch")
            seen.add(id)
        metadata = event.metadata
        if not metadata:
            metadata_text = "{}"
        elif all(isinstance(key, str) for key in metadata):
            metadata_text = to_json(metadata, f"events[{index}].metadata ({kind})")
        else:
            raise InvalidArgument(f"events[{index}].metadata keys must be strings")
        data = event.data
        data_text = _dict_json(data) or to_json(data, f"events[{index}].data ({kind})")
        encoded.append(EncodedEvent(kind, data_text, metadata_text, id))
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
