"""Replay from SQLite folds stored rows (``RowPage``): the same steps as from any store.

The reader thread decodes each row's event into its class; a step builds its ``RecordedEvent``
only when read. Whatever path a row takes, the steps, their events, states and recorded events
are those of a replay from a memory store, and a corrupt row fails where it did.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

import actors
import eventstore
from actors import replay
from actors.replay import ReplayError, Step
from eventstore import DecodeError, EventStore
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore
from eventstore.testing import collect

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
from golden_actors import Charged, Subscription  # noqa: E402 - the golden module's one name

STREAM = "Subscription-alice"


@eventstore.event_type("test.rows.Noted")
@attrs.frozen
class Noted:
    text: str = attrs.field(validator=attrs.validators.min_len(1))  # no typed decoder


@attrs.define
class Tally(actors.Actor):
    kind = "Tally"

    total: int = 0
    notes: list[str] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        match event:
            case Charged(amount=amount):
                self.total += amount
            case Noted(text=text):
                self.notes.append(text)


async def _golden(store: EventStore) -> None:
    with (GOLDEN / "subscription.jsonl").open() as lines:
        await replay.import_jsonl(store, lines)


async def _mixed(store: EventStore) -> None:
    """Typed events, events with metadata, events of a class without a typed decoder."""
    codec = store.codec
    for n in range(12):
        await store.append("Tally-t", [
            codec.new_event(Charged(n, n, 0.0)),
            codec.new_event(Charged(n, 1, 0.0), metadata={"n": n}),
            codec.new_event(Noted(f"note {n}")),
        ])


async def _seen(store: EventStore, cls: type[Any], actor_id: str,
                **versions: Any) -> list[tuple[Any, ...]]:
    return [(step.version, step.event, step.state.snapshot(), step.recorded)
            async for step in replay.steps(store, cls, actor_id, **versions)]


@pytest.mark.parametrize("fill, cls, actor_id", [(_golden, Subscription, "alice"),
                                                 (_mixed, Tally, "t")])
async def test_steps_from_sqlite_are_the_steps_from_memory(tmp_path: Path, fill: Any,
                                                           cls: type[Any], actor_id: str) -> None:
    memory = MemoryEventStore(page_size=3)
    await fill(memory)
    async with SQLiteEventStore(tmp_path / "rows.db", page_size=3) as sqlite:
        await fill(sqlite)
        for versions in ({}, {"from_version": 5}, {"from_version": 2, "to_version": 13},
                         {"to_version": 1}, {"from_version": 99}):
            expected = await _seen(memory, cls, actor_id, **versions)
            got = await _seen(sqlite, cls, actor_id, **versions)
            assert [row[:3] for row in got] == [row[:3] for row in expected], versions
            # The recorded events are the store's own (positions and times are its own).
            stored = {event.version: event for event in await collect(sqlite.read(
                f"{cls.kind}-{actor_id}"))}
            assert [row[3] for row in got] == [stored[row[0]] for row in got]
            assert [row[3].data for row in got] == [row[3].data for row in expected]


async def test_a_step_builds_its_recorded_event_when_read(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "rows.db") as store:
        await _mixed(store)
        [read] = await collect(store.read("Tally-t", from_version=4, to_version=4))
        steps = [step async for step in replay.steps(store, Tally, "t")]
        step = steps[3]
        assert type(replay._held(step)) is tuple  # not built yet
        assert step.version == 4
        assert type(replay._held(step)) is tuple  # the version alone builds nothing
        assert step.recorded == read and step.recorded.id == read.id
        assert step.recorded is step.recorded  # built once
        assert step == Step(read, step.event, step.state)
        assert "version=5" in repr(steps[4]) and attrs.evolve(steps[5]).recorded.version == 6
        assert all(s.recorded.type == r.type for s, r in zip(
            steps, await collect(store.read("Tally-t")), strict=True))


async def test_a_class_named_again_mid_replay_decodes_into_the_new_class(tmp_path: Path) -> None:
    @attrs.frozen
    class Again:
        month: int
        amount: int
        at: float

    async with SQLiteEventStore(tmp_path / "rows.db", page_size=2) as store:
        await _mixed(store)
        types = []
        async with contextlib.aclosing(replay.steps(store, Tally, "t")) as steps:
            async for step in steps:
                types.append(type(step.event))
                if step.version == 4:  # the next page is being read ahead, the typed way
                    store.codec.register(Again, "golden.Charged")
        assert types[:4] == [Charged, Charged, Noted, Charged]
        assert set(types[5:]) == {Again, Noted}


async def test_a_class_named_again_within_a_page_decodes_into_the_new_class(
        tmp_path: Path) -> None:
    @attrs.frozen
    class Again:
        month: int
        amount: int
        at: float

    async with SQLiteEventStore(tmp_path / "rows.db") as store:  # one page
        await _mixed(store)
        await collect(replay.steps(store, Tally, "t"))  # the codec knows the classes
        types = []
        async for step in replay.steps(store, Tally, "t"):
            types.append(type(step.event))
            if step.version == 4:
                store.codec.register(Again, "golden.Charged")
        assert types[:4] == [Charged, Charged, Noted, Charged]
        assert set(types[4:]) == {Again, Noted}


def _corrupt(path: Path, version: int, assignment: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(f"UPDATE events SET {assignment} WHERE version = ?", (version,))


@pytest.mark.parametrize("assignment, message", [
    ("id = x'00'", "is not a UUID"),
    ("data = '{\"month\": 1,'", "stored JSON is invalid"),
    ("recorded_at = 253402300800000000", "out of range"),
    # Stored positionally (format 7): the values of month, amount and at.
    ("data = '[\"x\", 1, 0.0]'", "data does not fit Charged"),
    ("data = '[1, 0.0]'", "does not fit its type's fields"),
])
async def test_a_corrupt_row_fails_the_replay_at_its_version(tmp_path: Path, assignment: str,
                                                             message: str) -> None:
    path = tmp_path / "rows.db"
    async with SQLiteEventStore(path, page_size=2) as store:
        await _mixed(store)
    _corrupt(path, 7, assignment)
    async with SQLiteEventStore(path, page_size=2) as store:
        versions = []
        with pytest.raises(DecodeError, match=message) as caught:
            async for step in replay.steps(store, Tally, "t"):
                versions.append(step.version)
        assert versions == [1, 2, 3, 4, 5, 6]
        assert caught.value.version == 7


async def test_a_gap_in_the_rows_is_a_replay_error(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "rows.db", page_size=2) as store:
        await _golden(store)
        await store.delete_up_to(STREAM, 12)
        steps = [s.version async for s in replay.steps(store, Subscription, "alice",
                                                       from_version=16)]
        assert steps == [16, 17, 18, 19]
        with pytest.raises(ReplayError, match="holds version 13 where version 1 should follow"):
            async for _ in replay.steps(store, Subscription, "alice"):
                pass
