"""ActorSystem: virtual actors, passivation, graceful shutdown, re-activation through the index."""

from __future__ import annotations

import gc
import sys
import weakref
from datetime import datetime, timedelta
from typing import Any, cast

import attrs
import pytest
import trio
import trio.testing

import actors
import eventstore
from actors import durable
from actors._actor_class import kind_of
from actors._gc import _freeze_survivors
from actors._turn import Turn
from eventstore.memory import MemoryEventStore


@eventstore.event_type("test_system.Added")
@attrs.frozen
class Added:
    amount: int


@eventstore.event_type("test_system.Stepped")
@attrs.frozen
class Stepped:
    step: int
    at: float


activations: dict[str, int] = {}


@attrs.define
class Counter(actors.Actor):
    total: int = 0

    def apply(self, event: Any) -> None:
        self.total += event.amount

    async def on_start(self) -> None:
        activations[self.id] = activations.get(self.id, 0) + 1

    async def receive(self, message: Any) -> Any:
        if message:
            self.emit(Added(message))
        return self.total


@attrs.define
class Worker(actors.Actor):
    """Its run() takes two steps an hour apart (durable time), then finishes."""

    steps: list[int] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        self.steps.append(event.step)

    async def on_start(self) -> None:
        activations[f"worker-{self.id}"] = activations.get(f"worker-{self.id}", 0) + 1

    async def run(self) -> None:
        # The same durable calls in the same order on every execution: re-runs replay them.
        started = await durable.time.aio()
        if not self.steps:
            self.emit(Stepped(1, started))
            await self.flush()
        await durable.sleep.aio(3600)
        self.emit(Stepped(2, await durable.time.aio()))

    async def receive(self, message: Any) -> Any:
        return list(self.steps)


@pytest.fixture(autouse=True)
def _reset_activations() -> None:
    activations.clear()


async def events_in(store: eventstore.EventStore, stream: str) -> list[Any]:
    """The stream's events, without the runtime's ``ScopeCommitted`` bookkeeping."""
    return [event async for r in store.read(stream)
            if not isinstance(event := store.codec.decode(r), actors.ScopeCommitted)]


async def test_refs_activate_on_first_use() -> None:
    store = MemoryEventStore()
    async with actors.ActorSystem(store, actors=[Counter]) as system:
        ref = system.ref(Counter, "a")
        assert (ref.id, ref.stream) == ("a", "Counter-a")
        assert system.active == 0
        assert await ref.ask(5) == 5
        assert system.active == 1
        assert system.ref(Counter, "a") == ref
        spawned = await system.spawn(Counter, "b")
        assert system.active == 2
        spawned.tell(2)
        assert await spawned.ask(0) == 2
    assert activations == {"a": 1, "b": 1}
    assert await events_in(store, "Counter-b") == [Added(2)]


async def test_idle_actors_are_passivated_and_come_back(
        autojump_clock: trio.testing.MockClock) -> None:
    store = MemoryEventStore()
    async with actors.ActorSystem(store, actors=[Counter], clock=actors.VirtualClock(),
                                  idle_timeout=60) as system:
        ref = system.ref(Counter, "a")
        await ref.ask(3)
        await trio.sleep(59)
        assert await ref.ask(4) == 7  # the message restarts the idle timer
        await trio.sleep(59)
        assert system.active == 1
        await trio.sleep(2)
        assert system.active == 0  # passivated: idle for 60 s
        assert activations == {"a": 1}
        assert await ref.ask(1) == 8  # re-activated, its state recovered from the log
        assert system.active == 1
        assert activations == {"a": 2}


async def test_actors_with_an_unfinished_run_are_not_passivated(
        autojump_clock: trio.testing.MockClock) -> None:
    async with actors.ActorSystem(MemoryEventStore(), actors=[Worker],
                                  clock=actors.VirtualClock(), idle_timeout=10) as system:
        ref = await system.spawn(Worker, "w")
        await trio.sleep(100)
        assert system.active == 1
        await trio.sleep(3600)  # run() has finished: now it may go
        assert system.active == 0
        assert await ref.ask("steps") == [1, 2]


async def test_shutdown_serves_queued_messages_and_commits(
        autojump_clock: trio.testing.MockClock) -> None:
    release = trio.Event()

    @attrs.define
    class Busy(Counter):
        async def run(self) -> None:
            self.emit(Added(1000))  # pending, not flushed: committed at shutdown
            await release.wait()

    store = MemoryEventStore()
    async with actors.ActorSystem(store, actors=[Busy]) as system:
        ref = await system.spawn(Busy, "b")
        for n in range(1, 51):
            ref.tell(n)
    events = await events_in(store, "Busy-b")
    assert len(events) == 51  # run()'s pending event is committed at the stop, as its commit point
    assert sum(e.amount for e in events) == 1000 + 50 * 51 // 2


