"""``PostgresEventStore``'s connection helpers: the thread that turns ``LISTEN`` into wake-ups,
and checks of a connection's state."""

from __future__ import annotations

import contextlib
import json
import select
from collections.abc import Callable

import psycopg
import trio
from psycopg import sql

from ._errors import EventStoreError
from ._postgres_sql import Conn
from ._watcher import Watcher


class Listener(Watcher):
    """A thread that ``LISTEN``s on the store's channel and wakes local subscribers.

    It reconnects after a lost connection (subscribers keep polling meanwhile) and wakes them
    after each (re)connect, since an event may have been committed while nobody listened; for
    the same reason it tells ``inboxes`` then that any inbox may have messages (None).
    """

    def __init__(self, connect: Callable[[], Conn], channel: str, token: str,
                 wake: Callable[[], None], retry_after: float,
                 inboxes: Callable[[list[str] | None], None] | None = None) -> None:
        self._connect = connect
        self._channel = channel
        self._token = token
        self._wake = wake
        self.inboxes = inboxes
        """Told of the inboxes another process stored messages in (None: unknown which)."""
        self._retry_after = retry_after
        super().__init__(self._listen, f"LISTEN {channel}")

    def wake_up(self, conn: Conn) -> None:
        """Send a notification (with our own token, so it wakes no one) to end the wait at once."""
        with contextlib.suppress(psycopg.Error):  # if so, it stops at its next timeout
            conn.execute("SELECT pg_notify(%s, %s)", (self._channel, self._token))

    def _listen(self) -> None:
        listen = sql.SQL("LISTEN {}").format(sql.Identifier(self._channel))
        while not self.stopping.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(listen)
                    self._signal()
                    # Whatever was notified while nobody listened is lost: every inbox may have
                    # a message now.
                    self._tell_inboxes(None)
                    while not self.stopping.is_set():
                        for note in conn.notifies(timeout=1.0):
                            if self.stopping.is_set():
                                break
                            token, _, targets = note.payload.partition(" ")
                            if token != self._token:
                                self._signal()
                                if targets and self.inboxes is not None:
                                    self._tell_inboxes(targets)
                        self._signal(ignore)  # stops the thread if trio.run has ended
            except (psycopg.Error, EventStoreError):
                self.stopping.wait(self._retry_after)

    def _tell_inboxes(self, targets: str | None) -> None:
        streams: list[str] | None = None  # unknown which
        with contextlib.suppress(ValueError):
            found = None if targets is None else json.loads(targets)
            if isinstance(found, list) and all(isinstance(name, str) for name in found):
                streams = found
        hook = self.inboxes
        if hook is not None:
            try:
                self.trio_token.run_sync_soon(hook, streams)
            except trio.RunFinishedError:
                self.stopping.set()

    def _signal(self, callback: Callable[[], None] | None = None) -> None:
        try:
            self.trio_token.run_sync_soon(callback or self._wake)
        except trio.RunFinishedError:
            self.stopping.set()


def aborted(conn: Conn) -> bool:
    """Whether the server rolled back the transaction on ``conn`` after an error in it."""
    return not (conn.broken or conn.closed) and (
        conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR)


def hung_up(conn: Conn) -> bool:
    """Whether an idle connection has something to read: the server said goodbye (or notified)."""
    if hasattr(select, "poll"):  # select() fails on descriptors above FD_SETSIZE
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    return bool(readable)


def ignore() -> None:
    pass


def describe_error(exc: BaseException) -> str:
    """An exception as one line of text (its type name if it says nothing)."""
    return " ".join(str(exc).split()) or type(exc).__name__
