"""The core's promises (DESIGN section 8), each with the fault injected for real.

Every test here failed on the runtime before the core was split into ``ActorState``, the
journal and the loop: a failed turn's events committed by another turn's commit point, a scope
that ran again appending twice, a committed turn reported as failed, recovery silently wrong,
timers from ``run()`` not armed, lost races crashing the nursery, stops waiting out sleeps.
"""

from __future__ import annotations

import contextlib
import math
import pickle
import warnings
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import actors
import eventstore
from actors import durable, replay
from actors.testing import ActorTestKit, project
from eventstore.memory import MemoryEventStore


@eventstore.event_type("tests.core.Added")
@attrs.frozen
class Added:
    n: int


@eventstore.event_type("tests.core.Began")
@attrs.frozen
class Began:
    pass


@eventstore.event_type("tests.core.Ended")
@attrs.frozen
class Ended:
    pass


@eventstore.event_type("tests.core.Started")
@attrs.frozen
class Started:
    pass


@attrs.frozen
class Fail:
    """A message whose turn emits ``n`` and then raises, after ``gate`` is set if given."""

    n: int
    gate: trio.Event | None = None


@attrs.frozen
class Add:
    n: int
    gate: trio.Event | None = None


@attrs.define
class Tally(actors.Actor):
    kind = "Tally"
    total: int = 0
    seen: list[int] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        if isinstance(event, Added):
            if event.n < 0:
                self.total += 1000  # a half-done change, then a refusal
                raise ValueError("negative")
            self.total += event.n
            self.seen.append(event.n)

    async def receive(self, message: Any) -> Any:
        match message:
            case Add(n=n, gate=gate):
                self.emit(Added(n))
                if gate is not None:
                    await gate.wait()
                return self.total
            case Fail(n=n, gate=gate):
                self.emit(Added(n))
                if gate is not None:
                    await gate.wait()
                raise RuntimeError("the turn fails")
            case "total":
                return self.total
        raise TypeError(message)


async def user_events(store: eventstore.EventStore, stream: str) -> list[Any]:
    """The user's events in ``stream`` (the runtime's own left out)."""
    return [e async for r in store.read(stream)
            if not isinstance(e := store.codec.decode(r), actors.ScopeCommitted)
            and type(e).__module__ == __name__]


async def folded(store: eventstore.EventStore, cls: type[actors.Actor], actor_id: str) -> Any:
    return await replay.state_at(store, cls, actor_id)


# -- 1. one registry per store -------------------------------------------------------------------


async def test_one_actor_per_store_whoever_started_it_first() -> None:
    store = MemoryEventStore()
    async with trio.open_nursery() as nursery:
        await actors.spawn(nursery, Tally, "t", store=store)
        async with actors.ActorSystem(store, actors=[Tally]) as system:
            with pytest.raises(actors.DuplicateActor):
                await system.spawn(Tally, "t")
        async with ActorTestKit(store=store) as kit:
            with pytest.raises(actors.DuplicateActor):
                await kit.spawn(Tally, "t")
        nursery.cancel_scope.cancel()
    async with ActorTestKit(store=store) as kit, actors.ActorSystem(store, actors=[Tally]) as s:
        await kit.spawn(Tally, "k")
        with pytest.raises(actors.DuplicateActor):
            await s.ref(Tally, "k").ask("total")


async def test_stop_of_a_passivated_actor_does_not_activate_it(
        autojump_clock: trio.testing.MockClock) -> None:
    starts = []

    @attrs.define
    class Counted(Tally):
        async def on_start(self) -> None:
            starts.append(1)

    store = MemoryEventStore()
    async with actors.ActorSystem(store, actors=[Counted], idle_timeout=1) as system:
        ref = system.ref(Counted, "c")
        await ref.ask(Add(1))
        await trio.sleep(5)
        assert system.active == 0
        with trio.testing.assert_checkpoints():
            await ref.stop()
        assert system.active == 0 and len(starts) == 1


# -- 2. turn isolation ----------------------------------------------------------------------------


