"""A member's claims of one actor by two paths, and an actor that stops broken: never stranded.

An actor owned by a live member is served by that member only (nobody else may claim it), so a
member must never keep the ownership of an actor it does not serve. Both tests run one member
on PostgreSQL and make the store say which member owns the actor.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio

import actors
import eventstore
from eventstore import EventStore, NewEvent

pytestmark = pytest.mark.postgres


@eventstore.event_type("tests.cluster_hosting.Added")
@attrs.frozen
class Added:
    n: int


@attrs.define
class Counter(actors.Actor):
    kind = "Counter"
    total: int = 0

    def apply(self, event: Any) -> None:
        self.total += event.n

    async def receive(self, message: Any) -> Any:
        self.emit(Added(message))
        return self.total


CLUSTER = actors.Cluster(lease_seconds=2.0, poll_seconds=0.2)


async def test_a_cell_started_during_a_claim_goes_on_under_the_newer_epoch(
        postgres_store: EventStore) -> None:
    store = postgres_store
    async with actors.ActorSystem(store, actors=[Counter], cluster=CLUSTER) as system:
        hosting = system._hosting
        assert hosting is not None and system.member is not None
        key = ("Counter", "c1")
        due = await store.claim("Counter-c1", system.member)  # a claim of due work, epoch 1
        claim = store.claim
        claims: list[eventstore.Claim] = []

        async def claim_while_due_work_starts(stream: str, member: str) -> Any:
            mine = await claim(stream, member)  # from this member itself: its epoch stays
            claims.append(mine)
            hosting.start(key, due)  # the due work's claim started the cell meanwhile
            return mine

        store.claim = claim_while_due_work_starts  # type: ignore[method-assign]
        cell = await hosting.locate(key)
        store.claim = claim  # type: ignore[method-assign]
        with trio.fail_after(5):
            assert await system.ref(Counter, "c1").ask(5) == 5  # not fenced
        assert isinstance(cell, actors._cell.Cell) and cell.journal.fence is not None
        assert cell.journal.fence.epoch == claims[0].epoch == 1
        [event] = [e async for e in store.read("Counter-c1") if e.type.endswith("Added")]
        assert event.metadata["epoch"] == 1


async def test_an_actor_that_stops_broken_is_released(postgres_store: EventStore) -> None:
    store = postgres_store
    async with actors.ActorSystem(store, actors=[Counter], cluster=CLUSTER) as system:
        ref = system.ref(Counter, "c1")
        with trio.fail_after(5):
            assert await ref.ask(1) == 1
        [owner] = await store.owners(streams=["Counter-c1"])
        assert owner.member == system.member
        # Another writer under the same fence: the actor loses a version race and stops.
        await store.append("Counter-c1", [NewEvent("tests.cluster_hosting.Added", {"n": 1})],
                           fence=eventstore.Fence(system.member, owner.epoch))
        with pytest.raises(actors.ActorStopped), trio.fail_after(5):
            await ref.ask(1)
        with trio.fail_after(5):
            while (await store.owners(streams=["Counter-c1"]))[0].member is not None:
                await trio.sleep(0.02)  # released: the next message gets it claimed again
        with trio.fail_after(5):
            assert await ref.ask(1) == 3
