"""An actor's mailbox: a deque with one waiter, cheaper than a channel on the hot path."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import trio

_DRAIN = 64
"""Messages served from a backlog before the mailbox yields to trio's scheduler once."""


EMPTY: Any = object()
"""What ``Mailbox.get_nowait`` returns when there is no item to take now."""


class MailboxClosed(Exception):
    """The mailbox takes no more messages."""


class Mailbox:
    """Unbounded FIFO for one consumer task; ``put`` never blocks and never checkpoints.

    The consumer parks itself (``wait_task_rescheduled``) and ``put`` reschedules it: no
    ``trio.Event`` per wait. The queue is dropped while the mailbox is empty and waited on, so an
    idle actor holds no deque. While the consumer is *held* (a turn runs on an asker's task, see
    ``Cell.ask_inline``), ``put`` and ``nudge`` leave it parked; ``release`` wakes it.
    """

    __slots__ = ("_drained", "_held", "_missed", "_queue", "_waiter", "closed", "parked_forever")

    def __init__(self) -> None:
        self._queue: deque[Any] | None = None
        self._waiter: trio.lowlevel.Task | None = None
        self._drained = 0
        self._held = False
        self._missed = False  # a put or nudge came while held
        self.closed = False
        self.parked_forever = False  # the consumer waits with no deadline (only a put wakes it)

    def __len__(self) -> int:
        queue = self._queue
        return 0 if queue is None else len(queue)

    def put(self, item: Any) -> None:
        if self.closed:
            raise MailboxClosed
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(item)
        waiter = self._waiter
        if waiter is not None:
            if self._held:
                self._missed = True
            else:
                self._waiter = None
                trio.lowlevel.reschedule(waiter)

    def nudge(self) -> None:
        """Wake the consumer without an item: its ``get`` returns None (to look again)."""
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            if self._held:
                self._missed = True
            else:
                self._waiter = None
                trio.lowlevel.reschedule(waiter)

    @property
    def idle(self) -> bool:
        """Whether the consumer waits, with no deadline, on an empty mailbox, and is not held."""
        return self._waiter is not None and self.parked_forever and not self._queue and \
            not self._held

    @property
    def waiting(self) -> bool:
        """Whether the consumer waits on an empty mailbox (with a deadline or not)."""
        return self._waiter is not None and not self._queue

    def hold(self) -> None:
        """Keep the parked consumer parked until ``release`` (items still queue up)."""
        self._held = True

    def release(self) -> None:
        """End ``hold``; wake the consumer if an item or a nudge came meanwhile."""
        self._held = False
        if self._missed:
            self._missed = False
            self._wake()

    def get_nowait(self) -> Any:
        """The next item of a backlog, or ``EMPTY`` when there is none or it is time to yield
        to trio's scheduler (every ``_DRAIN`` items); then ``get`` waits or checkpoints."""
        queue = self._queue
        if queue and self._drained < _DRAIN:
            self._drained += 1
            return queue.popleft()
        return EMPTY

    def put_back(self, item: Any) -> None:
        """Return ``item``, just taken with ``get_nowait``, to the head of the queue."""
        assert self._queue is not None
        self._queue.appendleft(item)
        self._drained -= 1

    async def get(self, deadline: float = math.inf) -> Any | None:
        """The next item, or None if ``deadline`` (trio time) passes first or ``nudge`` was
        called. A checkpoint, though a backlog is served ``_DRAIN`` items per scheduling pass."""
        queue = self._queue
        if queue:
            if self._drained < _DRAIN:
                self._drained += 1
                return queue.popleft()
            self._drained = 0
            await trio.lowlevel.checkpoint()
            return queue.popleft()
        self._drained = 0
        self._queue = None  # idle: hold no deque
        self._waiter = trio.lowlevel.current_task()
        if deadline == math.inf:
            self.parked_forever = True
            try:
                await trio.lowlevel.wait_task_rescheduled(self._abort)
            finally:
                self.parked_forever = False
        else:
            with trio.move_on_at(deadline):
                await trio.lowlevel.wait_task_rescheduled(self._abort)
        queue = self._queue
        return queue.popleft() if queue else None

    def _abort(self, _: Any) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    def close(self) -> list[Any]:
        """Take no more items; return what was still queued."""
        self.closed = True
        left = list(self._queue or ())
        self._queue = None
        return left


class Flag:
    """A one-way signal like ``trio.Event``, whose Event is made only when someone waits:
    ``set`` and ``is_set`` cost a bool, so an idle actor carries no Event."""

    __slots__ = ("_event", "_is_set")

    def __init__(self) -> None:
        self._is_set = False
        self._event: trio.Event | None = None

    def set(self) -> None:
        self._is_set = True
        if self._event is not None:
            self._event.set()

    def is_set(self) -> bool:
        return self._is_set

    async def wait(self) -> None:
        """Return once set (at once if it is). A checkpoint."""
        if self._is_set:
            await trio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = trio.Event()
        await self._event.wait()


class Reply:
    """Where the answer to one ``ask`` goes; its Event is made only if the asker must wait."""

    __slots__ = ("_event", "error", "is_done", "value")

    def __init__(self) -> None:
        self._event: trio.Event | None = None
        self.is_done = False
        self.value: Any = None
        self.error: BaseException | None = None

    def succeed(self, value: Any) -> None:
        if not self.is_done:
            self.value = value
            self._done()

    def fail(self, error: BaseException) -> None:
        if not self.is_done:
            self.error = error
            self._done()

    def _done(self) -> None:
        self.is_done = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Return once answered. A checkpoint if not answered yet; else none at all."""
        if self.is_done:
            return
        if self._event is None:
            self._event = trio.Event()
        await self._event.wait()