@attrs.define
class Flusher(Tally):
    """run() flushes (or sleeps durably) while a message turn is mid-way, then stops."""

    async def run(self) -> None:
        await Flusher.go.wait()
        self.emit(Added(100))
        if Flusher.durable:
            await durable.sleep.aio(60)
        else:
            await self.flush()
        Flusher.flushed.set()
        await trio.sleep_forever()

    go: Any = attrs.field(default=None, init=False, eq=False, repr=False)


@pytest.mark.parametrize("durable_sleep", [False, True])
async def test_another_turns_commit_point_never_commits_a_failing_turn(
        durable_sleep: bool, autojump_clock: trio.testing.MockClock) -> None:
    Flusher.go, Flusher.flushed = trio.Event(), trio.Event()  # type: ignore[attr-defined]
    Flusher.durable = durable_sleep  # type: ignore[attr-defined]
    gate = trio.Event()
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Flusher, "f")
        async with trio.open_nursery() as nursery:
            async def failing() -> None:
                with pytest.raises(RuntimeError, match="the turn fails"):
                    await ref.ask(Fail(7, gate))

            nursery.start_soon(failing)
            await trio.testing.wait_all_tasks_blocked()  # the message turn waits, 7 pending
            Flusher.go.set()
            await Flusher.flushed.wait()  # type: ignore[attr-defined]
            assert await user_events(kit.store, ref.stream) == [Added(100)]
            gate.set()
        state = kit.state(ref)
        assert state.total == 100 and state.seen == [100]  # type: ignore[attr-defined]
        assert await user_events(kit.store, ref.stream) == [Added(100)]
        assert await ref.ask(Add(1)) == 101


async def test_an_apply_that_raises_on_the_first_event_leaves_no_trace() -> None:
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Tally, "t")
        await ref.ask(Add(5))
        with pytest.raises(ValueError, match="negative"):
            await ref.ask(Add(-1))  # apply adds 1000, then raises
        assert kit.state(ref).total == 5  # type: ignore[attr-defined]
        assert await ref.ask("total") == 5


async def test_an_apply_error_caught_by_the_handler_still_fails_the_turn() -> None:
    @attrs.define
    class Swallower(Tally):
        async def receive(self, message: Any) -> Any:
            with contextlib.suppress(ValueError):
                self.emit(Added(-1))
            self.emit(Added(1))
            return self.total

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Swallower, "s")
        with pytest.raises(actors.ActorError, match="applying one of its events raised"):
            await ref.ask("x")
        assert kit.state(ref).total == 0  # type: ignore[attr-defined]
        assert await user_events(kit.store, ref.stream) == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["run", "msg", "fail", "flush"]),
                          st.integers(1, 9)), min_size=1, max_size=12))
def test_state_is_the_fold_of_the_log_plus_pending(ops: list[tuple[str, int]]) -> None:
    """Interleave run() emits and flushes with succeeding and failing message turns; after
    each step the live state is the fold of the log plus the pending events of live turns."""

    @attrs.define
    class Lanes(Tally):
        async def run(self) -> None:
            while True:
                op, n = await Lanes.inbox.receive()  # type: ignore[attr-defined]
                if op == "flush":
                    await self.flush()
                else:
                    self.emit(Added(n))

    async def main() -> None:
        send, Lanes.inbox = trio.open_memory_channel[tuple[str, int]](100)  # type: ignore[attr-defined]
        async with ActorTestKit() as kit:
            ref = await kit.spawn(Lanes, "l")
            cell = kit._hosted[ref.stream].cell
            assert cell is not None
            for op, n in ops:
                if op in ("run", "flush"):
                    await send.send((op, n))
                elif op == "msg":
                    await ref.ask(Add(n))
                else:
                    with pytest.raises(RuntimeError):
                        await ref.ask(Fail(n))
                await trio.testing.wait_all_tasks_blocked()
                log = await folded(kit.store, Lanes, "l")
                expected = log.total + sum(item.event.n for item in cell.journal.pending
                                           if isinstance(item.event, Added))
                assert kit.state(ref).total == expected  # type: ignore[attr-defined]
            failed = {n for op, n in ops if op == "fail"} - {
                n for op, n in ops if op != "fail"}
            assert not failed & {e.n for e in await user_events(kit.store, ref.stream)}
            await kit.crash(ref)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


# -- 2b. a scope that runs again never appends twice ---------------------------------------------


