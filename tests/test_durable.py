"""Durable time (``actors.durable``): what is recorded, at which key, and what replays.

In-process crashes are a cancelled nursery: nothing more is committed, and the store keeps what
was. The tests run on trio's ``MockClock`` (``autojump_clock``) with a ``VirtualClock``, so durable
hours take no real time and every reading is exact.

Tests taking ``any_store`` run on memory, SQLite and PostgreSQL; the rest assert exact virtual
times and stay on memory, as the autojump clock jumps while SQLite or PostgreSQL work runs in a
worker thread.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import actors
import eventstore
from actors import (
    NonDeterminismError,
    RunCompleted,
    ScopeCompleted,
    SleepStarted,
    TimeObserved,
    durable,
)
from eventstore.memory import MemoryEventStore

START = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
T0 = START.timestamp()


@eventstore.event_type("tests.durable.Ticked")
@attrs.frozen
class Ticked:
    """A plain user event (to tell the runtime's events from the user's)."""


async def log_of(store: eventstore.EventStore, stream: str) -> list[Any]:
    """The decoded events of ``stream`` (without the runtime's ``ScopeCommitted`` markers and
    the replies recorded for messages with ids, ``test_messaging.py``'s subject);
    also checks that versions run 1, 2, 3, ... ."""
    recorded = [r async for r in store.read(stream)]
    assert [r.version for r in recorded] == list(range(1, len(recorded) + 1))
    return [event for r in recorded if not isinstance(
        event := store.codec.decode(r), actors.ScopeCommitted | actors.ReplyRecorded)]


def durable_calls(log: list[Any]) -> list[Any]:
    return [e for e in log if isinstance(e, TimeObserved | SleepStarted)]


def virtual_clock() -> actors.VirtualClock:
    clock = actors.VirtualClock(START)
    assert clock.time() == T0  # binds the clock to this trio run, at T0
    return clock


def fresh() -> tuple[MemoryEventStore, actors.VirtualClock]:
    return MemoryEventStore(), virtual_clock()


async def crash_after(seconds: float, start: Callable[[trio.Nursery], Any]) -> None:
    """Start actors with ``start(nursery)``, let them run ``seconds``, then crash them.

    Cancelling the nursery stops every task at once, commits nothing more: what a SIGKILL
    leaves, minus the process.
    """
    async with trio.open_nursery() as nursery:
        await start(nursery)
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()


# -- outside an actor --------------------------------------------------------------------------


async def test_outside_an_actor_they_are_the_plain_functions(
        autojump_clock: trio.testing.MockClock) -> None:
    before = time.time()
    assert before <= durable.time() <= time.time()
    assert before <= await durable.time.aio() <= time.time()
    for moment in (durable.now(), await durable.now.aio()):
        assert moment.tzinfo is UTC
        assert before <= moment.timestamp() <= time.time()
    started = trio.current_time()
    await durable.sleep.aio(3600)  # trio.sleep: virtual under the autojump clock
    assert trio.current_time() - started == pytest.approx(3600)


async def test_outside_an_actor_sync_sleep_blocks_a_worker_thread_with_trio_sleep(
        autojump_clock: trio.testing.MockClock) -> None:
    started = trio.current_time()
    await trio.to_thread.run_sync(durable.sleep, 600)
    # Through trio.sleep, so the virtual clock moved: time.sleep would have taken 10 minutes.
    assert trio.current_time() - started == pytest.approx(600)


def test_outside_trio_sync_sleep_is_time_sleep() -> None:
    done: list[float] = []

    def sleeper() -> None:
        started = time.monotonic()
        durable.sleep(0.02)
        done.append(time.monotonic() - started)

    thread = threading.Thread(target=sleeper)
    thread.start()
    thread.join(timeout=10)
    assert done and done[0] >= 0.02


async def test_sync_sleep_on_the_trio_thread_says_to_await_aio() -> None:
    with pytest.raises(ValueError, match=r"await durable\.sleep\.aio\("):
        durable.sleep(1)


def test_durable_functions_have_both_forms_and_their_docs() -> None:
    for function in (durable.time, durable.now, durable.sleep, durable.step, durable.uuid4,
                     durable.random, durable.patched):
        assert callable(function)
        assert callable(function.aio)
        assert function.__doc__ and "record" in function.__doc__
        assert function.__name__ in repr(function)
    assert durable.__all__ == ["now", "patched", "random", "sleep", "step", "step_key", "time",
                               "uuid4"]


# -- clocks --------------------------------------------------------------------------------------


async def test_virtual_clock_starts_where_told_and_follows_trio(
        autojump_clock: trio.testing.MockClock) -> None:
    default, at_datetime, at_epoch = (actors.VirtualClock(), actors.VirtualClock(START),
                                      actors.VirtualClock(1e9))
    assert default.now() == datetime(2026, 1, 1, tzinfo=UTC)
    assert (at_datetime.time(), at_epoch.time()) == (T0, 1e9)
    await trio.sleep(86_400)
    assert default.now() == datetime(2026, 1, 2, tzinfo=UTC)
    assert at_datetime.now() == START + timedelta(days=1)
    assert at_epoch.time() == 1e9 + 86_400


@pytest.mark.parametrize("start", [datetime(2030, 1, 1), "2030-01-01", math.nan, True])
def test_virtual_clock_refuses_a_bad_start(start: Any) -> None:
    with pytest.raises(ValueError, match="VirtualClock start"):
        actors.VirtualClock(start)


async def test_actors_read_the_wall_clock_by_default(any_store: eventstore.EventStore) -> None:
    @attrs.define
    class Probe(actors.Actor):
        async def receive(self, message: Any) -> float:
            return await durable.time.aio()

    before = time.time()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Probe, "p", store=any_store)
        observed = await ref.ask("now?")
        await ref.stop()
    assert before <= observed <= time.time()
    assert durable_calls(await log_of(any_store, ref.stream))[0].value == observed


# -- what is recorded, at which key --------------------------------------------------------------


async def test_time_and_now_are_recorded_per_message_scope_then_dropped(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()

    @attrs.define
    class Probe(actors.Actor):
        async def receive(self, message: Any) -> Any:
            await trio.sleep(5)  # not durable: only moves the clock between the two calls
            first = await durable.time.aio()
            await trio.sleep(5)
            second = await durable.now.aio()
            return first, second

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Probe, "p", store=store, clock=clock)
        first, second = await ref.ask("go", message_id="m-1")
        assert first == T0 + 5
        assert second == datetime.fromtimestamp(T0 + 10, UTC) and second.tzinfo is UTC
        await ref.stop()
    assert await log_of(store, ref.stream) == [
        TimeObserved("msg:m-1", 1, "time", T0 + 5),
        TimeObserved("msg:m-1", 2, "now", T0 + 10),
        ScopeCompleted("msg:m-1"),
    ]


async def test_a_turn_without_durable_calls_records_nothing_for_durable_time(
        autojump_clock: trio.testing.MockClock, any_store: eventstore.EventStore) -> None:
    clock = virtual_clock()

    @attrs.define
    class Plain(actors.Actor):
        async def receive(self, message: Any) -> None:
            self.emit(Ticked())

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Plain, "p", store=any_store, clock=clock)
        await ref.ask("go")
        await ref.stop()
    assert await log_of(any_store, ref.stream) == [Ticked()]


async def test_each_scope_counts_its_own_calls(
        autojump_clock: trio.testing.MockClock, any_store: eventstore.EventStore) -> None:
    clock = virtual_clock()

    @attrs.define
    class Counter(actors.Actor):
        async def on_start(self) -> None:
            await durable.time.aio()

        async def receive(self, message: Any) -> None:
            await durable.time.aio()
            await durable.now.aio()

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Counter, "c", store=any_store, clock=clock)
        await ref.ask("a", message_id="a")
        await ref.ask("b", message_id="b")
        await ref.stop()
    calls = durable_calls(await log_of(any_store, ref.stream))
    keys = [(e.scope, e.index, e.function) for e in calls]
    assert keys == [("start", 1, "time"), ("msg:a", 1, "time"), ("msg:a", 2, "now"),
                    ("msg:b", 1, "time"), ("msg:b", 2, "now")]


async def test_messages_without_an_id_are_recorded_but_never_replayed(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()

    @attrs.define
    class Probe(actors.Actor):
        async def receive(self, message: Any) -> float:
            return await durable.time.aio()

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Probe, "p", store=store, clock=clock)
        await ref.ask("a")
        await trio.sleep(1)
        await ref.ask("a")
        await ref.stop()
    calls = durable_calls(await log_of(store, ref.stream))
    # Each turn records its own reading: nothing can send a message without an id again.
    assert [(c.index, c.value) for c in calls] == [(1, T0), (1, T0 + 1)]
    assert all(c.scope == "once" for c in calls)
    assert not any(isinstance(e, ScopeCompleted) for e in await log_of(store, ref.stream))


# -- sleep ----------------------------------------------------------------------------------------


async def test_a_durable_hour_takes_an_exact_virtual_hour(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    seen: list[float] = []

    @attrs.define
    class Napper(actors.Actor):
        async def run(self) -> None:
            seen.append(await durable.time.aio())
            await durable.sleep.aio(3600)
            seen.append(await durable.time.aio())

    started = time.monotonic()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Napper, "n", store=store, clock=clock)
        await trio.sleep(3601)
        await ref.stop()
    assert seen == [T0, T0 + 3600]
    assert time.monotonic() - started < 60  # sanity: the hour was virtual
    assert await log_of(store, ref.stream) == [
        TimeObserved("run", 1, "time", T0),
        SleepStarted("run", 2, T0, 3600.0),
        TimeObserved("run", 3, "time", T0 + 3600),
        ScopeCompleted("run"),
        RunCompleted(),
    ]


async def test_sleep_started_is_committed_before_the_wait(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()

    @attrs.define
    class Napper(actors.Actor):
        async def run(self) -> None:
            await durable.time.aio()
            self.emit(Ticked())
            await durable.sleep.aio(60)

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Napper, "n", store=store, clock=clock)
        await trio.sleep(30)
        # Mid-sleep: everything before the sleep, and the sleep itself, is in the store.
        assert await log_of(store, ref.stream) == [
            TimeObserved("run", 1, "time", T0), Ticked(), SleepStarted("run", 2, T0, 60.0)]
        nursery.cancel_scope.cancel()


async def test_the_mailbox_is_served_while_run_sleeps(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()

    @attrs.define
    class Napper(actors.Actor):
        async def run(self) -> None:
            await durable.sleep.aio(3600)

        async def receive(self, message: Any) -> float:
            return await durable.time.aio()

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Napper, "n", store=store, clock=clock)
        await trio.sleep(10)
        assert await ref.ask("when?") == T0 + 10
        nursery.cancel_scope.cancel()


async def test_after_a_crash_run_replays_and_sleeps_only_the_remainder(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    seen: list[tuple[str, Any]] = []

    @attrs.define
    class Napper(actors.Actor):
        kind = "Napper"

        async def run(self) -> None:
            seen.append(("time", await durable.time.aio()))
            seen.append(("now", await durable.now.aio()))
            await durable.sleep.aio(3600)
            seen.append(("woke", await durable.time.aio()))

    async def start(nursery: trio.Nursery) -> None:
        await actors.spawn(nursery, Napper, "n", store=store, clock=clock)

    await crash_after(1000, start)
    assert seen == [("time", T0), ("now", START)]
    await trio.sleep(500)  # down for a while
    seen.clear()
    async with trio.open_nursery() as nursery:
        await start(nursery)
        await trio.testing.wait_all_tasks_blocked()
        assert seen == [("time", T0), ("now", START)]  # recorded values, not T0 + 1500
        await trio.sleep(3600)
        nursery.cancel_scope.cancel()
    # The sleep ended 3600 s after it first began, not 3600 s after the restart.
    assert seen[-1] == ("woke", T0 + 3600)
    assert await log_of(store, "Napper-n") == [
        TimeObserved("run", 1, "time", T0),
        TimeObserved("run", 2, "now", T0),
        SleepStarted("run", 3, T0, 3600.0),
        TimeObserved("run", 4, "time", T0 + 3600),
        ScopeCompleted("run"),
        RunCompleted(),
    ]


async def test_a_sleep_that_ended_while_down_returns_at_once(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    woke: list[float] = []

    @attrs.define
    class Napper(actors.Actor):
        async def run(self) -> None:
            await durable.sleep.aio(3600)
            woke.append(await durable.time.aio())

    async def start(nursery: trio.Nursery) -> None:
        await actors.spawn(nursery, Napper, "n", store=store, clock=clock)

    await crash_after(1000, start)
    await trio.sleep(9000)
    async with trio.open_nursery() as nursery:
        await start(nursery)
        await trio.testing.wait_all_tasks_blocked()
        assert woke == [T0 + 10_000]
        nursery.cancel_scope.cancel()


async def test_run_restarted_by_supervision_replays_committed_calls(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    seen: list[float] = []
    failures: list[int] = []

    @attrs.define
    class Flaky(actors.Actor):
        supervision = actors.Restart(initial_backoff=5)

        async def run(self) -> None:
            seen.append(await durable.time.aio())
            await durable.sleep.aio(60)
            if not failures:
                failures.append(1)
                raise RuntimeError("boom")
            seen.append(await durable.time.aio())

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Flaky, "f", store=store, clock=clock)
        await trio.sleep(100)
        await ref.stop()
    # Attempt 1 recorded T0 and slept 60 s; attempt 2 (at T0 + 65) replays both at once.
    assert seen == [T0, T0, T0 + 65]
    assert [(c.index, type(c).__name__) for c in durable_calls(await log_of(store, ref.stream))
            ] == [(1, "TimeObserved"), (2, "SleepStarted"), (3, "TimeObserved")]


async def test_a_resent_message_replays_its_values_and_the_rest_of_its_sleep(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()

    @attrs.define
    class Scheduler(actors.Actor):
        kind = "Scheduler"

        async def receive(self, message: Any) -> tuple[float, float]:
            asked = await durable.time.aio()
            await durable.sleep.aio(600)
            return asked, await durable.time.aio()

    async def send_then_crash(nursery: trio.Nursery) -> None:
        ref = await actors.spawn(nursery, Scheduler, "s", store=store, clock=clock)
        ref.tell("job", message_id="job-7")

    await crash_after(100, send_then_crash)
    await trio.sleep(100)
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Scheduler, "s", store=store, clock=clock)
        # Resent after the crash with the same id: the same scope, so the same values.
        # Resent at T0 + 200: it waits the 400 s left, not 600 s.
        assert await ref.ask("job", message_id="job-7") == (T0, T0 + 600)
        # The turn completed and recorded its reply: a resend gets it and runs nothing.
        assert await ref.ask("job", message_id="job-7") == (T0, T0 + 600)
        await ref.stop()
    calls = durable_calls(await log_of(store, "Scheduler-s"))
    assert [(c.scope, c.index) for c in calls] == [("msg:job-7", 1), ("msg:job-7", 2),
                                                   ("msg:job-7", 3)]


async def test_an_on_notify_wake_up_replays_after_a_crash(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    fired: list[tuple[Any, datetime]] = []

    @attrs.define
    class Reminder(actors.Actor):
        kind = "Reminder"

        async def receive(self, message: Any) -> None:
            self.notifier.notify_at(START + timedelta(seconds=100), message)

        async def on_notify(self) -> None:
            at = await durable.now.aio()
            await durable.sleep.aio(50)  # commits the wake-up's now() with the sleep
            for token in self.notifier.due(at):
                fired.append((token, await durable.now.aio()))

    async def start(nursery: trio.Nursery) -> None:
        ref = await actors.spawn(nursery, Reminder, "r", store=store, clock=clock)
        await ref.ask("call mum")

    await crash_after(120, start)  # mid-sleep, 20 s into on_notify's sleep
    assert fired == []
    await trio.sleep(10)
    async with trio.open_nursery() as nursery:
        await actors.spawn(nursery, Reminder, "r", store=store, clock=clock)
        await trio.sleep(100)
        nursery.cancel_scope.cancel()
    assert fired == [("call mum", START + timedelta(seconds=150))]
    log = await log_of(store, "Reminder-r")
    scopes = {c.scope for c in durable_calls(log)}
    assert len(scopes) == 1 and scopes.pop().startswith("notify:")
    assert [(type(c).__name__, c.index) for c in durable_calls(log)] == [
        ("TimeObserved", 1), ("SleepStarted", 2), ("TimeObserved", 3)]
    assert durable_calls(log)[0].value == T0 + 100  # recorded once, replayed after the crash
    assert sum(isinstance(e, actors.NotificationFired) for e in log) == 1
    assert isinstance(log[-1], ScopeCompleted)


# -- sync forms ----------------------------------------------------------------------------------


async def test_sync_forms_block_a_plain_def_handlers_worker_thread(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()

    @attrs.define
    class Blocking(actors.Actor):
        def receive(self, message: Any) -> tuple[float, datetime, float]:  # type: ignore[override]
            assert threading.current_thread() is not threading.main_thread()
            first = durable.time()
            moment = durable.now()
            durable.sleep(60)
            return first, moment, durable.time()

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Blocking, "b", store=store, clock=clock)
        assert await ref.ask("go", message_id="m") == (T0, START, T0 + 60)
        await ref.stop()
    assert durable_calls(await log_of(store, ref.stream)) == [
        TimeObserved("msg:m", 1, "time", T0), TimeObserved("msg:m", 2, "now", T0),
        SleepStarted("msg:m", 3, T0, 60.0), TimeObserved("msg:m", 4, "time", T0 + 60)]


async def test_sync_time_works_on_the_trio_thread_but_sync_sleep_refuses(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()

    @attrs.define
    class Async(actors.Actor):
        async def receive(self, message: Any) -> Any:
            if message == "time":
                return durable.time(), durable.now()
            durable.sleep(5)

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Async, "a", store=store, clock=clock)
        assert await ref.ask("time", message_id="t") == (T0, START)
        with pytest.raises(ValueError, match=r"use `await durable\.sleep\.aio\(seconds\)`"):
            await ref.ask("sleep")
        await ref.stop()
    assert durable_calls(await log_of(store, ref.stream)) == [
        TimeObserved("msg:t", 1, "time", T0), TimeObserved("msg:t", 2, "now", T0)]


# -- bad input, zero and negative seconds ----------------------------------------------------


BAD_SECONDS = [
    (math.nan, ValueError, "finite"),
    (math.inf, ValueError, "finite"),
    (-math.inf, ValueError, "finite"),
    ("5", TypeError, "int or float"),
    (timedelta(seconds=5), TypeError, r"total_seconds\(\)"),
    (None, TypeError, "int or float"),
    (True, TypeError, "int or float"),
]


@pytest.mark.parametrize(("seconds", "error", "says"), BAD_SECONDS,
                         ids=[repr(b[0]) for b in BAD_SECONDS])
async def test_bad_seconds_raise_before_anything_is_recorded(
        seconds: Any, error: type[Exception], says: str,
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()

    @attrs.define
    class Napper(actors.Actor):
        async def receive(self, message: Any) -> float:
            with pytest.raises(error, match=says):
                await durable.sleep.aio(seconds)
            return await durable.time.aio()  # the bad call took no key: this one is #1

    @attrs.define
    class Blocking(actors.Actor):
        def receive(self, message: Any) -> float:  # type: ignore[override]
            with pytest.raises(error, match=says):
                durable.sleep(seconds)
            return durable.time()

    async with trio.open_nursery() as nursery:
        for cls in (Napper, Blocking):
            ref = await actors.spawn(nursery, cls, "n", store=store, clock=clock)
            assert await ref.ask("go", message_id="m") == T0
            assert await log_of(store, ref.stream) == [
                TimeObserved("msg:m", 1, "time", T0), ScopeCompleted("msg:m")]
        nursery.cancel_scope.cancel()
    # Outside an actor too, and before waiting.
    with pytest.raises(error, match=says):
        await durable.sleep.aio(seconds)
    with pytest.raises(error, match=says):
        await trio.to_thread.run_sync(durable.sleep, seconds)


@pytest.mark.parametrize("seconds", [0, 0.0, -1, -3600.5])
async def test_zero_and_negative_seconds_return_at_once_recording_nothing(
        seconds: float, autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()

    @attrs.define
    class Napper(actors.Actor):
        async def receive(self, message: Any) -> float:
            await durable.sleep.aio(seconds)
            return await durable.time.aio()

    @attrs.define
    class Blocking(actors.Actor):
        def receive(self, message: Any) -> float:  # type: ignore[override]
            durable.sleep(seconds)
            return durable.time()

    async with trio.open_nursery() as nursery:
        for cls in (Napper, Blocking):
            ref = await actors.spawn(nursery, cls, "n", store=store, clock=clock)
            assert await ref.ask("go", message_id="m") == T0  # no time passed
            assert await log_of(store, ref.stream) == [
                TimeObserved("msg:m", 1, "time", T0), ScopeCompleted("msg:m")]
        nursery.cancel_scope.cancel()
    await durable.sleep.aio(seconds)
    await trio.to_thread.run_sync(durable.sleep, seconds)
    assert clock.time() == T0


# -- non-determinism -------------------------------------------------------------------------------


async def _crash_mid_sleep_of(store: MemoryEventStore, clock: actors.VirtualClock) -> None:
    """Version 1 of a job: ``time()``, then ``sleep(3600)``; crashed 10 s into the sleep."""

    @attrs.define
    class Job(actors.Actor):
        kind = "Job"

        async def receive(self, message: Any) -> None:
            await durable.time.aio()
            await durable.sleep.aio(3600)

    async def start(nursery: trio.Nursery) -> None:
        ref = await actors.spawn(nursery, Job, "j", store=store, clock=clock)
        ref.tell("go", message_id="go-1")

    await crash_after(10, start)


@pytest.mark.parametrize(("calls", "index", "recorded", "requested"), [
    (["sleep 3600"], 1, f"time() = {T0}", "sleep(3600.0)"),
    (["now"], 1, f"time() = {T0}", "now()"),
    (["time", "sleep 60"], 2, "sleep(3600.0)", "sleep(60.0)"),
    (["time", "time"], 2, "sleep(3600.0)", "time()"),
], ids=["sleep-where-time-was", "now-where-time-was", "another-duration", "time-where-sleep-was"])
async def test_changed_code_raises_non_determinism_naming_the_key(
        calls: list[str], index: int, recorded: str, requested: str,
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    await _crash_mid_sleep_of(store, clock)
    before = await log_of(store, "Job-j")

    @attrs.define
    class Job(actors.Actor):  # version 2 of the code, on version 1's log
        kind = "Job"

        async def receive(self, message: Any) -> None:
            for call in calls:
                name, *args = call.split()
                if name == "sleep":
                    await durable.sleep.aio(float(args[0]))
                else:
                    await getattr(durable, name).aio()

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Job, "j", store=store, clock=clock)
        with pytest.raises(NonDeterminismError) as caught:
            await ref.ask("go", message_id="go-1")
        await ref.stop()
    error = caught.value
    assert error.actor.endswith(".Job('j')")  # the class's qualified name and the id
    assert (error.scope, error.index) == ("msg:go-1", index)
    assert (error.recorded, error.requested) == (recorded, requested)
    for part in ("Job('j')", "'msg:go-1'", f"#{index}", recorded, requested):
        assert part in str(error)
    assert await log_of(store, "Job-j") == before  # the failed turn recorded nothing


async def test_non_determinism_in_run_follows_supervision(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()

    @attrs.define
    class Job(actors.Actor):
        kind = "Job"

        async def run(self) -> None:
            await durable.sleep.aio(3600)

    async def start(nursery: trio.Nursery) -> None:
        await actors.spawn(nursery, Job, "j", store=store, clock=clock)

    await crash_after(10, start)

    @attrs.define
    class JobV2(actors.Actor):
        kind = "Job"
        supervision = actors.Escalate()

        async def run(self) -> None:
            await durable.sleep.aio(7200)

    says = (r"scope 'run', durable call #1: the log recorded sleep\(3600\.0\) but the code now "
            r"asks for sleep\(7200\.0\)")
    with trio.fail_after(10), pytest.RaisesGroup(
            pytest.RaisesExc(NonDeterminismError, match=says), flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            await actors.spawn(nursery, JobV2, "j", store=store, clock=clock)


# -- projection, snapshots, the system's index ---------------------------------------------------


async def test_finished_scopes_leave_nothing_in_snapshots(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()

    @attrs.define
    class Busy(actors.Actor):
        kind = "Busy"
        snapshot_every = 1

        async def run(self) -> None:
            await durable.time.aio()
            await durable.sleep.aio(3600)

        async def receive(self, message: Any) -> None:
            await durable.time.aio()
            await durable.now.aio()

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Busy, "b", store=store, clock=clock)
        for n in range(50):
            await ref.ask(n)
        snapshot = await store.load_snapshot("Busy-b")
        assert snapshot is not None and snapshot.version == 102
        # 50 message turns without ids, 100 events: only the unfinished run scope is kept.
        assert snapshot.state["record"] == [
            {"kind": "time", "scope": "run", "index": 1, "function": "time", "value": T0},
            {"kind": "sleep", "scope": "run", "index": 2, "started_at": T0, "seconds": 3600.0}]
        nursery.cancel_scope.cancel()


async def test_recorded_values_survive_in_the_snapshot_alone(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    seen: list[float] = []

    @attrs.define
    class Napper(actors.Actor):
        kind = "Napper"
        snapshot_every = 2

        async def run(self) -> None:
            seen.append(await durable.time.aio())
            await durable.sleep.aio(3600)
            seen.append(await durable.time.aio())

    async def start(nursery: trio.Nursery) -> None:
        await actors.spawn(nursery, Napper, "n", store=store, clock=clock)

    await crash_after(100, start)
    await store.delete_up_to("Napper-n", 2)  # the snapshot is all that is left of the record
    assert [r async for r in store.read("Napper-n")] == []
    async with trio.open_nursery() as nursery:
        await start(nursery)
        await trio.sleep(3600)
        nursery.cancel_scope.cancel()
    assert seen == [T0, T0, T0 + 3600]


async def test_the_system_reactivates_an_actor_sleeping_in_run(
        autojump_clock: trio.testing.MockClock) -> None:
    store, clock = fresh()
    woke = trio.Event()
    seen: list[float] = []

    @attrs.define
    class Napper(actors.Actor):
        kind = "Napper"

        async def run(self) -> None:
            seen.append(await durable.time.aio())
            await durable.sleep.aio(3600)
            seen.append(await durable.time.aio())
            woke.set()

    with trio.move_on_after(1000):  # a crash of the whole system, mid-sleep
        async with actors.ActorSystem(store, actors=[Napper], clock=clock) as system:
            await system.spawn(Napper, "n")
            await trio.sleep_forever()
    await trio.sleep(1000)
    async with actors.ActorSystem(store, actors=[Napper], clock=clock) as system:
        with trio.fail_after(5000):
            await woke.wait()  # nobody touched the actor: the index brought it back
        assert system.active == 1
    assert seen == [T0, T0, T0 + 3600]
    assert durable_calls(await log_of(store, "Napper-n")) == [
        TimeObserved("run", 1, "time", T0), SleepStarted("run", 2, T0, 3600.0),
        TimeObserved("run", 3, "time", T0 + 3600)]


@pytest.mark.parametrize(("scope", "value", "branch"), [
    ("once", 1767225600.123456, ()), ("run", 1e16, (2, 1)), ("msg:a\"b\\c\n", 5e-324, (1,)),
    ("msg:é", 1767225600.5, ()), ("notify:3", 1767225600, ()), ("start", math.inf, ()),
    ("once", math.nan, ()),
])
def test_time_observed_is_encoded_as_the_codec_would(scope: str, value: float,
                                                     branch: tuple[int, ...]) -> None:
    # durable.time writes its event's JSON text itself; it must read back as the codec's would,
    # and what only the codec may judge (a value from a custom clock, odd text) goes to it.
    from actors.durable import _observed

    codec = MemoryEventStore().codec
    new = _observed(scope, 7, "now", value, branch)
    try:
        expected = codec.new_event(TimeObserved(scope, 7, "now", value, branch))
    except eventstore.SerializationError:
        assert new is None
        return
    if new is None:
        assert type(value) is not float or not scope.isascii()
        return
    assert (new.type, new.data, new.metadata, new.data_json) == (
        expected.type, expected.data, expected.metadata, expected.data_json)
