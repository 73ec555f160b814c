"""Reaching an actor that another member owns: through its inbox in the store.

A ``Remote`` stands for such an actor on this member. ``tell`` and ``send`` store the message in
its inbox (a ``tell`` in the background, in order, batched; a ``send`` before it returns); the
owner is woken by the store (``LISTEN/NOTIFY`` on PostgreSQL) or by its poll. An ``ask`` is a
message that asks for its reply to be recorded: the owner records it in its log
(``ReplyRecorded``, or ``DeadLettered`` if the turn failed), and ``Replies``, one subscription to
the global log per member, hands it to the waiting asker.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

import attrs
import trio

from eventstore import EventStore, NewEvent

from ._errors import AskTimeout, CallFailed
from ._events import DeadLettered, ReplyRecorded
from ._inbox import REPLY, encode_message

if TYPE_CHECKING:
    from ._system import ActorSystem

log = logging.getLogger("actors")


@attrs.define(eq=False)
class _Out:
    """A message on its way to the inbox."""

    stored: NewEvent
    done: trio.Event | None  # None: a tell, nobody waits
    error: BaseException | None = None


@attrs.define(eq=False)
class _Waiting:
    done: trio.Event = attrs.field(factory=trio.Event)
    value: Any = None
    error: BaseException | None = None


class Replies:
    """The replies remote asks wait for: one subscription to the global log per member."""

    def __init__(self, store: EventStore, nursery: trio.Nursery) -> None:
        self.store = store
        self._nursery = nursery
        self._waiting: dict[tuple[str, str], list[_Waiting]] = {}
        self._started = False
        self._starting = trio.Lock()

    async def expect(self, stream: str, message_id: str) -> _Waiting:
        """Register an asker before its message is stored (so its reply cannot be missed)."""
        async with self._starting:
            if not self._started:
                head = await self.store.head_position()
                await self._nursery.start(self._watch, head)
                self._started = True
        waiting = _Waiting()
        self._waiting.setdefault((stream, message_id), []).append(waiting)
        return waiting

    def forget(self, stream: str, message_id: str, waiting: _Waiting) -> None:
        found = self._waiting.get((stream, message_id))
        if found is not None:
            with contextlib.suppress(ValueError):
                found.remove(waiting)
            if not found:
                del self._waiting[(stream, message_id)]

    async def _watch(self, after: int, *, task_status: trio.TaskStatus[None]) -> None:
        decode = self.store.codec.decode
        task_status.started()
        while True:
            try:
                async with contextlib.aclosing(self.store.subscribe(
                        after_position=after,
                        types=["actors.ReplyRecorded", "actors.DeadLettered"])) as events:
                    async for recorded in events:
                        after = recorded.position
                        if not self._waiting:
                            continue
                        event = decode(recorded)
                        message_id = getattr(event, "message_id", None)
                        if message_id is None:
                            continue
                        found = self._waiting.pop((recorded.stream, message_id), None)
                        for waiting in found or ():
                            if isinstance(event, ReplyRecorded):
                                waiting.value = self.store.codec.decode_value(event.value)
                            else:
                                assert isinstance(event, DeadLettered)
                                waiting.error = CallFailed(recorded.stream, event.error)
                            waiting.done.set()
            except Exception as exc:
                log.warning("reading replies failed (%r); reading again", exc)
                await trio.sleep(0.5)


class Remote:
    """An actor owned by another member, reached through its inbox."""

    telemetry = None
    closing = False

    def __init__(self, system: ActorSystem, stream: str, owner: str | None) -> None:
        self.system = system
        self.stream = stream
        self.owner = owner
        self.expires = trio.current_time() + system.remote_ttl
        self._queue: list[_Out] = []
        self._flushing = False
        self._drained = trio.Event()
        self._drained.set()

    def can_inline(self) -> bool:
        return False

    @property
    def busy(self) -> bool:
        """Whether messages to it are on their way to the inbox."""
        return self._flushing

    def poke(self) -> None:
        """Its owner is woken by the store."""

    def tell(self, message: Any, message_id: str | None, reply: Any) -> None:
        """Store ``message`` in the actor's inbox in the background (in order with this
        member's other messages to it); a failure is logged. Not a checkpoint."""
        assert reply is None, "a remote ask goes through Remote.ask"
        stored = encode_message(self.system.store.codec, self.stream, message, message_id, None)
        self._put(_Out(stored, None))

    async def send(self, stored: NewEvent) -> None:
        """Store ``stored`` in the inbox, after this member's earlier messages to it."""
        out = _Out(stored, trio.Event())
        self._put(out)
        assert out.done is not None
        await out.done.wait()
        if out.error is not None:
            raise out.error

    async def drained(self) -> None:
        """Wait until no message of this member is on its way to the inbox."""
        await self._drained.wait()

    def _put(self, out: _Out) -> None:
        self._queue.append(out)
        if not self._flushing:
            self._flushing = True
            self._drained = trio.Event()
            self.system.background(self._flush)

    async def _flush(self) -> None:
        store = self.system.store
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:  # (a resend in the same batch is stored once)
                    await store.enqueue(self.stream, [out.stored for out in batch])
                except Exception as exc:
                    if any(out.done is None for out in batch):
                        log.warning("telling %s failed: %r; the message(s) told are lost (tell "
                                    "is only as durable as this write: use send)", self.stream,
                                    exc)
                    for out in batch:
                        out.error = exc
                for out in batch:
                    if out.done is not None:
                        out.done.set()
        finally:
            self._flushing = False
            self._drained.set()

    async def ask(self, message: Any, timeout: float | None, message_id: str | None) -> Any:
        """Store ``message`` with a request for its reply, and wait for the reply recorded in
        the actor's log. A resend with the same ``message_id`` gets the same reply."""
        system = self.system
        message_id = message_id or f"ask-{uuid.uuid4()}"
        stored = encode_message(system.store.codec, self.stream, message, message_id, None)
        stored.metadata[REPLY] = True
        waiting = await system.replies.expect(self.stream, message_id)
        try:
            await self.send(stored)
            if timeout is None:
                await waiting.done.wait()
            else:
                with trio.move_on_after(timeout):
                    await waiting.done.wait()
                if not waiting.done.is_set():
                    raise AskTimeout(self.stream, timeout)
        finally:
            system.replies.forget(self.stream, message_id, waiting)
        if waiting.error is not None:
            raise waiting.error
        return waiting.value
