"""The runtime of one actor: recovery, the mailbox loop, turns, commit points, snapshots."""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import attrs
import trio

from eventstore import EventStore, NewEvent, WrongExpectedVersion

from ._actor import Actor, copy_fields
from ._actor_class import check_actor_class, check_actor_id, kind_of, overrides
from ._clock import Clock, WallClock
from ._errors import ActorError, ActorStopped, InvalidActorArgument, InvalidActorType, NotInTurn
from ._events import (
    NotificationCancelled,
    NotificationFired,
    NotificationScheduled,
    RunCompleted,
    ScopeCompleted,
    SleepStarted,
    SystemEvent,
    TimeObserved,
)
from ._mailbox import Mailbox, MailboxClosed, Reply
from ._record import DurableRecord
from ._supervision import Escalate, Restart, Stop
from ._timers import EventSourcedNotifier
from ._turn import Turn, current_turn

log = logging.getLogger("actors")

WorkHook = Callable[["Cell", "float | None"], Awaitable[None]]
"""Told, around commits, when an actor next needs to run (epoch s; 0 = now; None = never)."""

TurnHook = Callable[["Cell"], Awaitable[None]]
"""Called after every turn's commit (the test kit's always-replay check); may raise."""


Envelope = tuple[Any, "str | None", "Reply | None"]
_STOP: Any = object()
_WAKE: Any = object()
_IDLE: Any = object()


