"""A cluster member in a process of its own, for the red-team tests that kill or pause it.

``python redteam_cluster_member.py URL SCHEMA ACTOR``: joins the cluster on PostgreSQL (lease
1 s), claims ``Tally(ACTOR)`` by asking it once, prints ``READY <member id>``, then tells it a
slow message (its handler sleeps 1 s before it emits ``Tallied(100)``) and waits to be killed.
"""

from __future__ import annotations

import sys
from typing import Any

import attrs
import trio

import actors
import eventstore
from eventstore.postgres import PostgresEventStore


@eventstore.event_type("redteam_cluster.Tallied")
@attrs.frozen
class Tallied:
    n: int


@attrs.define
class Tally(actors.Actor):
    kind = "tally"

    total: int = 0

    def apply(self, event: Any) -> None:
        self.total += event.n

    async def receive(self, message: Any) -> Any:
        if message == "get":
            return self.total
        if message == "slow":
            await trio.sleep(1.0)
            self.emit(Tallied(100))
            return self.total
        self.emit(Tallied(int(message)))
        return self.total


CLUSTER = actors.Cluster(lease_seconds=1.0, poll_seconds=0.1, heartbeat_seconds=0.2)


async def main(url: str, schema: str, actor: str) -> None:
    async with PostgresEventStore(url, schema=schema) as store, actors.ActorSystem(
            store, actors=[Tally], cluster=CLUSTER) as system:
        ref = system.ref(Tally, actor)
        await ref.ask(1)
        print("READY", system.member, flush=True)
        ref.tell("slow")
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:4])
