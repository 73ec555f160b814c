from collections.abc import AsyncIterator

import pytest

from eventstore import EventStore
from eventstore.memory import MemoryEventStore
from eventstore.testing import StoreConformance


class TestMemoryStore(StoreConformance):
    coordinates = False  # it lives in one process: it refuses the cluster

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        async with MemoryEventStore() as store:
            yield store

    async def corrupt_event(self, store: EventStore, stream: str, version: int) -> None:
        assert isinstance(store, MemoryEventStore)
        row = next(r for r in store._streams[stream].rows if r.version == version)
        bad = type(row.event)(row.event.type, "{not json", row.event.metadata, row.event.id)
        object.__setattr__(row, "event", bad)

    async def corrupt_snapshot(self, store: EventStore, stream: str, version: int) -> None:
        assert isinstance(store, MemoryEventStore)
        _, recorded_at = store._snapshots[stream][version]
        store._snapshots[stream][version] = ("{not json", recorded_at)