class Cell:
    """Hosts one actor instance: owns its mailbox, its committed version and pending events."""

    def __init__(self, cls: type[Actor], actor_id: str, *, store: EventStore,
                 clock: Clock | None = None, work_hook: WorkHook | None = None,
                 idle_timeout: float | None = None, turn_hook: TurnHook | None = None) -> None:
        self.cls = check_actor_class(cls)
        self.actor_id = check_actor_id(actor_id)
        if not isinstance(store, EventStore):
            raise InvalidActorType(f"store must be an eventstore.EventStore, got {store!r}")
        if clock is None:
            clock = WallClock()
        if not isinstance(clock, Clock):
            raise InvalidActorType(f"clock must have time() and now(), got {clock!r}")
        if idle_timeout is not None and not (isinstance(idle_timeout, int | float)
                                             and idle_timeout > 0):
            raise InvalidActorArgument(f"idle_timeout must be positive seconds or None, "
                                       f"got {idle_timeout!r}")
        self.kind = kind_of(cls)
        self.stream = f"{self.kind}-{actor_id}"
        self.name = f"{cls.__qualname__}({actor_id!r})"
        self.store = store
        self.codec = store.codec
        self.clock = clock
        self.work_hook = work_hook
        self.turn_hook = turn_hook
        self.idle_timeout = idle_timeout
        self.has_run = overrides(cls, "run")
        self.sync_receive = not inspect.iscoroutinefunction(cls.receive)
        self.mailbox = Mailbox()
        self.actor: Actor = cls()
        object.__setattr__(self.actor, "_cell", self)
        self.version = 0
        self.pending: list[tuple[NewEvent, Turn]] = []
        self.record = DurableRecord()
        self.notifier = EventSourcedNotifier(self.codec, self.emit_system)
        self.run_done = False
        self.accepting = False
        self.closing = False
        self.lost_race = False
        self.ready = trio.Event()
        self.stopped = trio.Event()
        self.stop_reason = "it was stopped"
        self._commit_lock = trio.Lock()
        self._snapshot_version = 0
        self._indexed: float | None = None
        self._stale_wake: float | None = None
        self._notify_failures = 0
        self._retry_at = math.inf  # when a failed on_notify is tried again (epoch s)
        self._warned_stale = False
        self._current_reply: Reply | None = None
        self._run_scope: trio.CancelScope | None = None
        self._rebuilding = False
        self._trio_thread = threading.get_ident()

    # -- turns and events -----------------------------------------------------------------------

    def turn_or_none(self) -> Turn | None:
        turn = current_turn.get()
        return turn if turn is not None and turn.cell is self else None

    def _turn(self, what: str) -> Turn:
        turn = self.turn_or_none()
        if turn is None:
            raise NotInTurn(f"{what} is only allowed inside a turn of {self.name} (receive, run, "
                            "on_start or on_notify)")
        if self._rebuilding:
            raise NotInTurn(f"{what}: {self.name} is rebuilding its state after a failed turn")
        return turn

    def emit(self, events: Iterable[Any]) -> None:
        if threading.get_ident() != self._trio_thread:
            # A plain-def handler: change the state on trio's thread, one change at a time.
            return trio.from_thread.run_sync(self.emit, events)
        turn = self._turn("emit()")
        batch = list(events)
        for event in batch:
            if not attrs.has(type(event)) or isinstance(event, type):
                raise InvalidActorType(f"{self.name} emitted {event!r}: events must be instances "
                                       "of attrs classes (@attrs.frozen)")
            if isinstance(event, SystemEvent):
                raise InvalidActorType(f"{type(event).__name__} is written by the runtime only")
        encoded = [self.codec.new_event(event) for event in batch]
        for event, new in zip(batch, encoded, strict=True):
            self.actor.apply(event)
            self.pending.append((new, turn))

    def emit_system(self, event: SystemEvent) -> None:
        if threading.get_ident() != self._trio_thread:
            return trio.from_thread.run_sync(self.emit_system, event)
        turn = self._turn(f"{type(event).__name__}")
        new = self.codec.new_event(event)
        self.fold(event)
        self.pending.append((new, turn))

    def fold(self, event: Any) -> None:
        """Apply one event, the user's or the runtime's, to the state and the projections."""
        if not isinstance(event, SystemEvent):
            self.actor.apply(event)
        elif isinstance(event, TimeObserved | SleepStarted | ScopeCompleted):
            self.record.apply(event)
        elif isinstance(event, NotificationScheduled | NotificationFired | NotificationCancelled):
            self.notifier.fold(event)
        elif isinstance(event, RunCompleted):
            self.run_done = True

    # -- recovery, commits, snapshots -----------------------------------------------------------

    async def recover(self, *, to_version: int | None = None) -> None:
        """Rebuild the state from the newest snapshot and the log after it. Reads in pages.

        ``to_version`` stops at that version (``actors.replay`` rebuilds past states with it).
        """
        copy_fields(self.cls(), self.actor)
        self.version = 0
        self.record = DurableRecord()
        self.notifier = EventSourcedNotifier(self.codec, self.emit_system)
        self.run_done = False
        self._snapshot_version = 0
        if self.cls.snapshot_every is not None:
            await self._restore_snapshot(to_version)
        decode = self.codec.decode
        async for recorded in self.store.read(self.stream, from_version=self.version + 1,
                                              to_version=to_version):
            event = decode(recorded)
            try:
                self.fold(event)
            except (KeyError, ValueError) as exc:
                if not isinstance(event, SystemEvent):
                    raise
                raise ActorError(
                    f"{self.name} cannot recover: {recorded.type} at version {recorded.version} "
                    f"of {self.stream!r} contradicts the events before it ({exc!r}); the log "
                    "was changed outside this library") from exc
            self.version = recorded.version

    async def _restore_snapshot(self, max_version: int | None) -> None:
        snapshot = await self.store.load_snapshot(self.stream, max_version=max_version)
        if snapshot is None:
            return
        try:
            state = snapshot.state
            self.actor.restore(state["state"])
            self.record = DurableRecord.load(state["record"])
            self.notifier.load(state["notifier"])
            self.run_done = bool(state["run_done"])
        except Exception as exc:
            warnings.warn(f"snapshot of {self.name} at version {snapshot.version} cannot be "
                          f"restored ({exc!r}); replaying the whole log", RuntimeWarning,
                          stacklevel=2)
            copy_fields(self.cls(), self.actor)
            self.record = DurableRecord()
            self.notifier = EventSourcedNotifier(self.codec, self.emit_system)
            self.run_done = False
            return
        self.version = self._snapshot_version = snapshot.version

    async def commit(self) -> None:
        """Append every pending event in one batch at the committed version (a commit point)."""
        if not self.pending and not self._commit_lock.locked():
            return
        # With nothing pending, still wait for a commit in flight (run()'s): a turn must not end,
        # and release its reply, while state it may have read is not yet in the log.
        async with self._commit_lock:
            if not self.pending:
                return
            batch = self.pending
            self.pending = []
            wake = self.work_at()
            if self.work_hook is not None and _earlier(wake, self._indexed):
                await self._index(wake)
            try:
                result = await self.store.append(self.stream, [new for new, _ in batch],
                                                 expected_version=self.version)
            except WrongExpectedVersion as exc:
                self.pending = batch + self.pending
                self.stop_reason = (f"another writer appended to its stream {self.stream!r} "
                                    f"(version {exc.actual}, expected {exc.expected})")
                self.lost_race = True
                self.closing = True
                raise ActorStopped(self.name, self.stop_reason) from exc
            except BaseException:
                self.pending = batch + self.pending
                raise
            self.version = result.version
            if self.work_hook is not None and wake != self._indexed and not self.pending:
                await self._index(wake)
            every = self.cls.snapshot_every
            if every is not None and not self.pending and \
                    self.version - self._snapshot_version >= every:
                await self._save_snapshot()

    def snapshot_state(self) -> dict[str, Any]:
        """The whole state as a snapshot holds it: fields, durable-call record, timers."""
        return {"state": self.actor.snapshot(), "record": self.record.dump(),
                "notifier": self.notifier.dump(), "run_done": self.run_done}

    async def _save_snapshot(self) -> None:
        await self.store.save_snapshot(self.stream, self.version, self.snapshot_state())
        self._snapshot_version = self.version

    def work_at(self) -> float | None:
        """When this actor next needs to run: 0 for now (an unfinished run()), a timer, or None."""
        if self.has_run and not self.run_done:
            return 0.0
        at = self.notifier.next_at()
        return None if at is None else at.timestamp()

    async def _index(self, wake: float | None) -> None:
        assert self.work_hook is not None
        await self.work_hook(self, wake)
        self._indexed = wake

    async def abort(self, turn: Turn) -> None:
        """A turn failed: drop every uncommitted event and rebuild the state from the log."""
        if not self.pending:
            return
        dropped_run = any(t.scope == "run" for _, t in self.pending if t is not turn)
        self.pending = []
        self._rebuilding = True
        try:
            await self.recover()
        except Exception as exc:
            # The log cannot be read back, so the state is unknown: stop rather than go on from
            # a half-rebuilt state (or crash the nursery). A new spawn recovers from the log.
            self.stop_reason = f"its state could not be rebuilt after a failed turn ({exc!r})"
            self.closing = True
            self.request_stop()
            return
        finally:
            self._rebuilding = False
        if dropped_run and self._run_scope is not None:
            self._run_scope.cancel()  # run() lost events of its own: it starts over

    # -- the task ------------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        """Recover, run ``on_start``, then serve turns until stopped. Runs in the user's nursery."""
        try:
            await self.recover()
            if self.work_hook is not None:
                await self._index(self.work_at())  # corrects an entry left too early
            if overrides(self.cls, "on_start"):
                await self._scoped_turn(Turn(self, scope="start"), self.actor.on_start)
            self.accepting = True
            self.ready.set()
            async with trio.open_nursery() as nursery:
                if self.has_run and not self.run_done:
                    if self.work_hook is not None and self._indexed != 0.0:
                        await self._index(0.0)
                    nursery.start_soon(self._supervise_run)
                task_status.started()
                await self._loop()
                self.closing = True
                nursery.cancel_scope.cancel()
            if not self.lost_race:
                await self.commit()
                if self.work_hook is not None and self.work_at() != self._indexed:
                    await self._index(self.work_at())  # a stop may have cut the last update
        finally:
            self.accepting = False
            self._fail_waiting()
            self.stopped.set()
            self.ready.set()

    async def _scoped_turn(self, turn: Turn, body: Callable[[], Awaitable[None]]) -> None:
        token = current_turn.set(turn)
        try:
            await body()
            await self._end_turn(turn)
        except Exception:
            await self.abort(turn)
            raise
        finally:
            current_turn.reset(token)

    async def _end_turn(self, turn: Turn) -> None:
        if turn.has_scope and self.record.has(turn.scope):
            self.emit_system(ScopeCompleted(turn.scope))
        if self.pending or self._commit_lock.locked():  # the usual turn emits nothing
            await self.commit()
        if self.turn_hook is not None:
            await self.turn_hook(self)

    async def _loop(self) -> None:
        while True:
            envelope = await self._next()
            if envelope is _IDLE:
                if self._can_passivate():
                    self.closing = True
                    self.stop_reason = "it was passivated after being idle"
                    return
                continue
            if envelope is _WAKE:
                await self._wake()
            elif envelope[0] is _STOP:
                self.closing = True
                return
            else:
                await self._deliver(envelope)
                self._stale_wake = None  # a message may have changed on_notify's mind
            if self.closing:
                return

    async def _next(self) -> Any:
        if self.idle_timeout is None and not len(self.notifier):
            return await self.mailbox.get()  # no deadline to watch: the common case
        deadline = self._wake_deadline()
        idle = math.inf if self.idle_timeout is None else trio.current_time() + self.idle_timeout
        envelope = await self.mailbox.get(min(deadline, idle))
        if envelope is not None:
            return envelope
        return _WAKE if deadline <= idle else _IDLE

    def _wake_deadline(self) -> float:
        if not len(self.notifier):
            return math.inf
        at = self.notifier.next_at()
        if at is None:
            return math.inf
        when = at.timestamp()
        if self._stale_wake is not None and when <= self._stale_wake:
            # Left unconsumed: wait for a message or a later deadline instead of spinning.
            later = self.notifier.next_after(self._stale_wake)
            when = min(math.inf if later is None else later.timestamp(), self._retry_at)
            if when == math.inf:
                return math.inf
        return trio.current_time() + max(0.0, when - self.clock.time())

    def _can_passivate(self) -> bool:
        # Not with a notification due: the system skips the index entry of an active actor, and
        # would not wake it for due tokens it left unconsumed.
        at = self.notifier.next_at()
        return not self.pending and (not self.has_run or self.run_done) and \
            (at is None or at.timestamp() > self.clock.time())

    async def _deliver(self, envelope: Envelope) -> None:
        message, message_id, reply = envelope
        turn = Turn(self, message_id=message_id)
        token = current_turn.set(turn)
        self._current_reply = reply
        try:
            if self.sync_receive:
                result = await trio.to_thread.run_sync(self.actor.receive, message)
            else:
                result = await self.actor.receive(message)
            await self._end_turn(turn)
        except Exception as exc:
            if not self.lost_race:
                await self.abort(turn)
            if reply is not None:
                reply.fail(exc)
            else:
                log.error("%s failed on %r (told, so nobody is waiting for it)", self.name,
                          message, exc_info=exc)
            return
        except BaseException:
            if reply is not None:  # cancelled mid-turn: the asker must not wait forever
                reply.fail(ActorStopped(self.name, "it was cancelled during this message's turn"))
            raise
        finally:
            current_turn.reset(token)
            self._current_reply = None
        if reply is not None:
            reply.succeed(result)

    async def _wake(self) -> None:
        at = self.notifier.next_at()
        started = self.clock.time()
        if at is None or at.timestamp() > started:
            return  # woken early (the wall clock lags trio's): the loop sleeps the rest
        seq = self.notifier.earliest_seq()
        turn = Turn(self, scope=f"notify:{seq}")
        failed = False
        try:
            await self._scoped_turn(turn, self.actor.on_notify)
        except ActorStopped:
            raise
        except Exception:
            failed = True
            self._notify_failures += 1
            delay = min(60.0, 0.1 * 2 ** min(self._notify_failures - 1, 10))
            self._retry_at = started + delay
            log.exception("%s failed in on_notify; it is called again in %.3g s, or at the next "
                          "message or deadline if sooner", self.name, delay)
        else:
            self._notify_failures = 0
            self._retry_at = math.inf
        after = self.notifier.next_at()
        # Stale: due when the wake-up began, yet left (not: due by now, after a slow turn).
        if after is not None and (failed or after <= at) and after.timestamp() <= started:
            if not failed and not self._warned_stale:
                self._warned_stale = True
                warnings.warn(f"{self.name}.on_notify left due notifications unconsumed; call "
                              "self.notifier.due(now) in on_notify. Waiting for a message or a "
                              "later deadline instead of spinning", RuntimeWarning, stacklevel=1)
            self._stale_wake = started
        else:
            self._stale_wake = None

    async def _supervise_run(self) -> None:
        failures = 0
        policy = self.cls.supervision
        while not self.run_done:
            turn = Turn(self, scope="run")
            token = current_turn.set(turn)
            try:
                with trio.CancelScope() as scope:
                    self._run_scope = scope
                    await self.actor.run()  # type: ignore[attr-defined]
                    if self.record.has("run"):
                        self.emit_system(ScopeCompleted("run"))
                    self.emit_system(RunCompleted())
                    await self.commit()
                    if self.turn_hook is not None:
                        await self.turn_hook(self)
                    return
                failures = 0  # cancelled by a rollback: start over at once
            except ActorStopped:
                self.request_stop()
                return
            except Exception as exc:
                await self.abort(turn)
                if self.closing:
                    return
                failures += 1
                if isinstance(policy, Escalate):
                    raise
                limit = policy.max_restarts if isinstance(policy, Restart) else 0
                if isinstance(policy, Stop) or (limit is not None and failures > limit):
                    log.error("%s: run() failed; stopping (supervision %r)", self.name, policy,
                              exc_info=exc)
                    self.stop_reason = f"its run() failed: {exc!r}"
                    self.request_stop()
                    return
                delay = policy.backoff(failures) if isinstance(policy, Restart) else 0.0
                log.warning("%s: run() failed (%r); restarting in %.3g s", self.name, exc, delay)
                await trio.sleep(delay)
            finally:
                self._run_scope = None
                current_turn.reset(token)

    # -- the mailbox -----------------------------------------------------------------------------

    def tell(self, message: Any, message_id: str | None, reply: Reply | None) -> None:
        if self.closing:
            raise ActorStopped(self.name, self.stop_reason)
        try:
            self.mailbox.put((message, message_id, reply))
        except MailboxClosed:
            raise ActorStopped(self.name, self.stop_reason) from None

    def request_stop(self) -> None:
        with contextlib.suppress(MailboxClosed):
            self.mailbox.put((_STOP, None, None))

    def _fail_waiting(self) -> None:
        error = ActorStopped(self.name, self.stop_reason)
        if self._current_reply is not None:
            self._current_reply.fail(error)
        for _, _, reply in self.mailbox.close():
            if reply is not None:
                reply.fail(error)


def _earlier(new: float | None, old: float | None) -> bool:
    return new is not None and (old is None or new < old)


__all__ = ["ActorError", "Cell", "Reply"]
