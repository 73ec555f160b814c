"""Recorded replies: what each message with an id answered, for a window of durable time.

A turn of a message sent with a ``message_id`` records its reply (``ReplyRecorded``, or, for a
``send`` whose turn commits at once, the turn's ``Received``) with its events; a resend of that id
gets the recorded reply and runs nothing. The ids are remembered for the actor class's
``remember_replies`` seconds of durable time, counted from the reply's record, and forgotten as
later replies are recorded: a projection of the log, kept in snapshots.
"""

from __future__ import annotations

from typing import Any

from ._events import ReplyRecorded

WEEK = 7 * 24 * 3600.0


class Replies:
    """Recorded replies by message id, oldest first."""

    __slots__ = ("_by_id", "window")

    def __init__(self, window: float = WEEK) -> None:
        self.window = window
        self._by_id: dict[str, tuple[float, Any]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, message_id: str) -> bool:
        return message_id in self._by_id

    def get(self, message_id: str) -> tuple[float, Any] | None:
        """``(at, encoded reply)`` recorded for ``message_id``, or None."""
        return self._by_id.get(message_id)

    def fold(self, event: ReplyRecorded) -> None:
        """Remember a reply, and forget the ones recorded more than ``window`` before it."""
        self.record(event.message_id, event.value, event.at)

    def record(self, message_id: str, value: Any, at: float) -> None:
        """Remember ``value`` (encoded) as the reply to ``message_id``, recorded at epoch
        ``at`` (a ``ReplyRecorded``, or a ``Received`` that carries its send's reply)."""
        by_id = self._by_id
        by_id.pop(message_id, None)  # a resend after the window: the new reply, last
        by_id[message_id] = (at, value)
        horizon = at - self.window
        while by_id:
            oldest = next(iter(by_id))
            if by_id[oldest][0] >= horizon:
                break
            del by_id[oldest]

    def dump(self) -> list[list[Any]]:
        return [[message_id, at, value] for message_id, (at, value) in self._by_id.items()]

    def load(self, data: list[list[Any]]) -> None:
        self._by_id = {message_id: (float(at), value) for message_id, at, value in data}
