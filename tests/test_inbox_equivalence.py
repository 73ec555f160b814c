"""Inboxes and the work index on every backend give what the reference (memory) backend gives.

Random sequences of enqueues, appends that acknowledge, enqueue and set wake times (some of them
retries, some with a wrong expected version, some sending a message to their own stream or an id
they acknowledge), and ``set_wake``, one at a time; then every outcome, every inbox (ids and
data, in order) and ``work()`` are compared with the memory store's. Sequence numbers are only
compared by order: a backend may leave gaps.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest

from eventstore import EventStore, EventStoreError, NewEvent
from eventstore.memory import MemoryEventStore
from eventstore.testing import collect

STREAMS = ["a", "b", "c"]


def script(seed: int, steps: int = 60) -> list[tuple[str, dict[str, Any]]]:
    """Operations, with every id drawn from a small pool so that ids meet again."""
    rng = random.Random(seed)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(12)]
    done: list[dict[str, Any]] = []
    operations: list[tuple[str, dict[str, Any]]] = []
    for step in range(steps):
        kind = rng.choice(["enqueue", "append", "append", "append", "retry", "wake"])
        stream = rng.choice(STREAMS)
        if kind == "enqueue":
            operations.append((kind, {"stream": stream, "messages": [
                (rng.choice(ids), step * 10 + k) for k in range(rng.randint(1, 3))]}))
        elif kind == "wake":
            operations.append((kind, {"stream": stream, "wake_at": rng.choice(
                [None, float(rng.randint(1, 9))])}))
        elif kind == "retry" and done:
            operations.append(("append", rng.choice(done)))
        else:
            arguments = {
                "stream": stream,
                "events": [uuid.UUID(int=rng.getrandbits(128))
                           for _ in range(rng.randint(1, 2))],
                "expected": rng.choice([None, None, 0, 1, 2]),
                "acknowledge": rng.sample(ids, rng.randint(0, 3)),
                "enqueue": [(rng.choice(STREAMS), rng.choice(ids), step * 10 + k)
                            for k in range(rng.randint(0, 3))],
                "wake_at": rng.choice(["keep", "keep", None, float(rng.randint(1, 9))]),
            }
            done.append(arguments)
            operations.append(("append", arguments))
    return operations


async def run(store: EventStore, operations: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    seen: list[Any] = []
    for kind, a in operations:
        try:
            if kind == "enqueue":
                await store.enqueue(a["stream"], [NewEvent("Msg", {"n": n}, id=id)
                                                  for id, n in a["messages"]])
                seen.append("ok")
            elif kind == "wake":
                await store.set_wake(a["stream"], a["wake_at"])
                seen.append("ok")
            else:
                extra: dict[str, Any] = {} if a["wake_at"] == "keep" else {
                    "wake_at": a["wake_at"]}
                if a["expected"] is not None:
                    extra["expected_version"] = a["expected"]
                result = await store.append(
                    a["stream"], [NewEvent("E", {}, id=id) for id in a["events"]],
                    acknowledge=a["acknowledge"],
                    enqueue=[(target, NewEvent("Msg", {"n": n}, id=id))
                             for target, id, n in a["enqueue"]], **extra)
                seen.append((result.version, result.position))
        except EventStoreError as exc:
            seen.append(type(exc).__name__)
    everywhere: list[tuple[int, str, uuid.UUID]] = []
    for stream in STREAMS:
        inbox = await collect(store.read_inbox(stream))
        seen.append((stream, [(m.id, m.type, m.data) for m in inbox]))
        everywhere += [(m.position, stream, m.id) for m in inbox]
        assert all(m.version == m.position for m in inbox)
    assert len({position for position, _, _ in everywhere}) == len(everywhere)
    seen.append([(stream, id) for _, stream, id in sorted(everywhere)])  # commit order
    seen.append(await store.work())
    seen.append([(e.stream, e.version, e.id) for e in await collect(store.read_all())])
    return seen


@pytest.mark.parametrize("seed", range(6))
async def test_inboxes_behave_as_the_memory_store_does(any_store: EventStore, seed: int) -> None:
    operations = script(seed)
    async with MemoryEventStore() as memory:
        expected = await run(memory, operations)
    assert await run(any_store, operations) == expected
