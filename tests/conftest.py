"""Shared fixtures: the PostgreSQL server for the tests that need one, and trio's mock clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
import trio.testing
from postgres_server import postgres_reason

from eventstore import EventStore
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore

# The suite starts many child Pythons (the CLI, samples, members killed on purpose). With
# PYTHONDONTWRITEBYTECODE set in the environment, each would compile the library from source
# again; let them write and reuse bytecode caches (in __pycache__, which git ignores).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    """pytest-trio's fixture, jumping once the loop has idled a millisecond rather than at once.

    At a threshold of 0 trio polls for I/O without waiting, so while a store's thread commits
    the loop spins (and holds the GIL the thread needs): a test on SQLite ran 6x slower.
    """
    return trio.testing.MockClock(autojump_threshold=0.001)


@pytest.fixture
def eager_clock() -> trio.testing.MockClock:
    """Jumps as soon as the loop idles: for memory-store tests with thousands of jumps, where
    no thread runs and each millisecond of waiting would add up."""
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The PostgreSQL server's URL, or a skip that says why there is none."""
    url, reason = postgres_reason()
    if url is None:
        if os.environ.get("ACTORS_REQUIRE_POSTGRES"):
            pytest.fail(f"ACTORS_REQUIRE_POSTGRES is set but {reason}")
        pytest.skip(reason)
    yield url


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
async def postgres_schema(postgres_url: str) -> AsyncIterator[str]:
    """A fresh schema name for one test, dropped afterwards, so runs never see each other."""
    name = f"t_{uuid.uuid4().hex}"
    yield name
    await trio.to_thread.run_sync(drop_schema, postgres_url, name)


@pytest.fixture
async def postgres_store(postgres_url: str, postgres_schema: str) -> AsyncIterator[EventStore]:
    from eventstore.postgres import PostgresEventStore

    async with PostgresEventStore(postgres_url, schema=postgres_schema) as store:
        yield store


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    """Each backend in turn, empty: for suites that must hold on every store."""
    if request.param == "memory":
        async with MemoryEventStore() as store:
            yield store
    elif request.param == "sqlite":
        async with SQLiteEventStore(tmp_path / "events.db") as store:
            yield store
    else:
        from eventstore.postgres import PostgresEventStore

        url = request.getfixturevalue("postgres_url")
        schema = f"t_{uuid.uuid4().hex}"
        try:
            async with PostgresEventStore(url, schema=schema) as store:
                yield store
        finally:
            await trio.to_thread.run_sync(drop_schema, url, schema)


@pytest.fixture(params=["sqlite", "postgres"])
async def store_pair(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[tuple[EventStore, EventStore]]:
    """Two stores on one database, as two processes would open it, on each shared backend."""
    if request.param == "sqlite":
        path = tmp_path / "events.db"
        async with SQLiteEventStore(path) as one, SQLiteEventStore(path) as two:
            yield one, two
    else:
        from eventstore.postgres import PostgresEventStore

        url = request.getfixturevalue("postgres_url")
        schema = f"t_{uuid.uuid4().hex}"
        try:
            async with PostgresEventStore(url, schema=schema) as one, PostgresEventStore(
                    url, schema=schema) as two:
                yield one, two
        finally:
            await trio.to_thread.run_sync(drop_schema, url, schema)
