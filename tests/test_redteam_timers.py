"""Red-team tests of a wake-up cut short after a commit point: its ``NotificationFired`` is
committed with its end (a commit point inside ``on_notify`` leaves it pending), so it runs again
under its scope, its ``due()`` calls hand out what they handed out, and its ``cancel()`` leaves
alone what it scheduled later; and a wake-up commits the live turns (``run()``) that scheduled
what it took before any commit of its own.

Each test first broke a promise (DESIGN section 8, docs/timers.md "Delivery guarantees",
docs/durable-time.md "A wake-up") of the first version of that change, or pins down one that
held; what is still broken is marked ``xfail(strict=True)`` with the defect in its reason.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
import trio
import trio.testing
from json_child import JsonChild, raw_log
from timer_doers import Did, Doer, fold_equals_live

import actors
import eventstore
from actors import durable, replay
from actors.testing import ActorTestKit
from eventstore.memory import MemoryEventStore

CHILD = Path(__file__).parent / "children" / "redteam_timers_child.py"


class Transient(Exception):
    """A side effect that fails once (an HTTP call, say): the wake-up is retried."""


@attrs.define
class Worker(Doer):
    """A message ``("at", token, epoch)`` schedules ``token`` at that instant, ``("cancel",
    token)`` cancels it. ``on_notify`` handles each due token: it records ``Did(token)`` and
    commits it (a flush), then does work that may fail once (``fail_once``)."""

    kind = "RTWorker"
    fail_once: ClassVar[set[str]] = set()
    calls: ClassVar[list[str]] = []

    async def receive(self, message: Any) -> Any:
        op, token, *rest = message
        if op == "at":
            self.notifier.notify_at(datetime.fromtimestamp(rest[0], UTC), token)
        elif op == "cancel":
            return self.notifier.cancel(token)
        return None

    async def on_notify(self) -> None:
        for token in self.notifier.due(await durable.now.aio()):
            Worker.calls.append(token)
            self.emit(Did(token))  # unconditional: matched when the scope runs again
            await self.flush()
        for token in sorted(Worker.fail_once):
            Worker.fail_once.discard(token)
            raise Transient(token)


def _epoch(kit: ActorTestKit, seconds: float) -> float:
    return kit.clock.time() + seconds


@pytest.fixture(autouse=True)
def _reset() -> None:
    Worker.fail_once = set()
    Worker.calls = []


# -- a wake-up that runs again after a failure past its commit point ------------------------------


async def test_a_wake_up_failing_after_its_flush_runs_again_and_matches_its_events(
        autojump_clock: trio.testing.MockClock) -> None:
    """on_notify takes two tokens, commits Did(a) and Did(b) (flushes), then fails. The tokens
    are pending again; the retry runs the same scope, its Did events are matched, not
    appended again, and the firing is committed once."""
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Worker, "w")
        await ref.ask(("at", "a", _epoch(kit, 10)))
        await ref.ask(("at", "b", _epoch(kit, 10)))
        Worker.fail_once = {"boom"}
        await kit.advance(60)
        assert Worker.calls == ["a", "b", "a", "b"]  # side effects at least once
        assert kit.state(ref).done == ["a", "b"]  # type: ignore[attr-defined]
        events = await kit.events(ref, system=True)
        await fold_equals_live(kit, ref, Worker)
    assert [e for e in events if isinstance(e, Did)] == [Did("a"), Did("b")]
    assert [e.seqs for e in events if isinstance(e, actors.NotificationFired)] == [(0, 1)]


async def test_a_wake_up_retried_after_an_earlier_timer_was_scheduled_appends_nothing_twice(
        autojump_clock: trio.testing.MockClock) -> None:
    """on_notify takes "a" (seq 0), commits Did(a) (flush), then fails. While it waits for its
    retry, a message schedules "late" at an instant already past and earlier than "a"'s (a
    catch-up timer: it fires at once). The retry's scope is ``notify:1`` (the earliest seq),
    not ``notify:0``: nothing of what the cut-short wake-up committed is matched, so Did(a) is
    appended a second time."""
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Worker, "w")
        start = kit.clock.time()
        await ref.ask(("at", "a", start + 10))
        Worker.fail_once = {"boom"}
        await kit.advance(10)  # the wake-up committed Did(a), failed; its retry waits a bit
        assert kit.state(ref).done == ["a"]  # type: ignore[attr-defined]
        await ref.ask(("at", "late", start + 5))  # already past, and before "a"
        await kit.advance(60)
        await ref.ask(("poke", None))  # (a token due before the wake-up's own instant is
        await kit.advance(10)  # taken for a stale one: a message lets it fire)
        events = await kit.events(ref, system=True)
        await fold_equals_live(kit, ref, Worker)
    assert [e for e in events if isinstance(e, Did)] == [Did("a"), Did("late")]


async def test_cancelling_one_token_of_a_cut_short_wake_up_appends_nothing_twice(
        autojump_clock: trio.testing.MockClock) -> None:
    """on_notify takes "a" (seq 0) and "b" (seq 1), commits Did(a) and Did(b), then fails.
    Before its retry, a message cancels "a" (still pending in the log: legal). The retry's
    scope is ``notify:1``: Did(b), committed by ``notify:0``, is appended again, and the record
    of ``notify:0`` stays open for good."""
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Worker, "w")
        start = kit.clock.time()
        await ref.ask(("at", "a", start + 10))
        await ref.ask(("at", "b", start + 10))
        Worker.fail_once = {"boom"}
        await kit.advance(10)
        assert await ref.ask(("cancel", "a")) == 1
        await kit.advance(60)
        events = await kit.events(ref, system=True)
        cell = kit._hosted[ref.stream].cell
        assert cell is not None
        open_scopes = [s for s in cell.state.record.scopes if s.startswith("notify:")]
    assert [e for e in events if isinstance(e, Did)] == [Did("a"), Did("b")]
    assert open_scopes == []


@attrs.define
class Batcher(Doer):
    """on_notify takes "job", records Did(job), schedules a catch-up "report" at an instant
    already past (before "job"'s), and sleeps durably 60 s before recording that it slept."""

    kind = "RTBatcher"

    async def receive(self, message: Any) -> Any:
        self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=10), message)

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        for token in self.notifier.due(now):
            if token == "job":
                self.emit(Did("job"))
                self.notifier.notify_at(now - timedelta(hours=1), "report")
                await durable.sleep.aio(60)
                self.emit(Did("slept"))
            else:
                self.emit(Did(token))


