"""Honest turn outcomes under real faults: what an ask was told is what the log holds.

Actors on PostgreSQL answer asks while another connection runs ``pg_terminate_backend`` on the
store's connections every few milliseconds, and actors on SQLite answer asks while the disk is
full (``PRAGMA max_page_count``). Invariant, checked from the log alone: every ask that
succeeded is in the log exactly once, and every ask that failed left nothing there. An ask may
also end in ``ActorStopped`` saying the outcome is unknown; only those are allowed either way.
"""

from __future__ import annotations

import os
import random
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

import actors
import eventstore
from actors import replay
from eventstore.sqlite import SQLiteEventStore

ACTORS = 10
ASKS = int(os.environ.get("ACTORS_OUTCOME_ASKS", "30"))


@eventstore.event_type("tests.outcomes.Noted")
@attrs.frozen
class Noted:
    n: int


@attrs.define
class Ledger(actors.Actor):
    kind = "Ledger"
    notes: list[int] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        self.notes.append(event.n)

    async def receive(self, message: Any) -> Any:
        self.emit(Noted(message))
        return len(self.notes)


@attrs.define
class Outcomes:
    ok: dict[str, list[int]] = attrs.Factory(dict)
    failed: dict[str, list[int]] = attrs.Factory(dict)
    unknown: dict[str, list[int]] = attrs.Factory(dict)


async def drive(system: actors.ActorSystem, outcomes: Outcomes, asks: int,
                base: int = 0) -> None:
    """Each actor gets ``asks`` asks with distinct values (from ``base`` on); sort each by
    what it was told."""

    async def one(actor: int) -> None:
        key = f"a{actor}"
        ref = system.ref(Ledger, key)
        for n in range(asks):
            value = actor * 10_000 + base + n
            try:
                await ref.ask(value)
            except actors.ActorStopped as exc:
                bucket = outcomes.unknown if "unknown" in exc.reason else outcomes.failed
                bucket.setdefault(key, []).append(value)
            except eventstore.EventStoreError:
                outcomes.failed.setdefault(key, []).append(value)
            else:
                outcomes.ok.setdefault(key, []).append(value)

    async with trio.open_nursery() as nursery:
        for actor in range(ACTORS):
            nursery.start_soon(one, actor)


async def check(store: eventstore.EventStore, outcomes: Outcomes) -> int:
    """The log agrees with every answer; returns how many notes the logs hold."""
    held = 0
    for actor in range(ACTORS):
        key = f"a{actor}"
        notes = [store.codec.decode(r).n async for r in store.read(f"Ledger-{key}")
                 if r.type.endswith("Noted")]
        held += len(notes)
        assert len(notes) == len(set(notes)), f"{key}: a turn was appended twice"
        assert set(outcomes.ok.get(key, [])) <= set(notes), f"{key}: an answered ask is lost"
        assert not set(outcomes.failed.get(key, [])) & set(notes), \
            f"{key}: an ask was told it failed, yet its event is in the log"
        state = await replay.state_at(store, Ledger, key)
        assert state.notes == notes
    return held


@pytest.mark.slow
async def test_killed_postgres_connections_never_misreport_a_turn(
        postgres_url: str, postgres_schema: str) -> None:
    import psycopg
    from psycopg.conninfo import make_conninfo

    from eventstore.postgres import PostgresEventStore

    name = f"outcomes-{uuid.uuid4().hex[:12]}"  # the killer touches our connections only
    outcomes = Outcomes()
    async with PostgresEventStore(make_conninfo(postgres_url, application_name=name),
                                  schema=postgres_schema) as store:
        kills = 0

        async def killer(done: trio.Event) -> None:
            nonlocal kills
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                while not done.is_set():
                    rows = await trio.to_thread.run_sync(lambda: conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = %s", (name,)).fetchall())
                    kills += len(rows)
                    await trio.sleep(random.uniform(0.005, 0.03))

        async with actors.ActorSystem(store, actors=[Ledger]) as system:
            done = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(killer, done)
                await drive(system, outcomes, ASKS)
                done.set()
        held = await check(store, outcomes)
    answered = sum(map(len, outcomes.ok.values()))
    print(f"{answered} answered, {sum(map(len, outcomes.failed.values()))} failed, "
          f"{sum(map(len, outcomes.unknown.values()))} unknown, {held} held, {kills} kills")
    assert kills > 0 and answered > 0


@pytest.mark.slow
async def test_a_full_disk_never_misreports_a_turn(tmp_path: Path) -> None:
    path = tmp_path / "full.db"
    outcomes = Outcomes()
    async with SQLiteEventStore(path) as store:
        async with actors.ActorSystem(store, actors=[Ledger]) as system:
            await drive(system, outcomes, 3)  # warm up: every actor has a log
            writer = store._writer
            assert writer is not None
            pages = writer.execute("PRAGMA page_count").fetchone()[0]
            writer.execute(f"PRAGMA max_page_count = {pages + 2}")
            full = Outcomes()
            await drive(system, full, ASKS, base=100)
            writer.execute("PRAGMA max_page_count = 1073741823")
            await drive(system, outcomes, 3, base=1000)  # they go on once there is room
        for bucket in ("ok", "failed", "unknown"):
            for key, values in getattr(full, bucket).items():
                getattr(outcomes, bucket).setdefault(key, []).extend(values)
        await check(store, outcomes)
    assert sum(map(len, full.failed.values())) > 0  # the disk did fill up
    assert not outcomes.unknown
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
