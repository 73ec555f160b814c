"""Inboxes and the work index: what a stream's owner (an actor) still has to do.

Each stream may have an **inbox**: messages waiting for its owner, in the order they were stored,
each with an id that is unique among the messages waiting there. And each stream may have a
**wake time**: when its owner next needs to run. Both are written in the same transaction as an
append when the append carries them (``acknowledge``, ``enqueue``, ``wake_at``), so an owner that
consumes a message, records what it did and sends messages of its own does all of it or none of
it. ``EventStore.work()`` lists the streams with waiting messages or a wake time: the streams whose
owners a restarted process must activate.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Iterable
from typing import Any, Final, TypeAlias

import attrs

from ._cluster import Fence, checked_fence
from ._errors import InvalidArgument
from ._model import NewEvent
from ._validate import EncodedEvent, encode_events, stream_name


class Keep(enum.Enum):
    """The type of ``KEEP``."""

    KEEP = "keep"

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = Keep.KEEP
"""``append(..., wake_at=KEEP)``: leave the stream's wake time as it is (the default)."""

WakeAt: TypeAlias = "float | Keep | None"


@attrs.frozen
class WorkEntry:
    """A stream whose owner has work: messages waiting in its inbox, or a wake time."""

    stream: str
    wake_at: float | None
    """When its owner next needs to run (seconds since the epoch), or None."""
    waiting: int
    """How many messages wait in its inbox."""


@attrs.frozen
class Enqueued:
    """Where ``EventStore.enqueue`` stored the last of its messages, if the backend says."""

    seq: int
    """Its sequence number in the inbox (as ``read_inbox`` gives it); 0 if this call did not
    store it (its id was waiting already) or the backend does not say (PostgreSQL)."""
    previous: int
    """The sequence number of the message waiting just before it in that inbox when it was
    stored (0: none). A consumer that has seen that one (and so all before it) may take the
    message as it is, without reading the inbox."""


NOT_REPORTED: Final = Enqueued(0, 0)


@attrs.frozen
class Side:
    """What an append writes besides its events, in the same transaction."""

    acknowledge: tuple[bytes, ...] = ()
    """Ids (16 bytes) of messages of the stream's own inbox to delete: consumed."""
    enqueue: tuple[tuple[str, EncodedEvent], ...] = ()
    """Messages to store in other streams' inboxes (skipped where the id is waiting already)."""
    wake_at: WakeAt = KEEP
    fence: Fence | None = None
    """The owner the append must still be (``eventstore._cluster``): else it writes nothing."""

    @property
    def writes(self) -> bool:
        """Whether it writes anything besides the events (a fence only checks)."""
        return bool(self.acknowledge or self.enqueue or self.wake_at is not KEEP)

    @property
    def empty(self) -> bool:
        return not self.acknowledge and not self.enqueue and self.wake_at is KEEP and \
            self.fence is None


NO_SIDE: Final = Side()


def wake_time(value: object, argument: str = "wake_at") -> float | None:
    """A wake time: a finite number of seconds since the epoch, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgument(f"{argument} must be a finite number of seconds since the epoch or "
                              f"None, got {value!r}")
    return float(value)


def message_ids(ids: object) -> tuple[bytes, ...]:
    """``acknowledge``: an iterable of message ids (``uuid.UUID``)."""
    if isinstance(ids, str | bytes | uuid.UUID) or not isinstance(ids, Iterable):
        raise InvalidArgument(f"acknowledge must be a list of uuid.UUID message ids, got {ids!r}")
    found = []
    for index, id in enumerate(ids):
        if not isinstance(id, uuid.UUID):
            raise InvalidArgument(f"acknowledge[{index}] must be a uuid.UUID, got {id!r}")
        found.append(id.bytes)
    return tuple(dict.fromkeys(found))


def outgoing(messages: object) -> tuple[tuple[str, EncodedEvent], ...]:
    """``enqueue``: an iterable of ``(stream, NewEvent)``, validated and encoded."""
    if isinstance(messages, str | bytes) or not isinstance(messages, Iterable):
        raise InvalidArgument("enqueue must be a list of (stream, NewEvent) pairs, got "
                              f"{messages!r}")
    found = []
    for index, item in enumerate(messages):
        if not isinstance(item, tuple) or len(item) != 2:
            raise InvalidArgument(f"enqueue[{index}] must be a (stream, NewEvent) pair, got "
                                  f"{item!r}")
        target = stream_name(item[0], f"enqueue[{index}] stream")
        [encoded] = encode_events(target, [item[1]])
        found.append((target, encoded))
    return tuple(found)


def side(acknowledge: object, enqueue: object, wake_at: object, fence: object = None) -> Side:
    """The validated side of an append (``NO_SIDE`` when it has none)."""
    if acknowledge == () and enqueue == () and wake_at is KEEP and fence is None:
        return NO_SIDE
    return Side(message_ids(acknowledge), outgoing(enqueue),
                KEEP if wake_at is KEEP else wake_time(wake_at), checked_fence(fence))


def distinct(messages: Iterable[Any]) -> list[Any]:
    """``messages`` without a later one whose id an earlier one has (a resend in one batch is
    stored once); what is not a ``NewEvent`` is kept, for ``encode_events`` to refuse."""
    seen: set[uuid.UUID] = set()
    kept = []
    for message in messages:
        if isinstance(message, NewEvent):
            if message.id in seen:
                continue
            seen.add(message.id)
        kept.append(message)
    return kept