@attrs.define
class Phases(actors.Actor):
    kind = "Phases"
    began: int = 0
    ended: int = 0

    def apply(self, event: Any) -> None:
        if isinstance(event, Began | Started):
            self.began += 1
        elif isinstance(event, Ended):
            self.ended += 1


@attrs.define
class Unconditional(Phases):
    async def run(self) -> None:
        self.emit(Began())
        await durable.sleep.aio(100)
        self.emit(Ended())


@attrs.define
class Guarded(Phases):
    async def run(self) -> None:
        if not self.began:
            self.emit(Began())
        await durable.sleep.aio(100)
        self.emit(Ended())


@attrs.define
class Changed(Phases):
    async def run(self) -> None:
        self.emit(Started())  # the new release emits something else before the sleep
        await durable.sleep.aio(100)
        self.emit(Ended())


@pytest.mark.parametrize("cls", [Unconditional, Guarded])
async def test_run_after_a_crash_mid_sleep_never_appends_twice(
        cls: type[Phases], autojump_clock: trio.testing.MockClock) -> None:
    async with ActorTestKit() as kit:
        ref = await kit.spawn(cls, "p")
        await kit.advance(50)
        await kit.crash(ref)
        await kit.recover(ref)
        await kit.advance(100)
        assert await user_events(kit.store, ref.stream) == [Began(), Ended()]
        state = kit.state(ref)
        assert (state.began, state.ended) == (1, 1)  # type: ignore[attr-defined]
        assert (await replay.check(kit.store, cls, "p")).ok


async def test_a_resent_message_whose_turn_passed_a_commit_point_never_appends_twice(
        autojump_clock: trio.testing.MockClock) -> None:
    @attrs.define
    class Order(Phases):
        async def receive(self, message: Any) -> Any:
            self.emit(Began())  # unconditional
            await durable.sleep.aio(100)
            self.emit(Ended())
            return (self.began, self.ended)

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Order, "o")
        async with trio.open_nursery() as nursery:
            async def first_try() -> None:
                with pytest.raises(actors.ActorStopped):
                    await ref.ask("place", message_id="order-9")

            nursery.start_soon(first_try)
            await kit.advance(50)
            await kit.crash(ref)
        await kit.recover(ref)
        assert await ref.ask("place", message_id="order-9") == (1, 1)
        assert await user_events(kit.store, ref.stream) == [Began(), Ended()]


async def test_a_scope_that_would_emit_something_else_is_non_deterministic(
        autojump_clock: trio.testing.MockClock) -> None:
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Unconditional, "p")
        await kit.advance(50)
        await kit.crash(ref)
    async with ActorTestKit(store=kit.store, clock=kit.clock) as kit2:
        ref = await kit2.spawn(Changed, "p")
        await kit2.advance(100)
        with pytest.raises(actors.ActorStopped, match="no longer replays its log"):
            await ref.ask("anything")
    assert await user_events(kit.store, ref.stream) == [Began()]


async def test_a_timer_set_again_by_a_scope_that_runs_again_is_not_doubled(
        autojump_clock: trio.testing.MockClock) -> None:
    fired: list[str] = []

    @attrs.define
    class Alarm(actors.Actor):
        async def run(self) -> None:
            now = await durable.now.aio()
            self.notifier.notify_at(now + __import__("datetime").timedelta(seconds=500), "ring")
            await durable.sleep.aio(100)

        async def on_notify(self) -> None:
            fired.extend(self.notifier.due(await durable.now.aio()))

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Alarm, "a")
        await kit.advance(50)
        await kit.crash(ref)
        await kit.recover(ref)
        await kit.advance(1000)
    assert fired == ["ring"]
    scheduled = [e async for r in kit.store.read(ref.stream)
                 if isinstance(e := kit.store.codec.decode(r), actors.NotificationScheduled)]
    assert len(scheduled) == 1


# -- 3. honest outcomes ---------------------------------------------------------------------------


class NoSnapshots(MemoryEventStore):
    async def _save_snapshot(self, stream: str, version: int, state: str) -> None:
        raise eventstore.EventStoreError("the disk is full")


