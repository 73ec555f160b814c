"""Group commit: appends from many concurrent callers written in one transaction.

There is no background task. The first caller that finds no writer becomes the writer: it takes
every queued request (up to ``max_batch``), hands them to the backend's ``write_batch`` in one
transaction and wakes their callers; it repeats while requests keep arriving. A backend's
``write_batch`` settles each request on its own (SQLite with a savepoint per request, PostgreSQL
inside one statement), so one failing append, say a version conflict, fails alone.

Each request gets exactly one outcome, and there is never more than one writer: a writer that
is cancelled hands the pen to the first caller still waiting, which writes what is left.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Awaitable, Callable

import attrs
import trio

from ._errors import AppendOutcomeUnknown, DuplicateEventId, EventStoreError
from ._model import AppendResult, Expected
from ._validate import EncodedEvent, StoredAt, retried
from ._work import NO_SIDE, Side


@attrs.define(eq=False)
class AppendRequest:
    """One caller's append, waiting for the writer to settle it."""

    stream: str
    events: list[EncodedEvent]
    expected: Expected
    side: Side = NO_SIDE
    """What the append writes besides its events (inboxes, the work index), in its transaction."""
    result: AppendResult | BaseException | None = None
    lead: bool = False
    """Handed the pen: its caller becomes the writer."""
    abandoned: bool = False
    """Its caller was cancelled and will never look at the result."""
    _woken: bool = False
    _waiter: trio.lowlevel.Task | None = None
    """The caller's task while it waits in ``wait``: woken directly, which costs a fraction of
    a ``trio.Event`` per append (every append waits once)."""

    def settle(self, result: AppendResult | BaseException) -> None:
        self.result = result
        self.wake()

    def wake(self) -> None:
        """Wake the caller: its request is settled, or it is handed the pen."""
        self._woken = True
        task, self._waiter = self._waiter, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    async def wait(self) -> None:
        """Return once ``wake`` was called (a checkpoint); ``trio.Event.wait``'s semantics."""
        if self._woken:
            await trio.lowlevel.checkpoint()
            return
        self._waiter = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)


WriteBatch = Callable[[list[AppendRequest]], Awaitable[None]]


def checked_outcome(request: AppendRequest, found: list[StoredAt | None],
                    absent: EventStoreError) -> AppendResult | EventStoreError:
    """The outcome of an append whose commit was ambiguous, from where its ids are stored.

    Args:
        request: the append.
        found: where each of its event ids is stored now, if anywhere.
        absent: the error to report if none of them is stored.

    Returns:
        The stored batch's result if the commit went through, ``absent`` if nothing of it is
        stored, or ``DuplicateEventId`` if its ids are stored as part of another batch.
    """
    try:
        result = retried(request.stream, request.events, found)
    except DuplicateEventId as clash:
        return clash
    return absent if result is None else result


def checked_enqueue(request: AppendRequest, waiting: set[tuple[str, bytes]],
                    absent: EventStoreError) -> AppendResult | EventStoreError:
    """The outcome of an append without events (an ``enqueue``) whose commit was ambiguous.

    Messages leave no trace once consumed, so absence proves nothing: if every message is
    waiting in its inbox (``waiting`` holds the (stream, id) pairs found), the enqueue counts as
    done, since a retry would skip them all; otherwise, and for an append that enqueues nothing
    (a fenced ``set_wake``), it is ``AppendOutcomeUnknown``.
    """
    enqueued = request.side.enqueue
    if enqueued and all((target, message.id.bytes) in waiting for target, message in enqueued):
        return AppendResult(0, 0)
    error = AppendOutcomeUnknown(
        request.stream, 0, f"{absent}; not every message of it is waiting in its inbox, and a "
        "message that was stored may have been consumed since" if enqueued else
        f"{absent}; a wake time (or a fence) leaves nothing to look up")
    error.__cause__ = absent
    return error


class GroupCommitter:
    """Queues append requests and writes them in batches through ``write_batch``.

    ``write_batch(requests)`` must call ``request.settle(...)`` for each request with its
    ``AppendResult`` or its own exception. If it raises an ``Exception`` instead, every request
    it left unsettled gets that exception (an ``EventStoreError`` must mean that nothing of them
    was written; any other exception is reported as ``AppendOutcomeUnknown``). If it is
    cancelled, the requests it left unsettled must not have been written: they are queued again
    for the next writer, unless their caller is gone. ``after_commit`` runs on the trio thread
    after each batch.
    """

    def __init__(self, write_batch: WriteBatch, *, max_batch: int = 1000,
                 after_commit: Callable[[], None] | None = None) -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._after_commit = after_commit
        self._queue: deque[AppendRequest] = deque()
        self._writing = False

    async def submit(self, stream: str, events: list[EncodedEvent], expected: Expected,
                     side: Side = NO_SIDE) -> AppendResult:
        """Queue an append and return its result once a writer has settled it.

        A checkpoint. A caller cancelled while its request waits in the queue withdraws it:
        nothing of it is written. One cancelled while its request is being committed does not
        learn the outcome; the batch commits or fails as a whole, and the next writer goes on.
        """
        request = AppendRequest(stream, events, expected, side)
        self._queue.append(request)
        if self._writing:
            try:
                await request.wait()
            except BaseException:
                self._abandon(request)
                raise
            if not request.lead:
                return _outcome(request)
        await self._write_until_empty(request)
        return _outcome(request)

    def _abandon(self, request: AppendRequest) -> None:
        """Forget ``request``'s caller; withdraw the request if no writer has taken it yet."""
        request.abandoned = True
        # Not queued means in the batch being committed: it commits or fails with the others.
        with contextlib.suppress(ValueError):
            self._queue.remove(request)

    async def _write_until_empty(self, own: AppendRequest) -> None:
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
                await self._commit(batch)
        except BaseException:
            self._abandon(own)
            raise
        finally:
            self._pass_pen()

    async def _commit(self, batch: list[AppendRequest]) -> None:
        """Write one batch and settle every request of it, or queue them again if cancelled."""
        try:
            await self._write_batch(batch)
        except Exception as exc:
            for request in batch:
                if request.result is None:
                    request.settle(exc if isinstance(exc, EventStoreError) else _unknown(
                        request, f"the store failed unexpectedly while committing it ({exc!r})",
                        exc))
        except BaseException:
            # Interrupted before writing them (the backend's promise): whoever waits for them
            # gets them written by the next writer.
            self._queue.extendleft(reversed(
                [request for request in batch
                 if request.result is None and not request.abandoned]))
            raise
        finally:
            if self._after_commit is not None:
                self._after_commit()
        for request in batch:
            if request.result is None:
                request.settle(_unknown(request, "the backend returned without settling it", None))

    def _pass_pen(self) -> None:
        """Let the first waiting caller write what is queued, or mark the committer idle.

        Every queued request's caller is waiting (a cancelled one withdrew its request), so the
        successor wakes up and writes; until then ``_writing`` stays set, so no second writer
        starts.
        """
        if self._queue:
            successor = self._queue[0]
            successor.lead = True
            successor.wake()
        else:
            self._writing = False


def _unknown(request: AppendRequest, reason: str,
             cause: BaseException | None) -> AppendOutcomeUnknown:
    error = AppendOutcomeUnknown(request.stream, len(request.events), reason)
    error.__cause__ = cause
    return error


def _outcome(request: AppendRequest) -> AppendResult:
    result = request.result
    if isinstance(result, BaseException):
        raise result
    assert result is not None, "a settled request always has its outcome"
    return result