@pytest.mark.parametrize("cut", ["stop", "crash"])
async def test_a_wake_up_cut_short_after_scheduling_an_earlier_timer_resumes_its_scope(
        autojump_clock: trio.testing.MockClock, cut: str) -> None:
    """on_notify takes "job" (seq 0), commits Did(job) and Scheduled("report", an hour ago: seq
    1) at its durable sleep, and is cut short mid-sleep. Recovered, the earliest pending seq is
    1: the wake-up runs as ``notify:1``, a scope with no record: the sleep starts again from
    zero and Did(job) is appended a second time."""
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Batcher, "b")
        await ref.ask("job")
        await kit.advance(40)  # the wake-up at 10 s sleeps until 70 s
        await (ref.stop() if cut == "stop" else kit.crash(ref))
        await kit.recover(ref)
        await kit.advance(1000)
        events = await kit.events(ref, system=True)
        await fold_equals_live(kit, ref, Batcher)
    assert [e.what for e in events if isinstance(e, Did) and e.what != "report"] == [
        "job", "slept"]
    sleeps = [e for e in events if isinstance(e, actors.SleepStarted)]
    assert len(sleeps) == 1  # resumed, not slept again from zero



@attrs.define
class Heart(Doer):
    """A heartbeat: each wake-up records a beat, resets the timer (cancel, then re-arm 10 s on:
    one pending beat at most), and throttles 5 s (a durable sleep) before recording "after"."""

    kind = "RTHeart"

    async def receive(self, message: Any) -> Any:
        self.notifier.cancel("beat")
        self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=10), "beat")

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        if self.notifier.due(now):
            self.emit(Did("beat"))
            self.notifier.cancel("beat")
            self.notifier.notify_at(now + timedelta(seconds=10), "beat")
            await durable.sleep.aio(5)
            self.emit(Did("after"))


