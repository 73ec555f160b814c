"""A cluster's promises, with two members in one process on one store (each member its own store
object, as two processes would have): routing from any member, one owner at a time, fenced
commits of a member that lost its lease, passivation and leaving hand actors over, a dead
member's timers fire elsewhere, a projection runs on one member at a time.

The multi-process harness with real kills and pauses is ``test_cluster_faults.py``.
"""

from __future__ import annotations

import contextlib
import datetime
import math
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio

import actors
import eventstore
from actors import ActorSystem, Cluster
from eventstore import EventStore, Fenced
from eventstore.memory import MemoryEventStore

LEASE = 1.0
FAST = Cluster(lease_seconds=LEASE, poll_seconds=0.1, heartbeat_seconds=0.2)


@eventstore.event_type("cluster_test.Added")
@attrs.frozen
class Added:
    n: int


@eventstore.event_type("cluster_test.Rang")
@attrs.frozen
class Rang:
    token: str
    due: float
    at: float


@attrs.define
class Counter(actors.Actor):
    kind = "Counter"

    total: int = 0

    def apply(self, event: Any) -> None:
        if isinstance(event, Added):
            self.total += event.n

    async def receive(self, message: Any) -> Any:
        match message:
            case "get":
                return self.total
            case "boom":
                raise ValueError("boom")
            case ("ring", seconds):
                at = actors.durable.now() + datetime.timedelta(seconds=seconds)
                self.notifier.notify_at(at, str(at.timestamp()))
                return at.timestamp()
            case int(n):
                self.emit(Added(n))
                return self.total
        raise ValueError(f"unknown message {message!r}")

    async def on_notify(self) -> None:
        now = await actors.durable.now.aio()
        for token in self.notifier.due(now):
            self.emit(Rang(token, float(token), now.timestamp()))


@pytest.fixture
def pair(store_pair: tuple[EventStore, EventStore]) -> tuple[EventStore, EventStore]:
    """Two store objects on one database (SQLite, PostgreSQL), as two processes open it."""
    if not store_pair[0].coordinates:
        pytest.skip(f"{type(store_pair[0]).__name__} does not coordinate a cluster yet")
    return store_pair


@contextlib.asynccontextmanager
async def member(store: EventStore, cluster: Cluster = FAST, **options: Any
                 ) -> AsyncIterator[ActorSystem]:
    async with ActorSystem(store, actors=[Counter], cluster=cluster, **options) as system:
        yield system


async def events_of(store: EventStore, stream: str) -> list[eventstore.RecordedEvent]:
    return [event async for event in store.read(stream)]


# -- arguments --------------------------------------------------------------------------------


async def test_a_memory_store_refuses_a_cluster_with_a_clear_error() -> None:
    async with MemoryEventStore() as store:
        with pytest.raises(actors.InvalidActorArgument, match="cannot coordinate a cluster"):
            ActorSystem(store, actors=[Counter], cluster=Cluster())
        with pytest.raises(eventstore.InvalidArgument, match="cannot coordinate processes"):
            await store.join("m", lease_seconds=1)
        with pytest.raises(eventstore.InvalidArgument, match="cannot coordinate processes"):
            await store.append("s", [eventstore.NewEvent("E", 1)],
                               fence=eventstore.Fence("m", 1))


@pytest.mark.parametrize("options, message", [
    ({"lease_seconds": 0}, "lease_seconds"),
    ({"lease_seconds": math.inf}, "lease_seconds"),
    ({"lease_seconds": 2, "heartbeat_seconds": 2}, "shorter than the lease"),
    ({"poll_seconds": -1}, "poll_seconds"),
    ({"claim_batch": 0}, "claim_batch"),
    ({"max_recoveries": 1.5}, "max_recoveries"),
])
def test_cluster_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(actors.InvalidActorArgument, match=message):
        Cluster(**options)


async def test_a_member_runs_on_the_wall_clock(postgres_store: EventStore) -> None:
    with pytest.raises(actors.InvalidActorArgument, match="wall clock"):
        ActorSystem(postgres_store, actors=[Counter], cluster=Cluster(),
                    clock=actors.VirtualClock())


async def test_a_system_outside_the_cluster_refuses_to_start_beside_it(
        pair: tuple[EventStore, EventStore]) -> None:
    one, two = pair
    async with member(one):
        with pytest.raises(actors.InvalidActorArgument, match="served by a cluster"):
            async with ActorSystem(two, actors=[Counter]):
                pass
    async with ActorSystem(two, actors=[Counter]) as alone:  # once it left: fine
        assert await alone.ref(Counter, "c").ask(1) == 1


