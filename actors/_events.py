"""The events the runtime itself writes into an actor's log (next to the user's own events).

Their type names are stable (``actors.*``) so logs stay readable after refactorings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from eventstore._codec import event_type


class SystemEvent:
    """Marker base: folded by the runtime into its projections, never passed to ``apply``."""

    __slots__ = ()


@event_type("actors.TimeObserved")
@attrs.frozen
class TimeObserved(SystemEvent):
    """``durable.time()`` or ``durable.now()`` first called at this key; ``value`` is epoch s."""

    scope: str
    index: int
    function: str
    value: float
    branch: tuple[int, ...] = ()
    """Which child task of the scope made the call: () for the scope's own task, (2,) for the
    second task it started, (2, 1) for that task's first child (see ``docs/durable-time.md``)."""


@event_type("actors.SleepStarted")
@attrs.frozen
class SleepStarted(SystemEvent):
    """``durable.sleep(seconds)`` was first called at this key, at epoch ``started_at``."""

    scope: str
    index: int
    started_at: float
    seconds: float
    branch: tuple[int, ...] = ()
    """The child task of the scope that slept, as in ``TimeObserved.branch``."""


@event_type("actors.StepRecorded")
@attrs.frozen
class StepRecorded(SystemEvent):
    """``durable.step(fn)`` (or ``uuid4()``, ``random()``) first ran at this key: its outcome.

    ``value`` holds the codec's tagged encoding of what ``fn`` returned; ``error`` says how it
    failed after its retries (then ``value`` is None), so a replay raises ``StepFailed`` again.
    """

    scope: str
    index: int
    function: str
    value: Any
    error: str | None = None
    branch: tuple[int, ...] = ()
    """The child task of the scope that made the call, as in ``TimeObserved.branch``."""


@event_type("actors.PatchMarked")
@attrs.frozen
class PatchMarked(SystemEvent):
    """``durable.patched(patch)`` was first called at this key, by code that has the patch."""

    scope: str
    index: int
    patch: str
    branch: tuple[int, ...] = ()
    """The child task of the scope that made the call, as in ``TimeObserved.branch``."""


@event_type("actors.ReplyRecorded")
@attrs.frozen
class ReplyRecorded(SystemEvent):
    """The turn of a message sent with ``message_id`` answered ``value`` (the codec's tagged
    encoding) at epoch ``at``; a resend of the id gets it without running the handler."""

    message_id: str
    value: Any
    at: float


@event_type("actors.Received")
@attrs.frozen
class Received(SystemEvent):
    """The turn after it consumed message ``seq`` of the actor's inbox (a durable send).

    ``type`` and ``data`` are the message as stored (None for a resent ``message_id`` the actor
    had processed already: then nothing else runs). Committed with the turn's events, in the
    transaction that deletes the message from the inbox.

    ``replied_at`` is set when the message has an id, no one waits for its reply (a ``send``),
    and its whole turn was committed in this event's commit: its reply (None) counts as recorded
    at that epoch, in place of a ``ReplyRecorded``, and the turn's own events are the ``events``
    that follow this one in the log. (Older logs hold a ``ReplyRecorded`` after the turn's
    events instead; both read the same.)
    """

    seq: int
    message_id: str | None
    type: str
    data: Any = None
    replied_at: float | None = None
    events: int = 0


@event_type("actors.Consumed")
@attrs.frozen
class Consumed(SystemEvent):
    """The turn of inbox message ``seq``, whose ``Received`` an earlier commit point of the turn
    wrote, completed: this commit deletes the message from the inbox."""

    seq: int


@event_type("actors.MessageSent")
@attrs.frozen
class MessageSent(SystemEvent):
    """The turn sent a message (``tell``/``send``) to actor stream ``to``; its commit stored it
    in that actor's inbox, with ``message_id`` (deterministic in a scope that can run again)."""

    to: str
    message_id: str | None
    type: str


