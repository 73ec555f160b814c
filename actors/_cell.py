"""The loop of one actor: its mailbox, turns, wake-ups and supervision.

What the actor's state is lives in ``ActorState`` (the pure fold); pending events, commit points,
recovery and snapshots in the ``Journal``. The cell runs turns one at a time from its mailbox,
``run()`` beside them, and timer wake-ups when the notifier's next instant comes.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import math
import threading
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import attrs
import msgspec
import trio

from eventstore import Codec, Enqueued, EventStore, Fence, NewEvent
from eventstore._model import recorded_event

from . import _registry as registry
from ._actor import Actor
from ._actor_class import check_actor_class, check_actor_id, kind_of, overrides
from ._clock import WALL_CLOCK, Clock
from ._errors import (
    ActorError,
    ActorStopped,
    InvalidActorArgument,
    InvalidActorType,
    NonDeterminismError,
    NotInTurn,
)
from ._events import (
    Consumed,
    DeadLettered,
    MessageSent,
    NotificationCancelled,
    NotificationScheduled,
    Received,
    ReplyRecorded,
    RunCompleted,
    ScopeCompleted,
    SystemEvent,
)
from ._inbox import REPLY, Inbound, decode_message, encode_message, encode_received, sent_id
from ._index import WAKE_AHEAD
from ._journal import Journal, Outgoing, Pending, WorkHook
from ._mailbox import EMPTY, Flag, Mailbox, MailboxClosed, Reply
from ._shield import no_deadline, shielded_when_suspended
from ._state import ActorState
from ._supervision import Escalate, Restart, Stop
from ._telemetry import Carrier, Telemetry
from ._timers import EventSourcedNotifier
from ._turn import WAKE_UP, Turn, current_turn, track_branches

log = logging.getLogger("actors")
_decode_json = msgspec.json.Decoder().decode

TurnHook = Callable[["Cell"], Awaitable[None]]
"""Called after every turn's commit (the test kit's always-replay check)."""

Envelope = tuple[Any, "str | None", "Reply | None", "Carrier | None", "Inbound | None"]
"""A message, its id, where its answer goes, the trace context it was sent in, and where it
waits in the actor's inbox (a durable send)."""
_STOP: Any = object()
_INBOX: Any = object()
_STOP_ENVELOPE: Envelope = (_STOP, _STOP, None, None, None)
_INBOX_ENVELOPE: Envelope = (_INBOX, _INBOX, None, None, None)
"""The loop's own items. Their id slot is set, so one test tells a plain message from all else."""
_WAKE: Any = object()
_IDLE: Any = object()
_AGAIN: Any = object()
_TIMERS = (NotificationScheduled, NotificationCancelled)
_MATCHED = (NotificationScheduled, MessageSent)
"""System events a re-executing scope matches against what it committed, as ``emit`` does."""
_EVENT_CLASSES: set[type] = set()
"""Classes ``emit`` has accepted events of (attrs classes, not the runtime's): checked once."""
_BACKLOG = 64
"""The most message turns of a backlog that share one commit."""
_PULL = 1000
"""The most inbox messages read into memory at once."""
_RETRY = Restart(initial_backoff=0.1, max_backoff=60.0)
"""How a failing ``on_notify``, or a failing commit of consumed inbox messages, is tried again
when nothing else wakes the actor."""


class SleepInterrupted(BaseException):
    """A durable sleep was cut short because its actor is stopping; the scope resumes later.

    A ``BaseException`` so that user code catching ``Exception`` lets it through.
    """