# -- routing and ownership --------------------------------------------------------------------


async def test_any_member_reaches_an_actor_and_one_member_owns_it(
        pair: tuple[EventStore, EventStore]) -> None:
    one, two = pair
    async with member(one) as a, member(two) as b:
        assert a.member != b.member
        assert await a.ref(Counter, "c").ask(5) == 5  # claimed by a
        with trio.fail_after(10):
            assert await b.ref(Counter, "c").ask(7) == 12  # through its inbox
            b.ref(Counter, "c").tell(1)
            await b.ref(Counter, "c").send(2, message_id="s-1")
            await b.ref(Counter, "c").send(2, message_id="s-1")  # a resend: once
            assert await b.ref(Counter, "c").ask("get") == 15
            assert await b.ref(Counter, "c").ask(10, message_id="x") == 25
            assert await b.ref(Counter, "c").ask(10, message_id="x") == 25  # recorded reply
        [owner] = await one.owners()
        assert (owner.stream, owner.member, owner.epoch) == ("Counter-c", a.member, 1)
        assert (a.active, b.active) == (1, 0)
    log = await events_of(one, "Counter-c")
    assert [event.version for event in log] == list(range(1, len(log) + 1))
    assert {(event.metadata["member"], event.metadata["epoch"]) for event in log} == {
        (a.member, 1)}
    assert sum(event.data["n"] for event in log if event.type == "cluster_test.Added") == 25


async def test_a_remote_ask_whose_handler_fails_raises_at_the_asker(
        pair: tuple[EventStore, EventStore]) -> None:
    one, two = pair
    async with member(one) as a, member(two) as b:
        await a.spawn(Counter, "c")
        with trio.fail_after(10), pytest.raises(actors.CallFailed, match="ValueError: boom"):
            await b.ref(Counter, "c").ask("boom")
        with trio.fail_after(10):
            assert await b.ref(Counter, "c").ask(1) == 1  # the actor goes on


async def test_a_member_that_lost_its_lease_never_commits(
        pair: tuple[EventStore, EventStore]) -> None:
    """A's heartbeat stops (as if paused); B claims the actor after the lease. A, which may
    still hold the actor in memory, never commits for it again: its ask either fails (its
    commit was fenced) or, once A found out and rejoined, goes to B. A rejoins under a new id."""
    one, two = pair
    async with member(one) as a, member(two) as b:
        stale = a.ref(Counter, "c")
        assert await stale.ask(1) == 1
        first = a.member
        assert a._hosting is not None
        await a._hosting.member.stop_beating()  # A no longer renews its lease
        await trio.sleep(LEASE + 0.3)
        with trio.fail_after(10):
            assert await b.ref(Counter, "c").ask(10) == 11  # B claimed it: epoch 2
        try:
            late = await stale.ask(100)
        except actors.ActorStopped:
            late = None  # A's commit was fenced: not answered as a success
        assert late in (None, 111)
        with trio.fail_after(10):
            while a.member == first:  # A finds out, and rejoins under a new id
                await trio.sleep(0.05)
        with trio.fail_after(10):
            assert await a.ref(Counter, "c").ask("get") == (11 if late is None else 111)
    log = await events_of(one, "Counter-c")
    added = [(event.data["n"], event.metadata["member"], event.metadata["epoch"])
             for event in log if event.type == "cluster_test.Added"]
    assert added[:2] == [(1, first, 1), (10, b.member, 2)]
    assert added[2:] == ([] if late is None else [(100, b.member, 2)])
    epochs = [event.metadata["epoch"] for event in log]
    assert epochs == sorted(epochs)
    assert {event.metadata["member"] for event in log if event.metadata["epoch"] == 1} == {first}


async def test_a_stale_fence_fails_alone_in_a_group_commit(
        pair: tuple[EventStore, EventStore]) -> None:
    one, _ = pair
    await one.join("m1", lease_seconds=30)
    old = (await one.claim("s", "m1")).fence()
    await one.release("s", old)
    new = (await one.claim("s", "m1")).fence()
    assert (old.epoch, new.epoch) == (1, 2)
    results: dict[str, Any] = {}

    async def append(name: str, stream: str, fence: eventstore.Fence | None) -> None:
        try:
            results[name] = await one.append(stream, [eventstore.NewEvent("E", name)],
                                             fence=fence)
        except Fenced as exc:
            results[name] = exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(append, "stale", "s", old)
        nursery.start_soon(append, "fresh", "s", new)
        nursery.start_soon(append, "other", "t", None)
    assert isinstance(results["stale"], Fenced)
    assert results["fresh"].version == 1 and results["other"].version == 1
    assert [event.data for event in await events_of(one, "s")] == ["fresh"]


