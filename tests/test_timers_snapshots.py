"""Snapshots saved while a wake-up holds its firing (its ``NotificationFired`` stays pending
until it ends, through a durable sleep, say): they are folded from the log, so each holds the
log's state, the wake-up's tokens still pending, and a recovery from one runs the wake-up's
scope again as a recovery from the whole log does.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from timer_doers import Did, Doer, fold_equals_live

import actors
from actors import durable, replay
from actors.testing import ActorTestKit
from eventstore import Snapshot
from eventstore.memory import MemoryEventStore


class Loads(MemoryEventStore):
    """A store that lists the versions of the snapshots loaded from it."""

    loaded: list[int]

    async def load_snapshot(self, stream: str, *, max_version: int | None = None
                            ) -> Snapshot | None:
        snapshot = await super().load_snapshot(stream, max_version=max_version)
        if snapshot is not None:
            self.loaded.append(snapshot.version)
        return snapshot


@attrs.define
class Held(Doer):
    """run() commits ``Did("tick:i")`` every second for 20 s; a wake-up takes its due tokens
    (``Did("took:t")``, each hand-out counted in ``handed``), sleeps durably 7 s holding its
    firing, then ``Did("done:t")``. A snapshot every 3 events."""

    kind = "SnapHeld"
    snapshot_every: ClassVar[int | None] = 3
    handed: ClassVar[list[str]] = []

    async def run(self) -> None:
        for i in range(20):
            self.emit(Did(f"tick:{i}"))
            await self.flush()
            await trio.sleep(1)

    async def on_notify(self) -> None:
        tokens = self.notifier.due(await durable.now.aio())
        Held.handed.extend(tokens)
        self.emit(*(Did(f"took:{token}") for token in tokens))
        await durable.sleep.aio(7)
        self.emit(*(Did(f"done:{token}") for token in tokens))


def _dids(events: list[Any]) -> list[str]:
    return [e.what for e in events if isinstance(e, Did)]


def _fired(events: list[Any]) -> list[int]:
    return [seq for e in events if isinstance(e, actors.NotificationFired) for seq in e.seqs]


async def _snapshot_while_held(store: Loads, ref: actors.ActorRef) -> Snapshot:
    """The newest snapshot, checked to be taken while the wake-up held the firing of "job" and
    "mail": it holds their ``took`` events and the two tokens, still pending."""
    snapshot = await store.load_snapshot(ref.stream)
    assert snapshot is not None
    state = snapshot.state
    assert {"took:job", "took:mail"} <= set(state["state"]["done"])
    assert "done:job" not in state["state"]["done"]
    assert [token for _, _, token in state["notifier"]["pending"]] == ["job", "mail"]
    return snapshot


async def _take_two(kit: ActorTestKit) -> actors.ActorRef:
    """Spawn a ``Held`` whose wake-up at 1 s takes "job" and "mail", then run 4 s more (the
    wake-up sleeps, run() commits)."""
    ref = await kit.spawn(Held, "h")
    await ref.ask(("job", 1))
    await ref.ask(("mail", 1))
    await kit.advance(5)
    return ref


async def test_a_crash_after_a_snapshot_taken_during_a_held_firing_ends_as_without_it(
        autojump_clock: trio.testing.MockClock) -> None:
    """Crashed at 5 s, after snapshots taken while the wake-up held its firing, and recovered
    from the newest: the wake-up runs again and ends; the log holds exactly the events a run
    without the crash holds, and folds to the live state."""
    logs = []
    for crash in (False, True):
        Held.handed = []
        store = Loads()
        store.loaded = []
        async with ActorTestKit(store=store) as kit:
            ref = await _take_two(kit)
            if crash:
                snapshot = await _snapshot_while_held(store, ref)
                await kit.crash(ref)
                store.loaded = []
                await kit.recover(ref)
                assert store.loaded[:1] == [snapshot.version]
            await kit.advance(60)
            await fold_equals_live(kit, ref, Held)
            logs.append(await kit.events(ref, system=True))
            assert (await replay.check(store, Held, "h")).ok
    clean, crashed = logs
    assert sorted(_dids(crashed)) == sorted(_dids(clean))
    assert _dids(crashed).count("took:job") == 1 and _dids(crashed).count("done:mail") == 1
    assert _fired(crashed) == _fired(clean) == [0, 1]


@pytest.mark.parametrize("cut", ["crash", "stop"])
async def test_a_wake_up_cut_short_after_a_snapshot_of_its_held_firing_hands_out_again_once(
        autojump_clock: trio.testing.MockClock, cut: str) -> None:
    """Cut short at 5 s and restarted from a snapshot that holds "job" and "mail" pending: the
    wake-up's due() hands them out once more, not a third time, also when a later timer
    wakes the actor again; their firing is committed once."""
    Held.handed = []
    store = Loads()
    store.loaded = []
    async with ActorTestKit(store=store) as kit:
        ref = await _take_two(kit)
        snapshot = await _snapshot_while_held(store, ref)
        await (ref.stop() if cut == "stop" else kit.crash(ref))
        store.loaded = []
        await kit.recover(ref)
        assert store.loaded[:1] == [snapshot.version]
        await kit.advance(30)
        await ref.ask(("later", 1))
        await kit.advance(30)
        assert Held.handed == ["job", "mail", "job", "mail", "later"]
        events = await kit.events(ref, system=True)
        assert _fired(events) == [0, 1, 2]
        assert [d for d in _dids(events) if not d.startswith("tick")] == [
            "took:job", "took:mail", "done:job", "done:mail", "took:later", "done:later"]
        await fold_equals_live(kit, ref, Held)


_OPS = st.one_of(
    st.tuples(st.just("schedule"), st.integers(0, 12)),
    st.tuples(st.just("advance"), st.integers(1, 9)),
    st.tuples(st.sampled_from(["crash", "stop"]), st.just(0)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_OPS, max_size=10))
def test_every_snapshot_is_the_fold_of_the_log_up_to_its_version(
        ops: list[tuple[str, int]]) -> None:
    """Timers scheduled, time passing, crashes and stops, while run() commits and wake-ups hold
    their firings through durable sleeps: every snapshot equals the log folded from its start
    to the snapshot's version (``replay.check``), the state rebuilt from the newest snapshot
    and the events after it equals the live one, and each token is taken and done once."""

    async def main() -> None:
        Held.handed = []
        async with ActorTestKit() as kit:
            ref = await kit.spawn(Held, "h")
            tokens = []
            for op, n in ops:
                if op == "schedule":
                    tokens.append(f"t{len(tokens)}")
                    await ref.ask((tokens[-1], n))
                elif op == "advance":
                    await kit.advance(n)
                else:
                    await (ref.stop() if op == "stop" else kit.crash(ref))
                    await kit.recover(ref)
            await kit.advance(120)
            folded = await fold_equals_live(kit, ref, Held)
            assert folded.notifier == kit.state(ref).notifier
            result = await replay.check(kit.store, Held, "h")
            assert result.ok, result.divergence
            dids = _dids(await kit.events(ref))
            for token in tokens:
                assert dids.count(f"took:{token}") == dids.count(f"done:{token}") == 1
            assert sorted(set(Held.handed)) == sorted(tokens)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
