"""The errors the actor runtime raises: one root, structured fields, messages built from them.

Errors are data: the fields go to ``Exception.__init__`` (so ``args`` holds them and a pickle
round trip keeps them) and the text is built in ``__str__``.
"""

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
        super().__init__(actor, reason)
        self.actor = actor
        self.reason = reason

    def __str__(self) -> str:
        return f"actor {self.actor} is not running: {self.reason}; spawn or activate it again"


class DuplicateActor(ActorError):
    """An actor with this class and id already runs on this store in this process."""

    def __init__(self, actor: str) -> None:
        super().__init__(actor)
        self.actor = actor

    def __str__(self) -> str:
        return (f"actor {self.actor} is already running in this process on this store; use its "
                "ActorRef instead of starting it again")


class NotInTurn(ActorError, RuntimeError):
    """An actor-only operation (``emit``, ``flush``, notifier changes) was used outside a turn."""


class AskTimeout(ActorError, TimeoutError):
    """``ask`` got no reply within its timeout; the message may still be processed."""

    def __init__(self, actor: str, timeout: float) -> None:
        super().__init__(actor, timeout)
        self.actor = actor
        self.timeout = timeout

    def __str__(self) -> str:
        return (f"actor {self.actor} did not answer within {self.timeout} s; the message may "
                "still be processed: make the handler idempotent or resend with the same "
                "message_id")


class RecoveryError(ActorError):
    """An actor's log cannot be folded into a state that is known to be right."""

    def __init__(self, stream: str, version: int, reason: str) -> None:
        super().__init__(stream, version, reason)
        self.stream = stream
        self.version = version
        self.reason = reason

    def __str__(self) -> str:
        return (f"cannot recover stream {self.stream!r} at version {self.version}: "
                f"{self.reason}")


class NonDeterminismError(ActorError):
    """Replayed code asked for something other than what the log recorded at that key."""

    def __init__(self, actor: str, scope: str, index: int, recorded: Any, requested: Any) -> None:
        super().__init__(actor, scope, index, recorded, requested)
        self.actor = actor
        self.scope = scope
        self.index = index
        self.recorded = recorded
        self.requested = requested

    def __str__(self) -> str:
        return (f"actor {self.actor}, scope {self.scope!r}, durable call #{self.index}: the log "
                f"recorded {self.recorded} but the code now asks for {self.requested}; the code "
                "changed between runs or depends on something outside the log: make it "
                "deterministic, or start a new scope/stream")


class StepFailed(ActorError):
    """A ``durable.step`` function failed after its retries; its failure is recorded.

    A replay of the scope raises it again at the same step without running the function: catch
    it in the handler to compensate (a saga's undo), or let the turn fail.
    """

    def __init__(self, function: str, error: str) -> None:
        super().__init__(function, error)
        self.function = function
        self.error = error

    def __str__(self) -> str:
        return (f"durable step {self.function} failed: {self.error}; its failure is recorded, "
                "so the scope meets it again when it runs again: catch StepFailed to compensate, "
                "or give the step retries=")


class CallFailed(ActorError):
    """A recorded durable call failed, and its error cannot be rebuilt as its own class.

    A replay raises a recorded failure again as the callee's exception class, rebuilt from its
    args; when that class cannot be imported or its args could not be recorded, as this.
    """

    def __init__(self, target: str, error: str) -> None:
        super().__init__(target, error)
        self.target = target
        self.error = error

    def __str__(self) -> str:
        return (f"the durable call to {self.target} failed: {self.error} (recorded); catch it "
                "to compensate")


class ProjectionFailed(ActorError):
    """A projection's handler kept failing; the projection stopped at ``position``.

    Nothing after ``position`` was handled (its offset stays there). Fix the cause and start
    the projection again: it resumes with the event that failed.
    """

    def __init__(self, projection: str, position: int, attempts: int, error: str) -> None:
        super().__init__(projection, position, attempts, error)
        self.projection = projection
        self.position = position
        self.attempts = attempts
        self.error = error

    def __str__(self) -> str:
        return (f"projection {self.projection!r} stopped after {self.attempts} failed "
                f"attempt(s) at the events after position {self.position}: {self.error}; fix "
                "the cause and start it again (it resumes there)")