@pytest.mark.parametrize("cut", ["crash", "stop"])
async def test_a_wake_up_that_resets_its_timer_keeps_it_when_cut_short(
        autojump_clock: trio.testing.MockClock, cut: str) -> None:
    """The wake-up at 10 s takes "beat", cancels any other "beat" (none), re-arms it for 20 s
    and sleeps (committing the re-arm). Cut short mid-sleep and resumed, its cancel() now
    finds the re-armed timer (seq 1, committed by this very scope) and cancels it; its
    notify_at is matched against the committed one and schedules nothing. No beat is ever
    pending again: the heartbeat stops for good. (Before the change the firing was committed
    at the sleep and nothing ran again.)"""
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Heart, "h")
        await ref.ask("start")
        await kit.advance(12)  # the wake-up at 10 s sleeps until 15 s
        await (ref.stop() if cut == "stop" else kit.crash(ref))
        await kit.recover(ref)
        await kit.advance(25)  # to 37 s: beats at 10 s and 20 s (and 30 s)
        pending = kit.state(ref).notifier.pending()
        done = kit.state(ref).done  # type: ignore[attr-defined]
    assert [token for _, token in pending] == ["beat"]
    assert done.count("beat") >= 2



@attrs.define
class Chunks(Doer):
    """Work in chunks: on_notify handles each due token (a chunk) and sleeps 5 s after each;
    "chunk1" schedules "chunk2" at once (the rest, for a wake-up of its own); after the batch
    it cools down 30 s."""

    kind = "RTChunks"

    async def receive(self, message: Any) -> Any:
        if message == "done?":
            return list(self.done)
        self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=10), message)
        return None

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        for token in self.notifier.due(now):
            self.emit(Did(token))
            if token == "chunk1":
                self.notifier.notify_at(now, "chunk2")
            await durable.sleep.aio(5)
        await durable.sleep.aio(30)


@pytest.mark.parametrize("cut", ["crash", "stop"])
async def test_a_wake_up_that_schedules_a_due_timer_replays_when_cut_short(
        autojump_clock: trio.testing.MockClock, cut: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """The wake-up at 10 s takes "chunk1", schedules "chunk2" at its now (10 s), sleeps 5 s
    and cools down 30 s; it is cut short at 20 s. Resumed, due(10 s) now returns "chunk1" and
    "chunk2" (committed by this scope): Did("chunk2") where the log recorded the cool-down's
    sleep is a NonDeterminismError; the actor stops, and does so again at every activation.
    Deterministic code, a legitimate pattern, an actor bricked."""
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Chunks, "c")
        await ref.ask("chunk1")
        await kit.advance(20)
        await (ref.stop() if cut == "stop" else kit.crash(ref))
        await kit.recover(ref)
        await kit.advance(100)
        assert not [r for r in caplog.records if "no longer replays" in r.getMessage()]
        await ref.ask("done?")  # (on the virtual clock "chunk2", due at the wake-up's own
        await kit.advance(10)  # instant, is taken for a stale token: a message lets it fire)
        assert await ref.ask("done?") == ["chunk1", "chunk2"]


# -- a wake-up in progress takes a token run() still holds uncommitted ----------------------------


@attrs.define
class Poller(Doer):
    """run() sleeps durably 20 s, then schedules "from-run" due at once and waits (without a
    commit point). on_notify drains due tokens in three rounds, 15 s apart (durable sleeps)."""

    kind = "RTPoller"
    calls: ClassVar[list[str]] = []

    async def run(self) -> None:
        await durable.sleep.aio(20)
        self.notifier.notify_at(await durable.now.aio(), "from-run")
        await trio.sleep_forever()

    async def receive(self, message: Any) -> Any:
        self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=10), message)

    async def on_notify(self) -> None:
        for _ in range(3):
            for token in self.notifier.due(await durable.now.aio()):
                Poller.calls.append(token)
                self.emit(Did(token))
            await durable.sleep.aio(15)