async def test_no_messages_after_shutdown() -> None:
    store = MemoryEventStore()
    async with actors.ActorSystem(store, actors=[Counter]) as system:
        ref = system.ref(Counter, "a")
        await ref.ask(1)
        await system.shutdown()
        assert system.active == 0
        with pytest.raises(actors.ActorStopped, match="ActorSystem is not running"):
            await ref.ask(1)
        with pytest.raises(actors.ActorStopped):
            system.ref(Counter, "other").tell(1)
        with pytest.raises(actors.ActorStopped):
            await system.spawn(Counter, "new")
    with pytest.raises(actors.ActorStopped):
        await ref.ask(1)
    assert await store.last_version("Counter-a") == 1
    assert await store.last_version("Counter-other") == 0


async def test_bad_registrations() -> None:
    @attrs.define
    class Impostor(actors.Actor):
        kind = "Counter"

    store = MemoryEventStore()
    with pytest.raises(actors.InvalidActorArgument, match="share the kind 'Counter'"):
        actors.ActorSystem(store, actors=[Counter, Impostor])
    with pytest.raises(actors.InvalidActorType):
        actors.ActorSystem(store, actors=[int])  # type: ignore[list-item]
    with pytest.raises(actors.InvalidActorType, match="EventStore"):
        actors.ActorSystem(object())  # type: ignore[arg-type]
    async with actors.ActorSystem(store, actors=[Counter]) as system:
        with pytest.raises(actors.InvalidActorArgument):
            system.ref(Counter, "")
    assert [e async for e in store.read_all()] == []


async def test_a_restarted_system_resumes_unfinished_runs(
        autojump_clock: trio.testing.MockClock) -> None:
    # A memory store: SQLite works in threads, during which autojump_clock moves time on.
    clock = actors.VirtualClock()  # one clock for both "processes": durable time goes on
    async with MemoryEventStore() as store:
        async with actors.ActorSystem(store, actors=[Worker, Counter], clock=clock) as system:
            await system.spawn(Worker, "w")
            await system.ref(Counter, "idle").ask(1)  # no run(): nothing to resume
            started = clock.time()
            await trio.sleep(600)  # shut down 10 minutes into the hour-long durable sleep
        assert [type(e) for e in await events_in(store, "Worker-w")] == [
            actors.TimeObserved, Stepped, actors.SleepStarted]

        async with actors.ActorSystem(store, actors=[Worker, Counter], clock=clock) as system:
            await trio.testing.wait_all_tasks_blocked()
            assert system.active == 1  # the worker, found through the index; not the counter
            assert activations == {"worker-w": 2, "idle": 1}
            await trio.sleep(3000 - 1)
            assert await system.ref(Worker, "w").ask("steps") == [1]  # still sleeping
            await trio.sleep(2)
            events = await events_in(store, "Worker-w")
            assert events[-1] == actors.RunCompleted()
            second = [e for e in events if isinstance(e, Stepped)][1]
            assert second.at - started == pytest.approx(3600, abs=1)  # not 3600 s after restart

        async with actors.ActorSystem(store, actors=[Worker, Counter], clock=clock) as system:
            await trio.testing.wait_all_tasks_blocked()
            assert system.active == 0  # its work is done: nothing to re-activate


async def test_a_gc_policy_applies_while_the_system_runs_and_is_undone_after() -> None:
    before = gc.get_threshold()
    store = MemoryEventStore()
    async with actors.ActorSystem(store, actors=[Counter],
                                  gc=actors.GCPolicy(gen0_threshold=12_345)) as system:
        assert gc.get_threshold()[0] == 12_345
        assert gc.get_freeze_count() > 0
        assert _freeze_survivors in gc.callbacks
        survivor = Counter()
        assert any(o is survivor for o in gc.get_objects(0))
        gc.collect(0)
        assert not any(o is survivor for o in gc.get_objects())  # frozen: it was left alive
        await system.ref(Counter, "a").ask(1)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    assert _freeze_survivors not in gc.callbacks
    with pytest.raises(actors.InvalidActorArgument, match="gen0_threshold"):
        actors.GCPolicy(gen0_threshold=0)
    for seconds in (0, -1.0, float("nan"), True, "1"):
        with pytest.raises(actors.InvalidActorArgument, match="young_seconds"):
            actors.GCPolicy(young_seconds=seconds)  # type: ignore[arg-type]
    with pytest.raises(actors.InvalidActorType, match="GCPolicy"):
        actors.ActorSystem(store, gc=True)  # type: ignore[arg-type]


async def test_the_gc_policy_collects_in_full_when_the_heap_doubles(
        autojump_clock: trio.testing.MockClock) -> None:
    policy = actors.GCPolicy()
    with policy.applied():
        gc.collect()
        policy.freeze_now()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(policy.keep)
            await trio.testing.wait_all_tasks_blocked()
            cycles = [Cycle() for _ in range(sys.getallocatedblocks())]  # the heap doubles
            gc.freeze()  # they were alive when frozen: only a full collection finds them now
            gone = weakref.ref(cycles[0])
            del cycles
            assert gone() is not None
            await trio.sleep(policy.check_seconds + 1)
            assert gone() is None
            nursery.cancel_scope.cancel()


