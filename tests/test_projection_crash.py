"""A projection writing to SQL, SIGKILLed at random moments: its read model is a fold of the log.

Scale with ``ACTORS_TEST_PROJECTION_KILLS`` (default 3). Meanwhile this process keeps
appending, so kills land in catch-up and in live mode alike.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import trio
from json_child import JsonChild

from eventstore import NewEvent
from eventstore.sqlite import SQLiteEventStore

CHILD = Path(__file__).parent / "children" / "projector.py"
KILLS = int(os.environ.get("ACTORS_TEST_PROJECTION_KILLS", "3"))


async def append(db: Path, count: int, seed: int) -> None:
    rng = random.Random(seed)
    async with SQLiteEventStore(db, synchronous="NORMAL") as store:
        for _ in range(count // 10):
            batch = [NewEvent("projector.Deposited", {"account": f"a{rng.randrange(12)}",
                                                      "amount": rng.randrange(1, 100)})
                     for _ in range(10)]
            await store.append(f"Account-{rng.randrange(40)}", batch)
            await store.append("noise", [NewEvent("Noise", {"n": 1})])


def fold(db: Path) -> dict[str, tuple[int, int, int]]:
    """The read model the log says: (balance, events, last position) per account."""
    conn = sqlite3.connect(db)
    try:
        model: dict[str, tuple[int, int, int]] = {}
        for data, fields, position in conn.execute(
                "SELECT data, fields, position FROM events JOIN types "
                "ON types.id = events.type WHERE types.name = 'projector.Deposited' "
                "ORDER BY position"):
            event = json.loads(data)
            if fields is not None:  # stored as the array of its values (format 7)
                event = dict(zip(json.loads(fields), event, strict=True))
            balance, count, _ = model.get(event["account"], (0, 0, 0))
            model[event["account"]] = (balance + event["amount"], count + 1, position)
        return model
    finally:
        conn.close()


def table(db: Path) -> dict[str, tuple[int, int, int]]:
    conn = sqlite3.connect(db)
    try:
        return {a: (b, n, last) for a, b, n, last in conn.execute("SELECT * FROM balances")}
    finally:
        conn.close()


@pytest.mark.slow
def test_a_killed_projection_neither_skips_nor_doubles(tmp_path: Path) -> None:
    db = tmp_path / "bank.db"
    trio.run(append, db, 1500, 0)
    rng = random.Random(os.environ.get("ACTORS_TEST_SEED", "projections"))
    starts = []
    for kill in range(KILLS):
        trio.run(append, db, 1000, 2 * kill + 1)  # a backlog to catch up with
        child = JsonChild(CHILD, str(db))
        starts.append(int(child.value("started")))
        live = threading.Thread(target=trio.run, args=(append, db, 100, 2 * kill + 2))
        live.start()  # and live events meanwhile
        time.sleep(rng.uniform(0.0, 0.25))
        child.kill()
        live.join()
    child = JsonChild(CHILD, str(db))
    child.value("started")
    conn = sqlite3.connect(db)
    head = conn.execute("SELECT max(position) FROM events").fetchone()[0]
    conn.close()
    while child.value("caught_up") < head:
        pass
    child.kill()
    assert table(db) == fold(db)
    print(f"\n{KILLS} kills; the projection restarted at offsets {starts}")
    assert starts[0] == 0 and starts == sorted(starts)