async def test_a_wake_up_in_progress_that_takes_runs_uncommitted_timer_does_not_fail(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    """The wake-up for "msg" (10 s) sleeps; at 20 s run() schedules "from-run" due at once and
    holds it uncommitted; the wake-up's next round (25 s) takes it. Its end commit would put
    NotificationFired(1) before NotificationScheduled(1): it is refused, the wake-up fails (an
    error is logged, each side effect runs twice) and is retried after a backoff, when the
    start of the retry commits run() first. docs/timers.md promises the wake-up commits the
    scheduling turn first."""
    Poller.calls = []
    caplog.set_level(logging.ERROR, logger="actors")
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Poller, "p")
        await ref.ask("msg")
        await kit.advance(100)
        assert kit.state(ref).done == ["msg", "from-run"]  # type: ignore[attr-defined]
        events = await kit.events(ref, system=True)
        await fold_equals_live(kit, ref, Poller)
    assert [e for e in events if isinstance(e, Did)] == [Did("msg"), Did("from-run")]
    assert not [r for r in caplog.records if "failed in on_notify" in r.getMessage()]
    assert Poller.calls == ["msg", "from-run"]  # no failure: each side effect once



async def test_a_crash_after_a_wake_up_acted_on_runs_uncommitted_timer_appends_nothing_twice(
        autojump_clock: trio.testing.MockClock) -> None:
    """As above, but the process dies at 30 s, in the wake-up's second sleep: Did("from-run")
    was committed at 25 s (its firing held back), run()'s NotificationScheduled never was.
    Recovered, run() resumes after its sleep and schedules "from-run" again, which fires
    again: the log holds Did("from-run") twice (once before any scheduling of it)."""
    Poller.calls = []
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Poller, "p")
        await ref.ask("msg")
        await kit.advance(30)
        await kit.crash(ref)
        await kit.recover(ref)
        await kit.advance(100)
        events = await kit.events(ref, system=True)
        await fold_equals_live(kit, ref, Poller)
    kinds = [type(e).__name__ if not isinstance(e, Did) else e.what for e in events]
    assert kinds.count("from-run") == 1
    scheduled = next(n for n, e in enumerate(events)
                     if isinstance(e, actors.NotificationScheduled) and e.token == "from-run")
    assert kinds.index("from-run") > scheduled  # its effect after its scheduling


# -- the commit a wake-up makes for run() before it starts ----------------------------------------


class FailingAppend(MemoryEventStore):
    """A store whose next append fails once ``fail`` is set (a full disk: nothing written)."""

    fail = False

    async def _append(self, stream: str, events: Any, expected: Any, side: Any) -> Any:
        if self.fail:
            self.fail = False
            raise eventstore.EventStoreError("the disk is full")
        return await super()._append(stream, events, expected, side)


@attrs.define
class Scheduler(Doer):
    """run() sleeps durably 5 s, then schedules "from-run" due at once and waits without a
    commit point; meanwhile its store refuses the next append, or another writer appends."""

    kind = "RTScheduler"
    store: ClassVar[Any] = None
    mode: ClassVar[str] = "fail"
    fired: ClassVar[list[str]] = []

    async def run(self) -> None:
        await durable.sleep.aio(5)
        self.notifier.notify_at(await durable.now.aio(), "from-run")
        if Scheduler.mode == "fail":
            Scheduler.store.fail = True
        else:  # another process writes to the stream
            codec = Scheduler.store.codec
            await Scheduler.store.append("RTScheduler-s", [codec.new_event(Did("other"))])
        await trio.sleep_forever()

    async def receive(self, message: Any) -> Any:
        return list(self.done)

    async def on_notify(self) -> None:
        for token in self.notifier.due(await durable.now.aio()):
            Scheduler.fired.append(token)
            self.emit(Did(token))


