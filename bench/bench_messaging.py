"""Idempotent messages: an ``ask`` with a ``message_id`` against a plain ``ask``.

Both sides run the same actor on the same SQLite store, each turn emitting one event; the
idempotent side also records its reply (``ReplyRecorded``) in the same commit. Without a peer:
the memory each remembered message id costs an actor (tracemalloc, per id).
"""

from __future__ import annotations

import shutil
import tempfile
import tracemalloc
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

import actors
import eventstore
from actors import ReplyRecorded
from actors._replies import Replies
from eventstore.sqlite import SQLiteEventStore

from ._harness import Report, measure, paired, scaled

BENCHMARK = "messaging"
QUICK = "ask with a message_id against a plain ask, 100 actors, 1 event each, SQLite"


@eventstore.event_type("bench.messaging.Counted")
@attrs.frozen
class Counted:
    n: int


@attrs.define
class Counter(actors.Actor):
    kind = "Counter"
    count: int = 0

    def apply(self, event: Counted) -> None:
        self.count += 1

    async def receive(self, message: Any) -> int:
        self.emit(Counted(message))
        return self.count


def asks_per_second(path: Path, count: int, each: int, with_ids: bool) -> float:
    """Asks per second: ``count`` actors asked ``each`` times, concurrently across actors."""

    async def main() -> float:
        run = uuid.uuid4().hex[:8]
        async with SQLiteEventStore(path) as store, trio.open_nursery() as nursery:
            refs = [await actors.spawn(nursery, Counter, f"{run}-{n}", store=store)
                    for n in range(count)]

            async def drive(ref: actors.ActorRef) -> None:
                for n in range(each):
                    await ref.ask(n, message_id=f"{ref.actor_id}-{n}" if with_ids else None)

            started = trio.current_time()
            async with trio.open_nursery() as drivers:
                for ref in refs:
                    drivers.start_soon(drive, ref)
            elapsed = trio.current_time() - started
            nursery.cancel_scope.cancel()
        return count * each / elapsed

    result: float = trio.run(main)
    return result


def bytes_per_remembered_id(ids: int) -> float:
    """What ``ids`` recorded replies (an int each, ids like ``order-123456``) hold in memory."""
    replies = Replies()
    events = [ReplyRecorded(f"order-{n}", n, float(n)) for n in range(ids)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for event in events:
        replies.fold(event)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / ids  # the events themselves are not counted: the fold keeps ids


def run(report: Report, *, quick: bool = False) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-messaging-"))
    try:
        path = root / "ours.db"
        each = scaled(50)
        pair = paired(partial(asks_per_second, path, 100, each, True),
                      partial(asks_per_second, path, 100, each, False))
        report.row(BENCHMARK, "ask with a message_id, 100 actors, 1 event per turn", pair,
                   "asks/s", peer="plain ask, same actors and store", target=">= 0.7x")
        if not quick:
            ids = scaled(1_000_000)
            report.row(BENCHMARK, f"memory per remembered message id ({ids} ids)",
                       measure(partial(bytes_per_remembered_id, ids), repeats=1), "B/id")
    finally:
        shutil.rmtree(root, ignore_errors=True)
