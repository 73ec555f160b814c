"""Fixtures of the reliability suite: a real, empty store of each embedded kind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventstore import EventStore
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore


@pytest.fixture(params=["memory", "sqlite"])
async def inner(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    """A real, empty store (memory or a SQLite file) for a ``FaultyStore`` to wrap."""
    store: EventStore
    if request.param == "memory":
        store = MemoryEventStore()
    else:
        store = SQLiteEventStore(tmp_path / "events.db")
    async with store:
        yield store
