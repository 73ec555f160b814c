"""A store's reader thread: one long-lived thread that runs the store's blocking reads in order.

Handing a read to a fresh worker thread (``trio.to_thread``) costs a thread hop and a task wait
per page; a store that reads a lot keeps one thread instead, fed through a queue. Trio's thread
never waits for it: ``submit`` only queues, and the thread hands each outcome back through the
trio token of the run that asked. A read nobody waits for any more (its caller stopped early or
was cancelled) still runs; its outcome is dropped, and no trio task outlives the caller.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeAlias, TypeVar

import outcome
import trio

T = TypeVar("T")


class Pending(Generic[T]):
    """A read queued on a ``ReaderThread``; ``await pending.result()`` for its outcome."""

    __slots__ = ("_done", "_outcome")

    def __init__(self) -> None:
        self._done = trio.Event()
        self._outcome: outcome.Outcome[T] | None = None

    def _arrived(self, result: outcome.Outcome[T]) -> None:
        self._outcome = result
        self._done.set()

    async def result(self) -> T:
        """The read's value, or its exception, once it has run. A checkpoint."""
        await self._done.wait()
        assert self._outcome is not None
        return self._outcome.unwrap()


_Job: TypeAlias = "tuple[Callable[[], object], Pending[object], trio.lowlevel.TrioToken] | None"


class ReaderThread:
    """Runs blocking reads one at a time, in the order submitted, on one daemon thread.

    The thread starts with the first read and ends at ``stop``, after the reads queued before it,
    then calls ``finish`` on itself (to close what it opened: a connection, say).

    Args:
        name: The thread's name.
        finish: Runs on the thread as it ends.
        closed: The exception a read submitted after ``stop`` fails with.
    """

    def __init__(self, name: str, *, finish: Callable[[], None],
                 closed: Callable[[], Exception]) -> None:
        self.name = name
        self._finish = finish
        self._closed = closed
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def submit(self, read: Callable[[], T]) -> Pending[T]:
        """Queue ``read`` for the thread, starting it if needed; never blocks."""
        pending: Pending[T] = Pending()
        if self._stopped:
            pending._arrived(outcome.Error(self._closed()))
            return pending
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
            self._thread.start()
        self._jobs.put((read, pending, trio.lowlevel.current_trio_token()))  # type: ignore[arg-type]
        return pending

    async def run(self, read: Callable[[], T]) -> T:
        """Run ``read`` on the thread and return its value (or raise). A checkpoint."""
        return await self.submit(read).result()

    async def stop(self) -> None:
        """End the thread once the reads queued so far have run, and wait for it. A checkpoint.

        Later reads fail with ``closed()``. Cancelling the wait leaves the thread to end alone.
        """
        self._stopped = True
        thread, self._thread = self._thread, None
        if thread is None:
            await trio.lowlevel.checkpoint()
            return
        self._jobs.put(None)
        await trio.to_thread.run_sync(thread.join)

    def _main(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                read, pending, token = job
                result = outcome.capture(read)
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(pending._arrived, result)
                del job, read, pending, result  # drop a page nobody waits for at once
        finally:
            self._finish()
