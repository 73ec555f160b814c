"""actors.testing: project(), the ActorTestKit, always-replay mode, the pytest plugin."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import actors
import eventstore
from actors import durable
from actors.testing import ActorTestKit, ReplayMismatch, project

START = datetime(2026, 1, 1, tzinfo=UTC)


@eventstore.event_type("test_testkit.Added")
@attrs.frozen
class Added:
    amount: int


@eventstore.event_type("test_testkit.Rang")
@attrs.frozen
class Rang:
    token: str
    at: datetime


@attrs.frozen
class Add:
    amount: int
    hang: bool = False


@attrs.frozen
class RingIn:
    seconds: float
    token: str


@attrs.define
class Tally(actors.Actor):
    total: int = 0
    rang: list[tuple[str, datetime]] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        match event:
            case Added(amount=amount):
                self.total += amount
            case Rang(token=token, at=at):
                self.rang.append((token, at))

    async def receive(self, message: Any) -> Any:
        match message:
            case Add(amount=amount, hang=hang):
                self.emit(Added(amount))
                if hang:  # the turn never ends: its event is never committed
                    await trio.sleep_forever()
                return self.total
            case RingIn(seconds=seconds, token=token):
                now = await durable.now.aio()
                self.notifier.notify_at(now + timedelta(seconds=seconds), token)
            case "total":
                return self.total

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        for token in self.notifier.due(now):
            self.emit(Rang(token, now))


# -- project -------------------------------------------------------------------------------------


def test_project_folds_events_without_a_store_or_trio() -> None:
    tally = project(Tally, [Added(2), Added(3)])
    assert isinstance(tally, Tally) and tally.total == 5 and tally.version == 2
    assert project(Tally, []) == Tally()


def test_project_sends_runtime_events_to_the_notifier() -> None:
    at = START + timedelta(hours=1)
    tally = project(Tally, [actors.NotificationScheduled(0, at, "wake"), Added(1)])
    assert tally.notifier.pending() == [(at, "wake")]
    fired = project(Tally, [actors.NotificationScheduled(0, at, "wake"),
                            actors.NotificationFired((0,))])
    assert fired.notifier.pending() == []
    with pytest.raises(actors.NotInTurn):
        tally.emit(Added(1))


# -- the kit ---------------------------------------------------------------------------------------


async def test_spawn_ask_and_the_decoded_events(autojump_clock: trio.testing.MockClock) -> None:
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Tally, "t")
        assert await ref.ask(Add(2)) == 2
        assert await ref.ask(Add(3)) == 5
        assert await kit.events(ref) == [Added(2), Added(3)]
        await ref.ask(RingIn(60, "x"))
        system = await kit.events(ref, system=True)
        assert [type(e).__name__ for e in system][2:] == [
            "TimeObserved", "NotificationScheduled"]  # no id: a scope that never runs again
        assert kit.state(ref).total == 5
        with pytest.raises(actors.DuplicateActor):
            await kit.spawn(Tally, "t")


async def test_crash_drops_the_uncommitted_turn_and_recover_rebuilds(
        autojump_clock: trio.testing.MockClock) -> None:
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Tally, "t")
        await ref.ask(Add(1))
        failures: list[BaseException] = []

        async def hanging() -> None:
            try:
                await ref.ask(Add(10, hang=True))
            except actors.ActorStopped as exc:
                failures.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(hanging)
            await trio.testing.wait_all_tasks_blocked()
            assert kit.state(ref).total == 11  # applied, not committed
            await kit.crash(ref)
        assert len(failures) == 1
        assert await kit.events(ref) == [Added(1)]
        with pytest.raises(actors.ActorStopped, match=r"crashed: await kit\.recover"):
            ref.tell(Add(1))
        assert await kit.recover(ref) is ref
        assert await ref.ask("total") == 1
        with pytest.raises(actors.DuplicateActor):
            await kit.recover(ref)


async def test_crash_in_the_middle_of_a_durable_sleep_resumes_it(
        autojump_clock: trio.testing.MockClock) -> None:
    @attrs.define
    class Napper(actors.Actor):
        woke: list[float] = attrs.Factory(list)

        def apply(self, event: Any) -> None:
            self.woke.append(event.amount)

        async def run(self) -> None:
            await durable.sleep.aio(3600)
            if not self.woke:
                self.emit(Added(int(await durable.time.aio() - START.timestamp())))

    async with ActorTestKit() as kit:
        ref = await kit.spawn(Napper, "n")
        await kit.advance(1000)
        await kit.crash(ref)
        await kit.advance(500)  # down for a while
        await kit.recover(ref)
        await kit.advance(2099)
        assert await kit.events(ref) == []
        await kit.advance(1)
        assert await kit.events(ref) == [Added(3600)]  # woke on time, once


async def test_advance_fires_timers_at_their_virtual_time(
        autojump_clock: trio.testing.MockClock) -> None:
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Tally, "t")
        await ref.ask(RingIn(90, "late"))
        await ref.ask(RingIn(30, "early"))
        await kit.advance(29)
        assert kit.state(ref).rang == []
        await kit.advance(61)
        assert kit.state(ref).rang == [("early", START + timedelta(seconds=30)),
                                       ("late", START + timedelta(seconds=90))]


async def test_advance_needs_an_autojumping_mock_clock() -> None:
    async with ActorTestKit() as kit:
        with pytest.raises(actors.ActorError, match="autojump_clock"):
            await kit.advance(1)


async def test_given_events_are_history_before_and_while_running(
        autojump_clock: trio.testing.MockClock) -> None:
    async with ActorTestKit() as kit:
        ref = kit.ref(Tally, "t")
        with pytest.raises(actors.ActorStopped, match="not spawned yet"):
            ref.tell("total")
        await kit.given(ref, Added(4), Added(5))
        await kit.spawn(Tally, "t")
        assert await ref.ask("total") == 9
        await kit.given(ref, Added(1))  # restarts it with the new history
        assert await ref.ask("total") == 10
        assert await kit.events(ref) == [Added(4), Added(5), Added(1)]
        with pytest.raises(actors.InvalidActorArgument):
            kit.ref(Other, "t")


@attrs.define
class Other(actors.Actor):
    kind = "Tally"


async def test_leaving_the_kit_commits_and_stops_every_actor(
        autojump_clock: trio.testing.MockClock) -> None:
    async with ActorTestKit() as kit:
        ref = await kit.spawn(Tally, "t")
        ref.tell(Add(7))
    assert [e.type async for e in kit.store.read("Tally-t")] == ["test_testkit.Added"]
    with pytest.raises(actors.ActorStopped):
        ref.tell(Add(1))


# -- always-replay -----------------------------------------------------------------------------


@attrs.define
class Sneaky(actors.Actor):
    """Changes its state outside apply() on "sneak"."""

    total: int = 0

    def apply(self, event: Any) -> None:
        self.total += event.amount

    async def receive(self, message: Any) -> Any:
        if message == "sneak":
            self.total += 100
        else:
            self.emit(Added(message))
        return self.total


_calls = [0]


@attrs.define
class Impure(actors.Actor):
    """apply() depends on how often it ran in this process."""

    seen: int = 0

    def apply(self, event: Any) -> None:
        _calls[0] += 1
        self.seen = _calls[0]

    async def receive(self, message: Any) -> Any:
        self.emit(Added(message))


async def test_always_replay_catches_a_state_change_outside_apply(
        autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(ReplayMismatch) as caught:
        async with ActorTestKit(always_replay=True) as kit:
            ref = await kit.spawn(Sneaky, "s")
            assert await ref.ask(5) == 5
            await ref.ask("sneak")  # committed: the asker gets its reply
            assert len(kit.mismatches) == 1
            assert "total: 105 live, 5 rebuilt" in str(kit.mismatches[0])
    assert caught.value is kit.mismatches[0]  # also raised when the kit closes
    assert "apply() must be a pure fold" in str(caught.value)


async def test_always_replay_catches_an_impure_apply_even_when_told(
        autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(ReplayMismatch, match=r"Impure\('i'\) at version 1: .*seen"):
        async with ActorTestKit(always_replay=True) as kit:
            ref = await kit.spawn(Impure, "i")
            ref.tell(1)  # no asker: the mismatch surfaces when the kit closes


async def test_always_replay_passes_a_pure_actor_with_timers_and_crashes(
        autojump_clock: trio.testing.MockClock) -> None:
    async with ActorTestKit(always_replay=True) as kit:
        ref = await kit.spawn(Tally, "t")
        await ref.ask(Add(1))
        await ref.ask(RingIn(10, "x"))
        await kit.advance(11)
        await kit.crash(ref)
        await kit.recover(ref)
        assert await ref.ask(Add(2)) == 3
    assert kit.mismatches == []
    # Off by default: the same sneaky actor goes unnoticed.
    async with ActorTestKit() as plain:
        sneaky = await plain.spawn(Sneaky, "s")
        assert await sneaky.ask("sneak") == 100


# -- the pytest plugin -------------------------------------------------------------------------


async def test_the_actor_kit_fixture(actor_kit: ActorTestKit,
                                     autojump_clock: trio.testing.MockClock) -> None:
    ref = await actor_kit.spawn(Tally, "t")
    await ref.ask(RingIn(5, "x"))
    await actor_kit.advance(5)
    assert [token for token, _ in actor_kit.state(ref).rang] == ["x"]
    assert actor_kit.always_replay is False


@pytest.mark.actors_always_replay
async def test_the_marker_turns_always_replay_on(actor_kit: ActorTestKit) -> None:
    assert actor_kit.always_replay is True


def test_the_option_turns_always_replay_on_for_a_whole_run(tmp_path: Path) -> None:
    test = tmp_path / "test_inner.py"
    test.write_text(textwrap.dedent("""
        import attrs, actors

        @attrs.define
        class Sneaky(actors.Actor):
            total: int = 0

            async def receive(self, message):
                self.total += 1

        async def test_kit(actor_kit):
            assert actor_kit.always_replay
            await (await actor_kit.spawn(Sneaky, "s")).ask("sneak")
    """))
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test),
            "-o", "trio_mode=true", "--rootdir", str(tmp_path)]
    failed = subprocess.run([*args, "--actors-always-replay"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "ReplayMismatch" in failed.stdout and "total: 1 live, 0 rebuilt" in failed.stdout
    passed = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert passed.returncode == 1 and "assert False" in passed.stdout  # the option is off


def test_actors_testing_imports_without_pytest() -> None:
    code = ("import sys; sys.modules['pytest'] = None; import actors.testing as t; "
            "print(hasattr(t, 'ActorTestKit'), hasattr(t, 'actor_kit'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.split() == ["True", "False"]


async def test_an_error_in_the_kit_block_comes_out_as_raised(
        autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(ValueError, match="the test's own"):
        async with ActorTestKit() as kit:
            await kit.spawn(Tally, "t")
            raise ValueError("the test's own")
