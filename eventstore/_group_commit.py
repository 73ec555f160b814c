"""Group commit: appends from many concurrent callers written in one transaction.

There is no background task. The first caller that finds no writer becomes the writer: it takes
every queued request (up to ``max_batch``), hands them to the backend's ``write_batch`` in one
transaction and wakes their callers; it repeats while requests keep arriving. A backend's
``write_batch`` settles each request on its own (SQLite with a savepoint per request, PostgreSQL
inside one statement), so one failing append, say a version conflict, fails alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

import attrs
import trio

from ._errors import EventStoreError
from ._model import AppendResult, Expected
from ._validate import EncodedEvent


@attrs.define(eq=False)
class AppendRequest:
    """One caller's append, waiting for the writer to settle it."""

    stream: str
    events: list[EncodedEvent]
    expected: Expected
    result: AppendResult | BaseException | None = None
    done: trio.Event = attrs.Factory(trio.Event)
    lead: bool = False

    def settle(self, result: AppendResult | BaseException) -> None:
        self.result = result
        self.done.set()


WriteBatch = Callable[[list[AppendRequest]], Awaitable[None]]


class GroupCommitter:
    """Queues append requests and writes them in batches through ``write_batch``.

    ``write_batch(requests)`` must call ``request.settle(...)`` for each request with its
    ``AppendResult`` or its own exception; if it raises instead, every unsettled request of the
    batch gets that exception. ``after_commit`` runs on the trio thread after each batch.
    """

    def __init__(self, write_batch: WriteBatch, *, max_batch: int = 1000,
                 after_commit: Callable[[], None] | None = None) -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._after_commit = after_commit
        self._queue: deque[AppendRequest] = deque()
        self._writing = False

    async def submit(self, stream: str, events: list[EncodedEvent],
                     expected: Expected) -> AppendResult:
        request = AppendRequest(stream, events, expected)
        self._queue.append(request)
        if self._writing:
            await request.done.wait()
            if not request.lead:
                return _outcome(request)
        await self._write_until_empty()
        return _outcome(request)

    async def _write_until_empty(self) -> None:
        self._writing = True
        try:
            # Two scheduling passes first: appenders woken by the last commit (and the tasks
            # they wake in turn) queue up and join this batch instead of waiting behind a
            # transaction of one.
            for _ in range(2):
                await trio.lowlevel.cancel_shielded_checkpoint()
            while self._queue:
                batch = [self._queue.popleft()
                         for _ in range(min(self._max_batch, len(self._queue)))]
                try:
                    await self._write_batch(batch)
                except BaseException as exc:
                    failure = exc if isinstance(exc, Exception) else EventStoreError(
                        "the commit was interrupted; the append may or may not be stored: "
                        "retry it with the same event ids, which is safe")
                    for request in batch:
                        if request.result is None:
                            request.settle(failure)
                    raise
                finally:
                    if self._after_commit is not None:
                        self._after_commit()
                for request in batch:
                    if request.result is None:
                        request.settle(RuntimeError("write_batch left a request unsettled"))
        finally:
            self._writing = False
            if self._queue:
                # This writer was cancelled or failed with work queued: hand the pen over.
                successor = self._queue[0]
                successor.lead = True
                successor.done.set()


def _outcome(request: AppendRequest) -> AppendResult:
    result = request.result
    if isinstance(result, BaseException):
        raise result
    if result is None:
        raise RuntimeError("append request finished without a result")
    return result