@pytest.mark.parametrize("mode", ["fail", "race"])
async def test_a_failing_commit_of_runs_timer_before_a_wake_up_never_crashes_the_nursery(
        autojump_clock: trio.testing.MockClock, mode: str) -> None:
    """Before its own commit, the wake-up for run()'s timer commits run()'s events. That append
    fails: the store refuses it (nothing written: the wake-up fails and is tried again, as a
    failed commit of on_notify is, its side effects at least once) or another writer appended
    first (the actor stops, the nursery does not crash, as
    test_core_promises.py::test_a_lost_race_stops_the_actor_* promises)."""
    Scheduler.mode, Scheduler.fired = mode, []
    store = Scheduler.store = FailingAppend()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Scheduler, "s", store=store,
                                 clock=actors.VirtualClock())
        await trio.sleep(30)
        if mode == "race":
            with pytest.raises(actors.ActorStopped, match="another writer"):
                await ref.ask("done")
            assert Scheduler.fired == ["from-run"]
        else:
            assert await ref.ask("done") == ["from-run"]
            assert Scheduler.fired == ["from-run", "from-run"]  # the first try failed
        nursery.cancel_scope.cancel()


# -- a sleeping wake-up's held firing and the other turns' commits ---------------------------------


class CountingReads(MemoryEventStore):
    """A store that counts the pages read from it and the snapshots saved to it."""

    pages = 0
    saves = 0

    async def _read_page(self, stream: str, first: int, last: int | None, size: int) -> Any:
        self.pages += 1
        return await super()._read_page(stream, first, last, size)

    async def _save_snapshot(self, stream: str, version: int, state: str) -> None:
        self.saves += 1
        await super()._save_snapshot(stream, version, state)


@attrs.define
class Busy(actors.Actor):
    """run() commits an event every second; a message schedules a timer due at once, whose
    wake-up takes it and sleeps durably for a day (a throttle, a long backoff)."""

    kind = "RTBusy"
    snapshot_every: ClassVar[int | None] = 20

    n: int = 0

    def apply(self, event: Any) -> None:
        self.n += 1

    async def run(self) -> None:
        for _ in range(60):
            self.emit(Did("tick"))
            await self.flush()
            await trio.sleep(1)

    async def receive(self, message: Any) -> Any:
        self.notifier.notify_at(await durable.now.aio(), message)

    async def on_notify(self) -> None:
        self.notifier.due(await durable.now.aio())
        await durable.sleep.aio(86400)


async def test_run_committing_while_a_wake_up_sleeps_does_not_reread_the_log(
        autojump_clock: trio.testing.MockClock) -> None:
    """60 flushes of run() while a wake-up sleeps with its firing held: a commit that passes
    another turn's pending firing is no reordering, so none of them folds the log again. (A
    snapshot due meanwhile is folded from the log: a page each, every 20 events.)"""
    store = CountingReads()
    async with ActorTestKit(store=store) as kit:
        ref = await kit.spawn(Busy, "b")
        await ref.ask("throttle")
        reads, saves = store.pages, store.saves
        await kit.advance(70)
        rereads, snapshots = store.pages - reads, store.saves - saves
        await kit.crash(ref)
    assert snapshots == 6
    assert rereads <= 5 + snapshots


async def test_run_committing_while_a_wake_up_sleeps_still_snapshots(
        autojump_clock: trio.testing.MockClock) -> None:
    """60 events of run() while a wake-up sleeps for a day: without it, snapshots are saved
    every 20 events."""
    store = CountingReads()
    async with ActorTestKit(store=store) as kit:
        ref = await kit.spawn(Busy, "b")
        await ref.ask("throttle")
        await kit.advance(70)
        snapshot = await store.load_snapshot(ref.stream)
        await kit.crash(ref)
    assert snapshot is not None


# -- promises that hold: coverage ---------------------------------------------------------------


