"""The conformance cases for fenced writes and due-work claims (see ``eventstore._cluster``)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from . import Claim, EventStore, Fence, Fenced, WorkEntry
from ._conformance import events
from ._conformance_cluster import LONG, SHORT, ClusterBase, claimed, dead, member, message, waiting


class FenceConformance(ClusterBase):
    """Fenced appends, wake times and retries; ``claim_due``."""

    # -- fenced writes -------------------------------------------------------------------------

    async def test_a_fenced_append_needs_the_current_fence(self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("m1", lease_seconds=LONG)
        await store.join("m2", lease_seconds=LONG)
        first, second = message(1), message(2)
        await store.enqueue("s", [first, second])
        old = await claimed(store, "s", "m1")
        result = await store.append("s", events(2), acknowledge=[first.id], wake_at=10.0,
                                    fence=old)
        assert result.version == 2
        assert await store.release("s", old)
        new = await claimed(store, "s", "m2")
        for stale in (old, Fence("m2", old.epoch), Fence("m1", new.epoch)):
            with pytest.raises(Fenced) as info:
                await store.append("s", events(1), acknowledge=[second.id],
                                   enqueue=[("t", message(3))], wake_at=20.0, fence=stale)
            assert (info.value.stream, info.value.member, info.value.epoch) == (
                "s", stale.member, stale.epoch)
            with pytest.raises(Fenced):
                await store.append("s", events(1), fence=stale, expected_version=2)
        assert await store.last_version("s") == 2  # nothing of them was written
        assert await waiting(store, "s") == [2] and await waiting(store, "t") == []
        assert await store.work() == [WorkEntry("s", 10.0, 1)]
        assert (await store.append("s", events(1), acknowledge=[second.id], fence=new,
                                   expected_version=2)).version == 3
        assert await store.work() == [WorkEntry("s", 10.0, 0)]

    async def test_a_fenced_append_fails_once_its_members_lease_ran_out(
            self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("m", lease_seconds=SHORT)
        fence = await claimed(store, "s", "m")
        await store.append("s", events(1), fence=fence)
        await dead(store, "m")  # nobody claimed the stream since, nobody declared it dead
        with pytest.raises(Fenced):
            await store.append("s", events(1), fence=fence)
        with pytest.raises(Fenced):
            await store.set_wake("s", 5.0, fence=fence)
        assert await store.last_version("s") == 1 and await store.work() == []

    async def test_a_fence_of_a_stream_never_claimed_fails(self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("m", lease_seconds=LONG)
        fence = await claimed(store, "s", "m")
        with pytest.raises(Fenced):
            await store.append("other", events(1), fence=fence)
        assert await store.last_version("other") == 0

    async def test_a_stale_fence_in_a_group_commit_fails_alone(self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("m1", lease_seconds=LONG)
        await store.join("m2", lease_seconds=LONG)
        fences = [await claimed(store, f"s{n}", "m1") for n in range(10)]
        assert await store.release("s0", fences[0])
        await claimed(store, "s0", "m2")
        outcomes: dict[str, Any] = {}

        async def write(stream: str, fence: Fence | None) -> None:
            try:
                outcomes[stream] = await store.append(stream, events(1), fence=fence,
                                                      wake_at=1.0)
            except Fenced as exc:
                outcomes[stream] = exc

        async with trio.open_nursery() as nursery:
            for n in range(10):
                nursery.start_soon(write, f"s{n}", fences[n])
                nursery.start_soon(write, f"u{n}", None)
        assert isinstance(outcomes.pop("s0"), Fenced)
        assert all(result.version == 1 for result in outcomes.values())
        assert await store.last_version("s0") == 0
        assert {entry.stream for entry in await store.work()} == set(outcomes)

    async def test_a_retry_with_a_stale_fence_returns_its_first_result(
            self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("m1", lease_seconds=LONG)
        await store.join("m2", lease_seconds=LONG)
        old = await claimed(store, "s", "m1")
        batch = events(2)
        first = await store.append("s", batch, fence=old)
        await store.release("s", old)
        new = await claimed(store, "s", "m2")
        await store.append("s", events(1), fence=new)
        assert await store.append("s", batch, fence=old) == first
        assert await store.last_version("s") == 3
        with pytest.raises(Fenced):  # a fresh batch with that fence is refused
            await store.append("s", events(1), fence=old)

    async def test_a_fenced_set_wake(self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("m1", lease_seconds=LONG)
        await store.join("m2", lease_seconds=LONG)
        old = await claimed(store, "s", "m1")
        await store.set_wake("s", 5.0, fence=old)
        assert await store.work() == [WorkEntry("s", 5.0, 0)]
        await store.release("s", old)
        new = await claimed(store, "s", "m2")
        for wake_at in (9.0, None):
            with pytest.raises(Fenced):
                await store.set_wake("s", wake_at, fence=old)
        assert await store.work() == [WorkEntry("s", 5.0, 0)]
        await store.set_wake("s", None, fence=new)
        assert await store.work() == []
        assert await store.last_version("s") == 0  # a wake time alone writes no event

    # -- due work ------------------------------------------------------------------------------

    async def test_claim_due_takes_orphaned_due_work_earliest_first(
            self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("me", lease_seconds=LONG)
        await store.join("live", lease_seconds=LONG)
        await store.join("dies", lease_seconds=SHORT)
        now = await store.database_time()
        await store.set_wake("Order-1", now - 100)
        await store.set_wake("Order-2", now + 5)  # due within a slack of 10 seconds
        await store.enqueue("Order-3", [message(1)])  # waiting messages: due at once
        await store.set_wake("Order-4", now - 50)
        await claimed(store, "Order-4", "live")  # served by a live member
        await store.set_wake("Order-5", now - 10)
        await claimed(store, "Order-5", "dies")
        await store.set_wake("Order-6", now + 1000)  # not due
        await store.set_wake("Other-1", now - 1000)  # another prefix
        await claimed(store, "Order-7", "me")  # no work
        await dead(store, "dies")
        assert await store.claim_due("me", prefixes=["Order-"], limit=2) == [
            Claim("Order-3", 1, "me"), Claim("Order-1", 1, "me")]
        assert await store.claim_due("me", prefixes=["Order-"], limit=10) == [
            Claim("Order-5", 2, "me")]  # its own streams are not claimed again
        assert await store.claim_due("me", prefixes=["Order-"], limit=10, slack=10) == [
            Claim("Order-2", 1, "me")]
        assert await store.claim_due("me", prefixes=["Order-"], limit=10, slack=10) == []
        assert await store.claim_due("me", prefixes=["Nothing", "Other-", "Other-1"],
                                     limit=10) == [Claim("Other-1", 1, "me")]
        assert await store.claim_due("me", prefixes=[], limit=10) == []
        assert [(row.stream, row.member) for row in await store.owners(member="live")] == [
            ("Order-4", "live")]
        assert (await member(store, "dies")).state == "dead"

    async def test_claim_due_matches_prefixes_literally(self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("me", lease_seconds=LONG)
        for stream in ("a%1", "ab1", "a_1", "A%1", "%", "b\\1", "bx1"):
            await store.set_wake(stream, 1.0)
        assert {c.stream for c in await store.claim_due("me", prefixes=["a%", "b\\"],
                                                       limit=10)} == {"a%1", "b\\1"}
        assert {c.stream for c in await store.claim_due("me", prefixes=["a_"], limit=10)
                } == {"a_1"}
        assert {c.stream for c in await store.claim_due("me", prefixes=["A", "%"], limit=10)
                } == {"A%1", "%"}

    async def test_claim_due_after_messages_are_consumed(self, store: EventStore) -> None:
        self.cluster(store)
        await store.join("m1", lease_seconds=LONG)
        await store.join("m2", lease_seconds=LONG)
        note = message(1)
        await store.enqueue("s", [note])
        [claim] = await store.claim_due("m1", prefixes=["s"], limit=5)
        await store.append("s", events(1), acknowledge=[note.id], fence=claim.fence())
        await store.release("s", claim.fence())
        assert await store.claim_due("m2", prefixes=["s"], limit=5) == []  # nothing due