async def test_a_snapshot_failure_after_a_stored_commit_is_a_warning() -> None:
    @attrs.define
    class Snapped(Tally):
        snapshot_every = 1

    store = NoSnapshots()
    async with ActorTestKit(store=store) as kit:
        ref = await kit.spawn(Snapped, "s")
        with pytest.warns(RuntimeWarning, match="commit is stored"):
            assert await ref.ask(Add(3)) == 3
    assert await user_events(store, ref.stream) == [Added(3)]


async def test_an_unencodable_snapshot_after_a_stored_commit_is_a_warning() -> None:
    @attrs.define
    class Floaty(actors.Actor):
        snapshot_every = 1
        x: float = 0.0

        def apply(self, event: Any) -> None:
            self.x = math.nan

        async def receive(self, message: Any) -> Any:
            self.emit(Added(1))
            return "ok"

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Floaty, "f")
        with pytest.warns(RuntimeWarning, match="commit is stored"):
            assert await ref.ask("go") == "ok"
        assert await user_events(kit.store, ref.stream) == [Added(1)]


# -- 5. recovery is right or says why -------------------------------------------------------------


async def _log(store: eventstore.EventStore, stream: str, *events: Any) -> None:
    await store.append(stream, [store.codec.new_event(e) for e in events])


async def test_a_gap_in_the_log_is_a_recovery_error() -> None:
    store = MemoryEventStore()
    await _log(store, "Tally-t", Added(1), Added(2), Added(3))
    await store.delete_up_to("Tally-t", 2)
    async with trio.open_nursery() as nursery:
        with pytest.raises(actors.RecoveryError, match="'Tally-t' at version 1") as caught:
            await actors.spawn(nursery, Tally, "t", store=store)
    assert (caught.value.stream, caught.value.version) == ("Tally-t", 1)


async def test_a_snapshot_ahead_of_the_log_is_a_recovery_error() -> None:
    @attrs.define
    class Snapped(Tally):
        kind = "Tally"
        snapshot_every = 2

    store = MemoryEventStore()
    await _log(store, "Tally-t", Added(1))
    await store.save_snapshot("Tally-t", 5, {"state": {"total": 9, "seen": []}, "record": [],
                                             "notifier": {"next_seq": 0, "pending": []},
                                             "run_done": False})
    async with trio.open_nursery() as nursery:
        with pytest.raises(actors.RecoveryError, match="ahead of the log"):
            await actors.spawn(nursery, Snapped, "t", store=store)


async def test_a_trimmed_log_whose_snapshot_cannot_be_restored_is_loud() -> None:
    @attrs.define
    class Snapped(Tally):
        kind = "Tally"
        snapshot_every = 2

    store = MemoryEventStore()
    await _log(store, "Tally-t", Added(1), Added(2), Added(3))
    await store.save_snapshot("Tally-t", 2, {"state": {"total": "not a number"}})
    await store.delete_up_to("Tally-t", 2)
    async with trio.open_nursery() as nursery:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with pytest.raises(actors.RecoveryError, match="cannot be restored"):
                await actors.spawn(nursery, Snapped, "t", store=store)


async def test_the_system_passes_a_recovery_error_to_the_asker() -> None:
    store = MemoryEventStore()
    await _log(store, "Tally-t", Added(1), Added(2))
    await store.delete_up_to("Tally-t", 1)
    async with actors.ActorSystem(store, actors=[Tally]) as system:
        with pytest.raises(actors.RecoveryError, match="'Tally-t' at version 1"):
            await system.ref(Tally, "t").ask("total")


# -- 6. timers and durable calls ------------------------------------------------------------------


async def test_a_timer_scheduled_in_run_fires_without_a_message(
        autojump_clock: trio.testing.MockClock) -> None:
    from datetime import timedelta

    fired: list[Any] = []

    @attrs.define
    class Alarm(actors.Actor):
        async def run(self) -> None:
            now = await durable.now.aio()
            self.notifier.notify_at(now + timedelta(seconds=30), "wake")
            await self.flush()
            await trio.sleep_forever()

        async def on_notify(self) -> None:
            now = await durable.now.aio()
            fired.append((self.notifier.due(now), now))

    async with ActorTestKit() as kit:
        await kit.spawn(Alarm, "a")
        start = kit.clock.time()
        await kit.advance(31)
    assert [tokens for tokens, _ in fired] == [["wake"]]
    assert fired[0][1].timestamp() - start == pytest.approx(30, abs=1e-6)