async def test_the_gc_policy_collects_the_young_generation_while_frozen_objects_die() -> None:
    # CPython counts deallocations against allocations, frozen objects' too: when actors
    # passivate (their frozen objects die) as fast as others activate, the count stays below
    # the threshold while the young generation grows without bound, and the collection that
    # comes at last walks all of it. The policy collects it between passes of trio's loop.
    policy = actors.GCPolicy(young_seconds=1e-9)  # every pass: no timing in the test
    old: list[list[int]] = [[] for _ in range(20_000)]
    with policy.applied():
        gc.collect()
        policy.freeze_now()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(policy.keep)
            await trio.testing.wait_all_tasks_blocked()
            young: list[list[int]] = []
            for n in range(len(old)):
                old.pop()  # a frozen object dies: the count goes down by one
                young.append([])  # and a new one lives: up by one
                if n % 100 == 0:
                    await trio.sleep(0)  # a pass of the loop
            assert len(gc.get_objects(0)) < 1_000  # 20,000 if left to CPython's count
            nursery.cancel_scope.cancel()


class Cycle:
    def __init__(self) -> None:
        self.me = self


@attrs.define
class Holder(actors.Actor):
    async def receive(self, message: Any) -> None:
        self.notifier.notify_at(await durable.now.aio() + timedelta(hours=1), message)


async def test_a_passivated_actor_is_freed_without_the_cyclic_collector(
        autojump_clock: trio.testing.MockClock) -> None:
    # No reference cycle keeps a passivated actor's objects: reference counting frees them at
    # once, so the collector's pauses do not grow with passivations (timer lateness).
    gc.collect()
    gc.disable()
    try:
        async with actors.ActorSystem(MemoryEventStore(), actors=[Holder],
                                      clock=actors.VirtualClock(), idle_timeout=1) as system:
            await system.ref(Holder, "h").ask("token")
            actor = weakref.ref(system.cells[kind_of(Holder), "h"].actor)
            await trio.sleep(2)
            assert system.active == 0
            assert actor() is None
    finally:
        gc.enable()


@attrs.define
class Ticking(actors.Actor):
    """Holds one timer; each wake-up schedules the next, 0.3-2.9 s ahead (spread, so that few
    actors share a pass of the loop)."""

    async def receive(self, message: int) -> None:
        self.schedule(await durable.now.aio(), message)

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        for token in self.notifier.due(now):
            self.schedule(now, token + 1009)

    def schedule(self, now: datetime, token: int) -> None:
        self.notifier.notify_at(now + timedelta(seconds=0.3 + token * 0.7548776662 % 2.6), token)


async def test_passivating_actors_under_a_gc_policy_leave_collections_a_small_young_generation(
        eager_clock: trio.testing.MockClock) -> None:
    # Actors activated and passivated all the time: what dies is frozen, what is born young.
    # Each collection walks what one pass of the loop allocated (tens of objects), where
    # CPython's count alone let 4,000 pile up here, 200,000 at 10,000 actors.
    young: list[int] = []

    def measure(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 0:
            young.append(len(gc.get_objects(0)))

    policy = actors.GCPolicy(young_seconds=1e-9)  # every pass: no timing in the test
    async with actors.ActorSystem(MemoryEventStore(), actors=[Ticking], gc=policy,
                                  clock=actors.VirtualClock(), idle_timeout=1) as system:
        for n in range(300):
            system.ref(Ticking, f"t{n}").tell(n)
        await trio.sleep(5)  # all activated and passivated at least once
        gc.callbacks.append(measure)
        try:
            await trio.sleep(10)
        finally:
            gc.callbacks.remove(measure)
    # CPython's threshold: what its count alone leaves when nothing dies.
    assert len(young) > 100 and max(young) < 700, (len(young), max(young))


async def test_a_passivated_actors_stale_object_says_to_use_a_ref(
        autojump_clock: trio.testing.MockClock) -> None:
    async with actors.ActorSystem(MemoryEventStore(), actors=[Holder],
                                  clock=actors.VirtualClock(), idle_timeout=1) as system:
        await system.ref(Holder, "h").ask("token")
        stale = system.cells[kind_of(Holder), "h"].actor
        await trio.sleep(2)
        assert system.active == 0
        with pytest.raises(actors.ActorStopped, match="use a ref"):
            stale.notifier  # noqa: B018
        assert stale.id == "h"


def test_a_turn_refers_to_itself_through_no_reference_cycle() -> None:
    turn = Turn(cast(Any, None), scope="notify:0")
    branch = turn.child()
    assert turn.root is turn and branch.root is turn and branch.scope == "notify:0"
    assert turn not in gc.get_referents(turn)  # else only the cyclic collector frees it