@attrs.define
class Starter(Doer):
    """run() schedules "kick" due at once, emits Did("scheduled"), then waits 5 s (no commit
    point) and fails the first ``fail`` times (supervision restarts it), then flushes and
    finishes."""

    kind = "RTStarter"
    supervision: ClassVar[Any] = actors.Restart(initial_backoff=1.0)
    fail: ClassVar[int] = 0
    fired: ClassVar[list[str]] = []

    async def run(self) -> None:
        self.notifier.notify_at(await durable.now.aio(), "kick")
        self.emit(Did("scheduled"))
        await trio.sleep(5)
        if Starter.fail:
            Starter.fail -= 1
            raise Transient("run() fails after its timer fired")
        self.emit(Did("ran"))
        await self.flush()

    async def receive(self, message: Any) -> Any:
        return list(self.done)

    async def on_notify(self) -> None:
        for token in self.notifier.due(await durable.now.aio()):
            Starter.fired.append(token)
            self.emit(Did(token))


@pytest.mark.parametrize("cut", ["restart", "crash", "stop"])
async def test_a_timer_run_holds_fires_once_when_run_fails_or_is_cut_short_after_it(
        autojump_clock: trio.testing.MockClock, cut: str) -> None:
    """The wake-up commits run()'s events so far (a commit point of run()); run() then fails
    and is restarted, or the actor crashes or stops. run() runs its scope again: its timer and
    its Did("scheduled") are matched, not appended again; the timer fired once."""
    Starter.fired, Starter.fail = [], 1 if cut == "restart" else 0
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Starter, "s")
        await kit.advance(2)  # the timer fired; run() waits
        assert Starter.fired == ["kick"]
        if cut != "restart":
            await (ref.stop() if cut == "stop" else kit.crash(ref))
            await kit.recover(ref)
        await kit.advance(30)
        assert await ref.ask("done") == ["scheduled", "kick", "ran"]
        events = await kit.events(ref, system=True)
        await fold_equals_live(kit, ref, Starter)
        checked = await replay.check(kit.store, Starter, "s")
        assert checked.ok, checked.divergence
    assert Starter.fired == ["kick"]
    assert [e.what for e in events if isinstance(e, Did)] == ["scheduled", "kick", "ran"]
    assert sum(isinstance(e, actors.NotificationScheduled) for e in events) == 1
    assert [e.seqs for e in events if isinstance(e, actors.NotificationFired)] == [(0,)]


@attrs.define
class Rounds(Doer):
    """on_notify drains due tokens in rounds: each token gets Did(token), a flush, and the
    round ends with a durable sleep of 30 s; it cancels "c" when it takes "a", and schedules
    "late" (20 s on) in its first round."""

    kind = "RTRounds"
    snapshot_every: ClassVar[int | None] = 1
    calls: ClassVar[list[str]] = []

    async def receive(self, message: Any) -> Any:
        token, seconds = message
        self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=seconds), token)

    async def on_notify(self) -> None:
        first = True
        while True:
            now = await durable.now.aio()
            tokens = self.notifier.due(now)
            if not tokens:
                return
            for token in tokens:
                Rounds.calls.append(token)
                self.emit(Did(token))
                if token == "a":
                    self.notifier.cancel("c")
                await self.flush()
            if first:
                self.notifier.notify_at(now + timedelta(seconds=20), "late")
                first = False
            await durable.sleep.aio(30)


@pytest.mark.parametrize("cut", ["crash", "stop"])
@pytest.mark.parametrize("at", [15, 45, 75])
async def test_a_wake_up_of_several_rounds_cut_short_anywhere_resumes_exactly(
        autojump_clock: trio.testing.MockClock, cut: str, at: float) -> None:
    """Tokens a, b (10 s) and c (50 s); the wake-up at 10 s takes a and b, cancels c,
    schedules "late" (30 s), sleeps to 40 s, takes late, sleeps to 70 s, ends at 70 s. Cut
    short in either sleep (or after the end), with a snapshot after every event: every Did
    once, one firing per token, each sleep started once, the log folds to the live state."""
    Rounds.calls = []
    async with ActorTestKit(always_replay=True) as kit:  # each turn's end: log == live
        ref = await kit.spawn(Rounds, "r")
        for message in [("a", 10), ("b", 10), ("c", 50)]:
            await ref.ask(message)
        await kit.advance(at)
        await (ref.stop() if cut == "stop" else kit.crash(ref))
        await kit.recover(ref)
        await kit.advance(200)
        events = await kit.events(ref, system=True)
        folded = await fold_equals_live(kit, ref, Rounds)
        checked = await replay.check(kit.store, Rounds, "r")
        assert checked.ok and checked.snapshots > 0, checked
        assert folded.notifier.pending() == []
    assert [e.what for e in events if isinstance(e, Did)] == ["a", "b", "late"]
    fired = [seq for e in events if isinstance(e, actors.NotificationFired) for seq in e.seqs]
    assert sorted(fired) == [0, 1, 3]
    assert [e.seconds for e in events if isinstance(e, actors.SleepStarted)] == [30, 30]
    scheduled = [e.token for e in events if isinstance(e, actors.NotificationScheduled)]
    assert scheduled == ["a", "b", "c", "late"]


