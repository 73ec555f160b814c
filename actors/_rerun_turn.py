"""Re-running a message turn whose message the log recorded (``actors.replay.check``).

A message sent with ``ref.send`` is recorded in the receiver's log: its turn begins with
``Received(seq, message_id, type, data)``, followed by what the turn emitted, its durable calls
and, at its end, ``ReplyRecorded`` (a message with an id) or ``ScopeCompleted`` (a scope with
durable calls); a send with an id whose turn committed at once has its reply in ``Received``, which
counts the turn's events instead. ``MessageTurn`` gathers those events as the log is walked;
``rerun`` then calls ``receive(message)`` on a copy of the state before ``Received``, in a cell
that commits into a sandbox, answering the turn's durable calls (time, sleeps, steps, calls to
other actors) from the log without running them, and compares what it emits with what the log
holds.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import trio

from eventstore import EventStore, RecordedEvent

from ._actor_class import kind_of
from ._cell import Cell
from ._errors import ActorError
from ._events import (
    CallReplied,
    Consumed,
    DeadLettered,
    NotificationFired,
    PatchMarked,
    Received,
    ReplyRecorded,
    RunCompleted,
    ScopeCommitted,
    ScopeCompleted,
    SleepStarted,
    StepRecorded,
    TimeObserved,
)
from ._inbox import decode_message
from ._record import Branch, DurableRecord, Recorded
from ._ref import ActorRef
from ._rerun import (
    _as_turn,
    _EndOfHistory,
    _latest_instant,
    _ReplayClock,
    _Sandbox,
    until_blocked,
)
from ._state import ActorState
from ._turn import Turn

_ANSWERED = (TimeObserved, SleepStarted, StepRecorded, CallReplied)
"""Durable calls a re-run replays without emitting them again (``PatchMarked`` is emitted
again: the turn's scope has no record in the re-run, so ``patched()`` marks it anew)."""

_SKIPPED = (ScopeCommitted, ScopeCompleted, ReplyRecorded, Consumed)
"""The runtime's bookkeeping around a turn's events: not emitted by ``receive``."""


@attrs.define(eq=False)
class MessageTurn:
    """A recorded message turn being gathered from the log: the state before it and its events.

    ``ended`` says the log holds the turn's end (``ReplyRecorded`` of its id, ``ScopeCompleted``
    of its scope, or the last of the events a ``Received`` that carries its send's reply
    counts): then its events are exactly those gathered.
    """

    state: ActorState
    received: Received
    recorded: RecordedEvent
    scope: str | None
    events: list[tuple[RecordedEvent, Any]] = attrs.Factory(list)
    ended: bool = False
    scoped: bool = False

    def take(self, recorded: RecordedEvent, event: Any) -> bool:
        """Whether ``event`` (the next of the log) belongs to this turn; False ends it."""
        if self.ended or isinstance(event, Received | DeadLettered | NotificationFired |
                                    RunCompleted):
            return False  # (ended already: a Received that counts no events after it)
        scope = getattr(event, "scope", None)
        if isinstance(event, (*_ANSWERED, PatchMarked, ScopeCommitted, ScopeCompleted)):
            if self.scope is None and isinstance(scope, str) and scope.startswith("msg:"):
                self.scope = scope  # a message without an id: its scope is msg:<inbox id>
            if scope != self.scope:
                return False  # another scope's (run(), a wake-up): this turn is over
            self.scoped = True
        self.events.append((recorded, event))
        if self.received.replied_at is not None:
            self.ended = len(self.events) >= self.received.events
        elif isinstance(event, ScopeCompleted) or (
                isinstance(event, ReplyRecorded) and
                event.message_id == self.received.message_id) or (
                isinstance(event, Consumed) and event.seq == self.received.seq):
            self.ended = True
        return not self.ended


def begin(state: ActorState, recorded: RecordedEvent, received: Received,
          marker: Any) -> MessageTurn:
    """A turn beginning at ``received``, from a copy of ``state`` (the state before it).

    ``marker`` is the event just before ``received``: the ``ScopeCommitted`` that heads a batch
    the turn committed mid-way names its scope.
    """
    copy = ActorState(state.cls, state.actor_id, state.codec)
    state.copy_into(copy)
    scope = None if received.message_id is None else f"msg:{received.message_id}"
    if scope is None and isinstance(marker, ScopeCommitted) and marker.scope.startswith("msg:"):
        scope = marker.scope
    # A Received that carries its send's reply counts the turn's events: none may end it.
    return MessageTurn(copy, received, recorded, scope,
                       ended=received.replied_at is not None and received.events == 0)


class _TurnRecord(DurableRecord):
    """The fork's durable-call record: the turn's calls answered from the log."""

    __slots__ = ("answers", "scope")

    def __init__(self, scope: str, answers: dict[tuple[Branch, int], Recorded]) -> None:
        super().__init__()
        self.scope = scope
        self.answers = answers

    def get(self, scope: str, index: int, branch: Branch = ()) -> Recorded | None:
        if scope == self.scope:
            return self.answers.get((branch, index))
        return super().get(scope, index, branch)


class _Capture(_Sandbox):
    """The sandbox, keeping what the re-run committed (its mid-turn commit points)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: list[tuple[str, Any]] = []

    async def _append(self, stream: str, events: list[Any], expected: Any, side: Any) -> Any:
        self.events.extend((event.type, json.loads(event.data)) for event in events)
        return await super()._append(stream, events, expected, side)


@attrs.define(eq=False)
class _Refs:
    """Stands in for the ``ActorSystem`` in a re-run: ``self.ref()`` works; a ref's ask inside
    the turn is a durable call answered from the log, and its tell and send go to the sandbox.
    Anything that would reach a live actor fails."""

    store: EventStore

    def hosts(self, cls: type[Any]) -> bool:
        return True

    def ref(self, cls: type[Any], actor_id: str) -> ActorRef:
        kind = kind_of(cls)
        name = f"{kind}({actor_id!r})"

        def unreachable() -> Cell:
            raise ActorError(f"{name} cannot be reached from a re-run of a recorded turn: only "
                             "the log's answers are")

        return ActorRef(kind, actor_id, f"{kind}-{actor_id}", unreachable, lambda: None,
                        self.store)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _shown(item: tuple[str, Any]) -> str:
    return f"{item[0]} {json.dumps(item[1], ensure_ascii=False, default=str)}"


async def rerun(turn: MessageTurn, store: EventStore) -> tuple[int, str, Any] | None:
    """Re-run ``turn``'s ``receive(message)`` and compare what it emits with the log.

    Returns:
        None when the code emits what the log holds; else ``(version, reason, error)`` at the
        first event where they part.
    """
    received, codec = turn.received, store.codec
    where = f"re-running the turn of inbox message #{received.seq} ({received.type}" + (
        f", id {received.message_id!r})" if received.message_id is not None else ")")
    message = decode_message(codec, attrs.evolve(turn.recorded, type=received.type,
                                                 data=received.data, metadata={}))
    scope = turn.scope or f"msg:#{received.seq}"
    answers: dict[tuple[Branch, int], Recorded] = {}
    expected: list[tuple[RecordedEvent, tuple[str, Any]]] = []
    for recorded, event in turn.events:
        if isinstance(event, (*_ANSWERED, PatchMarked)) and event.scope == scope:
            answers[(event.branch, event.index)] = event
            if isinstance(event, _ANSWERED):
                continue
        if not isinstance(event, _SKIPPED):
            expected.append((recorded, (recorded.type, _plain(recorded.data))))
    calls = max([index for branch, index in answers if branch == ()], default=0)
    complete = turn.ended or not turn.scoped  # a turn without durable calls commits once

    state = turn.state
    sandbox = _Capture(codec=codec)
    clock = _ReplayClock(_latest_instant(state, turn.recorded))
    clock.at = max([clock.at, *(e.value for e in answers.values()
                                if isinstance(e, TimeObserved))])
    fork = Cell(state.cls, state.actor_id, store=sandbox, clock=clock)
    state.copy_into(fork.state)
    record = _TurnRecord(scope, answers)
    record.scopes = fork.state.record.scopes
    fork.state.record = record
    fork.system = _Refs(sandbox)
    run_turn = Turn(fork, scope=scope, message_id=received.message_id)
    clock.run_turn, clock.recorded = run_turn, calls
    raised: BaseException | None = None
    finished = beyond = False

    async def body() -> None:
        handler: Any = fork.state.actor.receive
        if fork.sync_receive:  # a plain-def receive runs on a worker thread, as in a turn
            await trio.to_thread.run_sync(handler, message)
        else:
            await handler(message)

    async def receive(nursery: trio.Nursery) -> None:
        nonlocal raised, finished, beyond
        try:
            await _as_turn(run_turn, body)
            finished = True
        except _EndOfHistory:
            beyond = True
        except BaseExceptionGroup as group:
            matched, rest = group.split(_EndOfHistory)
            beyond = matched is not None
            if rest is not None and not isinstance(rest, Exception):
                raise rest from None
            raised = rest
        except Exception as exc:
            raised = exc
        finally:
            nursery.cancel_scope.cancel()

    await until_blocked(receive)

    skipped = {codec.type_name(cls) for cls in _SKIPPED}
    emitted = [item for item in sandbox.events + [
        (pending.new.type, _plain(pending.new.data)) for pending in fork.journal.pending]
        if item[0] not in skipped]
    for n, item in enumerate(emitted):
        if n < len(expected):
            at, held = expected[n]
            if held != item:
                return (at.version, f"{where}: receive() emitted {_shown(item)} where the log "
                        f"holds {_shown(held)}", None)
        elif complete:
            last = expected[-1][0].version if expected else turn.recorded.version
            return (last, f"{where}: receive() emitted {_shown(item)}, which the log does not "
                    f"hold: the turn's events there end at version {last}", None)
        else:
            break
    if raised is not None:
        return (turn.recorded.version, f"{where}: receive() raised {type(raised).__name__}: "
                f"{raised}", raised)
    if beyond and complete:
        return (turn.recorded.version, f"{where}: receive() makes durable call #{calls + 1}, "
                f"which the log's turn did not make (it made {calls})", None)
    if finished and turn.ended and len(expected) > len(emitted):
        at, held = expected[len(emitted)]
        return (at.version, f"{where}: the log's turn also emitted {_shown(held)}, which "
                "receive() no longer does", None)
    return None


