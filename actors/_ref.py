"""``ActorRef``: how the world talks to an actor."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any

import trio

from eventstore import EventStore

from ._calls import current, on_trio_thread
from ._cell import Cell
from ._durable_ask import durable_ask
from ._errors import ActorError, ActorStopped, AskTimeout, InvalidActorArgument
from ._hosting import Routing, Target
from ._inbox import encode_message
from ._mailbox import Reply
from ._remote import Remote
from ._turn import Turn, current_turn

log = logging.getLogger("actors")

Binder = Callable[[str, str], "ActorRef | None"]
binder: ContextVar[Binder | None] = ContextVar("actors_ref_binder", default=None)
"""How a decoded ref finds its actor: set by a running ``ActorSystem`` (its ``ref`` by kind)."""


def _check_message_id(message_id: object) -> str | None:
    if message_id is None:
        return None
    if not isinstance(message_id, str) or not message_id:
        raise InvalidActorArgument(f"message_id must be a non-empty string or None, "
                                   f"got {message_id!r}")
    try:
        message_id.encode()
    except UnicodeEncodeError:
        raise InvalidActorArgument(f"message_id {message_id!r} holds a lone surrogate, which no "
                                   "store can keep; use a valid Unicode string") from None
    return message_id


class ActorRef:
    """A handle on an actor: ``tell``, ``ask``, ``stop``. Cheap to copy and share.

    ``message_id`` makes a message idempotent: the handler's effects happen once per (actor,
    message id) and the reply is recorded with them, so a resend (after a timeout or a crash)
    gets the recorded reply and runs nothing; one resent mid-turn after a crash resumes it, with
    the durable values recorded the first time. See ``docs/messaging.md``.
    """

    __slots__ = ("_current", "_resolve", "actor_id", "kind", "store", "stream")

    def __init__(self, kind: str, actor_id: str, stream: str, resolve: Callable[[], Target],
                 current: Callable[[], Cell | None], store: EventStore) -> None:
        self.kind = kind
        self.actor_id = actor_id
        self.stream = stream
        self.store = store
        self._resolve = resolve  # the running cell, activated if need be; raises if it cannot
        self._current = current  # the running cell, or None: never activates

    @property
    def id(self) -> str:
        return self.actor_id

    def tell(self, message: Any, *, message_id: str | None = None) -> None:
        """Queue ``message`` for the actor and return at once (not a checkpoint).

        Inside another actor's turn (on the same store) the message is part of that turn, as
        with ``send``: stored in the actor's inbox by the turn's commit, never if it fails.

        Raises:
            ActorStopped: the actor is not running (and cannot be activated).
        """
        if message_id is not None:
            _check_message_id(message_id)
        if current_turn.get() is None:  # the common case, outside any actor: no more checks
            self._resolve().tell(message, message_id, None)
            return
        if not on_trio_thread():  # a plain-def handler's worker thread: tell from trio's
            trio.from_thread.run_sync(functools.partial(self.tell, message,
                                                        message_id=message_id))
            return
        turn = current()
        if turn is not None and turn.cell.store is self.store:
            self._send_with(turn, message, message_id)
            return
        self._resolve().tell(message, message_id, None)

    async def send(self, message: Any, *, message_id: str | None = None) -> None:
        """Store ``message`` in the actor's inbox, and return once it is stored: a durable tell.

        The actor processes it once, in the order each sender sent, also if this process dies
        right after ``send`` returned (an ``ActorSystem`` re-activates actors with waiting
        messages when it starts). A resend of the same ``message_id`` is processed once, as
        for ``ask``. Inside another actor's turn the message is part of that turn: stored by
        the turn's commit, never if the turn fails. A checkpoint. See ``docs/messaging.md``.

        Raises:
            InvalidActorArgument: the message cannot be encoded, or a bad ``message_id``;
                nothing is stored.
            ActorStopped: the actor is not running and cannot be activated (an actor spawned
                without a system); nothing is stored.
        """
        message_id = _check_message_id(message_id)
        turn = current()
        if turn is not None and turn.cell.store is self.store and on_trio_thread():
            self._send_with(turn, message, message_id)
            await trio.lowlevel.checkpoint()
            return
        cell = self._resolve()
        if not isinstance(cell, Cell):
            cell = await self._elsewhere(cell)
        trace = None if cell.telemetry is None else cell.telemetry.carrier()
        stored = encode_message(self.store.codec, self.stream, message, message_id, trace)
        if isinstance(cell, Remote):  # in order with this member's tells to it
            await cell.send(stored)
            return
        where = await self.store.enqueue(self.stream, [stored])
        # Handed to the running actor, it need not read it back; else it looks in its inbox.
        if not (where.seq and cell.take(stored, where)):
            self._poke()

    @staticmethod
    async def _elsewhere(target: Remote | Routing) -> Cell | Remote:
        """In a cluster: the running cell or the remote owner, once the routing knows."""
        return await target.ready() if isinstance(target, Routing) else target

    def _send_with(self, turn: Turn, message: Any, message_id: str | None) -> None:
        cell = turn.cell
        if cell.system is None:  # spawned: a stopped receiver is refused, as outside a turn
            self._resolve()
        trace = None if cell.telemetry is None else cell.telemetry.carrier()
        cell.outbox(turn, self.stream, message, message_id, self._poke, trace)

    def _poke(self) -> None:
        """Tell the actor that its inbox has a message (activating it if need be)."""
        try:
            self._resolve().poke()
        except ActorError as exc:  # stored: it waits for the next activation
            log.info("%r is not running (%s); the message waits in its inbox", self, exc)

    async def ask(self, message: Any, *, timeout: float | None = None,
                  message_id: str | None = None) -> Any:
        """Send ``message`` and wait for the handler's return value. A checkpoint.

        The reply is released only after the turn's events are committed. If cancelled, the
        message may still be processed. When the actor is idle and the asker has no deadline,
        the turn runs on the asker's task (no hand-over to the actor's task and back); a
        cancelled asker then returns when the started turn ends.

        Inside another actor's turn that can run again (a message with an id, ``run()``, a
        wake-up), ``ask`` is a *durable call*: its reply (or its failure, or its timeout) is
        recorded in the caller's log, and a re-execution of the caller's scope gets it back
        without sending (``docs/messaging.md``). The call is sent with a deterministic
        ``message_id`` (caller's stream, scope, call index), so the callee runs it once; the
        reply must be encodable by the store's codec.

        Raises:
            AskTimeout: no reply within ``timeout`` seconds.
            ActorStopped: the actor stopped before answering.
            Exception: whatever the handler raised, re-raised here.
        """
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(
                timeout, int | float) or not timeout > 0 or math.isnan(timeout)):
            raise InvalidActorArgument(f"timeout must be positive seconds or None, "
                                       f"got {timeout!r}")
        message_id = _check_message_id(message_id)
        turn = current()
        if turn is None or not on_trio_thread():
            return await self._ask(message, timeout, message_id)
        if self._current() is turn.cell:
            raise InvalidActorArgument(
                f"{turn.cell.name} asks itself inside its own turn, which would wait forever "
                "for its own mailbox; call the method directly, or tell() itself")

        async def send(call_id: str | None) -> Any:
            return await self._ask(message, timeout, call_id)

        return await durable_ask(turn, self.stream, send, message_id)

    def _ask(self, message: Any, timeout: float | None,
             message_id: str | None) -> Coroutine[Any, Any, Any]:
        """The ask's coroutine: its turn on the asker's task when it can (``Cell.can_inline``),
        awaited by the caller without a coroutine of its own in between."""
        cell = self._resolve()
        if message_id is None and timeout is None and type(cell) is Cell and cell.can_inline():
            return cell.ask_inline(message)
        return self._ask_queued(cell, message, timeout, message_id)

    async def _ask_queued(self, cell: Cell | Target, message: Any, timeout: float | None,
                          message_id: str | None) -> Any:
        if not isinstance(cell, Cell):  # in a cluster, not served here (yet)
            cell = await self._elsewhere(cell)
            if isinstance(cell, Remote):
                return await cell.ask(message, timeout, message_id)
            if message_id is None and timeout is None and cell.can_inline():
                return await cell.ask_inline(message)
        reply = Reply()
        cell.tell(message, message_id, reply)
        if timeout is None:
            await reply.wait()
        else:
            with trio.move_on_after(timeout):
                await reply.wait()
            if not reply.is_done:
                raise AskTimeout(f"{self.kind}({self.actor_id!r})", timeout)
        if reply.error is not None:
            raise reply.error
        return reply.value

    async def stop(self) -> None:
        """Stop the actor after the messages already queued; commits what is pending.

        Durable sleeps in progress are cut short: their scopes resume at the next activation,
        as after a crash. A checkpoint; returns when the actor has stopped. Stopping a stopped
        (or passivated) actor does nothing, and does not activate it.
        """
        cell = self._current()
        if cell is None:
            await trio.lowlevel.checkpoint()
            return
        cell.request_stop()
        await cell.stopped.wait()

    def __codec_encode__(self) -> dict[str, str]:
        """A ref's stored form: its actor's kind and id (a ref may travel in messages, events
        and replies)."""
        return {"kind": self.kind, "id": self.actor_id}

    @classmethod
    def __codec_decode__(cls, data: Any) -> ActorRef:
        """A ref from its stored form, bound to the running ``ActorSystem`` that hosts its kind
        (decoded elsewhere, say by the CLI, it compares equal but cannot be used)."""
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str) or \
                not isinstance(data.get("id"), str):
            raise ValueError(f"an actor ref is stored as {{'kind': str, 'id': str}}, got {data!r}")
        kind, actor_id = data["kind"], data["id"]
        bind = binder.get()
        bound = None if bind is None else bind(kind, actor_id)
        if bound is not None:
            return bound
        return cls(kind, actor_id, f"{kind}-{actor_id}", _unbound(kind, actor_id),
                   lambda: None, _NO_STORE)

    def __repr__(self) -> str:
        return f"ActorRef({self.kind}, {self.actor_id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and (self.stream, self.kind) == (
            other.stream, other.kind)

    def __hash__(self) -> int:
        return hash((self.kind, self.stream))


class _NoStore:
    """The store of a ref decoded outside a running system: none."""


_NO_STORE: Any = _NoStore()


def _unbound(kind: str, actor_id: str) -> Callable[[], Target]:
    def resolve() -> Target:
        raise ActorStopped(f"{kind}({actor_id!r})", "this ref was decoded outside a running "
                           "ActorSystem that hosts its kind; get refs from system.ref(...) or "
                           "decode inside the system")
    return resolve
