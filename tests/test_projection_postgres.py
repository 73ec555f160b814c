"""On PostgreSQL, four writers race while a projection runs live: it never skips or repeats."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import trio

import actors
from eventstore import NewEvent, RecordedEvent
from eventstore.postgres import PostgresEventStore

pytestmark = pytest.mark.postgres


class Seen(actors.Projection):
    """Every event once: a second insert of a position fails (primary key), so a repeat would
    stop the projection instead of passing unnoticed."""

    name = "seen"
    types = None
    batch_size = 13
    max_attempts = 2
    backoff = 0.01

    def __init__(self) -> None:
        self.positions: list[int] = []

    async def setup(self, tx: actors.Transaction) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS seen (position bigint PRIMARY KEY, "
                   "stream text NOT NULL, version bigint NOT NULL)")

    async def handle_batch(self, batch: list[tuple[Any, RecordedEvent]],
                           tx: actors.Transaction) -> None:
        for _, recorded in batch:
            self.positions.append(recorded.position)
            tx.execute("INSERT INTO seen VALUES (%s, %s, %s)",
                       (recorded.position, recorded.stream, recorded.version))


async def test_four_racing_writers_while_a_projection_runs_live(
        postgres_url: str, postgres_schema: str) -> None:
    per_writer, batches = 60, 3
    seen = Seen()

    async def writer(n: int) -> None:
        async with PostgresEventStore(postgres_url, schema=postgres_schema) as store:
            for i in range(per_writer):
                await store.append(f"w{n}-{i % 5}", [NewEvent("Tick", {"n": n, "i": i, "k": k})
                                                     for k in range(1 + i % batches)])

    async with PostgresEventStore(postgres_url, schema=postgres_schema,
                                  poll_interval=0.05) as store:
        # The events' type has no class here: hand the projection the recorded events.
        store.codec.decode = lambda recorded: recorded  # type: ignore[method-assign,assignment]
        async with trio.open_nursery() as nursery:
            runner = await nursery.start(actors.run_projection, store, seen)
            async with trio.open_nursery() as writers:
                for n in range(4):
                    writers.start_soon(writer, n)
            head = await store.head_position()
            with trio.fail_after(30):
                await runner.wait_for(head)
            nursery.cancel_scope.cancel()
        log = [(e.position, e.stream, e.version) async for e in store.read_all()]
    assert runner.error is None
    assert len(log) == 4 * sum(1 + i % batches for i in range(per_writer))
    assert seen.positions == [p for p, _, _ in log]  # in order, none skipped, none twice

    def table() -> list[tuple[Any, ...]]:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            return conn.execute(
                f'SELECT * FROM "{postgres_schema}".seen ORDER BY position').fetchall()

    assert await trio.to_thread.run_sync(table) == log
