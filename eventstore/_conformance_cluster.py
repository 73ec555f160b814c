"""The conformance cases for members, owners and claims (see ``eventstore._cluster``).

Leases run out on the database's clock, which no test can mock: the cases that need a member to
die join it with a short lease and wait, polling ``members()``, until the store reports it dead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from . import (
    Claim,
    EventStore,
    Fence,
    InvalidArgument,
    MemberInfo,
    NewEvent,
    NotAlive,
)
from ._conformance import ConformanceBase, collect, events

SHORT = 0.2
"""The lease of a member that a case lets die, in seconds."""
LONG = 60.0
"""The lease of a member that stays alive for the whole case."""


def message(n: int) -> NewEvent:
    return NewEvent("Msg", {"n": n})


async def member(store: EventStore, name: str) -> MemberInfo:
    [found] = [info for info in await store.members() if info.id == name]
    return found


async def dead(store: EventStore, name: str) -> None:
    """Wait until ``name``'s lease ran out, on the database clock."""
    with trio.fail_after(10):
        while (await member(store, name)).state != "dead":
            await trio.sleep(SHORT / 4)


async def claimed(store: EventStore, stream: str, name: str) -> Fence:
    claim = await store.claim(stream, name)
    assert claim.claimed, claim
    return claim.fence()


async def waiting(store: EventStore, stream: str) -> list[int]:
    return [m.data["n"] for m in await collect(store.read_inbox(stream))]


class ClusterBase(ConformanceBase):
    """What every cluster case needs: whether the backend coordinates processes.

    A backend that cannot (the memory store) sets ``coordinates`` to False: it must then refuse
    every call with ``InvalidArgument``, and the other cases are skipped.
    """

    coordinates: bool = True

    def cluster(self, store: EventStore) -> None:
        """Skip a case that needs a cluster where there is none."""
        if not self.coordinates:
            pytest.skip(f"{type(self).__name__} does not coordinate processes")
        if not store.coordinates:
            pytest.skip(f"cluster not implemented on {type(store).__name__} yet")


