"""The work index: which actors next need to run and when, kept as a stream in the store.

Cells report changes around their commits (earlier work before, later work after), so a crash
leaves at worst an entry that is too early: the actor is activated, finds nothing, and
re-indexes. The index is folded at system start from its newest snapshot and the tail.
"""

from __future__ import annotations

import contextlib
import heapq

from eventstore import EventStore

from ._events import WorkIndexed

Key = tuple[str, str]


class WorkIndex:
    """``(kind, actor_id) -> wake_at`` for every actor with work, and a heap of deadlines."""

    SNAPSHOT_EVERY = 1000

    def __init__(self, store: EventStore, stream: str) -> None:
        self.store = store
        self.stream = stream
        self.wake: dict[Key, float] = {}
        self._heap: list[tuple[float, Key]] = []
        self._since_snapshot = 0
        self._version = 0

    async def load(self) -> None:
        """Fold the index stream (from its snapshot) into memory. A checkpoint."""
        snapshot = await self.store.load_snapshot(self.stream)
        if snapshot is not None:
            self._version = snapshot.version
            for kind, actor_id, wake_at in snapshot.state:
                self._set((kind, actor_id), wake_at)
        decode = self.store.codec.decode
        async with contextlib.aclosing(
                self.store.read(self.stream, from_version=self._version + 1)) as events:
            async for recorded in events:
                event = decode(recorded)
                if isinstance(event, WorkIndexed):
                    self._set((event.kind, event.actor_id), event.wake_at)
                self._version = recorded.version

    async def update(self, kind: str, actor_id: str, wake_at: float | None) -> None:
        """Record that the actor next needs to run at ``wake_at`` (None: no work)."""
        key = (kind, actor_id)
        before = self.wake.get(key)
        if before == wake_at:
            return
        event = self.store.codec.new_event(WorkIndexed(kind, actor_id, wake_at))
        # Set before the append: a snapshot taken while it is in flight then holds it (at worst
        # too early, which only wakes the actor for nothing) instead of missing it.
        self._set(key, wake_at)
        try:
            result = await self.store.append(self.stream, [event])
        except BaseException:
            self._set(key, before)
            raise
        self._version = max(self._version, result.version)
        self._since_snapshot += 1
        if self._since_snapshot >= self.SNAPSHOT_EVERY:
            self._since_snapshot = 0
            state = [[k, i, w] for (k, i), w in self.wake.items()]
            await self.store.save_snapshot(self.stream, self._version, state)

    def _set(self, key: Key, wake_at: float | None) -> None:
        if wake_at is None:
            self.wake.pop(key, None)
        else:
            self.wake[key] = wake_at
            heapq.heappush(self._heap, (wake_at, key))

    def next_due(self) -> tuple[float, Key] | None:
        """The earliest live entry (stale heap entries are dropped on the way)."""
        heap = self._heap
        while heap:
            wake_at, key = heap[0]
            if self.wake.get(key) == wake_at:
                return wake_at, key
            heapq.heappop(heap)
        return None

    def pop(self, key: Key, wake_at: float) -> None:
        if self._heap and self._heap[0] == (wake_at, key):
            heapq.heappop(self._heap)
