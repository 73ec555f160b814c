"""Durable messages: how a message is stored in an actor's inbox, and the ids it gets there.

``ref.send(msg)`` stores the message in the actor's inbox (``EventStore.enqueue``) before it
returns; a turn's ``tell``/``send`` is stored by the turn's commit. The actor reads its inbox in
order and consumes each message in the commit of the turn it caused (a ``Received`` event, and
the message deleted from the inbox in the same transaction), so its effects happen once.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from typing import TYPE_CHECKING, Any

import attrs
import msgspec

from eventstore import Codec, NewEvent, RecordedEvent
from eventstore._model import encoded_new_event
from eventstore._validate import json_text

from ._errors import InvalidActorArgument
from ._events import Received

if TYPE_CHECKING:
    from ._turn import Turn

_NAMESPACE = uuid.UUID("6f1d2a52-3c1e-4f0a-9a55-8d1c2b7e4a10")
_PREFIX = _NAMESPACE.bytes
_sha1 = hashlib.sha1
_new = object.__new__
_set_int = uuid.UUID.__dict__["int"].__set__
_set_safe = uuid.UUID.__dict__["is_safe"].__set__
_UNKNOWN = uuid.SafeUUID.unknown
_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))  # the variant and version bits
_VERSION_5 = (0x8000 << 48) | (5 << 76)


@attrs.define(eq=False, slots=True)
class Inbound:
    """Where a message read from the inbox waits, and how often its turn has failed."""

    id: uuid.UUID
    seq: int
    type: str
    data: Any
    attempts: int = 0
    reply: bool = False
    """Its sender waits for its reply (a remote ask): the reply is recorded in the log."""
    handed: int | None = None
    """Handed over by its sender (``Cell.take``), not read from the inbox: how often the inbox
    had been read again from its start then (a later read again makes this copy stale)."""
    text: str | None = None
    """``data`` as the JSON text it was stored as, when known (a message handed over): the
    turn's ``Received`` carries it as it is rather than encoding ``data`` again."""


REPLY = "reply"
"""The metadata key of an inbox message whose sender waits for its reply (a remote ask)."""

VALUE = "actors.Value"
"""The type of an inbox entry that holds a plain value (not an attrs instance): its data is the
codec's tagged encoding of the value."""


_RECEIVED = "actors.Received"
_encode_json = msgspec.json.Encoder().encode


def encode_received(codec: Codec, event: Received, text: str | None,
                    id: uuid.UUID | None = None) -> NewEvent:
    """``event`` as a new event, with its message's data spliced in as ``text`` (the JSON text
    the message was stored as, which the store checked then) instead of encoded again, when
    known. ``id``: the event's id (a fresh one by default).

    Either way the event's data is the same: ``replied_at`` and ``events`` are left out unless
    the reply is fused into it, as a log written before they existed has it, so a ``Received``
    reads the same whichever way its message reached the actor.
    """
    at = event.replied_at
    if at is not None and not math.isfinite(at):
        return codec.new_event(event, id=id)  # refused there, with the codec's error
    head: dict[str, Any] = {"seq": event.seq, "message_id": event.message_id,
                            "type": event.type}
    if at is not None:
        head["replied_at"] = at
        head["events"] = event.events
    if text is None or event.data is None:
        head["data"] = event.data  # a stored message's data: storable as it is
        return encoded_new_event(_RECEIVED, head, {}, id, json_text(head))
    # msgspec writes the str, int and finite float fields exactly as the codec would.
    encoded = f'{_encode_json(head)[:-1].decode()},"data":{text}}}'
    head["data"] = event.data
    return encoded_new_event(_RECEIVED, head, {}, id, encoded)


def decode_message(codec: Codec, stored: RecordedEvent) -> Any:
    """The message an inbox entry holds."""
    if stored.type == VALUE:
        return codec.decode_value(stored.data)
    return codec.decode(stored)


def inbox_id(stream: str, message_id: str | None) -> uuid.UUID | None:
    """The inbox id of a message with ``message_id`` for ``stream``: the same on every resend,
    so a resend while the first is still waiting is stored once. None: a fresh id."""
    if message_id is None:
        return None
    # uuid.uuid5(_NAMESPACE, f"{stream}\0{message_id}"), without UUID.__init__'s checks (a
    # send's cost): the SHA-1 digest's first 16 bytes, with the variant and version 5 set.
    digest = _sha1(_PREFIX + f"{stream}\x00{message_id}".encode()).digest()
    value: uuid.UUID = _new(uuid.UUID)
    _set_int(value, (int.from_bytes(digest[:16]) & _CLEAR) | _VERSION_5)
    _set_safe(value, _UNKNOWN)
    return value


def sent_id(turn: Turn) -> str:
    """The id a turn's n-th sent message gets: the same on every execution of the scope."""
    return f"{turn.cell.stream}/{turn.scope}/{'.'.join(map(str, turn.branch))}>{turn.sends}"


def encode_message(codec: Codec, stream: str, message: Any, message_id: str | None,
                   trace: dict[str, str] | None) -> NewEvent:
    """``message`` as an inbox entry for ``stream``.

    Raises:
        InvalidActorArgument: the codec cannot encode it; nothing is stored.
    """
    metadata: dict[str, Any] = {}
    if message_id is not None:
        metadata["message_id"] = message_id
    if trace:
        metadata["trace"] = trace
    id = inbox_id(stream, message_id)
    try:
        if attrs.has(type(message)):
            return codec.new_event(message, metadata=metadata, id=id)
        value = codec.encode_value(message)
        return NewEvent(VALUE, value, metadata) if id is None else \
            NewEvent(VALUE, value, metadata, id)
    except Exception as exc:
        raise InvalidActorArgument(
            f"message {message!r} cannot be stored: the store's codec cannot encode it ({exc}); "
            "send instances of attrs classes (or other values the codec encodes)") from exc
