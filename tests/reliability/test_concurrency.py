"""Two processes writing the same streams of one SQLite file, with a subscriber watching.

Every conflict is a ``WrongExpectedVersion`` (anything else makes a child fail), no update is
lost, global positions strictly increase, and a subscriber running throughout sees every event
exactly once, in order. ``ACTORS_APPENDS`` sets the appends per task (default 40).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import trio
from workload_child import COUNTERS

from eventstore import RecordedEvent
from eventstore.sqlite import SQLiteEventStore

APPENDS = int(os.environ.get("ACTORS_APPENDS", "40"))
CHILD = Path(__file__).with_name("workload_child.py")


async def run_children(mode: str, db: Path, *args: str) -> list[dict[str, Any]]:
    """Run two children (tags a and b) at once; their JSON outputs."""
    outputs: dict[str, dict[str, Any]] = {}

    async def run(tag: str) -> None:
        done = await trio.run_process([sys.executable, str(CHILD), mode, str(db), tag, *args],
                                      capture_stdout=True, capture_stderr=True, check=False)
        assert done.returncode == 0, done.stderr.decode()
        outputs[tag] = json.loads(done.stdout)

    async with trio.open_nursery() as nursery:
        for tag in "ab":
            nursery.start_soon(run, tag)
    return [outputs["a"], outputs["b"]]


async def test_racing_appends_from_two_processes_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    async with SQLiteEventStore(db, poll_interval=0.05) as store:
        seen: list[RecordedEvent] = []
        total = trio.Event()
        expected = 0

        async def subscriber() -> None:
            async for event in store.subscribe():
                seen.append(event)
                if total.is_set() and len(seen) >= expected:
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(subscriber)
            outputs = await run_children("append", db, "4", str(APPENDS))
            acknowledged = [ack for output in outputs for ack in output["acknowledged"]]
            expected = len(acknowledged)
            total.set()
            with trio.fail_after(30):
                while len(seen) < expected:
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
        log = [event async for event in store.read_all()]

    assert expected == 2 * 4 * APPENDS
    assert sum(output["conflicts"] for output in outputs) > 0  # the writers did race
    positions = [event.position for event in log]
    assert positions == sorted(set(positions))
    assert [event.position for event in seen] == positions  # every event once, in order
    by_place = {(event.stream, event.version): event for event in log}
    assert len(by_place) == len(log) == len(acknowledged)  # nothing written but what was acked
    for stream, version, position, writer, n in acknowledged:
        event = by_place[stream, version]
        assert (event.position, event.data["writer"], event.data["n"]) == (position, writer, n)
    for stream in COUNTERS:
        events = [event for event in log if event.stream == stream]
        # Each write read the version before it, and its counter is that version: no lost update.
        assert [(e.version, e.data["read"], e.data["value"]) for e in events] == [
            (v, v - 1, v) for v in range(1, len(events) + 1)]


async def test_one_actor_run_by_two_processes_loses_no_acknowledged_turn(
        tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    async with SQLiteEventStore(db):
        pass  # the schema, before the children race to open the file
    outputs = await run_children("race", db, str(APPENDS))
    async with SQLiteEventStore(db) as store:
        log = [event async for event in store.read("tally-shared")]
    acknowledged = {key: version for output in outputs for key, version in output["acknowledged"]}
    assert len(acknowledged) == 2 * APPENDS
    assert sum(output["stopped"] for output in outputs) > 0  # the processes did race
    assert [event.version for event in log] == list(range(1, len(log) + 1))
    keys = [event.data["key"] for event in log]
    assert sorted(keys) == sorted(acknowledged)  # each acknowledged turn once, nothing else
    assert all(keys[version - 1] == key for key, version in acknowledged.items())
