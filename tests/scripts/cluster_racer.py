"""A cluster member racing another process: ``python cluster_racer.py DB MEMBER ROUNDS OUT``.

It joins as MEMBER, waits until a second member has joined, then runs four tasks that each, ROUNDS
times, claim a random stream of ``STREAMS``, append to one of the last streams it claimed with that
claim's fence (often stale: the other process, or another task of this one, claimed it since),
and release its newest claim half the time. Each event's metadata stamps the fence it was written
with. It writes what happened to OUT as JSON: the claims that succeeded (stream, epoch), and the
event ids of the appends that were stored and of those that were fenced.
"""

from __future__ import annotations

import json
import os
import random
import sys
from typing import Any

import trio

from eventstore import Fence, Fenced, NewEvent
from eventstore.sqlite import SQLiteEventStore

STREAMS = 6
TASKS = 4


async def race(path: str, name: str, rounds: int) -> dict[str, Any]:
    log: dict[str, Any] = {"claims": [], "stored": [], "fenced": [], "refused": 0}
    async with SQLiteEventStore(path, synchronous="NORMAL") as store:
        await store.join(name, lease_seconds=120, host="test", pid=os.getpid())
        with trio.fail_after(60):
            while len(await store.members()) < 2:
                await trio.sleep(0.01)

        async def task(seed: int) -> None:
            rng = random.Random(seed)
            held: list[tuple[str, Fence]] = []
            for _ in range(rounds):
                stream = f"s{rng.randrange(STREAMS)}"
                claim = await store.claim(stream, name)
                if claim.claimed:
                    log["claims"].append([stream, claim.epoch])
                    held.append((stream, claim.fence()))
                else:
                    log["refused"] += 1
                if not held:
                    continue
                target, fence = rng.choice(held[-3:])
                batch = [NewEvent("Wrote", {}, {"member": fence.member, "epoch": fence.epoch})
                         for _ in range(rng.randint(1, 2))]
                try:
                    await store.append(target, batch, fence=fence)
                    log["stored"].append([target, [str(event.id) for event in batch]])
                except Fenced:
                    log["fenced"].append([target, [str(event.id) for event in batch]])
                if rng.random() < 0.5:
                    await store.release(*held[-1])

        async with trio.open_nursery() as nursery:
            for n in range(TASKS):
                nursery.start_soon(task, hash((name, n)))
    return log


def main() -> None:
    path, name, rounds, out = sys.argv[1:]
    log = trio.run(race, path, name, int(rounds))
    with open(out, "w") as file:
        json.dump(log, file)


if __name__ == "__main__":
    main()
