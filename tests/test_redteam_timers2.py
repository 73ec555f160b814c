"""Red-team tests (second round) of a scope that runs again after being cut short past a commit
point: a wake-up's ``due()`` calls hand out what they handed out the first time
(``ScopeCommitted.fired``, counted per place), and any such scope's ``cancel()`` calls remove and
count what they did the first time (``ScopeCommitted.cancelled``); the next wake-up adopts a
cut-short wake-up's scope from the record, or completes one that cannot run again.

Each test first broke a promise (DESIGN section 8, docs/timers.md "Delivery guarantees",
docs/durable-time.md "A wake-up") of the version before its fix, or pins down one that held.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import attrs
import pytest
import trio
import trio.testing
from timer_doers import Did, Doer, fold_equals_live

import actors
import eventstore
import eventstore.memory
from actors import durable, replay
from actors.testing import ActorTestKit


def _no_replay_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "no longer replays" in r.getMessage()]


def _dids(events: list[Any]) -> list[str]:
    return [e.what for e in events if isinstance(e, Did)]


# -- a due() call that handed out nothing the first time ------------------------------------------


@attrs.define
class Recheck(Doer):
    """A wake-up that takes its due tokens, pauses 5 s, looks again for due work (nothing the
    first time), re-arms a follow-up due at once, and cools down 30 s."""

    kind = "RT2Recheck"

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        for token in self.notifier.due(now):
            self.emit(Did(token))
        await durable.sleep.aio(5)
        now = await durable.now.aio()
        for token in self.notifier.due(now):  # nothing more, the first time
            self.emit(Did(f"again:{token}"))
        if "job" in self.done and "follow-up" not in self.done:
            self.notifier.notify_at(now, "follow-up")
        await durable.sleep.aio(30)


@pytest.mark.parametrize("cut", ["crash", "stop"])
async def test_a_due_call_that_handed_out_nothing_hands_out_nothing_when_run_again(
        autojump_clock: trio.testing.MockClock, cut: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """The wake-up at 10 s takes "job", sleeps to 15 s, its second due() hands out nothing; it
    schedules "follow-up" due at 15 s and cools down to 45 s (committing it). Cut short at 20 s
    and run again: the second due() must hand out nothing again (docs/timers.md: each due()
    call hands out what it handed out the first time)."""
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Recheck, "r")
        await ref.ask("job")
        await kit.advance(20)
        await (ref.stop() if cut == "stop" else kit.crash(ref))
        await kit.recover(ref)
        await kit.advance(100)
        assert _no_replay_errors(caplog) == []
        assert await ref.ask("done?") == ["job", "follow-up"]


@attrs.define
class Triage(Doer):
    """A wake-up that first escalates tokens overdue by 30 s or more, then handles the rest on
    time (two due() calls at one place: no durable call between), then cools down 60 s."""

    kind = "RT2Triage"

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        for token in self.notifier.due(now - timedelta(seconds=30)):
            self.emit(Did(f"late:{token}"))
        for token in self.notifier.due(now):
            self.emit(Did(f"on-time:{token}"))
        await durable.sleep.aio(60)
        self.emit(Did("cooled"))


@pytest.mark.parametrize("cut", ["crash", "stop"])
async def test_two_due_calls_at_one_place_the_first_empty_hand_out_the_same_when_run_again(
        autojump_clock: trio.testing.MockClock, cut: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """The wake-up at 10 s: due(now - 30 s) hands out nothing, due(now) hands out "a"; it
    cools down to 70 s. Cut short at 40 s and run again: the same calls hand out the same."""
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Triage, "t")
        await ref.ask("a")
        await kit.advance(40)
        await (ref.stop() if cut == "stop" else kit.crash(ref))
        await kit.recover(ref)
        await kit.advance(100)
        assert _no_replay_errors(caplog) == []
        assert await ref.ask("done?") == ["on-time:a", "cooled"]


@attrs.define
class Drainer(Doer):
    """A wake-up that drains what is due (``while due(now)``: the last call hands out nothing),
    commits it, cools down 30 s, then does a step that fails once (an HTTP call, say)."""

    kind = "RT2Drainer"
    fail_once: ClassVar[bool] = False

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        while tokens := self.notifier.due(now):
            for token in tokens:
                self.emit(Did(token))
        await durable.sleep.aio(30)
        if Drainer.fail_once:
            Drainer.fail_once = False
            raise RuntimeError("the call after the cool-down fails once")
        self.emit(Did("cooled"))


async def test_a_drain_loop_run_again_leaves_a_token_scheduled_meanwhile_to_the_next_wake_up(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    """The wake-up at 10 s drains "a", sleeps to 40 s (committing Did(a)), then fails; during
    its backoff a message (sent during the sleep) schedules "late" at 5 s, before the
    wake-up's durable now. The retry runs the
    same scope: its due() calls hand out "a", then nothing; "late" comes next."""
    Drainer.fail_once = True
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Drainer, "d")
        await ref.ask(("a", 10))
        await kit.advance(30)  # the wake-up sleeps until 40 s, then fails
        ref.tell(("late", -35))  # waits for the wake-up, runs before its retry: "late" at 5 s
        await kit.advance(100)
        assert _no_replay_errors(caplog) == []
        assert await ref.ask("done?") == ["a", "cooled", "late", "cooled"]


@attrs.define
class Chaser(Doer):
    """A wake-up that takes its due tokens, schedules a "chaser" due at once and takes it too
    (two due() calls at one place), then sleeps 30 s twice; the first sleep may be followed by
    a failure (once). A message ("cancel", token) cancels a token."""

    kind = "RT2Chaser"
    fail_once: ClassVar[bool] = False

    async def receive(self, message: Any) -> Any:
        if message == "done?":
            return list(self.done)
        op, token = message
        if op == "cancel":
            return self.notifier.cancel(token)
        self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=10), token)
        return None

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        for token in self.notifier.due(now):
            self.emit(Did(token))
        self.notifier.notify_at(now, "chaser")
        for token in self.notifier.due(now):
            self.emit(Did(f"then:{token}"))
        await durable.sleep.aio(30)
        if Chaser.fail_once:
            Chaser.fail_once = False
            raise RuntimeError("fails once after the first sleep")
        await durable.sleep.aio(30)


async def test_a_wake_up_cut_short_twice_after_its_token_was_cancelled_hands_out_the_same(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    """The wake-up at 10 s takes "a" (seq 0), schedules and takes "chaser" (seq 1), sleeps to
    40 s and fails; a message sent meanwhile cancels "a" (still pending in the log). The retry
    (40 s): its first due() hands out nothing (cancelled), its second "chaser"; its replayed
    sleep commits a marker; it is cut short in its second sleep (crash at 50 s). Run again:
    its first due() must still hand out nothing."""
    Chaser.fail_once = True
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Chaser, "c")
        await ref.ask(("at", "a"))
        await kit.advance(20)
        ref.tell(("cancel", "a"))  # handled before the retry
        await kit.advance(30)  # to 50 s: the retry sleeps until 100 s
        await kit.crash(ref)
        await kit.recover(ref)
        await kit.advance(100)
        assert _no_replay_errors(caplog) == []
        assert await ref.ask("done?") == ["a", "then:chaser"]


# -- a wake-up whose tasks sleep durably -------------------------------------------------------


@attrs.define
class Fanout(Doer):
    """on_notify takes its due tokens and handles each in a task of its own (a branch): it
    records the start, sleeps durably 30 s, records the end."""

    kind = "RT2Fanout"
    ordered: ClassVar[bool] = False

    async def on_notify(self) -> None:
        tokens = self.notifier.due(await durable.now.aio())
        async with trio.open_nursery() as nursery:
            for token in tokens:
                nursery.start_soon(self._handle, token)

    async def _handle(self, token: str) -> None:
        self.emit(Did(f"start:{token}"))
        await durable.sleep.aio(30)
        self.emit(Did(f"end:{token}"))


@pytest.mark.parametrize("cut", [
    pytest.param("stop"),
    "crash",
])
async def test_a_wake_up_whose_tasks_sleep_resumes_each_task_and_a_stop_is_no_failure(
        autojump_clock: trio.testing.MockClock, cut: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """The wake-up at 10 s takes "a" and "b" and handles each in a task that sleeps to 40 s.
    Cut short at 20 s and recovered, each task resumes its own sleep (two SleepStarted in
    all); every Did is in the log once; a stop is not logged as a failure."""
    caplog.set_level(logging.WARNING, logger="actors")
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Fanout, "f")
        await ref.ask("a")
        await ref.ask("b")
        await kit.advance(20)
        await (ref.stop() if cut == "stop" else kit.crash(ref))
        logged = [r.getMessage() for r in caplog.records]
        await kit.recover(ref)
        await kit.advance(100)
        assert await ref.ask("done?") == ["end:a", "end:b", "start:a", "start:b"]
        events = await kit.events(ref, system=True)
        await fold_equals_live(kit, ref, Fanout)
        checked = await replay.check(kit.store, Fanout, "f")
        assert checked.ok, checked.divergence
    assert sorted(_dids(events)) == ["end:a", "end:b", "start:a", "start:b"]
    assert [e.seqs for e in events if isinstance(e, actors.NotificationFired)] == [(0, 1)]
    assert len([e for e in events if isinstance(e, actors.SleepStarted)]) == 2
    assert logged == []


@attrs.define
class Reminder(actors.Actor):
    """on_notify for "order" runs two tasks: one clears any pending "remind" (cancel), the
    other waits 5 s for a confirmation (a durable sleep), then schedules "remind" 100 s on and
    sleeps 30 s more."""

    kind = "RT2Reminder"
    fired: ClassVar[list[str]] = []

    async def receive(self, message: Any) -> Any:
        self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=10), message)

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        tokens = self.notifier.due(now)
        Reminder.fired.extend(tokens)
        if "order" not in tokens:
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._clear)
            nursery.start_soon(self._arm, now)

    async def _clear(self) -> None:
        self.notifier.cancel("remind")

    async def _arm(self, now: datetime) -> None:
        await durable.sleep.aio(5)
        self.notifier.notify_at(now + timedelta(seconds=100), "remind")
        await durable.sleep.aio(30)


@pytest.mark.parametrize("cut", ["crash", "stop"])
async def test_cancel_in_one_task_leaves_alone_what_another_task_of_the_scope_scheduled_later(
        autojump_clock: trio.testing.MockClock, cut: str) -> None:
    """The wake-up at 10 s: task 1 cancels "remind" (none yet), task 2 schedules it at 110 s
    (at 15 s) and sleeps to 45 s (committing it). Cut short at 20 s and run again: "remind"
    still fires, once, at 110 s."""
    Reminder.fired = []
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Reminder, "r")
        await ref.ask("order")
        await kit.advance(20)
        await (ref.stop() if cut == "stop" else kit.crash(ref))
        await kit.recover(ref)
        await kit.advance(200)
    assert Reminder.fired == ["order", "order", "remind"]


# -- logs written by the previous release -----------------------------------------------------


@attrs.define
class Mailer(Doer):
    """on_notify records each due token, waits 60 s (a durable sleep), records "slept"."""

    kind = "RT2Mailer"
    handed: ClassVar[list[list[str]]] = []

    async def on_notify(self) -> None:
        tokens = self.notifier.due(await durable.now.aio())
        Mailer.handed.append(tokens)
        for token in tokens:
            self.emit(Did(token))
        await durable.sleep.aio(60)
        self.emit(Did("slept"))


def _old_release_log(codec: Any, start: float) -> list[Any]:
    """What the previous release committed for Mailer("m"): "job" scheduled at 10 s, its
    wake-up committed at its durable sleep *with* its NotificationFired and a ScopeCommitted
    without ``fired``, then the process died mid-sleep (scope notify:0 never completed)."""
    at = start + 10
    return [codec.new_event(e) for e in [
        actors.TimeObserved("once", 1, "now", start),
        actors.NotificationScheduled(0, datetime.fromtimestamp(at, UTC),
                                     codec.encode_value("job")),
        actors.ScopeCommitted("notify:0", ((1,),)),
        actors.TimeObserved("notify:0", 1, "now", at),
        actors.NotificationFired((0,)),
        Did("job"),
        actors.SleepStarted("notify:0", 2, at, 60.0),
    ]]


@pytest.mark.parametrize("late", [
    pytest.param(False, id="on-time"),
    pytest.param(True, id="catch-up"),
])
async def test_a_stale_wake_up_scope_of_the_previous_release_is_not_adopted(
        autojump_clock: trio.testing.MockClock, late: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    """After the upgrade a message schedules "next" (in 10 s, or catch-up: 5 s after the old
    wake-up's instant, long past). The wake-up for it must be handed it; the old scope's
    events are not appended again."""
    Mailer.handed = []
    async with ActorTestKit() as kit:
        ref = kit.ref(Mailer, "m")
        start = kit.clock.time()
        await kit.store.append(ref.stream, _old_release_log(kit.store.codec, start))
        await kit.advance(1000)  # the upgrade: the new release starts on that log
        await kit.spawn(Mailer, "m")
        now = kit.clock.time()
        await ref.ask(("next", 5 - (now - start) if late else 10))
        await kit.advance(200)
        assert _no_replay_errors(caplog) == []
        done = await ref.ask("done?")
        events = await kit.events(ref, system=True)
        cell = kit._hosted[ref.stream].cell
        assert cell is not None
        open_scopes = list(cell.state.record.scopes)
    assert Mailer.handed[-1] == ["next"]
    assert done.count("job") == 1 and done[-2:] == ["next", "slept"]
    assert open_scopes == []
    assert [e.seqs for e in events if isinstance(e, actors.NotificationFired)] == [(0,), (1,)]


# -- cancel() in a scope that runs again, and other turns' timers -----------------------------


@attrs.define
class Watchdog(actors.Actor):
    """run() resets the "check" timer (cancel, re-arm 100 s on), commits, and waits 50 s (a
    durable sleep); a message arms another "check" of its own, 200 s on."""

    kind = "RT2Watchdog"
    fired: ClassVar[list[float]] = []

    async def run(self) -> None:
        self.notifier.cancel("check")
        self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=100), "check")
        await self.flush()
        await durable.sleep.aio(50)

    async def receive(self, message: Any) -> Any:
        self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=200), "check")

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        Watchdog.fired.extend(now.timestamp() for _ in self.notifier.due(now))


@pytest.mark.parametrize("cut", ["crash", "stop"])
async def test_run_run_again_leaves_alone_a_timer_a_message_scheduled_after_its_cancel(
        autojump_clock: trio.testing.MockClock, cut: str) -> None:
    """run() at 0 s cancels "check" (none), arms it for 100 s, sleeps to 50 s; at 10 s a
    message arms "check" for 210 s. Cut short at 20 s and run again: both fire."""
    Watchdog.fired = []
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Watchdog, "w")
        start = kit.clock.time()
        await kit.advance(10)
        await ref.ask("arm")
        await kit.advance(10)
        await (ref.stop() if cut == "stop" else kit.crash(ref))
        await kit.recover(ref)
        await kit.advance(300)
        events = await kit.events(ref, system=True)
    assert not any(isinstance(e, actors.NotificationCancelled) for e in events)
    assert [t - start for t in Watchdog.fired] == [100, 210]


# -- snapshots, check, state_at and the CLI on a log whose record holds hand-outs ------------------


@attrs.define
class Flaky(Doer):
    """Snapshots after every commit. on_notify records each due token and commits it (a flush),
    sleeps 30 s, may then fail once, and sleeps 30 s more; a message ("cancel", token) cancels
    a token."""

    kind = "RT2Flaky"
    snapshot_every: ClassVar[int | None] = 1
    fail_once: ClassVar[bool] = False
    handed: ClassVar[list[list[str]]] = []

    async def receive(self, message: Any) -> Any:
        op, token = message
        if op == "cancel":
            return self.notifier.cancel(token)
        if op == "done?":
            return list(self.done)
        self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=10), token)
        return None

    async def on_notify(self) -> None:
        tokens = self.notifier.due(await durable.now.aio())
        Flaky.handed.append(tokens)
        for token in tokens:
            self.emit(Did(token))
        await self.flush()
        await durable.sleep.aio(30)
        if Flaky.fail_once:
            Flaky.fail_once = False
            raise RuntimeError("fails once after its sleep")
        await durable.sleep.aio(30)
        self.emit(Did("slept"))


async def _copy_to_sqlite(memory: Any, path: Any) -> None:
    from eventstore.sqlite import SQLiteEventStore

    async with SQLiteEventStore(path) as store:
        streams: dict[str, list[eventstore.NewEvent]] = {}
        async for e in memory.read_all():
            streams.setdefault(e.stream, []).append(
                eventstore.NewEvent(e.type, e.data, e.metadata, e.id))
        for stream, events in streams.items():
            await store.append(stream, events)
            snapshot = await memory.load_snapshot(stream)
            if snapshot is not None:
                await store.save_snapshot(stream, snapshot.version, snapshot.state)


def test_a_snapshot_taken_while_the_record_holds_hand_outs_recovers_checks_and_lists(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """The wake-up at 10 s takes "a" (and "b"), commits Did(a), Did(b) (a flush), sleeps to
    40 s and fails; a message sent during the sleep cancels "b" and is committed before the
    retry: a snapshot (snapshot_every = 1) of a record that holds the hand-out (0, 1). The
    retry sleeps again (to 70 s); the actor crashes at 50 s and recovers from that snapshot:
    the wake-up hands out "a" only, each Did is in the log once. replay.check (every snapshot
    equals the fold), replay.state_at and the CLI (log, timers) read that log."""
    from actors._cli import main

    memory = None

    async def record() -> None:
        nonlocal memory
        Flaky.fail_once, Flaky.handed = True, []
        async with ActorTestKit() as kit:
            memory = kit.store
            ref = await kit.spawn(Flaky, "f")
            start = kit.clock.time()
            await ref.ask(("at", "a"))
            await ref.ask(("at", "b"))
            await kit.advance(20)
            ref.tell(("cancel", "b"))
            await kit.advance(30)  # to 50 s: the retry sleeps until 70 s
            snapshot = await kit.store.load_snapshot(ref.stream)
            assert snapshot is not None
            fired = [item for item in snapshot.state["record"] if item["kind"] == "fired"]
            assert fired == [{"kind": "fired", "scope": "notify:0", "mark": [1],
                              "seqs": [0, 1]}]
            await kit.crash(ref)
            await kit.recover(ref)
            await kit.advance(100)
            assert await ref.ask(("done?", None)) == ["a", "b", "slept"]
            events = await kit.events(ref, system=True)
            checked = await replay.check(kit.store, Flaky, "f")
            assert checked.ok and checked.snapshots > 0, checked
            await fold_equals_live(kit, ref, Flaky)
            middle = await replay.state_at(kit.store, Flaky, "f", snapshot.version)
            assert middle.done == ["a", "b"]
            assert middle.notifier.pending() == [(datetime.fromtimestamp(start + 10, UTC), "a")]
        assert Flaky.handed == [["a", "b"], ["a"], ["a"]]
        assert [e.seqs for e in events if isinstance(e, actors.NotificationFired)] == [(0,)]
        assert _dids(events) == ["a", "b", "slept"]

    trio.run(record, clock=trio.testing.MockClock(autojump_threshold=0))
    trio.run(_copy_to_sqlite, memory, tmp_path / "f.db")
    url = f"sqlite:///{tmp_path}/f.db"
    assert main(["log", url, "RT2Flaky-f"]) == 0
    out = capsys.readouterr().out
    assert "ScopeCommitted" in out or "notify:0" in out
    assert main(["timers", url]) == 0
    assert capsys.readouterr().out == "no pending timers\n"


# -- a cut-short wake-up whose tokens were all cancelled before it ran again ---------------------


@attrs.define
class FollowUp(actors.Actor):
    """on_notify records each due token, waits an hour (a durable sleep), then records a
    follow-up for each; a message ("cancel", token) cancels a token."""

    kind = "RT2FollowUp"
    handed: ClassVar[list[tuple[float, list[str]]]] = []

    async def receive(self, message: Any) -> Any:
        op, token, *rest = message
        if op == "cancel":
            return self.notifier.cancel(token)
        self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=rest[0]), token)
        return None

    async def on_notify(self) -> None:
        tokens = self.notifier.due(await durable.now.aio())
        FollowUp.handed.append((trio.current_time(), tokens))
        for token in tokens:
            self.emit(Did(token))
        await durable.sleep.aio(3600)
        for token in tokens:
            self.emit(Did(f"follow-up:{token}"))


async def test_a_cut_short_wake_up_whose_tokens_were_all_cancelled_delays_no_later_timer(
        autojump_clock: trio.testing.MockClock) -> None:
    """The wake-up at 10 s takes "a" and sleeps an hour; the actor is stopped at 20 s. A
    durable message ("cancel", "a") waits in its inbox, so it runs first when the actor is
    activated again (before the wake-up): "a" is cancelled, nothing is pending. A message
    schedules "b" for 35 s: it is handed out at 35 s."""
    FollowUp.handed = []
    store = eventstore.memory.MemoryEventStore()
    async with actors.ActorSystem(store, actors=[FollowUp], clock=actors.VirtualClock(),
                                  telemetry=None) as system:
        ref = system.ref(FollowUp, "f")
        start = trio.current_time()
        await ref.ask(("at", "a", 10))
        await trio.sleep(20)
        await ref.stop()
        await ref.send(("cancel", "a"))  # activates it; the inbox is read before any wake-up
        await trio.sleep(5)
        await ref.ask(("at", "b", 10))
        await trio.sleep(4000)
    handed = [(round(at - start), tokens) for at, tokens in FollowUp.handed]
    assert handed[0] == (10, ["a"])
    assert (35, ["b"]) in handed


async def test_check_accepts_run_sleeping_after_a_reset_while_a_message_armed_the_same_token(
        autojump_clock: trio.testing.MockClock) -> None:
    Watchdog.fired = []
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Watchdog, "w")
        await kit.advance(10)
        await ref.ask("arm")
        await kit.advance(10)
        checked = await replay.check(kit.store, Watchdog, "w")
    assert checked.ok, checked.divergence


# -- coverage: promises that hold ---------------------------------------------------------------


@attrs.define
class Pair(Doer):
    """on_notify runs two tasks that each take due tokens: the first at once, the second after
    a 5 s durable sleep; each records what it took and sleeps 30 s before recording "end"."""

    kind = "RT2Pair"
    ordered: ClassVar[bool] = False
    handed: ClassVar[list[tuple[str, list[str]]]] = []

    async def on_notify(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._task, "one", 0)
            nursery.start_soon(self._task, "two", 5)

    async def _task(self, name: str, wait: float) -> None:
        if wait:
            await durable.sleep.aio(wait)
        tokens = self.notifier.due(await durable.now.aio())
        Pair.handed.append((name, tokens))
        for token in tokens:
            self.emit(Did(f"{name}:{token}"))
        await durable.sleep.aio(30)
        self.emit(Did(f"{name}:end"))


@pytest.mark.parametrize("cut", ["crash", "stop"])
async def test_each_task_of_a_wake_up_run_again_is_handed_what_it_was_handed(
        autojump_clock: trio.testing.MockClock, cut: str) -> None:
    """"a" is due at 10 s, "b" at 12 s. The wake-up at 10 s: task one takes "a", task two takes
    "b" at 15 s; both sleep. Cut short at 20 s and run again: each task is handed its own
    token again, whatever order trio runs them in; each Did once; the log folds to the live
    state after every turn (always_replay)."""
    Pair.handed = []
    async with ActorTestKit(always_replay=True) as kit:
        ref = await kit.spawn(Pair, "p")
        await ref.ask(("a", 10))
        await ref.ask(("b", 12))
        await kit.advance(20)
        await (ref.stop() if cut == "stop" else kit.crash(ref))
        await kit.recover(ref)
        await kit.advance(100)
        assert await ref.ask("done?") == ["one:a", "one:end", "two:b", "two:end"]
        events = await kit.events(ref, system=True)
        await fold_equals_live(kit, ref, Pair)
    assert sorted(Pair.handed) == [("one", ["a"]), ("one", ["a"]), ("two", ["b"]),
                                   ("two", ["b"])]
    fired = [seq for e in events if isinstance(e, actors.NotificationFired) for seq in e.seqs]
    assert sorted(fired) == [0, 1]
    assert sorted(_dids(events)) == ["one:a", "one:end", "two:b", "two:end"]


@attrs.define
class Steal(Doer):
    """on_notify runs two tasks that take due tokens: "one" after a 1 s wait that is not
    durable (a rate limiter), "two" after a 3 s durable sleep; each records what it took and
    sleeps 30 s."""

    kind = "RT2Steal"
    ordered: ClassVar[bool] = False

    async def on_notify(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._one)
            nursery.start_soon(self._two)

    async def _one(self) -> None:
        await trio.sleep(1)
        for token in self.notifier.due(await durable.now.aio()):
            self.emit(Did(f"one:{token}"))
        await durable.sleep.aio(30)

    async def _two(self) -> None:
        await durable.sleep.aio(3)
        for token in self.notifier.due(await durable.now.aio()):  # nothing, the first time
            self.emit(Did(f"two:{token}"))
        await durable.sleep.aio(30)


async def test_a_task_of_a_wake_up_run_again_takes_no_token_another_task_was_handed(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Steal, "s")
        await ref.ask("a")
        await kit.advance(20)  # one took "a" at 11 s, two nothing at 13 s; both sleep
        await kit.crash(ref)
        await kit.recover(ref)
        await kit.advance(100)
        assert _no_replay_errors(caplog) == []
        assert await ref.ask("done?") == ["one:a"]


# -- a wake-up that cancels what run() still holds uncommitted -----------------------------------


@attrs.define
class Canceller(Doer):
    """run() sleeps durably 5 s, schedules "x" 100 s on, then waits without a commit point;
    on_notify records each due token and cancels "x"."""

    kind = "RT2Canceller"
    calls: ClassVar[list[str]] = []

    async def run(self) -> None:
        await durable.sleep.aio(5)
        self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=100), "x")
        await trio.sleep_forever()

    async def on_notify(self) -> None:
        for token in self.notifier.due(await durable.now.aio()):
            Canceller.calls.append(token)
            self.emit(Did(token))
            self.notifier.cancel("x")


async def test_a_wake_up_cancelling_a_timer_run_holds_uncommitted_does_not_fail(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    """run() schedules "x" at 5 s and holds it; the wake-up for "a" (10 s) cancels "x"."""
    Canceller.calls = []
    caplog.set_level(logging.ERROR, logger="actors")
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Canceller, "c")
        await ref.ask("a")
        await kit.advance(200)
        pending = kit.state(ref).notifier.pending()
        done = kit.state(ref).done  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if "failed in on_notify" in r.getMessage()]
    assert Canceller.calls == ["a"] and done == ["a"]
    assert pending == []


# -- the size of the markers ---------------------------------------------------------------------


@attrs.define
class Backlog(actors.Actor):
    """A message schedules N tokens due in 10 s; on_notify records each due token and commits
    it (a flush per token: the pattern docs/timers.md recommends for side effects)."""

    kind = "RT2Backlog"

    n: int = 0

    def apply(self, event: Any) -> None:
        self.n += 1

    async def receive(self, message: Any) -> Any:
        now = await durable.now.aio()
        for i in range(message):
            self.notifier.notify_at(now + timedelta(seconds=10), i)

    async def on_notify(self) -> None:
        for token in self.notifier.due(await durable.now.aio()):
            self.emit(Did(str(token)))
            await self.flush()


async def test_a_wake_up_flushing_per_token_writes_markers_linear_in_its_tokens(
        autojump_clock: trio.testing.MockClock) -> None:
    tokens = 500
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Backlog, "b")
        await ref.ask(tokens)
        await kit.advance(20)
        assert kit.state(ref).n == tokens  # type: ignore[attr-defined]
        markers = [recorded async for recorded in kit.store.read(ref.stream)
                   if recorded.type == kit.store.codec.type_name(actors.ScopeCommitted)]
    size = sum(len(str(recorded.data)) for recorded in markers)
    assert size < 100 * tokens, f"{len(markers)} markers, {size} characters"


# -- on_notify cancelling the duplicates of a token it was just handed ---------------------------


@attrs.define
class Dedup(Doer):
    """on_notify takes each due token, cancels its other pending copies and records how many
    it dropped, then sleeps 30 s."""

    kind = "RT2Dedup"

    async def on_notify(self) -> None:
        for token in self.notifier.due(await durable.now.aio()):
            dropped = self.notifier.cancel(token)
            self.emit(Did(f"{token} (dropped {dropped})"))
        await durable.sleep.aio(30)


@pytest.mark.parametrize("cut", ["crash", "stop"])
async def test_a_wake_up_run_again_gets_the_same_count_from_cancel(
        autojump_clock: trio.testing.MockClock, cut: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """"a" is scheduled twice (10 s and 100 s); the wake-up at 10 s takes the first, cancels
    the second (1 dropped) and sleeps. Cut short at 20 s and run again."""
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Dedup, "d")
        await ref.ask(("a", 10))
        await ref.ask(("a", 100))
        await kit.advance(20)
        await (ref.stop() if cut == "stop" else kit.crash(ref))
        await kit.recover(ref)
        await kit.advance(200)
        assert _no_replay_errors(caplog) == []
        assert await ref.ask("done?") == ["a (dropped 1)"]