async def test_passivation_releases_the_actor_and_keeps_its_epoch(
        pair: tuple[EventStore, EventStore]) -> None:
    one, two = pair
    async with member(one, idle_timeout=0.2) as a, member(two) as b:
        await a.ref(Counter, "c").ask(1)
        with trio.fail_after(10):  # released after its final commit, once it stopped
            while a.active or (await one.owners())[0].member is not None:
                await trio.sleep(0.05)
        [row] = await one.owners()
        assert (row.member, row.epoch) == (None, 1)
        with trio.fail_after(10):
            assert await b.ref(Counter, "c").ask(2) == 3
        [row] = await one.owners()
        assert (row.member, row.epoch) == (b.member, 2)


async def test_a_leaving_member_hands_its_actors_over_at_once(
        pair: tuple[EventStore, EventStore]) -> None:
    one, two = pair
    slow = Cluster(lease_seconds=30, poll_seconds=0.1)  # a lease nobody waits out here
    async with member(two, slow) as b:
        async with member(one, slow) as a:
            await a.ref(Counter, "c").ask(1)
            gone = a.member
        with trio.fail_after(5):
            assert await b.ref(Counter, "c").ask(2) == 3
        states = {m.id: m.state for m in await two.members()}
        assert states[gone] == "left"


async def test_a_dead_members_timer_fires_elsewhere_once_and_never_early(
        pair: tuple[EventStore, EventStore]) -> None:
    one, two = pair
    async with member(two) as b:
        async with member(one) as a:
            assert a._hosting is not None
            due = await a.ref(Counter, "c").ask(("ring", 0.5))
            # A dies: it stops beating and never leaves (its stop commits nothing more).
            await a._hosting.member.stop_beating()
            a._hosting.leave = _nothing  # type: ignore[method-assign]
        with trio.fail_after(10):
            while True:
                log = await events_of(one, "Counter-c")
                if any(event.type == "cluster_test.Rang" for event in log):
                    break
                await trio.sleep(0.1)
        await trio.sleep(0.5)
    log = await events_of(one, "Counter-c")
    rang = [event for event in log if event.type == "cluster_test.Rang"]
    assert len(rang) == 1
    assert rang[0].metadata["member"] == b.member
    assert rang[0].recorded_at.timestamp() >= due  # the database's clock: never early
    assert rang[0].data["at"] >= rang[0].data["due"]


async def _nothing() -> None:
    await trio.lowlevel.checkpoint()


async def test_the_clock_offset_to_the_database_is_measured(
        pair: tuple[EventStore, EventStore]) -> None:
    one, _ = pair
    async with member(one) as a:
        assert isinstance(a.clock, actors._cluster.CorrectedClock)
        with trio.fail_after(10):
            while a.clock.offset is None:  # measured by the member's first heartbeat
                await trio.sleep(0.01)
        ours = a.clock.time()
        theirs = await one.database_time()
        assert ours <= theirs < ours + 0.1  # never ahead of the database's clock; close to it


# -- projections --------------------------------------------------------------------------------


@attrs.define
class Totals(actors.Projection):
    name = "totals"
    types = [Added]
    seen: list[tuple[int, str]] = attrs.field(factory=list)

    async def handle(self, event: Any, recorded: eventstore.RecordedEvent) -> None:
        self.seen.append((recorded.position, recorded.metadata["member"]))


async def test_a_projection_runs_on_one_member_at_a_time_and_fails_over(
        pair: tuple[EventStore, EventStore]) -> None:
    one, two = pair
    first, second = Totals(), Totals()
    async with ActorSystem(two, actors=[Counter], cluster=FAST, projections=[second]) as b:
        async with ActorSystem(one, actors=[Counter], cluster=FAST,
                               projections=[first]) as a:
            runners = [a.projection("totals"), b.projection("totals")]
            with trio.fail_after(10):
                while sorted(r.state for r in runners) != ["elsewhere", "live"]:
                    await trio.sleep(0.05)
            for n in range(3):
                await a.ref(Counter, "c").ask(n)
            with trio.fail_after(10):
                while len(first.seen) + len(second.seen) < 3:
                    await trio.sleep(0.05)
        # a left: b takes the projection over and handles what follows
        for n in range(3):
            await b.ref(Counter, "c").ask(n)
        with trio.fail_after(10):
            while len(first.seen) + len(second.seen) < 6:
                await trio.sleep(0.05)
    positions = sorted(p for p, _ in first.seen + second.seen)
    assert positions == sorted(set(positions))  # nothing twice
    assert len(positions) == 6
