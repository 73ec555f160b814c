"""Random batches of appends and enqueues whose sides meet, for the backends' batch tests."""

from __future__ import annotations

import random
import uuid
from typing import Any

from eventstore import ANY, EventStore, NewEvent
from eventstore._group_commit import AppendRequest
from eventstore._validate import encode_events
from eventstore._work import KEEP, Side
from eventstore.testing import collect


def side_batch(rng: random.Random, ids: list[uuid.UUID],
               done: list[AppendRequest]) -> list[AppendRequest]:
    """A batch of appends and enqueues whose sides meet: shared ids, inboxes and streams; some
    of them retries of earlier ones (``done``)."""

    def message(target: str) -> tuple[str, Any]:
        [encoded] = encode_events(target, [NewEvent("Msg", {"n": rng.random()},
                                                    id=rng.choice(ids))])
        return target, encoded

    batch = []
    for _ in range(rng.randint(1, 12)):
        stream = rng.choice("abc")
        if done and rng.random() < 0.1:  # a retry
            old = rng.choice(done)
            batch.append(AppendRequest(old.stream, old.events, old.expected, old.side))
            continue
        enqueue = tuple(message(rng.choice("abc")) for _ in range(rng.randint(0, 3)))
        if rng.random() < 0.2:
            batch.append(AppendRequest(stream, [], ANY, Side(enqueue=enqueue or (
                message(stream),))))
            continue
        side = Side(tuple(rng.choice(ids).bytes for _ in range(rng.randint(0, 2))), enqueue,
                    rng.choice([KEEP, KEEP, None, float(rng.randint(1, 9))]))
        events = encode_events(stream, [NewEvent("E", {}) for _ in range(rng.randint(1, 2))])
        batch.append(AppendRequest(stream, events, rng.choice([ANY, ANY, 1, 2, 3]), side))
    done += [request for request in batch if request.events]
    return batch


async def inbox_state(store: EventStore) -> list[Any]:
    return [*[[(m.id, m.data) for m in await collect(store.read_inbox(s))] for s in "abc"],
            await store.work(), [(e.stream, e.version, e.id) for e in await collect(
                store.read_all())]]