class ClusterConformance(ClusterBase):
    """Members with leases, owner rows with epochs, claims; arguments, checkpoints, refusals
    (fenced writes and due work: ``_conformance_fences``)."""

    # -- members ----------------------------------------------------------------------------------

    async def test_members_join_and_leave(self, store: EventStore) -> None:
        self.cluster(store)
        before = await store.database_time()
        joined = await store.join("m1", lease_seconds=LONG, host="box", pid=42)
        await store.join("m2", lease_seconds=LONG, hosting=False)
        assert before <= joined <= await store.database_time()
        one, two = await store.members()
        assert (one.id, one.host, one.pid, one.hosting, one.lease_seconds, one.state) == (
            "m1", "box", 42, True, LONG, "alive")
        assert (two.id, two.host, two.pid, two.hosting, two.state) == ("m2", "", 0, False,
                                                                       "alive")
        assert one.joined_at.timestamp() == pytest.approx(joined, abs=0.002)
        assert one.joined_at == one.heartbeat_at and one.joined_at.tzinfo is not None
        assert 0 <= one.age < 10 and one.owned == 0
        await store.leave("m1")
        await store.leave("m1")  # idempotent
        await store.leave("never-joined")
        assert [(info.id, info.state) for info in await store.members()] == [
            ("m1", "left"), ("m2", "alive")]
        for name in ("m1", "m2"):  # an id is used once, even after leaving
            with pytest.raises(InvalidArgument, match=f"{name}.*joined before"):
                await store.join(name, lease_seconds=LONG)

    async def test_leaving_releases_every_owned_stream(self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("m1", lease_seconds=LONG)
        await store.join("m2", lease_seconds=LONG)
        for stream in ("a", "b"):
            await claimed(store, stream, "m1")
        await claimed(store, "c", "m2")
        assert (await member(store, "m1")).owned == 2
        await store.leave("m1")
        assert [(row.stream, row.member, row.epoch) for row in await store.owners()] == [
            ("a", None, 1), ("b", None, 1), ("c", "m2", 1)]
        assert (await member(store, "m1")).owned == 0
        assert await store.claim("a", "m2") == Claim("a", 2, "m2")
        with pytest.raises(NotAlive, match="m1"):
            await store.claim("b", "m1")

    async def test_members_report_state_age_and_owned_streams(self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("a-dies", lease_seconds=SHORT)
        await store.join("b-leaves", lease_seconds=LONG)
        await store.join("c-lives", lease_seconds=LONG)
        await claimed(store, "s1", "a-dies")
        await claimed(store, "s2", "c-lives")
        await claimed(store, "s3", "c-lives")
        await store.leave("b-leaves")
        await dead(store, "a-dies")  # reported dead though nobody declared it yet
        infos = await store.members()
        assert [(i.id, i.state, i.owned) for i in infos] == [
            ("a-dies", "dead", 1), ("b-leaves", "left", 0), ("c-lives", "alive", 2)]
        assert infos[0].age >= SHORT and infos[0].lease_seconds == SHORT
        assert infos[0].joined_at <= infos[1].joined_at <= infos[2].joined_at
        assert await store.claim("s1", "c-lives") == Claim("s1", 2, "c-lives")
        assert [(i.id, i.state, i.owned) for i in await store.members()] == [
            ("a-dies", "dead", 0), ("b-leaves", "left", 0), ("c-lives", "alive", 3)]

    async def test_owners_by_member_and_by_stream(self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("m1", lease_seconds=LONG)
        await store.join("m2", lease_seconds=LONG)
        for stream, name in (("b", "m1"), ("a", "m1"), ("c", "m2")):
            await claimed(store, stream, name)
        assert [row.stream for row in await store.owners()] == ["a", "b", "c"]
        assert [row.stream for row in await store.owners(member="m1")] == ["a", "b"]
        assert [row.stream for row in await store.owners(member="nobody")] == []
        assert [row.stream for row in await store.owners(streams=["c", "a", "x"])] == ["a", "c"]
        assert [row.stream for row in await store.owners(member="m1", streams=["c", "a"])
                ] == ["a"]
        assert await store.owners(streams=[]) == []
        [row] = await store.owners(streams=["a"])
        now = await store.database_time()
        assert (row.member, row.epoch) == ("m1", 1)
        assert now - 10 < row.claimed_at.timestamp() <= now + 0.002

    # -- heartbeats ----------------------------------------------------------------------------

    async def test_a_heartbeat_renews_the_lease_until_the_member_is_dead(
            self, store: EventStore) -> None:
        self.cluster(store)
        joined = await store.join("m", lease_seconds=SHORT)
        heartbeat = store.heartbeat("m")
        try:
            await trio.sleep(0.01)
            beat = await trio.to_thread.run_sync(heartbeat.beat)
            assert beat is not None and joined < beat <= await store.database_time()
            assert (await member(store, "m")).heartbeat_at.timestamp() == pytest.approx(
                beat, abs=0.002)
            await dead(store, "m")
            assert await trio.to_thread.run_sync(heartbeat.beat) is None
            assert await trio.to_thread.run_sync(heartbeat.beat) is None  # never comes back
            assert (await member(store, "m")).state == "dead"
            with pytest.raises(NotAlive):
                await store.claim("s", "m")
        finally:
            heartbeat.close()
        heartbeat.close()  # idempotent

    async def test_a_heartbeat_of_a_member_that_left_or_never_joined_renews_nothing(
            self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("m", lease_seconds=LONG)
        await store.leave("m")
        for name in ("m", "nobody"):
            heartbeat = store.heartbeat(name)
            try:
                assert await trio.to_thread.run_sync(heartbeat.beat) is None
            finally:
                heartbeat.close()
        assert [(i.id, i.state) for i in await store.members()] == [("m", "left")]

    # -- claims and epochs ---------------------------------------------------------------------

    async def test_a_claim_takes_a_stream_from_nobody_or_a_dead_member(
            self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("short", lease_seconds=SHORT)
        await store.join("long", lease_seconds=LONG)
        first = await store.claim("s", "short")
        assert first == Claim("s", 1, "short") and first.claimed
        refused = await store.claim("s", "long")
        assert refused == Claim("s", None, "short") and not refused.claimed
        with pytest.raises(InvalidArgument, match="did not succeed"):
            refused.fence()
        await dead(store, "short")
        assert await store.claim("s", "long") == Claim("s", 2, "long")
        with pytest.raises(NotAlive, match="short"):
            await store.claim("s", "short")
        assert await store.claim("other", "long") == Claim("other", 1, "long")

    async def test_claiming_an_owned_stream_again_keeps_its_epoch(self, store: EventStore
                                                                   ) -> None:
        self.cluster(store)
        await store.join("m", lease_seconds=LONG)
        assert [(await store.claim("s", "m")).epoch for _ in range(3)] == [1, 1, 1]
        assert await store.release("s", Fence("m", 1))
        assert (await store.claim("s", "m")).epoch == 2  # released: a new activation

    async def test_epochs_never_go_down(self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("m1", lease_seconds=LONG)
        await store.join("m2", lease_seconds=LONG)
        fence = await claimed(store, "s", "m1")
        assert await store.release("s", fence)
        assert not await store.release("s", fence)  # released already
        [row] = await store.owners(streams=["s"])
        assert (row.member, row.epoch) == (None, 1)
        second = await claimed(store, "s", "m2")
        assert second == Fence("m2", 2)
        assert not await store.release("s", fence)  # a stale fence releases nothing
        assert not await store.release("s", Fence("m2", 1))
        assert not await store.release("other", second)
        assert await store.release("s", second)
        assert await claimed(store, "s", "m1") == Fence("m1", 3)
        await store.leave("m1")
        assert await claimed(store, "s", "m2") == Fence("m2", 4)

    async def test_a_member_that_is_not_alive_claims_nothing(self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("left", lease_seconds=LONG)
        await store.leave("left")
        await store.join("dies", lease_seconds=SHORT)
        await store.enqueue("s", [message(1)])
        await dead(store, "dies")
        for name in ("left", "dies", "never-joined"):
            with pytest.raises(NotAlive, match=name):
                await store.claim("s", name)
            with pytest.raises(NotAlive, match=name):
                await store.claim_due(name, prefixes=["s"], limit=5)
        assert await store.owners() == []

    # -- arguments and checkpoints -------------------------------------------------------------

    async def test_bad_arguments_are_refused_with_what_is_wrong(self, store: EventStore) -> None:
        fence = Fence("m", 1)
        calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("member must be a non-empty", lambda: store.join("", lease_seconds=1)),
            ("member must be a non-empty", lambda: store.join("m" * 101, lease_seconds=1)),
            ("member must be a non-empty", lambda: store.join(7, lease_seconds=1)),  # type: ignore[arg-type]
            ("member", lambda: store.join("a\x00b", lease_seconds=1)),
            ("lease_seconds must be", lambda: store.join("m", lease_seconds=0)),
            ("lease_seconds must be", lambda: store.join("m", lease_seconds=-1)),
            ("lease_seconds must be", lambda: store.join("m", lease_seconds=float("nan"))),
            ("lease_seconds must be", lambda: store.join("m", lease_seconds=float("inf"))),
            ("lease_seconds must be", lambda: store.join("m", lease_seconds=True)),
            ("lease_seconds must be", lambda: store.join("m", lease_seconds="1")),  # type: ignore[arg-type]
            ("host must be", lambda: store.join("m", lease_seconds=1, host=None)),  # type: ignore[arg-type]
            ("pid must be", lambda: store.join("m", lease_seconds=1, pid=-1)),
            ("pid must be", lambda: store.join("m", lease_seconds=1, pid=True)),
            ("member must be", lambda: store.leave("")),
            ("stream", lambda: store.claim("", "m")),
            ("member must be", lambda: store.claim("s", "")),
            ("limit", lambda: store.claim_due("m", prefixes=["a"], limit=0)),
            ("limit", lambda: store.claim_due("m", prefixes=["a"], limit=1.5)),  # type: ignore[arg-type]
            ("slack must be", lambda: store.claim_due("m", prefixes=["a"], limit=1, slack=-1)),
            ("slack must be", lambda: store.claim_due("m", prefixes=["a"], limit=1,
                                                      slack=float("nan"))),
            ("slack must be", lambda: store.claim_due("m", prefixes=["a"], limit=1,
                                                      slack=True)),
            ("prefixes must be a list", lambda: store.claim_due("m", prefixes="abc", limit=1)),
            ("prefixes", lambda: store.claim_due("m", prefixes=["a\x00"], limit=1)),
            ("prefixes.0. must be a non-empty", lambda: store.claim_due("m", prefixes=[""],
                                                                        limit=1)),
            ("fence must be an eventstore.Fence", lambda: store.release("s", None)),  # type: ignore[arg-type]
            ("fence must be an eventstore.Fence", lambda: store.release("s", ("m", 1))),  # type: ignore[arg-type]
            ("fence.member", lambda: store.release("s", Fence("", 1))),
            ("fence.epoch must be", lambda: store.release("s", Fence("m", 0))),
            ("fence.epoch must be", lambda: store.release("s", Fence("m", True))),
            ("stream", lambda: store.release("", fence)),
            ("fence must be an eventstore.Fence",
             lambda: store.append("s", events(1), fence="m"),  # type: ignore[arg-type]
             ),
            ("fence.epoch must be", lambda: store.append("s", events(1), fence=Fence("m", -1))),
            ("fence must be an eventstore.Fence",
             lambda: store.set_wake("s", 1.0, fence=("m", 1)),  # type: ignore[arg-type]
             ),
            ("member must be", lambda: store.owners(member="")),
            ("streams must be a list", lambda: store.owners(streams="abc")),
            ("streams", lambda: store.owners(streams=[""])),
        ]
        for expected, call in calls:
            with pytest.raises(InvalidArgument, match=expected):
                await call()
        with pytest.raises(InvalidArgument, match="member must be"):
            store.heartbeat("")
        assert await collect(store.read("s")) == [] and await store.work() == []
        if store.coordinates:
            assert await store.members() == [] and await store.owners() == []

    async def test_every_cluster_call_is_a_checkpoint(self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("other", lease_seconds=LONG)
        await claimed(store, "taken", "other")
        await store.set_wake("due", 1.0)
        fence = Fence("m", 1)
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: store.join("m", lease_seconds=LONG),
            lambda: store.claim("s", "m"),
            lambda: store.claim("taken", "m"),
            lambda: store.claim_due("m", prefixes=["due"], limit=5),
            lambda: store.claim_due("m", prefixes=["nothing"], limit=5),
            lambda: store.claim_due("m", prefixes=[], limit=5),
            lambda: store.append("s", events(1), fence=fence),
            lambda: store.set_wake("s", 2.0, fence=fence),
            lambda: store.release("s", fence),
            lambda: store.release("s", fence),
            lambda: store.members(),
            lambda: store.owners(),
            lambda: store.owners(streams=[]),
            lambda: store.database_time(),
            lambda: store.leave("m"),
            lambda: store.leave("m"),
        ]
        for call in calls:
            with trio.testing.assert_checkpoints():
                await call()

    # -- a store that cannot coordinate --------------------------------------------------------

    async def test_a_store_without_a_cluster_refuses_every_call(self, store: EventStore) -> None:
        if self.coordinates:
            pytest.skip(f"{type(self).__name__} coordinates processes")
        assert not store.coordinates
        fence = Fence("m", 1)
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: store.join("m", lease_seconds=LONG),
            lambda: store.leave("m"),
            lambda: store.claim("s", "m"),
            lambda: store.claim_due("m", prefixes=["s"], limit=5),
            lambda: store.claim_due("m", prefixes=[], limit=5),
            lambda: store.release("s", fence),
            lambda: store.members(),
            lambda: store.owners(),
            lambda: store.database_time(),
            lambda: store.append("s", events(1), fence=fence),
            lambda: store.append("s", events(1), fence=fence, wake_at=1.0,
                                 enqueue=[("t", message(1))]),
            lambda: store.set_wake("s", 1.0, fence=fence),
        ]
        for call in calls:
            with pytest.raises(InvalidArgument, match="cannot coordinate processes"):
                await call()
        with pytest.raises(InvalidArgument, match="cannot coordinate processes"):
            store.heartbeat("m")
        assert await collect(store.read("s")) == [] and await store.work() == []
