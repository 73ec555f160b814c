"""``ActorState``: the pure fold of an actor's log. No store, no trio.

It holds the user's attrs state (the actor object), the durable-call record, the notifier and
whether ``run()`` finished, and folds one event at a time into them. Recovery, replay,
``actors.testing.project``, ``check`` and the CLI all rebuild state with it, so there is one
fold. It also saves and restores the whole of it as a snapshot.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs

from eventstore import Codec, RecordedEvent

from ._actor import Actor, copy_fields
from ._errors import NotInTurn, RecoveryError
from ._events import (
    CallReplied,
    NotificationCancelled,
    NotificationFired,
    NotificationScheduled,
    PatchMarked,
    Received,
    ReplyRecorded,
    RunCompleted,
    ScopeCommitted,
    ScopeCompleted,
    SleepStarted,
    StepRecorded,
    SystemEvent,
    TimeObserved,
    markable,
)
from ._record import DurableRecord
from ._replies import Replies
from ._timers import EventSourcedNotifier
from ._turn import CANCEL, DUE

EmitSystem = Callable[[SystemEvent], None]


def _not_live(event: SystemEvent) -> None:
    raise NotInTurn(f"{type(event).__name__}: a projected actor cannot change; spawn it to "
                    "schedule timers")


_RECORDED = (TimeObserved, SleepStarted, StepRecorded, PatchMarked, CallReplied, ScopeCompleted)
"""The system events of the durable-call record. (Tuples: ``A | B`` builds a union per call.)"""
_TIMERS = (NotificationScheduled, NotificationFired, NotificationCancelled)


class ActorState:
    """An actor's state as its log folds to: fields, durable-call record, timers, ``run()``.

    ``version`` is the version of the last event folded. The actor object's ``_cell`` is
    ``runtime`` (the live cell), or this state itself for a projection.
    """

    __slots__ = ("_marks", "actor", "actor_id", "cls", "codec", "emit_system", "notifier",
                 "record", "replies", "run_done", "version")

    def __init__(self, cls: type[Actor], actor_id: str, codec: Codec, *,
                 emit_system: EmitSystem = _not_live, runtime: Any = None) -> None:
        self.cls = cls
        self.actor_id = actor_id
        self.codec = codec
        self.emit_system = emit_system
        self.actor: Actor = cls()
        object.__setattr__(self.actor, "_cell", self if runtime is None else runtime)
        self.version = 0
        self.record = DurableRecord()
        self.replies = Replies(cls.remember_replies)
        self.notifier = EventSourcedNotifier(codec, emit_system)
        self.run_done = False
        self._marks: tuple[str, deque[tuple[int, ...]]] | None = None

    # -- what a projected actor answers (the live cell answers these for a running one) --------

    system = None  # a projection belongs to no ActorSystem: ``self.ref()`` says so

    @property
    def current_version(self) -> int:
        return self.version

    def emit(self, events: Any) -> None:
        raise NotInTurn(f"{self.cls.__qualname__}({self.actor_id!r}) is a projection: it "
                        "cannot emit; spawn it to handle messages")

    @property
    def state_codec(self) -> Codec:
        return self.codec

    async def commit(self) -> None:
        raise NotInTurn(f"flush(): {self.cls.__qualname__}({self.actor_id!r}) is a projection: "
                        "it cannot commit; spawn it to handle messages")

    # -- the fold --------------------------------------------------------------------------------

    def fold(self, event: Any) -> None:
        """Apply one event, the user's or the runtime's, to the state and the projections."""
        marks = self._marks
        if marks is not None and markable(event):
            scope, left = marks
            mark = left.popleft()
            if mark:  # () marks an event of another turn committed in the same batch
                self.record.add_event(scope, mark, event)
            if not left:
                self._marks = None
        if not isinstance(event, SystemEvent):
            self.actor.apply(event)
        elif isinstance(event, _RECORDED):
            self.record.apply(event)
        elif isinstance(event, _TIMERS):
            self.notifier.fold(event)
        elif isinstance(event, ReplyRecorded):
            self.replies.fold(event)
        elif isinstance(event, Received):
            if event.replied_at is not None and event.message_id is not None:
                self.replies.record(event.message_id, None, event.replied_at)  # a send's
        elif isinstance(event, RunCompleted):
            self.run_done = True
        elif isinstance(event, ScopeCommitted):
            self._marks = (event.scope, deque(event.marks)) if event.marks else None
            if event.fired:
                self.record.add_taken(event.scope, DUE, event.fired)
            if event.cancelled:
                self.record.add_taken(event.scope, CANCEL, event.cancelled)

    def fold_recorded(self, recorded: RecordedEvent, event: Any) -> None:
        """Fold the next event of the log, checking that it follows the state's version.

        Raises:
            RecoveryError: the version is not the next one (a gap, a repeat, not an int), or a
                runtime event contradicts the ones before it (the log was edited).
        """
        self.fold_next(recorded.version, event, recorded.stream, recorded.type)

    def fold_next(self, version: int, event: Any, stream: str, kind: str) -> None:
        """``fold_recorded`` for an event of ``stream`` at ``version`` whose type name is
        ``kind``, without its ``RecordedEvent`` (a replay builds those only when asked)."""
        if type(version) is not int or version != self.version + 1:
            raise RecoveryError(stream, self.version + 1, (
                f"the log holds version {version!r} where version {self.version + 1} should "
                "follow; events are missing (deleted without a snapshot that covers them) or "
                "the log was changed outside this library"))
        if self._marks is None and not isinstance(event, SystemEvent):
            self.actor.apply(event)  # what ``fold`` does with it, one call fewer
            self.version = version
            return
        try:
            self.fold(event)
        except (KeyError, ValueError, IndexError) as exc:
            if not isinstance(event, SystemEvent):
                raise
            raise RecoveryError(stream, version, (
                f"{kind} contradicts the events before it ({exc!r}); the log was "
                "changed outside this library")) from exc
        self.version = version

    # -- snapshots -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state as a snapshot holds it: fields, durable-call record, timers."""
        data = {"state": self.actor.snapshot(), "record": self.record.dump(self.codec),
                "notifier": self.notifier.dump(), "run_done": self.run_done}
        if self.replies:  # absent when empty: as in snapshots taken before recorded replies
            data["replies"] = self.replies.dump()
        return data

    def restore(self, state: Any, version: int, *, fields: bool = True) -> None:
        """Set the whole state from ``snapshot()``'s data, taken at ``version``.

        Args:
            fields: restore the user's fields too; without, only the runtime's part (the CLI
                reads timers and durable calls of classes it cannot import).

        Raises:
            Exception: the data does not fit the current code; the state is then reset.
        """
        try:
            if fields:
                self.actor.restore(state["state"])
            self.record = DurableRecord.load(state["record"], self.codec)
            self.notifier.load(state["notifier"])
            self.run_done = bool(state["run_done"])
            self.replies.load(state.get("replies", []))  # none in snapshots before replies
        except BaseException:
            self.reset()
            raise
        self.version = version

    def reset(self) -> None:
        """Back to the state of an empty log."""
        copy_fields(self.cls(), self.actor)
        self.version = 0
        self.record = DurableRecord()
        self.replies = Replies(self.cls.remember_replies)
        self.notifier = EventSourcedNotifier(self.codec, self.emit_system)
        self.run_done = False
        self._marks = None

    def copy_into(self, other: ActorState) -> None:
        """Make ``other`` (of the same class) an independent copy of this state."""
        state_class: Any = self.cls
        for field in attrs.fields(state_class):
            object.__setattr__(other.actor, field.name,
                               copy.deepcopy(getattr(self.actor, field.name)))
        other.record = copy.deepcopy(self.record)
        other.replies.load(self.replies.dump())
        other.notifier.load(self.notifier.dump())
        other.run_done = self.run_done
        other.version = self.version

    def take(self, other: ActorState) -> None:
        """Become ``other`` (a state rebuilt off to the side), keeping this actor object."""
        copy_fields(other.actor, self.actor)
        self.version = other.version
        self.record = other.record
        self.replies = other.replies
        self.notifier = other.notifier
        self.run_done = other.run_done
        self._marks = None
