"""Two real processes on one SQLite file race claims and fenced appends for the same streams."""

from __future__ import annotations

import collections
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import trio

import eventstore
from eventstore.sqlite import SQLiteEventStore

SCRIPT = Path(__file__).parent / "scripts" / "cluster_racer.py"
ROUNDS = int(os.environ.get("ACTORS_CLUSTER_RACE_ROUNDS", "150"))


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def create(db: Path) -> None:
    async with SQLiteEventStore(db):
        pass


@pytest.mark.slow
def test_two_processes_racing_claims_never_store_a_stale_fence(tmp_path: Path) -> None:
    db = tmp_path / "cluster.db"
    # Created before the race: two processes creating one new file at once may find it locked
    # while the other switches it to WAL mode.
    trio.run(create, db)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(eventstore.__file__).parent.parent), os.environ.get("PYTHONPATH", "")])}
    children = [subprocess.Popen([sys.executable, str(SCRIPT), str(db), name, str(ROUNDS),
                                  str(tmp_path / f"{name}.json")], env=env,
                                 stderr=subprocess.PIPE, text=True)
                for name in ("one", "two")]
    for child in children:
        _, errors = child.communicate(timeout=300)
        assert child.returncode == 0, errors
    logs = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in ("one", "two")}

    # Every successful claim got a fresh epoch, or kept the one its member held already: per
    # stream, the epochs handed out are 1, 2, ... with none skipped, each of one member, and
    # the owner row holds the newest.
    claimed: dict[str, dict[int, set[str]]] = collections.defaultdict(
        lambda: collections.defaultdict(set))
    for name, log in logs.items():
        for stream, epoch in log["claims"]:
            claimed[stream][epoch].add(name)
    owners = dict(rows(db, "SELECT stream, epoch FROM owners"))
    assert set(owners) == set(claimed)
    for stream, epochs in claimed.items():
        assert sorted(epochs) == list(range(1, len(epochs) + 1)), stream
        assert all(len(names) == 1 for names in epochs.values()), stream
        assert owners[stream] == len(epochs)
    pairs = {(name, stream, epoch) for name, log in logs.items()
             for stream, epoch in log["claims"]}

    # Every stored event was written under a claim its member made, and along each stream's
    # versions the epochs never go down: no stale owner wrote after a newer one.
    events: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    for stream, metadata in rows(db, "SELECT stream, metadata FROM events "
                                     "ORDER BY stream, version"):
        stamp = json.loads(str(metadata))
        events[str(stream)].append((stamp["member"], stamp["epoch"]))
    for stream, stamps in events.items():
        assert all((member, stream, epoch) in pairs for member, epoch in stamps), stream
        epochs = [epoch for _, epoch in stamps]
        assert epochs == sorted(epochs), stream

    # What each process was told is what the file holds.
    stored = {id for log in logs.values() for _, ids in log["stored"] for id in ids}
    fenced = {id for log in logs.values() for _, ids in log["fenced"] for id in ids}
    in_file = {str(uuid.UUID(bytes=bytes(id)))  # type: ignore[arg-type]
               for (id,) in rows(db, "SELECT id FROM events")}
    assert in_file == stored and not fenced & in_file
    # The race happened: both processes claimed, were refused, stored and were fenced.
    for log in logs.values():
        assert log["claims"] and log["stored"] and log["fenced"] and log["refused"]
