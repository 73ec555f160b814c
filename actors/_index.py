"""The system's view of the work index: which actors next need to run, and when.

The index itself is the store's (``EventStore.work()``): each actor's wake time is written in the
same transaction as its commit, and a message sent to it waits in its inbox, so a restarted
process finds every actor with work. This keeps it in memory with a heap of deadlines, loaded at
start and told of each commit. Logs written before the store had an index kept it in a stream
(``$actors-index``): it is folded too, and moved into the store's index by a system that starts.
"""

from __future__ import annotations

import contextlib
import heapq

from eventstore import EventStore

from ._events import WorkIndexed

WAKE_AHEAD = 0.25
"""Seconds before an actor's deadline at which a system activates it, so that its recovery (a
read of its log and its inbox, queued behind other activations and commits) is over by then and
its own timer fires it on time. An actor is not passivated this close to its next timer."""


class WorkIndex:
    """``stream -> wake_at`` (epoch s; 0 for now) for every actor with work, and its heap."""

    def __init__(self, store: EventStore, legacy_stream: str = "$actors-index") -> None:
        self.store = store
        self.legacy_stream = legacy_stream
        self.wake: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._taken: dict[str, float] = {}  # entries popped for an activation, until it ends

    async def load(self, *, migrate: bool = False) -> None:
        """Read the store's index (and a legacy index stream). A checkpoint.

        With ``migrate``, the legacy stream's entries are written into the store's index and
        the stream is emptied: a read-only caller (the CLI) passes False.
        """
        for entry in await self.store.work():
            wake = 0.0 if entry.waiting else entry.wake_at
            if wake is not None:
                self._set(entry.stream, wake)
        legacy = await self._legacy()
        for stream, wake_at in legacy.items():
            if stream not in self.wake and wake_at is not None:
                self._set(stream, wake_at)
                if migrate:
                    await self.store.set_wake(stream, wake_at)
        if migrate and legacy:
            await self.store.delete_up_to(self.legacy_stream,
                                          await self.store.last_version(self.legacy_stream))

    async def _legacy(self) -> dict[str, float | None]:
        found: dict[str, float | None] = {}
        snapshot = await self.store.load_snapshot(self.legacy_stream)
        start = 1
        if snapshot is not None:
            start = snapshot.version + 1
            for kind, actor_id, wake_at in snapshot.state:
                found[f"{kind}-{actor_id}"] = wake_at
        decode = self.store.codec.decode
        async with contextlib.aclosing(
                self.store.read(self.legacy_stream, from_version=start)) as events:
            async for recorded in events:
                event = decode(recorded)
                if isinstance(event, WorkIndexed):
                    found[f"{event.kind}-{event.actor_id}"] = event.wake_at
        return found

    def changed(self, stream: str, wake_at: float | None) -> None:
        """An actor's commit set its wake time (None: no work)."""
        if self.wake.get(stream) != wake_at:
            self._set(stream, wake_at)

    def _set(self, stream: str, wake_at: float | None) -> None:
        if wake_at is None:
            self.wake.pop(stream, None)
        else:
            self.wake[stream] = wake_at
            heapq.heappush(self._heap, (wake_at, stream))

    def next_due(self) -> tuple[float, str] | None:
        """The earliest live entry (stale heap entries are dropped on the way)."""
        heap = self._heap
        while heap:
            wake_at, stream = heap[0]
            if self.wake.get(stream) == wake_at:
                return wake_at, stream
            heapq.heappop(heap)
        return None

    def rearm(self, stream: str, *, after: float) -> bool:
        """Put back the entry an activation took off the heap, if it is still the stream's and
        due after ``after``; whether it did.

        An activation ahead of its deadline that ends before it (a stop) must leave the entry
        to wake the actor again; any other activation's entry is left off (or was replaced).
        """
        taken = self._taken.pop(stream, None)
        if taken is None or self.wake.get(stream) != taken or taken <= after:
            return False
        heapq.heappush(self._heap, (taken, stream))
        return True

    def pop(self, stream: str, wake_at: float) -> None:
        if self._heap and self._heap[0] == (wake_at, stream):
            heapq.heappop(self._heap)
            self._taken[stream] = wake_at
