"""The errors the actor runtime raises: one root, structured fields, messages built from them."""

from __future__ import annotations

from typing import Any


class ActorError(Exception):
    """Root of every error the ``actors`` package raises itself."""


class InvalidActorArgument(ActorError, ValueError):
    """A public function was called with a value it cannot accept."""


class InvalidActorType(ActorError, TypeError):
    """A public function was called with an argument of the wrong type."""


class ActorStopped(ActorError):
    """The actor is stopped: it takes no more messages, and pending asks fail with this."""

    def __init__(self, actor: str, reason: str = "it was stopped") -> None:
        self.actor = actor
        self.reason = reason
        super().__init__(f"actor {actor} is not running: {reason}; spawn or activate it again")


class DuplicateActor(ActorError):
    """An actor with this class and id already runs on this store in this process."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        super().__init__(f"actor {actor} is already running in this process; use its ActorRef "
                         "instead of spawning it again")


class NotInTurn(ActorError, RuntimeError):
    """An actor-only operation (``emit``, ``flush``, notifier changes) was used outside a turn."""


class AskTimeout(ActorError, TimeoutError):
    """``ask`` got no reply within its timeout; the message may still be processed."""

    def __init__(self, actor: str, timeout: float) -> None:
        self.actor = actor
        self.timeout = timeout
        super().__init__(f"actor {actor} did not answer within {timeout} s; the message may still "
                         "be processed: make the handler idempotent or resend with the same "
                         "message_id")


class NonDeterminismError(ActorError):
    """Replayed code asked for something other than what the log recorded at that key."""

    def __init__(self, actor: str, scope: str, index: int, recorded: Any, requested: Any) -> None:
        self.actor = actor
        self.scope = scope
        self.index = index
        self.recorded = recorded
        self.requested = requested
        super().__init__(
            f"actor {actor}, scope {scope!r}, durable call #{index}: the log recorded {recorded} "
            f"but the code now asks for {requested}; the code changed between runs or depends on "
            "something outside the log: make it deterministic, or start a new scope/stream"
        )