async def test_non_determinism_stops_the_actor_instead_of_restarting(
        autojump_clock: trio.testing.MockClock) -> None:
    runs = []

    @attrs.define
    class Old(actors.Actor):
        kind = "Job"

        async def run(self) -> None:
            await durable.sleep.aio(3600)

    @attrs.define
    class New(actors.Actor):
        kind = "Job"
        supervision = actors.Restart(initial_backoff=0.1)

        async def run(self) -> None:
            runs.append(1)
            await durable.time.aio()

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Old, "j")
        await kit.advance(10)
        await kit.crash(ref)
    async with ActorTestKit(store=kit.store, clock=kit.clock) as kit2:
        ref = await kit2.spawn(New, "j")
        await kit2.advance(60)
        with pytest.raises(actors.ActorStopped, match="no longer replays its log"):
            await ref.ask("x")
    assert runs == [1]


@attrs.define
class Parallel(actors.Actor):
    kind = "Parallel"
    done: list[str] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        self.done.append(event.name)

    async def receive(self, message: Any) -> Any:
        async with trio.open_nursery() as nursery:
            for name, seconds in (("a", 30), ("b", 10), ("c", 20)):
                nursery.start_soon(self._leg, name, seconds)
        return sorted(self.done)

    async def _leg(self, name: str, seconds: float) -> None:
        await durable.time.aio()
        await durable.sleep.aio(seconds)
        self.emit(Leg(name))


@eventstore.event_type("tests.core.Leg")
@attrs.frozen
class Leg:
    name: str


@pytest.mark.parametrize("attempt", range(8))  # trio shuffles tasks started together
async def test_concurrent_durable_calls_in_one_scope_replay_deterministically(
        attempt: int, autojump_clock: trio.testing.MockClock) -> None:
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Parallel, "p")
        async with trio.open_nursery() as nursery:
            async def ask() -> None:
                with pytest.raises(actors.ActorStopped):
                    await ref.ask("go", message_id="order-1")

            nursery.start_soon(ask)
            await kit.advance(15)  # b's sleep is over, a and c still sleep
            await kit.crash(ref)
        await kit.recover(ref)
        # b's leg emitted before the crash, uncommitted, is lost and done again: once.
        assert await ref.ask("go", message_id="order-1") == ["a", "b", "c"]
        assert sorted(e.name for e in await user_events(kit.store, ref.stream)) == ["a", "b", "c"]
    calls = [e async for r in kit.store.read(ref.stream)
             if isinstance(e := kit.store.codec.decode(r), actors.SleepStarted)]
    assert sorted((c.branch, c.seconds) for c in calls) == [((1,), 30), ((2,), 10), ((3,), 20)]


async def test_a_durable_sleep_sleeps_again_when_the_clock_says_it_is_early(
        autojump_clock: trio.testing.MockClock) -> None:
    class SteppedBack(actors.VirtualClock):
        """A wall clock that is stepped back 40 s while the actor sleeps."""

        back = 0.0

        def time(self) -> float:
            return super().time() - self.back

    clock = SteppedBack()
    ended: list[float] = []

    @attrs.define
    class Sleeper(actors.Actor):
        async def receive(self, message: Any) -> Any:
            began = await durable.time.aio()
            await durable.sleep.aio(100)
            ended.append(clock.time() - began)

    async with ActorTestKit(clock=clock) as kit:
        ref = await kit.spawn(Sleeper, "s")
        ref.tell("go")
        await trio.sleep(50)
        clock.back = 40.0
        await kit.advance(200)
    assert ended and ended[0] >= 100