def test_a_wake_up_killed_in_a_durable_sleep_is_brought_back_by_the_work_index(
        tmp_path: Path) -> None:
    """A real process (an ActorSystem with passivation) is killed (SIGKILL) while a wake-up
    sleeps durably, after it committed Did("job") and a later timer. The work index still holds
    the wake-up's instant (its firing was not committed): a new process that nobody asks
    brings the actor back, the wake-up resumes and sleeps only the rest, then the actor is
    passivated and brought back again for the later timer. Each event is in the log once."""
    db = tmp_path / "sleeper.db"
    first = JsonChild(CHILD, str(db), "schedule")
    first.expect("scheduled")
    took = first.expect("took")
    time.sleep(0.3)  # the sleep's SleepStarted is committed right after the print
    first.kill()
    time.sleep(max(0.0, took["seen"] + 1.0 - time.time()))  # down for half of the 2 s sleep
    restarted = time.time()
    second = JsonChild(CHILD, str(db), "resume")
    again = second.expect("took")  # the scope runs again: its print is a side effect
    assert again["now"] == took["now"]  # its durable now replayed
    slept = second.expect("slept")
    later = second.expect("next")
    second.finish(nothing_more=True)
    assert slept["now"] >= took["now"] + 2.0  # never early
    assert slept["seen"] < restarted + 1.9  # only the rest of the sleep (about 1 s)...
    assert slept["now"] < restarted + 1.9  # ...not 2 s from the restart
    assert later["now"] >= took["now"] + 4.0
    log = raw_log(db, "RTSleeper-s1")
    did = [data["what"] for kind, data in log if kind == "tests.redteam_timers_child.Did"]
    assert did == ["job", "slept", "next"]
    assert sum(kind == "actors.SleepStarted" for kind, _ in log) == 1
    fired = [seq for kind, data in log if kind == "actors.NotificationFired"
             for seq in data["seqs"]]
    assert fired == [0, 1]


async def test_leaving_a_system_while_a_wake_up_sleeps_resumes_it_in_the_next_system(
        autojump_clock: trio.testing.MockClock) -> None:
    """A system (with passivation) is left while a wake-up sleeps durably: the stop commits
    what it emitted, not its firing, and sets the work index to now. The next system on the
    store, which nobody asks, activates the actor: the wake-up resumes the rest of its sleep (to
    40 s), takes the timer it scheduled, and ends; each event is in the log once."""
    store = MemoryEventStore()
    clock = actors.VirtualClock()
    start = clock.time()
    async with actors.ActorSystem(store, actors=[Rounds], clock=clock, idle_timeout=5,
                                  telemetry=None) as system:
        ref = system.ref(Rounds, "r")
        await ref.ask(("a", 10))
        await trio.sleep(20)  # the wake-up at 10 s sleeps until 40 s
    await trio.sleep(5)  # down for a while: 25 s
    async with actors.ActorSystem(store, actors=[Rounds], clock=clock, idle_timeout=5,
                                  telemetry=None):
        await trio.sleep(200)
    events = [store.codec.decode(r) async for r in store.read("RTRounds-r")]
    assert [e.what for e in events if isinstance(e, Did)] == ["a", "late"]
    assert [e.seconds for e in events if isinstance(e, actors.SleepStarted)] == [30, 30]
    woke = [e.value for e in events if isinstance(e, actors.TimeObserved)
            and e.scope == "notify:0"]
    assert [t - start for t in woke] == [10, 40, 70]  # the resumed sleep ended at 40 s


