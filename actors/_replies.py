"""Recorded replies: what each message with an id answered, for a window of durable time.

A turn of a message sent with a ``message_id`` records its reply (``ReplyRecorded``) with its
events; a resend of that id gets the recorded reply and runs nothing. The ids are remembered for
the actor class's ``remember_replies`` seconds of durable time, counted from the reply's record,
and forgotten as later replies are recorded: a projection of the log, kept in snapshots.
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
        by_id = self._by_id
        by_id.pop(event.message_id, None)  # a resend after the window: the new reply, last
        by_id[event.message_id] = (event.at, event.value)
        horizon = event.at - self.window
        while by_id:
            oldest = next(iter(by_id))
            if by_id[oldest][0] >= horizon:
                break
            del by_id[oldest]

    def dump(self) -> list[list[Any]]:
        return [[message_id, at, value] for message_id, (at, value) in self._by_id.items()]

    def load(self, data: list[list[Any]]) -> None:
        self._by_id = {message_id: (float(at), value) for message_id, at, value in data}
