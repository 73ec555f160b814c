"""Durable messages: how a message is stored in an actor's inbox, and the ids it gets there.

``ref.send(msg)`` stores the message in the actor's inbox (``EventStore.enqueue``) before it
returns; a turn's ``tell``/``send`` is stored by the turn's commit. The actor reads its inbox in
order and consumes each message in the commit of the turn it caused (a ``Received`` event, and
the message deleted from the inbox in the same transaction), so its effects happen once.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import attrs

from eventstore import Codec, NewEvent, RecordedEvent

from ._errors import InvalidActorArgument

if TYPE_CHECKING:
    from ._turn import Turn

_NAMESPACE = uuid.UUID("6f1d2a52-3c1e-4f0a-9a55-8d1c2b7e4a10")


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


REPLY = "reply"
"""The metadata key of an inbox message whose sender waits for its reply (a remote ask)."""

VALUE = "actors.Value"
"""The type of an inbox entry that holds a plain value (not an attrs instance): its data is the
codec's tagged encoding of the value."""


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
    return uuid.uuid5(_NAMESPACE, f"{stream}\x00{message_id}")


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
