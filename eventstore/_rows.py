"""A page of one stream's events as the store holds them, for a fold that seldom looks at them.

A replay folds every event into the actor and hands out each step, but few callers read the
recorded events themselves (their ids, times, positions). Building a ``RecordedEvent`` for each
row costs more than fetching the row and decoding its event, so a backend that can (SQLite)
hands a replay ``RowPage``\\ s: the stored rows, and for each row the event its reader thread
already decoded (or None). The replay builds a row's ``RecordedEvent`` only when asked for it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from ._codec import Codec
from ._model import RecordedEvent

Row: TypeAlias = "tuple[Any, ...]"
"""A stored row: ``(version, position, type, data, metadata, id, recorded_at)`` as stored."""

Held: TypeAlias = "tuple[Callable[[str, Row], RecordedEvent], str, Row]"
"""What a replay keeps of a row until its ``RecordedEvent`` is asked for:
``(build, stream, row)``; ``build(stream, row)`` makes the event."""


class RowPage(abc.ABC):
    """Up to a page of ``stream``'s rows, in version order, and the events decoded from them.

    ``events[n]`` is the event of ``rows[n]`` as the reader thread decoded it into its class, or
    None (a type the codec had not decoded yet, metadata, data the typed decoder refused, a row
    the fast path does not take): ``decode`` then decodes that row on trio's thread. An event
    is only taken if its class is still the codec's class for its type name: ``typed`` is still
    the codec's ``typed_decoders``, or the class is the one of ``Codec.typed_classes``.
    """

    __slots__ = ("events", "rows", "stream", "typed")

    def __init__(self, stream: str, rows: list[Row], events: list[Any],
                 typed: Mapping[str, Any]) -> None:
        self.stream = stream
        self.rows = rows
        self.events = events
        self.typed = typed
        """The ``Codec.typed_decoders`` the events were decoded with: while it is still the
        codec's, the events are of the codec's classes."""

    def __len__(self) -> int:
        return len(self.rows)

    @staticmethod
    @abc.abstractmethod
    def build(stream: str, row: Row) -> RecordedEvent:
        """The ``RecordedEvent`` of ``row``.

        Raises:
            DecodeError: the row is corrupt (names its stream and version).
        """

    @abc.abstractmethod
    def decode(self, row: Row, codec: Codec) -> tuple[Any, RecordedEvent | Held]:
        """The event of ``row`` (whose reader-decoded event is missing or stale) and what a
        replay keeps of the row: its ``RecordedEvent`` if it had to be built, else ``Held``.

        Raises:
            DecodeError: the row is corrupt, or its event does not decode with ``codec``.
        """
