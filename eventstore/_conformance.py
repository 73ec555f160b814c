"""The conformance suite's shared parts: its helpers and the base class with the fixture.

``eventstore.testing`` re-exports what users need; the cases live there and in
``_conformance_data``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest

from . import NO_STREAM, EventStore, NewEvent, RecordedEvent


def events(count: int, type: str = "Happened", **data: Any) -> list[NewEvent]:
    """``count`` new events numbered from 1 in their data."""
    return [NewEvent(type, {"n": n, **data}) for n in range(1, count + 1)]


async def collect(iterator: AsyncGenerator[RecordedEvent, None]) -> list[RecordedEvent]:
    """Every event ``iterator`` gives, closing it even if reading fails midway."""
    async with contextlib.aclosing(iterator) as events:
        return [event async for event in events]


def versions(recorded: list[RecordedEvent]) -> list[int]:
    return [event.version for event in recorded]


class ConformanceBase:
    """The ``store`` fixture a backend's subclass provides, and the hooks it may override."""

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        raise NotImplementedError("a conformance subclass provides the store fixture")
        yield

    async def corrupt_event(self, store: EventStore, stream: str, version: int) -> None:
        """Overwrite the stored data of one event with invalid JSON."""
        pytest.skip(f"{type(self).__name__} does not implement corrupt_event")

    async def corrupt_snapshot(self, store: EventStore, stream: str, version: int) -> None:
        """Overwrite the stored state of one snapshot with invalid JSON."""
        pytest.skip(f"{type(self).__name__} does not implement corrupt_snapshot")

    async def filled(self, store: EventStore, stream: str = "s", count: int = 5) -> EventStore:
        await store.append(stream, events(count), expected_version=NO_STREAM)
        return store