# -- 7. stopping and losing -----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["message", "run", "on_start", "on_notify"])
async def test_a_lost_race_stops_the_actor_and_never_crashes_the_nursery(
        where: str, autojump_clock: trio.testing.MockClock) -> None:
    from datetime import timedelta

    store = MemoryEventStore()
    go = trio.Event()
    fired: list[Any] = []

    @attrs.define
    class Racer(Tally):
        kind = "Racer"

        async def on_start(self) -> None:
            if where == "on_start":
                await _log(store, "Racer-r", Added(99))  # another writer
                self.emit(Added(1))
            elif where == "on_notify":
                self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=5), "t")

        async def run(self) -> None:
            await go.wait()
            if where == "run":
                self.emit(Added(2))
                await self.flush()

        async def on_notify(self) -> None:
            fired.extend(self.notifier.due(await durable.now.aio()))

    async with trio.open_nursery() as nursery:
        if where == "on_start":
            with pytest.raises(actors.ActorStopped, match="another writer"):
                await actors.spawn(nursery, Racer, "r", store=store, clock=actors.VirtualClock())
            return
        ref = await actors.spawn(nursery, Racer, "r", store=store, clock=actors.VirtualClock())
        await _log(store, "Racer-r", Added(99))  # another process writes to the stream
        if where == "message":
            with pytest.raises(actors.ActorStopped, match="another writer"):
                await ref.ask(Add(1))
        else:
            go.set()
            await trio.sleep(10)
            with pytest.raises(actors.ActorStopped, match="another writer"):
                await ref.ask("total")
        assert fired == []
    fired_events = [e async for r in store.read("Racer-r")
                    if isinstance(e := store.codec.decode(r), actors.NotificationFired)]
    assert fired_events == []


async def test_leaving_a_system_does_not_wait_out_durable_sleeps(
        autojump_clock: trio.testing.MockClock) -> None:
    @attrs.define
    class Napper(Tally):
        async def receive(self, message: Any) -> Any:
            await durable.sleep.aio(3600)
            self.emit(Added(1))
            return self.total

    store = MemoryEventStore()
    clock = actors.VirtualClock()
    began = trio.current_time()
    async with actors.ActorSystem(store, actors=[Napper], clock=clock) as system:
        ref = system.ref(Napper, "n")
        async with trio.open_nursery() as nursery:
            async def ask() -> None:
                with pytest.raises(actors.ActorStopped, match="resend the message"):
                    await ref.ask("nap", message_id="nap-1")
            nursery.start_soon(ask)
            await trio.sleep(10)
            await system.shutdown()
    assert trio.current_time() - began < 60  # not the hour
    async with actors.ActorSystem(store, actors=[Napper], clock=clock) as system:
        # Resent, the message's sleep resumes: it ends an hour after it first began.
        assert await system.ref(Napper, "n").ask("nap", message_id="nap-1") == 1
    assert 3600 <= trio.current_time() - began < 3700


# -- 9. errors are data ---------------------------------------------------------------------------


@pytest.mark.parametrize("error", [
    actors.ActorStopped("A('x')", "it was stopped"),
    actors.DuplicateActor("A('x')"),
    actors.AskTimeout("A('x')", 1.5),
    actors.RecoveryError("A-x", 3, "a gap"),
    actors.NonDeterminismError("A('x')", "run", 2, "sleep(1)", "time()"),
    actors.InvalidActorArgument("bad"),
    actors.InvalidActorType("bad"),
    actors.NotInTurn("outside"),
    actors.StepFailed("charge", "ConnectionError: refused"),
    actors.CallFailed("Account-a", "Refused: no"),
    actors.ProjectionFailed("balances", 12, 5, "ValueError: bad data"),
    actors.ActorError("root"),
])
def test_every_actor_error_survives_a_pickle_round_trip(error: Exception) -> None:
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error)
    assert vars(again) == vars(error)


def test_every_exported_actor_error_is_covered() -> None:
    exported = {name for name in actors.__all__ if isinstance(getattr(actors, name), type)
                and issubclass(getattr(actors, name), Exception)}
    assert exported == {"ActorError", "ActorStopped", "AskTimeout", "DuplicateActor",
                        "InvalidActorArgument", "InvalidActorType", "NonDeterminismError",
                        "NotInTurn", "RecoveryError", "StepFailed", "CallFailed",
                        "ProjectionFailed"}


def test_project_folds_without_a_runtime() -> None:
    state = project(Tally, [Added(1), Added(2)])
    assert (state.total, state.version) == (3, 2)
    with pytest.raises(actors.NotInTurn):
        state.emit(Added(1))