@event_type("actors.DeadLettered")
@attrs.frozen
class DeadLettered(SystemEvent):
    """Inbox message ``seq`` failed ``attempts`` times and was set aside: the inbox moved on.

    ``type`` and ``data`` are the message as stored, so it can be retried
    (``python -m actors dead-letters retry``); ``error`` is the last failure.
    """

    seq: int
    message_id: str | None
    type: str
    data: Any
    error: str
    attempts: int


@event_type("actors.DeadLetterResolved")
@attrs.frozen
class DeadLetterResolved:
    """In the ``$dead-letters`` stream: the dead letter (``stream``, ``seq``) was ``retried``
    (stored again in the actor's inbox) or ``dropped``."""

    stream: str
    seq: int
    action: str


@event_type("actors.CallReplied")
@attrs.frozen
class CallReplied(SystemEvent):
    """A durable call: ``await ref.ask(...)`` inside a turn was answered, at this key.

    ``target`` is the callee's stream and ``message_id`` the id the call was sent with; a replay
    returns ``value`` (the codec's tagged encoding) without sending. ``error`` holds a failure
    instead (``{"type": "module:QualName", "args": [...], "text": str}``), raised again.
    """

    scope: str
    index: int
    target: str
    message_id: str
    value: Any
    error: Any = None
    branch: tuple[int, ...] = ()
    """The child task of the scope that made the call, as in ``TimeObserved.branch``."""


@event_type("actors.ScopeCompleted")
@attrs.frozen
class ScopeCompleted(SystemEvent):
    """A scope (a message turn, a wake-up, or ``run``) finished: its recorded values are dropped."""

    scope: str


@event_type("actors.ScopeCommitted")
@attrs.frozen
class ScopeCommitted(SystemEvent):
    """The user events after it in its batch were emitted by ``scope`` before it completed.

    Written first in the batch of a commit point inside a scope (``flush()``, a durable sleep),
    so that a scope which runs again (``run()`` after a restart, a redelivered message) matches
    what it emits against what it already committed instead of appending it twice. ``marks``
    holds one ``(*branch, calls)`` tuple per user event: the task that emitted it and how many
    durable calls that task had made by then. ``fired``: in a wake-up, what each of its
    ``due()`` calls since its previous marker handed out, ``((*branch, calls), seqs)`` in
    order (``seqs`` empty for nothing), whose ``NotificationFired`` waits for the wake-up's
    end: run again, those calls hand out the same. ``cancelled``: the same for the scope's
    ``notifier.cancel()`` calls, what each removed: run again, each returns the same count.
    """

    scope: str
    marks: tuple[tuple[int, ...], ...]
    fired: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = ()
    cancelled: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = ()


@event_type("actors.RunCompleted")
@attrs.frozen
class RunCompleted(SystemEvent):
    """The actor's ``run()`` body returned; it is not started again."""


@event_type("actors.NotificationScheduled")
@attrs.frozen
class NotificationScheduled(SystemEvent):
    """``notifier.notify_at(at, token)``; ``token`` holds the codec's tagged encoding."""

    seq: int
    at: datetime
    token: Any


@event_type("actors.NotificationFired")
@attrs.frozen
class NotificationFired(SystemEvent):
    """``notifier.due(now)`` returned the notifications with these sequence numbers."""

    seqs: tuple[int, ...]


@event_type("actors.NotificationCancelled")
@attrs.frozen
class NotificationCancelled(SystemEvent):
    """``notifier.cancel(token)`` removed the notifications with these sequence numbers."""

    seqs: tuple[int, ...]


@event_type("actors.WorkIndexed")
@attrs.frozen
class WorkIndexed:
    """In a system's index stream: actor ``kind``/``actor_id`` next needs to run at ``wake_at``.

    ``wake_at`` is epoch seconds (0 for "as soon as the system starts"), or None for no work.
    """

    kind: str
    actor_id: str
    wake_at: float | None


def markable(event: object) -> bool:
    """Whether a scope that runs again matches ``event`` against what it committed: the user's
    events, and timers it scheduled (the runtime's other events are matched by their keys)."""
    return not isinstance(event, SystemEvent) or isinstance(
        event, NotificationScheduled | MessageSent)
