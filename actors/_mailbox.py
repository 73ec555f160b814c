"""An actor's mailbox: a deque with one waiter, cheaper than a channel on the hot path."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import trio

_DRAIN = 64
"""Messages served from a backlog before the mailbox yields to trio's scheduler once."""


class MailboxClosed(Exception):
    """The mailbox takes no more messages."""


class Mailbox:
    """Unbounded FIFO for one consumer task; ``put`` never blocks and never checkpoints."""

    __slots__ = ("_drained", "_queue", "_waiter", "closed")

    def __init__(self) -> None:
        self._queue: deque[Any] = deque()
        self._waiter: trio.Event | None = None
        self._drained = 0
        self.closed = False

    def put(self, item: Any) -> None:
        if self.closed:
            raise MailboxClosed
        self._queue.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    def __len__(self) -> int:
        return len(self._queue)

    def nudge(self) -> None:
        """Wake the consumer without an item: its ``get`` returns None (to look again)."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    async def get(self, deadline: float = math.inf) -> Any | None:
        """The next item, or None if ``deadline`` (trio time) passes first or ``nudge`` was
        called. A checkpoint, though a backlog is served ``_DRAIN`` items per scheduling pass."""
        queue = self._queue
        if queue and self._drained < _DRAIN:
            self._drained += 1
            return queue.popleft()
        self._drained = 0
        if queue:
            await trio.lowlevel.checkpoint()
            return queue.popleft()
        waiter = self._waiter = trio.Event()
        if deadline == math.inf:
            await waiter.wait()
        else:
            with trio.move_on_at(deadline):
                await waiter.wait()
        self._waiter = None
        return queue.popleft() if queue else None

    def close(self) -> list[Any]:
        """Take no more items; return what was still queued."""
        self.closed = True
        left = list(self._queue)
        self._queue.clear()
        return left


class Reply:
    """Where the answer to one ``ask`` goes."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def succeed(self, value: Any) -> None:
        self.value = value
        self.done.set()

    def fail(self, error: BaseException) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()
