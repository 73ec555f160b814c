"""``Actor``: the class users subclass. Its attrs fields are the state; ``apply`` folds events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from ._errors import ActorError, InvalidActorArgument
from ._notifier import MultiNotifier
from ._supervision import Restart, Supervision

if TYPE_CHECKING:
    from ._cell import Cell
    from ._ref import ActorRef


class Actor:
    """Subclass it with ``@attrs.define``; the attrs fields are the actor's state.

    Override ``apply`` (a pure fold of one event) and ``receive`` (one message at a time; its
    return value answers ``ask``), and optionally ``run`` (a long-running body), ``on_start``
    and ``on_notify`` (a timer wake-up). ``receive`` may be a plain ``def``: it then runs in a
    worker thread.

    Class options: ``kind`` names the actor's streams (``f"{kind}-{id}"``; default the class
    name), ``snapshot_every`` saves a snapshot every N events, ``supervision`` says what a
    failing ``run()`` does (``Restart()``, ``Stop()`` or ``Escalate()``), ``remember_replies``
    how many seconds of durable time a message id's recorded reply answers resends (a week),
    ``max_deliveries`` how many times a durable message's turn may fail (retried with the
    ``supervision``'s backoff) before the message is set aside as a dead letter (5).
    """

    kind: ClassVar[str | None] = None
    snapshot_every: ClassVar[int | None] = None
    remember_replies: ClassVar[float] = 7 * 24 * 3600.0
    supervision: ClassVar[Supervision] = Restart()
    max_deliveries: ClassVar[int] = 5

    if TYPE_CHECKING:  # not a runtime annotation: cattrs resolves a subclass's type hints
        _cell: Cell  # or the ActorState of a projection, which answers the same

    # -- the runtime's view, available inside and outside turns ---------------------------------

    @property
    def id(self) -> str:
        """The actor's id (unique per class)."""
        return self._runtime.actor_id

    @property
    def version(self) -> int:
        """The version of the actor's log that the state reflects, uncommitted events included."""
        return self._runtime.current_version

    @property
    def notifier(self) -> MultiNotifier[Any]:
        """The actor's durable timers: changes become events in its log (inside a turn only)."""
        return self._runtime.notifier

    @property
    def _runtime(self) -> Cell:
        try:
            return self._cell
        except AttributeError:
            raise ActorError(
                f"{type(self).__qualname__} is not running: spawn it with actors.spawn() or an "
                "ActorSystem; to fold events in a test use actors.testing.project()"
            ) from None

    # -- what subclasses override ---------------------------------------------------------------

    def apply(self, event: Any) -> None:
        """Fold one event into the state. Pure: no I/O, no clock, no randomness."""

    async def receive(self, message: Any) -> Any:
        """Handle one message; the return value answers ``ask``. May be a plain ``def``."""
        raise NotImplementedError(f"{type(self).__qualname__} does not handle messages: "
                                  "override receive()")

    async def on_start(self) -> None:
        """Run once after recovery, as a turn, before the first message."""

    async def on_notify(self) -> None:
        """Called when the earliest notification is due; take the tokens with
        ``self.notifier.due(await durable.now.aio())``."""

    # -- what handlers call ---------------------------------------------------------------------

    def ref(self, cls: type[Actor], actor_id: str) -> ActorRef:
        """A ref to another actor of this actor's ``ActorSystem``.

        ``await ref.ask(msg)`` inside a turn is a durable call (its reply is recorded in this
        actor's log; see ``docs/messaging.md``).

        Raises:
            ActorError: this actor was spawned without an ActorSystem.
            InvalidActorArgument: the system does not host ``cls``.
        """
        system = self._runtime.system
        if system is None:
            raise ActorError(f"{type(self).__qualname__}({self.id!r}) was spawned without an "
                             "ActorSystem, so self.ref() has no system to look actors up in: "
                             "host it in an ActorSystem, or pass refs in messages")
        if not system.hosts(cls):
            raise InvalidActorArgument(
                f"self.ref({getattr(cls, '__qualname__', cls)!r}, {actor_id!r}): this actor's "
                "ActorSystem does not host that class; add it to ActorSystem(actors=[...])")
        ref: ActorRef = system.ref(cls, actor_id)
        return ref

    def emit(self, *events: Any) -> None:
        """Apply ``events`` to the state now and queue them for the turn's commit.

        Raises:
            NotInTurn: called outside a turn of this actor.
            ActorStopped: this object belongs to an activation that has stopped; use a ref.
            InvalidActorType: an event is not an attrs instance.
            SerializationError: the codec cannot encode an event; nothing changed.
        """
        cell = self._runtime
        cell.emit(events)

    async def flush(self) -> None:
        """Commit the events this turn emitted so far (a commit point). A checkpoint.

        Only this turn's events are committed, never those of another turn still running. If
        cancelled midway the events may or may not be stored.

        Raises:
            NotInTurn: called outside a turn of this actor.
            ActorStopped: this object belongs to an activation that has stopped; use a ref.
        """
        await self._runtime.commit()

    def snapshot(self) -> Any:
        """The state as JSON-compatible data (default: the attrs fields through the codec).

        Raises:
            ActorStopped: this object belongs to an activation that has stopped; use a ref.
        """
        return self._runtime.state_codec.unstructure(self, type(self))

    def restore(self, state: Any) -> None:
        """Set the state from ``snapshot()``'s data (default: the attrs fields via the codec).

        Raises:
            ActorStopped: this object belongs to an activation that has stopped; use a ref.
        """
        restored = self._runtime.state_codec.structure(state, type(self))
        copy_fields(restored, self)


def copy_fields(source: Any, target: Any) -> None:
    """Copy every attrs field of ``source`` onto ``target`` (same class)."""
    for field in attrs.fields(type(source)):
        object.__setattr__(target, field.name, getattr(source, field.name))
