"""Running a projection: catch-up then live over the global log, with a stored offset.

The loop reads a batch of events after the stored offset (``read_all``), hands it to the
projection, and commits the new offset, with the handler's SQL when it writes any, in one
transaction (``EventStore.save_offset``). The commit is a compare-and-set on the offset it
started from: a runner that finds the offset moved (a rebuild, another runner) loads it again
instead of writing. When a batch comes back short the projection is live: it waits for a new
event (``subscribe``), and every ``check_every`` seconds looks at its stored offset.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from datetime import UTC, datetime
from typing import Any

import attrs
import trio

from eventstore import (
    EventStore,
    EventStoreError,
    Fence,
    Fenced,
    InvalidArgument,
    OffsetConflict,
    RecordedEvent,
)

from ._errors import InvalidActorArgument, InvalidActorType, ProjectionFailed
from ._projection import Projection, Shape, Transaction, check_projection

log = logging.getLogger("actors.projections")

_running: weakref.WeakKeyDictionary[EventStore, set[str]] = weakref.WeakKeyDictionary()
"""The projections running in this process, per store object: a name runs once."""


@attrs.frozen
class Lag:
    """How far a projection is behind the log."""

    positions: int
    """Global positions between what it has handled (or examined) and the head of the log."""
    seconds: float
    """How long ago the oldest event it has yet to handle was recorded (0 when caught up)."""


class _Restart(Exception):
    """Load the offset again and start over (it moved, or a rebuild was asked for)."""


async def lag_of(store: EventStore, handled: int, types: list[str] | None) -> Lag:
    """The lag of a consumer that has handled (or examined) everything up to ``handled``."""
    head = await store.head_position()
    if head <= handled:
        return Lag(0, 0.0)
    async with contextlib.aclosing(store.read_all(after_position=handled, limit=1,
                                                  types=types)) as events:
        oldest = [event async for event in events]
    seconds = 0.0
    if oldest:
        seconds = max(0.0, (datetime.now(UTC) - oldest[0].recorded_at).total_seconds())
    return Lag(head - handled, seconds)


class ProjectionRunner:
    """A projection at work on a store: its state, offset and lag; pause, resume, rebuild.

    ``ActorSystem(store, projections=[...])`` makes one per projection
    (``system.projection(name)``); ``nursery.start(actors.run_projection, store, projection)``
    returns one too.

    Raises:
        InvalidActorType, InvalidActorArgument: the projection is malformed (see
            ``Projection``).
    """

    def __init__(self, store: EventStore, projection: Projection) -> None:
        if not isinstance(store, EventStore):
            raise InvalidActorType(f"store must be an eventstore.EventStore, got {store!r}")
        self.shape: Shape = check_projection(projection)
        self.store = store
        self.projection = projection
        self.name = self.shape.name
        self.state = "stopped"
        """``starting``, ``catching up``, ``live``, ``paused``, ``rebuilding``, ``failed`` or
        ``stopped``; in a cluster, ``elsewhere`` while another member runs it."""
        self.offset = 0
        """The last global position handled and committed."""
        self.error: ProjectionFailed | None = None
        """Why it stopped, once ``state`` is ``failed``."""
        self._examined = 0  # the head position up to which nothing more is ours to handle
        self._changed = trio.Event()
        self._paused = False
        self._rebuild = False
        self._rebuilt = trio.Event()
        self._wait_scope: trio.CancelScope | None = None
        self._names: list[str] | None = None
        self.fence: Fence | None = None
        """In a cluster: the claim it runs under; every offset it saves is fenced with it."""

    def __repr__(self) -> str:
        return f"<ProjectionRunner {self.name!r} {self.state} at {self.offset}>"

    # -- operations ------------------------------------------------------------------------------

    def pause(self) -> None:
        """Stop after the batch in hand, until ``resume()``; the stored state says ``paused``."""
        self._paused = True
        self._kick()

    def resume(self) -> None:
        """Carry on after ``pause()``."""
        self._paused = False
        self._kick()

    async def rebuild(self) -> None:
        """Reset the read model (``reset``) and the offset to 0 in one commit, then replay.

        Returns once the reset is committed; the replay goes on in the background. A
        checkpoint. If cancelled, the rebuild still happens.
        """
        if self.state in ("failed", "stopped"):
            raise InvalidActorArgument(f"projection {self.name!r} is {self.state}; start it to "
                                       "rebuild it (or run `python -m actors projections "
                                       "rebuild`)")
        self._rebuild = True
        self._rebuilt = done = trio.Event()
        self._kick()
        await done.wait()

    async def lag(self) -> Lag:
        """Positions behind the head of the log, and the age of the oldest unhandled event.
        A checkpoint."""
        return await lag_of(self.store, max(self.offset, self._examined), self._names)

    async def wait_for(self, position: int) -> None:
        """Wait until everything up to global ``position`` is handled (or was not ours).

        A checkpoint.

        Raises:
            ProjectionFailed: the projection stopped on a failure meanwhile.
        """
        await trio.lowlevel.checkpoint()
        while max(self.offset, self._examined) < position:
            if self.error is not None:
                raise self.error
            await self._changed.wait()
        if self.error is not None and self.offset < position:
            raise self.error

    def _kick(self) -> None:
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    def _moved(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # -- the loop --------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[ProjectionRunner]
                  = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; with ``nursery.start``, started once set up and returns self.

        Raises:
            ProjectionFailed: a batch failed ``max_attempts`` times; its offset stays before it.
            InvalidActorArgument: a projection of this name already runs on this store.
            Fenced: in a cluster, another member runs it now (this member lost its claim).
        """
        names = _running.setdefault(self.store, set())
        if self.name in names:
            raise InvalidActorArgument(
                f"a projection named {self.name!r} already runs on this store in this process; "
                "give each projection its own name")
        names.add(self.name)
        codec = self.store.codec
        if self.shape.types is not None:
            self._names = sorted({name for cls in self.shape.types
                                  for name in codec.type_names(cls)})
        self.state = "starting"
        started = False
        delay = self.projection.backoff
        try:
            while True:
                try:
                    await self._start()
                    if not started:
                        started = True
                        task_status.started(self)
                    delay = self.projection.backoff
                    await self._follow()
                except _Restart:
                    continue
                except (ProjectionFailed, Fenced):
                    raise
                except (EventStoreError, OSError) as exc:
                    # The store failed (a lost connection, a full disk): try again, for ever.
                    log.warning("projection %r: the store failed (%s); retrying in %.1f s",
                                self.name, exc, delay)
                    await trio.sleep(delay)
                    delay = min(max(2 * delay, 0.01), self.projection.max_backoff)
        finally:
            names.discard(self.name)
            if self.state != "failed":
                self.state = "stopped"
            self._moved()

    async def _start(self) -> None:
        """Load the offset; set the read model up (and reset it for a rebuild) with it."""
        stored = await self.store.load_offset(self.name)
        rebuild = self._rebuild or (stored is not None and stored.state == "rebuild")
        at = 0 if stored is None else stored.position
        self.state = "rebuilding" if rebuild else "starting"
        target = 0 if rebuild else at

        async def prepare() -> None:
            tx = Transaction() if self.shape.sql else None
            await self.shape.setup(tx)
            if rebuild:
                await self.shape.reset(tx)
            await self._save(target, at, tx, "paused" if self._paused else "running")

        await self._attempts(prepare, at)
        self.offset, self._examined = target, 0
        if rebuild:
            self._rebuild = False
            self._rebuilt.set()
        self._moved()

    async def _follow(self) -> None:
        size = self.projection.batch_size
        while True:
            if self._rebuild:
                raise _Restart
            if self._paused:
                await self._pause()
                continue
            page = await self._page(size)
            if page:
                self.state = "catching up" if len(page) == size else "live"
                await self._handle(page)
                if len(page) < size:
                    await self._wait_live()  # caught up: most likely nothing more yet
                continue
            # Nothing of ours after the offset: everything up to the head read before a second
            # look is examined (positions commit in order), though not ours to handle.
            head = await self.store.head_position()
            if await self._page(1):
                continue
            self.state = "live"
            if head > max(self.offset, self._examined):
                self._examined = head
                self._moved()
                if head - self.offset >= size:  # a long stretch of others' events: skip it
                    await self._save(head, self.offset, None, "running")
                    self.offset = head
            await self._wait_live()

    async def _page(self, size: int) -> list[RecordedEvent]:
        """Up to ``size`` events of ours after what was handled or examined."""
        async with contextlib.aclosing(self.store.read_all(
                after_position=max(self.offset, self._examined), limit=size,
                types=self._names)) as events:
            return [event async for event in events]

    async def _handle(self, page: list[RecordedEvent]) -> None:
        codec = self.store.codec
        last = page[-1].position

        async def attempt() -> None:
            batch = [(codec.decode(recorded), recorded) for recorded in page]
            tx = Transaction() if self.shape.sql else None
            await self.shape.batch(batch, tx)
            await self._save(last, self.offset, tx, "running")

        await self._attempts(attempt, self.offset)
        self.offset = last
        self._moved()

    async def _attempts(self, work: Any, position: int) -> None:
        """Run ``work`` until it succeeds, with backoff; fail the projection after
        ``max_attempts`` tries."""
        projection, delay = self.projection, self.projection.backoff
        for attempt in range(1, projection.max_attempts + 1):
            try:
                await work()
                return
            except (_Restart, Fenced):
                raise
            except Exception as exc:
                # A refused argument (SQL on a store without it) fails the same way again.
                if attempt == projection.max_attempts or isinstance(exc, InvalidArgument):
                    await self._fail(exc, position, attempt)
                log.warning("projection %r failed at the events after position %d (attempt "
                            "%d of %d): %r; retrying in %.2f s", self.name, position, attempt,
                            projection.max_attempts, exc, delay)
                await trio.sleep(delay)
                delay = min(2 * delay, projection.max_backoff)

    async def _fail(self, exc: Exception, position: int, attempts: int) -> None:
        error = ProjectionFailed(self.name, position, attempts, f"{type(exc).__name__}: {exc}")
        self.error = error
        self.state = "failed"
        self._moved()
        with contextlib.suppress(EventStoreError):
            await self.store.save_offset(self.name, position, expected=position,
                                         state="failed", error=error.error, fence=self.fence)
        log.error("%s", error)
        raise error from exc

    async def _save(self, position: int, expected: int, tx: Transaction | None,
                    state: str) -> None:
        try:
            await self.store.save_offset(self.name, position, expected=expected, state=state,
                                         statements=() if tx is None else tx.statements,
                                         fence=self.fence)
        except OffsetConflict as exc:
            raise _Restart from exc

    async def _pause(self) -> None:
        self.state = "paused"
        await self._save(self.offset, self.offset, None, "paused")
        self._moved()
        while self._paused and not self._rebuild:
            with trio.CancelScope() as self._wait_scope:
                await trio.sleep_forever()
        self._wait_scope = None
        if not self._rebuild:
            await self._save(self.offset, self.offset, None, "running")

    async def _wait_live(self) -> None:
        """Wait for a new event of ours, a kick, or ``check_every`` (then look at the offset)."""
        after = max(self.offset, self._examined)
        with trio.move_on_after(self.projection.check_every) as timer, \
                trio.CancelScope() as self._wait_scope:
            async with contextlib.aclosing(self.store.subscribe(
                    after_position=after, types=self._names)) as live:
                async for _ in live:
                    break
        self._wait_scope = None
        if timer.cancelled_caught:
            stored = await self.store.load_offset(self.name)
            if stored is None or stored.position != self.offset or stored.state == "rebuild":
                raise _Restart


async def run_projection(store: EventStore, projection: Projection, *,
                         task_status: trio.TaskStatus[ProjectionRunner]
                         = trio.TASK_STATUS_IGNORED) -> None:
    """Run ``projection`` over ``store``'s log until cancelled: catch up, then follow live.

    With ``await nursery.start(run_projection, store, projection)``, returns its
    ``ProjectionRunner`` once the read model is set up and the offset loaded.

    Raises:
        ProjectionFailed: a batch kept failing; nothing after its offset was handled.
        InvalidActorType, InvalidActorArgument: the projection is malformed, or one of the
            same name already runs on this store in this process.
    """
    await ProjectionRunner(store, projection).run(task_status=task_status)
