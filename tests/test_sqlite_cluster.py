"""The cluster on SQLite beyond the conformance cases: the host's clock, two store objects on
one file (as two processes), the heartbeat's own connection, the inbox watcher."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from eventstore import Claim, EventStoreError, Fenced, NewEvent
from eventstore.sqlite import SQLiteEventStore


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[SQLiteEventStore, SQLiteEventStore]]:
    path = tmp_path / "cluster.db"
    async with SQLiteEventStore(path) as one, SQLiteEventStore(path, poll_interval=0.05) as two:
        yield one, two


async def test_the_database_clock_is_the_hosts(
        pair: tuple[SQLiteEventStore, SQLiteEventStore]) -> None:
    one, _ = pair
    before = time.time()
    now = await one.database_time()
    assert before - 0.01 <= now <= time.time() + 0.01


async def test_claims_and_fences_hold_across_store_objects(
        pair: tuple[SQLiteEventStore, SQLiteEventStore]) -> None:
    one, two = pair
    await one.join("a", lease_seconds=60)
    await two.join("b", lease_seconds=60)
    fence = (await one.claim("s", "a")).fence()
    assert await two.claim("s", "b") == Claim("s", None, "a")
    await one.append("s", [NewEvent("E", {})], fence=fence)
    assert await two.release("s", fence)
    assert await two.claim("s", "b") == Claim("s", 2, "b")
    with pytest.raises(Fenced):
        await one.append("s", [NewEvent("E", {})], fence=fence)
    assert await one.last_version("s") == 1


async def test_a_heartbeat_runs_on_a_thread_of_its_own_and_refuses_once_closed(
        pair: tuple[SQLiteEventStore, SQLiteEventStore]) -> None:
    one, two = pair
    await one.join("a", lease_seconds=60)
    heartbeat = two.heartbeat("a")  # any store object of the file may renew it
    beats = [await trio.to_thread.run_sync(heartbeat.beat) for _ in range(3)]
    assert all(beat is not None for beat in beats) and beats == sorted(beats)
    heartbeat.close()
    with pytest.raises(EventStoreError, match="closed"):
        heartbeat.beat()


async def test_the_inbox_watcher_tells_which_inboxes_got_messages(
        pair: tuple[SQLiteEventStore, SQLiteEventStore]) -> None:
    one, two = pair
    told: list[list[str] | None] = []
    got = trio.Event()

    def tell(streams: list[str] | None) -> None:
        told.append(streams)
        got.set()

    assert two.watch_inboxes(tell)
    await trio.sleep(0.1)  # its first look: what waits already is not news
    await one.enqueue("x", [NewEvent("Msg", {})])
    await one.append("y", [NewEvent("E", {})], enqueue=[("z", NewEvent("Msg", {}))])
    with trio.fail_after(5):
        while sorted(stream for streams in told for stream in streams or ()) != ["x", "z"]:
            got = trio.Event()
            await got.wait()
    assert two.watch_inboxes(None)
    told.clear()
    await one.enqueue("x", [NewEvent("Msg", {})])
    await trio.sleep(0.2)
    assert told == []