class Cell:
    """Hosts one actor instance: its mailbox, its turns, its state and its journal."""

    __slots__ = (
        "_commit_failures",
        "_current_reply",
        "_held",
        "_inbox_seen",
        "_inline",
        "_lean",
        "_notify_failures",
        "_poked",
        "_pulled",
        "_pulling",
        "_rereads",
        "_retry_at",
        "_sleeps",
        "_stale_wake",
        "_startup_error",
        "_stopping",
        "_taken",
        "_trio_thread",
        "_warned_stale",
        "actor_id",
        "clock",
        "closing",
        "cls",
        "codec",
        "has_run",
        "idle_timeout",
        "journal",
        "kind",
        "mailbox",
        "name",
        "ready",
        "state",
        "stop_reason",
        "stopped",
        "store",
        "stream",
        "sync_receive",
        "system",
        "telemetry",
        "turn_hook",
    )

    def __init__(self, cls: type[Actor], actor_id: str, *, store: EventStore,
                 clock: Clock | None = None, work_hook: WorkHook | None = None,
                 idle_timeout: float | None = None, turn_hook: TurnHook | None = None,
                 telemetry: Telemetry | None = None) -> None:
        self.cls = check_actor_class(cls)
        self.actor_id = check_actor_id(actor_id)
        if not isinstance(store, EventStore):
            raise InvalidActorType(f"store must be an eventstore.EventStore, got {store!r}")
        if clock is None:
            clock = WALL_CLOCK
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
        self.turn_hook = turn_hook
        self.system: Any = None  # the ActorSystem hosting it, for ``Actor.ref``
        self.telemetry = telemetry
        self.idle_timeout = idle_timeout
        self.has_run = overrides(cls, "run")
        self.sync_receive = not inspect.iscoroutinefunction(cls.receive)
        # Plain messages' turns run back to back in the loop (``_serve_plain``): nothing per
        # turn watches them (no span, no hook) and the handler is a coroutine.
        self._lean = not self.sync_receive and telemetry is None and turn_hook is None
        self.mailbox = Mailbox()
        self.state = ActorState(cls, actor_id, self.codec, emit_system=self.emit_system,
                                runtime=self)
        self.journal = Journal(self, self.state, work_hook=work_hook)
        self.closing = False
        self.ready = Flag()
        self.stopped = Flag()
        self.stop_reason = "it was stopped"
        self._startup_error: Exception | None = None
        self._stopping = False  # a stop was asked for: durable sleeps end at once
        self._stale_wake: float | None = None
        self._notify_failures = 0
        self._commit_failures = 0  # backlog commits failed in a row
        self._retry_at = math.inf  # when a failed on_notify is tried again (epoch s)
        self._warned_stale = False
        self._current_reply: Reply | None = None
        self._held: list[tuple[Reply | None, Any]] = []  # ended turns of a backlog, uncommitted
        self._sleeps: set[trio.CancelScope] | None = None  # durable sleeps in progress
        self._inline: _Inline | None = None  # a turn running on an asker's task
        self._pulled: deque[Envelope] | None = None  # inbox messages read, in order
        self._inbox_seen = 0  # the newest inbox sequence read (-1: set aside, read no more)
        self._poked = False  # a look at the inbox is queued in the mailbox (or due)
        self._pulling = False  # a read of the inbox is under way
        self._rereads = 0  # how often the inbox was read again from its start, or set aside
        self._taken: set[int] | None = None  # inbox messages handed over by ``take``, unread
        self._trio_thread = threading.get_ident()

    # -- the runtime's view, for Actor's properties ---------------------------------------------

    @property
    def actor(self) -> Actor:
        return self.state.actor

    @property
    def notifier(self) -> EventSourcedNotifier:
        return self.state.notifier

    @property
    def version(self) -> int:
        """The committed version."""
        return self.state.version

    @property
    def current_version(self) -> int:
        return self.state.version + len(self.journal.pending)

    # -- turns and events -----------------------------------------------------------------------

    def turn_or_none(self) -> Turn | None:
        turn = current_turn.get()
        return turn if turn is not None and turn.cell is self else None

    def _turn(self, what: str | type) -> Turn:
        """The turn this task executes, for ``what`` (a call, or the class of an event)."""
        turn = current_turn.get()
        if turn is None or turn.cell is not self or turn.root.finished:
            raise self._outside(turn, what)
        return turn

    def _outside(self, turn: Turn | None, what: str | type) -> ActorError:
        """Why ``what`` is refused: this activation has stopped (a stale actor object), no
        turn of this actor, or ``turn`` has ended. (Error paths only: the checks cost nothing
        on the way to a change that is allowed.)"""
        if not isinstance(what, str):
            what = what.__name__
        if turn is None or turn.cell is not self:
            if self.stopped.is_set():
                return ActorStopped(self.name, self._stale_reason())
            return NotInTurn(f"{what} is only allowed inside a turn of {self.name} (receive, "
                             "run, on_start or on_notify)")
        return NotInTurn(f"{what}: the turn of {self.name} this task belongs to has ended; a "
                         "task that outlives its turn cannot change the actor")

    def emit(self, events: Iterable[Any]) -> None:
        if threading.get_ident() != self._trio_thread:
            # A plain-def handler: change the state on trio's thread, one change at a time.
            return trio.from_thread.run_sync(self.emit, events)
        turn = current_turn.get()
        if turn is None or turn.cell is not self:
            raise self._outside(turn, "emit()")
        root = turn.root
        if root.finished:
            raise self._outside(turn, "emit()")
        batch = tuple(events)
        for event in batch:
            if type(event) not in _EVENT_CLASSES:
                self._check_event(event)
        codec = self.codec
        if self.telemetry is None:
            encoded = [codec.new_event(event) for event in batch]
        else:  # the turn's trace context goes into each event's metadata
            trace = self.telemetry.carrier()
            encoded = [codec.new_event(event, metadata=trace) for event in batch]
        replaying = root._scope is not None and self._recorded(turn)
        pending = self.journal.pending
        apply = self.state.actor.apply
        for event, new in zip(batch, encoded, strict=True):
            if replaying and self._committed_before(turn, event):
                continue
            pending.append(Pending(new, event, root, turn, turn.calls))
            try:
                apply(event)
            except BaseException as exc:
                root.poisoned = exc  # the state may be half-changed: the turn must fail
                raise

    def _check_event(self, event: Any) -> None:
        """Refuse what is not a user's event; remember the class of one that is."""
        if not attrs.has(type(event)) or isinstance(event, type):
            raise InvalidActorType(f"{self.name} emitted {event!r}: events must be instances "
                                   "of attrs classes (@attrs.frozen)")
        if isinstance(event, SystemEvent):
            raise InvalidActorType(f"{type(event).__name__} is written by the runtime only")
        _EVENT_CLASSES.add(type(event))

    def _recorded(self, turn: Turn) -> bool:
        """Whether ``turn``'s scope has a record: it runs again, or has committed mid-way."""
        scope = turn.root._scope
        return scope is not None and scope in self.state.record.scopes

    def _committed_before(self, turn: Turn, event: Any) -> bool:
        """Whether a re-executing scope emits ``event`` where it already committed it.

        The events a scope committed are matched in order, by the place they were emitted at
        (the task and its count of durable calls); one the code no longer emits (it guards on
        the state) is passed over. Past the scope's recorded history, every event is new.

        Raises:
            NonDeterminismError: the scope's recorded history goes on past this place (a later
                durable call), yet it now emits something it did not commit here.
        """
        record = self.state.record.scopes[turn.scope]
        place = turn.calls
        committed = record.events.get((turn.branch, place), ())
        cursors = turn.cursors
        if cursors is None:
            cursors = turn.cursors = {}
        start = cursors.get(place, 0)
        for n in range(start, len(committed)):
            if _same(committed[n], event):
                cursors[place] = n + 1
                return True
        if record.continues_after(turn.branch, place):
            after = f"after durable call #{place}" if place else "before its first durable call"
            raise NonDeterminismError(
                self.name, turn.scope, place + 1,
                f"only {committed[start:]!r} {after}" if start < len(committed)
                else f"no such event {after}", f"emit({event!r})")
        return False

    def emit_system(self, event: SystemEvent, side: Any = None, *,
                    new: NewEvent | None = None) -> None:
        """Emit a runtime event in the current turn; ``new``: its encoding, if made already."""
        if threading.get_ident() != self._trio_thread:
            return trio.from_thread.run_sync(functools.partial(self.emit_system, event, side,
                                                               new=new))
        turn = current_turn.get()
        if turn is None or turn.cell is not self:
            raise self._outside(turn, type(event))
        root = turn.root
        if root.finished:
            raise self._outside(turn, type(event))
        if isinstance(event, _MATCHED) and self._recorded(turn) and \
                self._committed_before(turn, event):
            return  # scheduled (sent) the first time this scope ran
        self._add_system(root, turn, event, side, new)
        if isinstance(event, _TIMERS):
            self.mailbox.nudge()  # the next wake-up may have moved: the loop looks again

    def scheduled_later(self, turn: Turn) -> set[int]:
        """In a scope that runs again: the notifications it committed as scheduled at a place
        of ``turn``'s branch it has not reached yet (nor matched there), or that another of its
        tasks committed."""
        record = self.state.record.scopes.get(turn.root.scope) if self._recorded(turn) else None
        if record is None:
            return set()
        cursors = turn.cursors or {}
        later: set[int] = set()
        for (branch, calls), events in record.events.items():
            if branch == turn.branch:
                if calls < turn.calls:
                    continue
                start = cursors.get(calls, 0) if calls == turn.calls else 0
            else:
                start = 0  # another task's: where it stands is not known here, so all of it
            later.update(event.seq for event in events[start:]
                         if type(event) is NotificationScheduled)
        return later

    def recorded_take(self, turn: Turn, kind: str) -> tuple[int, ...] | None:
        """In a scope that runs again: what its next notifier call of ``kind`` (``due()`` in a
        wake-up, ``cancel()``; counted per place, as emits are matched) took the first time,
        empty for nothing, also past its recorded calls at a place its first execution went
        on from; None: do it live."""
        record = self.state.record.scopes.get(turn.root.scope)
        if record is None:
            return None
        place = turn.calls
        taken = record.taken(kind).get((turn.branch, place), ())
        n = 0 if turn.fires is None else turn.fires.get((kind, place), 0)
        if n < len(taken):
            return taken[n]
        return () if record.continues_after(turn.branch, place) else None

    def took(self, turn: Turn, kind: str, seqs: tuple[int, ...] | None) -> None:
        """Count a notifier call of ``kind`` at its place; ``seqs``: what it took live, for
        the next commit point's marker (None: a call replayed from the record)."""
        fires = turn.fires
        if fires is None:
            fires = turn.fires = {}
        key = (kind, turn.calls)
        fires[key] = fires.get(key, 0) + 1
        if seqs is not None and turn.can_run_again:
            root = turn.root
            if root.handouts is None:
                root.handouts = []
            root.handouts.append((kind, (*turn.branch, turn.calls), seqs))

    def emit_call(self, turn: Turn, event: SystemEvent, new: NewEvent | None) -> None:
        """Emit the record of a durable call that ``turn`` makes, on trio's thread: what
        ``emit_system`` does for an event that is neither matched again nor a timer's."""
        root = turn.root
        if root.finished:
            raise self._outside(turn, type(event))
        self._add_system(root, turn, event, None, new)

    def _add_system(self, root: Turn, turn: Turn, event: SystemEvent, side: Any,
                    new: NewEvent | None) -> None:
        self.journal.pending.append(Pending(self.codec.new_event(event) if new is None else new,
                                            event, root, turn, turn.calls, side))
        self.state.fold(event)

    async def commit(self) -> None:
        """A commit point of the current turn (``flush()``, a durable sleep)."""
        await self.journal.commit(self._turn("flush()"), mid_scope=True)

    def work_at(self) -> float | None:
        """When this actor next needs to run: 0 for now (an unfinished run()), a timer, or None."""
        if self.has_run and not self.state.run_done:
            return 0.0
        at = self.notifier.next_at()
        return None if at is None else at.timestamp()

    # -- the task ------------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        """Recover, run ``on_start``, then serve turns until stopped. Runs in the user's nursery.

        A failure to recover, a lost race or a non-deterministic replay stops the actor: its
        waiting asks get the error, the caller's nursery is not crashed.
        """
        track_branches()
        if current_turn.get() is not None:
            current_turn.set(None)  # started from another actor's turn: not part of it
        try:
            try:
                registry.claim(self)
                await self.journal.recover()
                await self.journal.reindex()  # corrects an entry left too early
                await self._pull()  # messages sent before it started (or by others) wait there
                if overrides(self.cls, "on_start"):
                    await self._scoped_turn(Turn(self, scope="start"), self.actor.on_start)
            except Exception as exc:
                self._startup_error = exc  # waiting asks get it: they learn why
                self.stop_reason = f"it could not start: {exc}"
                raise
            except BaseException as exc:
                if not _interrupted(exc):
                    raise
                # Stopped while on_start slept durably: it resumes at the next activation.
                self.stop_reason = "it was stopped during on_start"
                task_status.started()
                return
            self.ready.set()
            if self.has_run and not self.state.run_done:
                async with trio.open_nursery() as nursery:
                    await self.journal.index_now()
                    nursery.start_soon(self._supervise_run)
                    task_status.started()
                    del task_status  # it holds trio's starting nursery: let it go
                    await self._loop()
                    self.closing = True
                    nursery.cancel_scope.cancel()
            else:  # no run(): no nursery of its own, one object fewer per idle actor
                task_status.started()
                del task_status  # it holds trio's starting nursery: let it go
                await self._loop()
                self.closing = True
            if self.journal.broken is None:
                await self._stop_commit()
        finally:
            self.closing = True
            if self._inline is not None:  # a turn on an asker's task ends with the actor
                await self._inline.cancel_and_wait()
            registry.release(self)
            self._fail_waiting()
            self.stopped.set()
            self.ready.set()

    async def _stop_commit(self) -> None:
        """At a stop: commit what the turns cut short (``run()``, a sleeping wake-up) emitted,
        as a commit point of theirs (they resume from it), then correct the work index.

        A failure here is logged, not raised: what was not committed is lost as in a crash, and
        the next activation recovers from the log.
        """
        journal = self.journal
        try:
            for turn in list(dict.fromkeys(item.turn for item in journal.pending)):
                if turn.poisoned is None:
                    await journal.commit(turn, mid_scope=True)
            await journal.reindex()
        except Exception as exc:
            log.warning("%s: committing at its stop failed (%r); its uncommitted events are lost "
                        "as in a crash", self.name, exc)

    def _stop_with(self, error: BaseException, doing: str) -> None:
        if isinstance(error, ActorStopped):
            self.stop_reason = error.reason
        else:
            self.stop_reason = f"{doing}: {error}"
        self.closing = True
        self.request_stop()

    async def _scoped_turn(self, turn: Turn, body: Callable[[], Awaitable[None]]) -> None:
        token = current_turn.set(turn)
        span = None if self.telemetry is None else self.telemetry.start_turn(self, turn, None)
        try:
            await body()
            await self._end_turn(turn)
        except BaseException as exc:
            if span is not None:
                span.fail(exc)
            if isinstance(exc, Exception):
                await self._abort(turn)
            raise
        finally:
            if span is not None:
                span.end()
            turn.finished = True
            current_turn.reset(token)

    async def _end_turn(self, turn: Turn) -> None:
        if self._recorded(turn):
            self.emit_system(ScopeCompleted(turn.scope))
        journal = self.journal
        if journal.pending or journal.committing or turn.poisoned is not None:
            await journal.end_turn(turn)  # the usual turn emits nothing: no await at all
        await self._after_turn()

    async def _abort(self, turn: Turn) -> None:
        """Drop a failed (or cancelled) turn's uncommitted events; stop if the state is lost."""
        if self.journal.broken is not None:
            return
        try:
            with trio.CancelScope(shield=True):
                await self.journal.abort(turn)
        except Exception as exc:
            # The log cannot be read back, so the state is unknown: stop rather than go on from
            # a half-rebuilt state (or crash the nursery). A new spawn recovers from the log.
            self._stop_with(exc, "its state could not be rebuilt after a failed turn")

    async def _loop(self) -> None:
        held = self._held
        mailbox = self.mailbox
        state = self.state
        plain = self.idle_timeout is None  # no passivation: only timers set a deadline
        while True:
            if held and (not (mailbox or self._pulled) or len(held) >= _BACKLOG):
                await self._release_held()  # the backlog is drained: one commit for all of it
            # Inbox messages read first (they came first); then a backlog: no deadline to compute.
            envelope: Any = self._pulled.popleft() if self._pulled else mailbox.get_nowait()
            if envelope is not EMPTY:
                pass
            elif plain and not len(state.notifier):
                envelope = await mailbox.get()  # no deadline to watch: the common case
                if envelope is None:
                    continue  # nudged: a timer may have been set
            else:
                envelope = await self._next()
                if envelope is _AGAIN:
                    continue
            if envelope is _IDLE:
                if self._can_passivate():
                    self.closing = True
                    self.stop_reason = "it was passivated after being idle"
                    return
                continue
            if envelope is _WAKE:
                await self._wake()
            elif envelope[0] is _STOP:
                await self._release_held()
                self.closing = True
                return
            elif envelope[0] is _INBOX:
                try:
                    await self._pull()
                except Exception as exc:  # the store: read it again after a backoff
                    log.warning("%s: reading its inbox failed (%r); trying again", self.name,
                                exc)
                    await self._reread_inbox()
            elif envelope[4] is None and envelope[1] is None and self._lean:
                await self._serve_plain(envelope)
            elif envelope[4] is not None and envelope[4].handed is not None and \
                    envelope[4].handed != self._rereads:
                pass  # handed over, then read again (or set aside) since: it waits there
            else:
                await self._deliver(envelope)
                self._stale_wake = None  # a message may have changed on_notify's mind
            if self.closing:
                await self._release_held()
                return

    async def _release_held(self) -> bool:
        """Commit the turns of a drained backlog in one append, then release their replies.

        If the append fails, nothing of it was written: every held turn fails, the state is
        rebuilt without their events, the inbox is read again from its start, and it returns
        False.
        """
        held, self._held[:] = list(self._held), []
        if not held:
            return True
        journal = self.journal
        turns = set(journal.ended)
        try:
            if journal.ended or journal.committing:  # else the backlog emitted nothing
                await journal.commit(None)
        except Exception as exc:
            if journal.broken is None:
                try:
                    with trio.CancelScope(shield=True):
                        await journal.drop(turns)
                except Exception as lost:
                    self._stop_with(lost, "its state could not be rebuilt after a failed commit")
            self._after_failure(exc)
            for reply, _ in held:
                if reply is not None:
                    reply.fail(exc)
                else:
                    log.error("%s: the commit of told messages failed", self.name, exc_info=exc)
            await self._reread_inbox()  # durable messages among them still wait: run them again
            return False
        self._commit_failures = 0
        for reply, result in held:
            if reply is not None:
                reply.succeed(result)
        await self._after_turn()
        return True

    async def _after_turn(self) -> None:
        if self.turn_hook is not None:
            try:
                await self.turn_hook(self)
            except Exception as exc:
                warnings.warn(f"{self.name}: the turn is committed, but its hook failed "
                              f"({exc!r})", RuntimeWarning, stacklevel=1)

    async def _next(self) -> Any:
        """The next envelope, ``_WAKE`` at the next timer, ``_IDLE`` after ``idle_timeout``."""
        deadline = self._wake_deadline()
        idle = math.inf if self.idle_timeout is None else trio.current_time() + self.idle_timeout
        envelope = await self.mailbox.get(min(deadline, idle))
        if envelope is not None:
            return envelope
        now = trio.current_time()
        if now >= deadline and deadline <= idle:
            return _WAKE
        if now >= idle:
            return _IDLE
        return _AGAIN  # nudged: the notifier changed

    def _wake_deadline(self) -> float:
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

    def idle(self) -> bool:
        """Whether it waits for a message, between turns, with nothing due: it may be
        passivated without delaying anything."""
        return self.ready.is_set() and not self.closing and self.mailbox.waiting and \
            not self._pulled and self._inline is None and self._can_passivate()

    def _can_passivate(self) -> bool:
        # Not with a notification due within WAKE_AHEAD: the system skips the index entry of an
        # active actor from then on (it activates actors that early), and would not wake it for
        # due tokens it left unconsumed.
        at = self.notifier.next_at()
        return not self.journal.pending and (not self.has_run or self.state.run_done) and \
            (at is None or at.timestamp() > self.clock.time() + WAKE_AHEAD)

    async def _deliver(self, envelope: Envelope) -> None:
        message, message_id, reply, trace, inbound = envelope
        seen = message_id is not None and message_id in self.state.replies
        if seen and inbound is None:
            self._answer_again(message_id, reply)  # type: ignore[arg-type]
            return
        if inbound is None or message_id is not None:
            turn = Turn(self, message_id=message_id)
        else:
            turn = Turn(self, scope=f"msg:{inbound.id}")  # its re-delivery resumes the scope
        token = current_turn.set(turn)
        span = None if self.telemetry is None else self.telemetry.start_turn(self, turn, trace)
        self._current_reply = reply
        journal = self.journal
        hold = handled = False
        try:
            if inbound is not None and not self._recorded(turn):
                # (A scope with a record committed before, Received first: it resumes.)
                received = Received(inbound.seq, message_id, inbound.type,
                                    None if seen else inbound.data)
                self.emit_system(received, new=encode_received(self.codec, received,
                                                               inbound.text))
            if seen:
                result = None  # a resent durable message, processed already: consume it only
                if inbound is not None and inbound.reply:  # a remote asker waits for it
                    self._reply_again(message_id)  # type: ignore[arg-type]
            elif self.sync_receive:
                result = await trio.to_thread.run_sync(self.state.actor.receive, message)
            else:
                result = await self.state.actor.receive(message)
            # A send's reply (None) goes into its Received, if the turn commits at once.
            fused = inbound is not None and message_id is not None and not seen and \
                not inbound.reply and self._fuse_reply(turn, inbound, message_id)
            if message_id is not None and not seen and not fused:
                # A reply that cannot be recorded fails the turn like its handler would.
                self._record_reply(message_id,
                                   result if inbound is None or inbound.reply else None)
            handled = True
            if inbound is not None:
                self._consume(turn, inbound)
            if journal.pending or journal.committing or turn.poisoned is not None or (
                    message_id is not None and self._recorded(turn)):
                hold = self._hold_if_more(turn)
                if not hold:
                    await self._end_turn(turn)
            elif self.turn_hook is not None:
                await self._after_turn()
        except BaseException as exc:
            if span is not None:
                span.fail(exc)
            if not await self._turn_failed(turn, reply, exc):
                raise
            if inbound is not None:
                if _interrupted(exc):
                    self._set_inbox_aside()  # cut by a stop: it resumes at the next activation
                else:
                    await self._redeliver(envelope, exc, handled=handled)
            else:
                self._report_failure(message, reply, exc)
            return
        finally:
            if span is not None:
                span.end()
            turn.finished = True
            current_turn.reset(token)
            self._current_reply = None
        if hold:
            self._held.append((reply, result))
        elif reply is not None:
            reply.succeed(result)

    async def _serve_plain(self, envelope: Envelope) -> None:
        """Run plain messages (no message id, not from the inbox) as ``_deliver`` would, one
        turn each, back to back while the backlog has more of them: no coroutine, trace span or
        turn hook per message (``_lean``), and a turn that leaves nothing to commit just answers.

        The context variable is reset once for the backlog. Each message gets a new ``Turn``:
        reusing an ended one whose reference count said nothing kept it was tried, and a
        copied context (``contextvars.copy_context``, a thread's) keeps a turn without
        counting (tests/test_redteam_turn.py).

        Returns at any other item (left in the mailbox for the loop), when the backlog is drained
        or its share before a schedule point is served, when the held turns must commit, and
        when the actor closes.
        """
        mailbox = self.mailbox
        journal = self.journal
        held = self._held
        receive = self.state.actor.receive
        turn = Turn(self)
        token = current_turn.set(turn)
        try:
            while True:
                message, _, reply, _, _ = envelope
                self._current_reply = reply
                try:
                    result = await receive(message)
                    hold = False
                    if journal.pending or journal.committing or turn.poisoned is not None:
                        hold = self._hold_if_more(turn)
                        if not hold:
                            await self._end_turn(turn)
                except BaseException as exc:
                    if not await self._turn_failed(turn, reply, exc):
                        raise
                    self._report_failure(message, reply, exc)
                    return
                if hold:
                    held.append((reply, result))
                elif reply is not None:
                    reply.succeed(result)
                if self.closing or self._pulled or len(held) >= _BACKLOG:
                    return
                envelope = mailbox.get_nowait()
                if envelope is EMPTY:
                    return
                if envelope[1] is not None or envelope[4] is not None:  # (the loop's too)
                    mailbox.put_back(envelope)
                    return
                # A new turn for each message: whatever kept the last one (a task it started, a
                # copied context, a thread) finds it finished and cannot emit into this one.
                turn.finished = True
                turn = Turn(self)
                current_turn.set(turn)
        finally:
            turn.finished = True
            current_turn.reset(token)
            self._current_reply = None
            self._stale_wake = None  # a message may have changed on_notify's mind

    def _hold_if_more(self, turn: Turn) -> bool:
        """End a turn that left something to commit without a commit while more messages wait
        (``_hold``): the drained backlog commits at once. Whether it did."""
        if (len(self.mailbox) > 0 or bool(self._pulled)) and len(self._held) < _BACKLOG:
            self._hold(turn)
            return True
        return False

    async def _turn_failed(self, turn: Turn, reply: Reply | None, error: BaseException) -> bool:
        """A message's turn raised ``error``: drop what it emitted (stopping if it must).
        False for a cancellation, which the caller raises on; the asker is told the actor
        stopped, it must not wait forever."""
        if not (isinstance(error, Exception) or _interrupted(error)):
            if reply is not None:
                reply.fail(ActorStopped(self.name, "it was cancelled during this message's turn"))
            return False
        await self._abort(turn)
        self._after_failure(error)
        return True

    def _report_failure(self, message: Any, reply: Reply | None, error: BaseException) -> None:
        """Tell the asker of a failed turn (a message not from the inbox), or log it."""
        if reply is not None:
            reply.fail(self._told(error))
        elif not _interrupted(error):
            log.error("%s failed on %r (told, so nobody is waiting for it)", self.name,
                      message, exc_info=error)

    # -- the inbox -------------------------------------------------------------------------------

    def poke(self) -> None:
        """Look at the inbox soon: a message was stored there. Not a checkpoint."""
        if not self._poked and not self.mailbox.closed:
            self._poked = True
            self.mailbox.put(_INBOX_ENVELOPE)

    async def _pull(self) -> None:
        """Queue the inbox messages stored since the last look, in order, up to ``_PULL`` of
        them: a full read looks again once they are done."""
        self._poked = False
        if self._inbox_seen < 0:
            return  # set aside by a stop: all of it waits for the next activation
        before = None if self._taken is None else set(self._taken)
        self._pulling = True
        try:
            await self._read_inbox(before)
        finally:
            self._pulling = False

    async def _read_inbox(self, before: set[int] | None) -> None:
        """``_pull``'s read; ``before``: the messages handed over (``take``) before it."""
        codec = self.codec
        count = 0
        async with contextlib.aclosing(self.store.read_inbox(
                self.stream, after=self._inbox_seen, limit=_PULL)) as messages:
            async for stored in messages:
                count += 1
                self._inbox_seen = stored.position
                taken = self._taken  # (``take`` may hand messages over meanwhile)
                if taken is not None and stored.position in taken:
                    continue  # handed over by its sender (``take``): queued already
                inbound = Inbound(stored.id, stored.position, stored.type, stored.data,
                                  reply=stored.metadata.get(REPLY) is True)
                message_id = stored.metadata.get("message_id")
                try:
                    message = decode_message(codec, stored)
                except Exception as exc:
                    await self._dead_letter(inbound, message_id, exc)
                    continue
                if self._pulled is None:
                    self._pulled = deque()  # none for an actor whose inbox is empty
                self._pulled.append((message, message_id, None,
                                     stored.metadata.get("trace"), inbound))
        taken = self._taken
        if before and taken is not None:
            # A message handed over before this read is either read now (and never again: the
            # next read starts after it) or consumed and gone: forget it. One read in full
            # may have stopped short of some.
            taken -= before if count < _PULL else {seq for seq in before
                                                   if seq <= self._inbox_seen}
            if not taken:
                self._taken = None
        if count == _PULL:
            self.poke()  # more may wait: after these (the loop takes pulled messages first)

    def take(self, stored: NewEvent, where: Enqueued) -> bool:
        """Queue a message its sender has just stored in the inbox (``ref.send``), without
        reading it back: whether it did. Not a checkpoint.

        The inbox stays the message's durable copy: its turn consumes it as if it had been
        read (``Received``, and the message deleted in the turn's commit), and a read of the
        inbox skips it. Only when the message that waited before it in the inbox (if any) has
        been read or handed over already, so that it overtakes nothing (a message stored by
        another process, a dead letter retried), when no look at the inbox is due or under way,
        and only in a running, unfenced actor; otherwise the sender pokes, and it is read.
        """
        seq, previous = where.seq, where.previous
        taken = self._taken
        if previous > self._inbox_seen and (taken is None or previous not in taken):
            return False  # something before it may wait unread: read, in order
        if self._poked or self._pulling or seq <= self._inbox_seen or self.closing or \
                self._stopping or not self.ready.is_set() or self.stopped.is_set() or \
                self.mailbox.closed or \
                self.journal.fence is not None or \
                (taken is not None and (seq in taken or len(taken) >= _PULL)):
            return False
        metadata = stored.metadata
        # Decoded from its stored text, as a read would: nothing shared with the sender's object.
        text = stored.data_json
        data = json.loads(json.dumps(stored.data)) if text is None else _decode_json(text)
        try:
            message = decode_message(self.codec, recorded_event(
                self.stream, seq, seq, stored.type, data, metadata, stored.id,
                datetime.now(UTC)))
        except Exception:
            return False  # read back, it becomes a dead letter
        if taken is None:
            taken = self._taken = set()
        taken.add(seq)
        # In the mailbox: after what was queued before it, as the poke it replaces would be.
        self.mailbox.put((message, metadata.get("message_id"), None, metadata.get("trace"),
                          Inbound(stored.id, seq, stored.type, data,
                                  reply=metadata.get(REPLY) is True, handed=self._rereads,
                                  text=text)))
        return True

    async def _reread_inbox(self) -> None:
        """Read the inbox again from its start, after a commit that consumed messages failed:
        what is still waiting there runs again, in order (what committed is gone from it),
        after a backoff that grows while such commits keep failing."""
        if self._pulled is not None:
            self._pulled.clear()
        self._taken = None  # read again too, if still waiting
        self._rereads += 1
        self._inbox_seen = min(self._inbox_seen, 0)  # (a stop's set-aside stays)
        self._commit_failures += 1
        self._poked = True  # a look is due: no hand-over (``take``) may overtake what waits
        with contextlib.suppress(SleepInterrupted):
            await self.sleep_until(trio.current_time() + _RETRY.backoff(
                self._commit_failures), clock=False)
        self._poked = False
        self.poke()

    def _fuse_reply(self, turn: Turn, inbound: Inbound, message_id: str) -> bool:
        """Record a send's reply (None) in its turn's ``Received``, in place of a
        ``ReplyRecorded``: whether it could. Only while that ``Received`` waits for the turn's
        one commit (no commit point came between), and only for a turn without a durable-call
        record (whose end is its ``ScopeCompleted``); the ``Received`` then also counts the
        turn's events after it, so that ``check`` knows where the turn ends."""
        if self._recorded(turn):
            return False
        pending = self.journal.pending
        for n in range(len(pending) - 1, -1, -1):
            item = pending[n]
            event = item.event
            if item.turn is turn and isinstance(event, Received) and item.side is None and \
                    event.seq == inbound.seq:
                break
        else:
            return False  # committed at a commit point of the turn
        events = sum(1 for later in pending[n + 1:] if later.turn is turn)
        fused = Received(event.seq, message_id, event.type, event.data, self.clock.time(),
                         events)
        new = encode_received(self.codec, fused, inbound.text, item.new.id)
        item.event, item.new = fused, new
        self.state.fold(fused)  # the reply, for a resend of the id
        return True

    def _consume(self, turn: Turn, inbound: Inbound) -> None:
        """At the end of a durable message's turn: its final commit deletes the message from
        the inbox. (Not an earlier commit point of the turn: a crash after that one must find
        the message still waiting, so that the turn resumes.)"""
        for item in reversed(self.journal.pending):
            if item.turn is turn and item.side is None and isinstance(item.event, Received) \
                    and item.event.seq == inbound.seq:
                item.side = inbound.id
                return
        self.emit_system(Consumed(inbound.seq), inbound.id)  # Received was committed mid-turn

    async def _redeliver(self, envelope: Envelope, error: BaseException, *,
                         handled: bool) -> None:
        """A durable message's turn failed: try it again after the class's backoff, or set it
        aside as a dead letter once its handler has failed ``max_deliveries`` times. A failure
        after the handler returned (its commit: the store) does not count as an attempt."""
        if self.closing:
            self._set_inbox_aside()  # it stays in the inbox: the next activation tries again
            return
        inbound = envelope[4]
        assert inbound is not None
        if not handled:
            inbound.attempts += 1
            if inbound.reply:  # a remote ask: its asker is told at once, as a local one is
                inbound.attempts = max(inbound.attempts, self.cls.max_deliveries)
        if not await self._release_held():  # the turns before it must not wait for its backoff
            return  # the inbox is read again from its start: it comes back in its place
        if inbound.attempts >= self.cls.max_deliveries:
            await self._dead_letter(inbound, envelope[1], error)
            return
        policy = self.cls.supervision
        delay = (policy if isinstance(policy, Restart) else Restart()).backoff(inbound.attempts)
        log.warning("%s failed on inbox message %d (attempt %d of %d): %r; trying it again in "
                    "%.3g s", self.name, inbound.seq, inbound.attempts, self.cls.max_deliveries,
                    error, delay)
        try:
            await self.sleep_until(trio.current_time() + delay, clock=False)
        except SleepInterrupted:
            self._set_inbox_aside()  # stopping: it stays in the inbox, and so do those after it
            return
        if self._pulled is None:
            self._pulled = deque()
        self._pulled.appendleft(envelope)

    def _set_inbox_aside(self) -> None:
        """Forget the inbox messages read but not run: a stopping actor must not run the ones
        after a message it could not finish (they all wait in the inbox, in order, for the
        next activation)."""
        if self._pulled:
            self._pulled.clear()
        self._rereads += 1
        self._inbox_seen = -1  # and no more reading in this activation

    async def _dead_letter(self, inbound: Inbound, message_id: str | None,
                           error: BaseException) -> None:
        """Record ``inbound`` as a dead letter and consume it, in one commit."""
        log.error("%s sets inbox message %d aside as a dead letter after %d attempt(s): %r",
                  self.name, inbound.seq, max(inbound.attempts, 1), error)
        turn = Turn(self)
        token = current_turn.set(turn)
        try:
            self.emit_system(DeadLettered(inbound.seq, message_id, inbound.type, inbound.data,
                                          f"{type(error).__name__}: {error}",
                                          max(inbound.attempts, 1)), inbound.id)
            await self.journal.commit(turn)
        except Exception as exc:
            await self._abort(turn)
            self._stop_with(exc, "recording a dead letter failed")
        finally:
            turn.finished = True
            current_turn.reset(token)

    def outbox(self, turn: Turn, target: str, message: Any, message_id: str | None,
               deliver: Callable[[], None], trace: Carrier | None) -> None:
        """Send ``message`` to the actor of stream ``target`` as part of ``turn``: stored in its
        inbox by the turn's commit, never if the turn fails; ``deliver`` runs after the commit.

        Raises:
            InvalidActorArgument: the store's codec cannot encode the message.
        """
        if message_id is None and turn.can_run_again and turn.scope != "start":
            message_id = sent_id(turn)
        turn.sends += 1
        new = encode_message(self.codec, target, message, message_id, trace)
        self.emit_system(MessageSent(target, message_id, new.type),
                         Outgoing(target, new, deliver))

    def _record_reply(self, message_id: str, result: Any) -> None:
        """Record the reply of a message with an id, with the turn's events (``ReplyRecorded``).

        Raises:
            InvalidActorType: the store's codec cannot encode the reply; the turn fails.
        """
        try:
            encoded = self.codec.encode_value(result)
        except Exception as exc:
            raise InvalidActorType(
                f"{self.name}: the reply to message_id {message_id!r} is "
                f"{type(result).__name__} {result!r}, which the store's codec cannot record "
                f"({exc}); return an encodable value (attrs instances, str, int, tuple, ...) "
                "or send the message without a message_id") from exc
        self.emit_system(ReplyRecorded(message_id, encoded, self.clock.time()))

    def _reply_again(self, message_id: str) -> None:
        """Record a resent remote ask's reply again, for the asker waiting on the log."""
        recorded = self.state.replies.get(message_id)
        assert recorded is not None
        self.emit_system(ReplyRecorded(message_id, recorded[1], self.clock.time()))

    def _answer_again(self, message_id: str, reply: Reply | None) -> None:
        """Answer a resent message id with its recorded reply, running nothing."""
        recorded = self.state.replies.get(message_id)
        assert recorded is not None
        value = self.codec.decode_value(recorded[1])
        if self._held:  # the reply may be in the uncommitted backlog: answer after its commit
            self._held.append((reply, value))
        elif reply is not None:
            reply.succeed(value)

    def _hold(self, turn: Turn) -> None:
        """End a turn of a backlog: its events wait for the backlog's commit, with its reply."""
        if self._recorded(turn):
            self.emit_system(ScopeCompleted(turn.scope))
        if turn.poisoned is not None:
            raise ActorError(f"{self.name}: the turn cannot commit: applying one of its events "
                             f"raised {turn.poisoned!r}") from turn.poisoned
        journal = self.journal
        if journal.pending:  # else this turn emitted nothing
            journal.hold(turn)

    def _told(self, error: BaseException) -> BaseException:
        """What an asker gets for a turn that raised ``error``."""
        if _interrupted(error):
            return ActorStopped(self.name, "it stopped during a durable sleep of this message's "
                                "turn; resend the message with the same message_id to resume")
        return error

    def _after_failure(self, error: BaseException) -> None:
        """Stop the actor after a failure it must not go on from."""
        found = _nondeterminism(error)
        if found is not None:
            log.error("%s stops: its code no longer replays its log", self.name, exc_info=found)
            self._stop_with(found, "its code no longer replays its log")
        elif (isinstance(error, ActorStopped) and error.actor == self.name) or \
                self.journal.broken is not None:
            self._stop_with(error, "it stopped")  # not for another actor's stop it met

    async def _wake(self) -> None:
        at = self.notifier.next_at()
        started = self.clock.time()
        if at is None or at.timestamp() > started:
            return  # woken early (the wall clock lags trio's): the loop sleeps the rest
        if self.telemetry is not None:
            self.telemetry.timer_fired(self, started - at.timestamp())
        resumed, stale = self._cut_short_wake_ups()
        first_new = self.notifier.next_seq()
        turn = Turn(self, scope=resumed or f"{WAKE_UP}{self.notifier.earliest_seq()}")
        failed = False
        try:
            await self._scoped_turn(turn, functools.partial(self._notify, stale))
        except BaseException as exc:
            if not (isinstance(exc, Exception) or _interrupted(exc)):
                raise
            self._after_failure(exc)
            if self.closing or _interrupted(exc):
                return  # stopping (a stop cut its durable sleep short): it resumes when activated
            failed = True
            self._notify_failures += 1
            delay = _RETRY.backoff(self._notify_failures)
            self._retry_at = started + delay
            log.error("%s failed in on_notify; it is called again in %.3g s, or at the next "
                      "message or deadline if sooner", self.name, delay, exc_info=exc)
        else:
            self._notify_failures = 0
            self._retry_at = math.inf
        after = self.notifier.next_at()
        # Stale: due when the wake-up began, yet left (not: due by now, after a slow turn; not:
        # scheduled by the wake-up itself, which fires next). A wake-up run again hands out what
        # was due when it first ran: the rest is not stale.
        earliest = self.notifier.earliest_seq()
        if after is not None and after.timestamp() <= started and (failed or (
                after <= at and resumed is None and earliest is not None and
                earliest < first_new)):
            if not failed and not self._warned_stale:
                self._warned_stale = True
                warnings.warn(f"{self.name}.on_notify left due notifications unconsumed; call "
                              "self.notifier.due(now) in on_notify. Waiting for a message or a "
                              "later deadline instead of spinning", RuntimeWarning, stacklevel=1)
            self._stale_wake = started
        else:
            self._stale_wake = None

    def _cut_short_wake_ups(self) -> tuple[str | None, list[str]]:
        """The scope of a wake-up that committed part of its work (at a durable sleep, say) and
        was cut short (a crash, a stop, a failure), if any: its firing is not in the log, so
        what it handed out is due again, and the next wake-up runs that scope again, whatever
        notification is the earliest by then (one scheduled since, in the past, or a cancelled
        one); one cut short before its first ``due()`` while its own notification is pending
        too. And the unfinished wake-up scopes that cannot run again: every token of theirs
        was cancelled since, or an earlier release left them (with their firing committed):
        the next wake-up completes them."""
        pending = self.notifier.is_pending
        live: list[str] = []
        stale: list[str] = []
        for scope, record in self.state.record.scopes.items():
            if scope.startswith(WAKE_UP):
                handed = [seq for calls in record.fired.values() for seqs in calls for seq in seqs]
                if not handed:
                    own = scope.removeprefix(WAKE_UP)
                    handed = [int(own)] if own.isdigit() else []
                (live if any(pending(seq) for seq in handed) else stale).append(scope)
        # The lowest seq first; the others wait for the next wake-ups.
        live.sort(key=lambda scope: (len(scope), scope))
        return (live[0] if live else None), stale

    async def _notify(self, stale: list[str]) -> None:
        """A wake-up's body: complete the wake-up scopes that cannot run again, then
        ``on_notify``."""
        for scope in stale:
            self.emit_system(ScopeCompleted(scope))
        await self.actor.on_notify()

    async def _supervise_run(self) -> None:
        failures = 0
        policy = self.cls.supervision
        while not self.state.run_done and not self.closing:
            turn = Turn(self, scope="run")
            try:
                await self._scoped_turn(turn, self._run_body)
                return
            except BaseException as exc:
                if _interrupted(exc):
                    return  # stopped during a durable sleep: it resumes at the next activation
                if not isinstance(exc, Exception):
                    raise
                if _nondeterminism(exc) is not None or isinstance(exc, ActorStopped):
                    if _nondeterminism(exc) is not None and isinstance(policy, Escalate):
                        raise
                    self._after_failure(exc)
                    return
                if self.closing:
                    return
                failures += 1
                if isinstance(policy, Escalate):
                    raise
                limit = policy.max_restarts if isinstance(policy, Restart) else 0
                if isinstance(policy, Stop) or (limit is not None and failures > limit):
                    log.error("%s: run() failed; stopping (supervision %r)", self.name, policy,
                              exc_info=exc)
                    self._stop_with(exc, "its run() failed")
                    return
                delay = policy.backoff(failures) if isinstance(policy, Restart) else 0.0
                log.warning("%s: run() failed (%r); restarting in %.3g s", self.name, exc, delay)
                await trio.sleep(delay)

    async def _run_body(self) -> None:
        await self.actor.run()  # type: ignore[attr-defined]
        if self.state.record.has("run"):
            self.emit_system(ScopeCompleted("run"))
        self.emit_system(RunCompleted())

    # -- durable sleeps --------------------------------------------------------------------------

    async def sleep_until(self, end: float, *, clock: bool = True) -> None:
        """Wait until the durable clock reads ``end``; cut short (raising) when stopping.

        Re-checks the clock on waking, so a wall clock stepped back does not end it early.
        With ``clock=False``, ``end`` is on trio's clock instead (a retry's backoff).

        Raises:
            SleepInterrupted: the actor is stopping; the scope resumes at its next activation.
        """
        now = self.clock.time if clock else trio.current_time
        with trio.CancelScope() as scope:
            if self._sleeps is None:
                self._sleeps = set()
            self._sleeps.add(scope)
            try:
                if self._stopping:
                    scope.cancel()
                remaining = end - now()
                while remaining > 0:
                    await trio.sleep(remaining)
                    remaining = end - now()
            finally:
                self._sleeps.discard(scope)
                if not self._sleeps:
                    self._sleeps = None
        if scope.cancelled_caught:
            raise SleepInterrupted

    # -- the mailbox -----------------------------------------------------------------------------

    def tell(self, message: Any, message_id: str | None, reply: Reply | None) -> None:
        if self.closing:
            raise ActorStopped(self.name, self.stop_reason)
        try:
            self.mailbox.put((message, message_id, reply,
                              None if self.telemetry is None else self.telemetry.carrier(), None))
        except MailboxClosed:
            raise ActorStopped(self.name, self.stop_reason) from None

    def can_inline(self) -> bool:
        """Whether an ask can run its turn on the asker's task now, with the same outcome.

        Only when the actor is idle (its loop waits, with no deadline, on an empty mailbox), no
        commit or event is in flight, no ``run()`` is under way, no timer is pending, the
        handler is async, no turn hook watches, no telemetry traces it, and the asker is in no
        turn and under no deadline (a timeout must end its wait on time).
        """
        journal = self.journal
        return self.mailbox.idle and not self.closing and self.turn_hook is None and \
            self.telemetry is None and \
            (not self.has_run or self.state.run_done) and not len(self.state.notifier) and \
            not self.sync_receive and not journal.pending and not journal.committing and \
            not self._pulled and \
            journal.broken is None and current_turn.get() is None and no_deadline()

    async def ask_inline(self, message: Any) -> Any:
        """Run the turn of ``message`` on the calling task (see ``can_inline``); its answer.

        The actor's loop stays parked meanwhile: messages that come wait in the mailbox. From
        the turn's first suspension on it runs shielded, so cancelling the asker does not cancel
        a turn that has started (the asker then returns when it ends); stopping the actor
        cancels it as it would cancel a turn on the actor's own task. A checkpoint: a cancel
        point before the turn starts, a schedule point after it ends.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        reply = Reply()
        self.mailbox.hold()
        try:
            rest = shielded_when_suspended(self._deliver((message, None, reply, None, None)),
                                           self._shield_inline)
            if rest is not None:
                await rest
            self._stale_wake = None  # a message may have changed on_notify's mind
        finally:
            inline, self._inline = self._inline, None
            self.mailbox.release()
            if inline is not None:
                inline.done.set()
        await trio.lowlevel.cancel_shielded_checkpoint()  # ask is a schedule point, as in trio
        if not reply.is_done:
            await reply.wait()  # held for the commit of a backlog that came meanwhile
        if reply.error is not None:
            if isinstance(reply.error, ActorStopped):
                # Stopped because the asker's own scope was cancelled with the actor's: the
                # cancellation is the answer, as it would be for an ask that was not inline.
                await trio.lowlevel.checkpoint_if_cancelled()
            raise reply.error
        return reply.value

    def _shield_inline(self) -> trio.CancelScope:
        """The shield of a turn on an asker's task that suspends; the actor's stop cancels it."""
        inline = self._inline = _Inline()
        return inline.scope

    def request_stop(self) -> None:
        """Stop after the queued messages; durable sleeps in progress are cut short now."""
        with contextlib.suppress(MailboxClosed):
            self.mailbox.put(_STOP_ENVELOPE)
        self._stopping = True
        for scope in list(self._sleeps or ()):
            scope.cancel()

    def dismantle(self) -> None:
        """Let go of the stopped cell's state and journal, once its system is done with it.

        They refer back to the cell (the actor to its runtime, the journal to its cell): such
        reference cycles would outlive a passivated actor until CPython's cyclic collector
        walks them, and its pauses delay timers. Without them, reference counting frees them
        at once. A stopped cell still answers what a ref asks of it (``closing``, ``stopped``,
        ``stop_error``).
        """
        assert self.stopped.is_set()
        gone: Any = _Dismantled(self.name, self._stale_reason(), self.journal.fence)
        self.state = self.journal = gone

    def _stale_reason(self) -> str:
        """Why a stale actor object (one of this stopped activation's) cannot be used."""
        return (f"{self.stop_reason or 'it was stopped'}; this actor object belongs to that "
                "activation: use a ref to reach the actor")

    @property
    def state_codec(self) -> Codec:
        """The codec, read through the state: a dismantled cell's raises ``ActorStopped``
        (``Actor.snapshot``/``restore`` of a stale actor object)."""
        codec: Codec = self.state.codec
        return codec

    def resolve(self) -> Cell:
        """This cell, for a ref to a spawned actor; once stopped, ``ActorStopped``."""
        if self.closing and self.stopped.is_set():  # (stopped only once closing)
            raise ActorStopped(self.name, self.stop_reason)
        return self

    def running(self) -> Cell | None:
        """This cell, or None once stopped."""
        return None if self.stopped.is_set() else self

    def stop_error(self) -> Exception:
        """What a message to the stopped actor fails with: why it could not start, or why it
        stopped."""
        return self._startup_error or ActorStopped(self.name, self.stop_reason)

    def _fail_waiting(self) -> None:
        error = self.stop_error()
        if self._current_reply is not None:
            self._current_reply.fail(error)
        for reply, _ in self._held:  # ended, but their commit never came
            if reply is not None:
                reply.fail(error)
        self._held.clear()
        for _, _, reply, _, _ in self.mailbox.close():
            if reply is not None:
                reply.fail(error)


class _Dismantled:
    """A dismantled cell's state and journal: whatever a stale actor object reads of them
    raises ``ActorStopped``. (Not a ``__getattr__`` on ``Cell``: a class with one loses
    CPython's fast attribute reads, and the cell's are on every message's path.)

    ``fence`` stays readable: in a cluster, the stopped cell's claim is released, and due work
    claimed meanwhile compared with it, after the cell is dismantled."""

    __slots__ = ("_name", "_reason", "fence")

    def __init__(self, name: str, reason: str, fence: Fence | None) -> None:
        self._name = name
        self._reason = reason
        self.fence = fence

    def __getattr__(self, name: str) -> Any:
        raise ActorStopped(self._name, self._reason)


class _Inline:
    """A turn running on an asker's task: its shield, and a flag for its end."""

    __slots__ = ("done", "scope")

    def __init__(self) -> None:
        self.scope = trio.CancelScope(shield=True)
        self.done = Flag()

    async def cancel_and_wait(self) -> None:
        """Cancel the turn (its actor is stopping) and wait until it has ended."""
        self.scope.cancel()
        with trio.CancelScope(shield=True):
            await self.done.wait()


def _interrupted(error: BaseException) -> bool:
    """Whether ``error`` is a stop cutting durable sleeps short (alone, or in a group with
    ordinary exceptions from the same turn)."""
    if isinstance(error, SleepInterrupted):
        return True
    if isinstance(error, BaseExceptionGroup):
        match, rest = error.split(SleepInterrupted)
        return match is not None and (rest is None or isinstance(rest, Exception))
    return False


def _nondeterminism(error: BaseException) -> NonDeterminismError | None:
    """The ``NonDeterminismError`` in ``error``, also inside an exception group."""
    if isinstance(error, NonDeterminismError):
        return error
    if isinstance(error, BaseExceptionGroup):
        found: BaseException | None = error.subgroup(NonDeterminismError)
        while isinstance(found, BaseExceptionGroup):
            found = found.exceptions[0]
        return found if isinstance(found, NonDeterminismError) else None
    return None


def _same(committed: Any, event: Any) -> bool:
    """Whether ``event`` is ``committed`` emitted again (a timer's seq is renumbered)."""
    if isinstance(event, NotificationScheduled):
        return isinstance(committed, NotificationScheduled) and \
            (committed.at, committed.token) == (event.at, event.token)
    return bool(committed == event)


__all__ = ["Cell", "Reply", "SleepInterrupted"]