async def test_stopping_a_wake_up_in_a_durable_sleep_logs_no_failure(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="actors")
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Batcher, "b")
        await ref.ask("job")
        await kit.advance(40)
        await ref.stop()
    assert [r.getMessage() for r in caplog.records] == []


@attrs.define
class Sink(actors.Actor):
    """Records each message it receives (a durable ``send``: deduplicated by its id)."""

    kind = "RTSink"

    got: list[str] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        if isinstance(event, Did):
            self.got.append(event.what)

    async def receive(self, message: Any) -> Any:
        if message != "got?":
            self.emit(Did(message))
        return list(self.got)


@attrs.define
class Relay(Worker):
    """Worker whose on_notify sends each due token to the Sink (durably), flushes, and may
    fail once afterwards."""

    kind = "RTRelay"

    async def on_notify(self) -> None:
        for token in self.notifier.due(await durable.now.aio()):
            await self.ref(Sink, "k").send(token)
            await self.flush()
        for token in sorted(Worker.fail_once):
            Worker.fail_once.discard(token)
            raise Transient(token)


@pytest.mark.parametrize("late", [
    pytest.param(None, id="retried"),
    pytest.param(5, id="renamed"),
])
async def test_a_wake_up_that_runs_again_never_sends_a_message_twice(
        autojump_clock: trio.testing.MockClock, late: float | None) -> None:
    """on_notify sends "a" to a Sink (committed at its flush: the message is in the Sink's
    inbox, its id derived from the scope ``notify:0``), then fails; the retry matches the send.
    But a catch-up timer scheduled before the retry (``renamed``) makes the retry's scope
    ``notify:1``: the send is not matched, gets a new id, and the Sink runs "a" twice."""
    clock = actors.VirtualClock()
    async with actors.ActorSystem(MemoryEventStore(), actors=[Relay, Sink], clock=clock,
                                  telemetry=None) as system:
        relay = system.ref(Relay, "r")
        start = clock.time()
        await relay.ask(("at", "a", start + 10))
        Worker.fail_once = {"boom"}
        await trio.sleep(10)
        await trio.testing.wait_all_tasks_blocked()
        if late is not None:
            await relay.ask(("at", "late", start + late))
        await trio.sleep(60)
        await relay.ask(("poke", None))  # (lets a token taken for a stale one fire)
        await trio.sleep(10)
        got = await system.ref(Sink, "k").ask("got?")
    assert got == (["a"] if late is None else ["a", "late"])


@attrs.define
class Ticker(actors.Actor):
    """on_notify takes its token, then sleeps durably 1 s, 300 times, recording each tick."""

    kind = "RTTicker"
    pending: ClassVar[list[int]] = []

    ticks: int = 0

    def apply(self, event: Any) -> None:
        self.ticks += 1

    async def receive(self, message: Any) -> Any:
        self.notifier.notify_at(await durable.now.aio(), message)

    async def on_notify(self) -> None:
        self.notifier.due(await durable.now.aio())
        for n in range(300):
            await durable.sleep.aio(1)
            self.emit(Did(str(n)))
            Ticker.pending.append(len(self._cell.journal.pending))


async def test_a_wake_up_sleeping_in_a_loop_holds_only_its_firing_pending(
        autojump_clock: trio.testing.MockClock) -> None:
    """300 durable sleeps in one wake-up: each commits the tick before it; only the firing
    (and the tick just emitted) stays pending, so the pending list does not grow; a crash at
    any point resumes the loop where it was."""
    Ticker.pending = []
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Ticker, "t")
        await ref.ask("go")
        await kit.advance(150.5)
        await kit.crash(ref)
        await kit.recover(ref)
        await kit.advance(400)
        events = await kit.events(ref, system=True)
        assert kit.state(ref).ticks == 300  # type: ignore[attr-defined]
    assert max(Ticker.pending) == 2
    assert sum(isinstance(e, actors.SleepStarted) for e in events) == 300
    assert sum(isinstance(e, actors.NotificationFired) for e in events) == 1
