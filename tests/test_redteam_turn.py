"""Hostile tests of the turn path (branch ``turnpath``): plain turns of a backlog sharing one
``Turn``, durable time through ``Cell.emit_call``, a dismantled cell's placeholders, the loop's
own mailbox items. Every check is made from the outside: the log in the store, the replies, the
state after recovery, ``actors.replay``.

A test that exposes a defect is marked ``xfail(strict=True)`` with the defect in its reason.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import attrs
import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings

import actors
import eventstore
from actors import durable, replay
from actors._events import ScopeCompleted, TimeObserved
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore


@eventstore.event_type("tests.redturn.Added")
@attrs.frozen
class Added:
    n: int


class Boom(Exception):
    pass


@attrs.define
class Probe(actors.Actor):
    """Each message is a tuple ``(op, *args)``; what the handler saw goes into ``seen``."""

    kind = "RedProbe"
    seen: ClassVar[list[Any]] = []
    saved: ClassVar[dict[str, Any]] = {}
    total: int = 0

    def apply(self, event: Added) -> None:
        if event.n < 0:
            raise ValueError("a poisoned event")
        self.total += event.n

    async def receive(self, message: Any) -> Any:
        op, *args = message
        seen = Probe.seen
        if op == "add":
            self.emit(Added(args[0]))
        elif op == "add_time":
            self.emit(Added(args[0]))
            await durable.time.aio()
        elif op == "poison":  # apply raises; the handler swallows it: the turn must still fail
            self.emit(Added(args[0]))
            with contextlib.suppress(ValueError):
                self.emit(Added(-1))
        elif op == "nap":  # a commit point (the sleep's), then more of the turn
            self.emit(Added(args[0]))
            await durable.sleep.aio(1)
            await durable.time.aio()
            if len(args) > 1:
                raise Boom(args[0])  # what the commit point committed stays
        elif op == "thread_time":  # durable time from a worker thread of an async handler
            seen.append(("thread_time", await trio.to_thread.run_sync(durable.time)))
        elif op == "once_then_fail":  # a message with an id: fails after a commit point once
            value = await durable.time.aio()
            await durable.sleep.aio(1)
            if Probe.saved.setdefault("failed", 0) == 0:
                Probe.saved["failed"] = 1
                raise Boom(value)
            return value
        elif op == "send":  # a tell to another actor: part of this turn, sent at its commit
            self.ref(Probe, args[1]).tell(("add", args[0]))
            if len(args) > 2:
                raise Boom(args[0])
        elif op == "add_fail":  # emits, then fails: nothing of it may be committed
            self.emit(Added(args[0]))
            await durable.time.aio()
            raise Boom(args[0])
        elif op == "total":
            seen.append(("total", self.total))
        elif op == "time":
            seen.append(("time", [await durable.time.aio() for _ in range(args[0])]))
        elif op == "save_ctx":  # a copy of the turn's context, as callback libraries take one
            Probe.saved["ctx"] = contextvars.copy_context()
        elif op == "ctx_emit":
            try:
                Probe.saved["ctx"].run(self.emit, Added(args[0]))
                seen.append("ctx emit accepted")
            except actors.NotInTurn:
                seen.append("ctx emit refused")
        elif op == "ctx_pool":  # a pool thread running in the saved context, as libraries
            # that carry context variables to their threads do, emits through trio's token
            token = trio.lowlevel.current_trio_token()

            def work() -> None:
                try:
                    trio.from_thread.run_sync(self.emit, Added(args[0]), trio_token=token)
                    seen.append("pool emit accepted")
                except actors.NotInTurn:
                    seen.append("pool emit refused")

            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                future = pool.submit(Probe.saved["ctx"].run, work)
                await trio.to_thread.run_sync(future.result)
        elif op == "ctx_time":
            try:
                Probe.saved["ctx"].run(durable.time)
                seen.append("ctx time accepted")
            except actors.NotInTurn:
                seen.append("ctx time refused")
        elif op == "system_task":  # a system task in this turn's context, as from_thread's are
            go, done = trio.Event(), trio.Event()
            Probe.saved["go"], Probe.saved["done"] = go, done
            trio.lowlevel.spawn_system_task(self._late, go, done,
                                            context=contextvars.copy_context())
        elif op == "release":  # lets the late task act while this turn runs, then emits
            Probe.saved["go"].set()
            await Probe.saved["done"].wait()
            self.emit(Added(args[0]))
        elif op == "abandon":  # a worker thread this turn gives up on: it goes on running
            tgo, tdone = threading.Event(), threading.Event()
            Probe.saved["tgo"], Probe.saved["tdone"] = tgo, tdone
            with trio.move_on_after(1):
                await trio.to_thread.run_sync(self._thread, tgo, tdone, abandon_on_cancel=True)
        elif op == "release_thread":
            Probe.saved["tgo"].set()
            await trio.to_thread.run_sync(Probe.saved["tdone"].wait)
            self.emit(Added(args[0]))
        return self.total

    async def _late(self, go: trio.Event, done: trio.Event) -> None:
        await go.wait()
        try:
            self.emit(Added(100))
            Probe.seen.append("late emit accepted")
        except actors.NotInTurn:
            Probe.seen.append("late emit refused")
        try:
            durable.time()
            Probe.seen.append("late time accepted")
        except actors.NotInTurn:
            Probe.seen.append("late time refused")
        done.set()

    def _thread(self, go: threading.Event, done: threading.Event) -> None:
        go.wait()
        try:
            durable.time()
            Probe.seen.append("thread time accepted")
        except actors.NotInTurn:
            Probe.seen.append("thread time refused")
        done.set()


@pytest.fixture(autouse=True)
def _fresh() -> None:
    Probe.seen = []
    Probe.saved = {}


def _said() -> list[str]:
    return [s for s in Probe.seen if isinstance(s, str)]


async def _log(store: eventstore.EventStore, stream: str) -> list[Any]:
    return [store.codec.decode(r) async for r in store.read(stream)]


async def _backlog(messages: list[Any], store: eventstore.EventStore | None = None,
                   **options: Any) -> tuple[list[Any], int]:
    """Tell ``messages`` before the actor runs (one backlog), then ask for the total; the log."""
    store = store or MemoryEventStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Probe, "p", store=store, **options)
        for message in messages:
            ref.tell(message)
        total = await ref.ask(("total",))
        nursery.cancel_scope.cancel()
    return await _log(store, ref.stream), total


async def _recovered_total(store: eventstore.EventStore) -> int:
    actor = await replay.state_at(store, Probe, "p")
    return actor.total


# -- what holds an ended turn: a copied context, a thread, a task ---------------------------------


async def test_a_copied_context_of_an_ended_plain_turn_cannot_emit_into_a_later_turn() -> None:
    log, total = await _backlog([("save_ctx",), ("ctx_emit", 100), ("add", 1)])
    assert Probe.seen[0] == "ctx emit refused"
    assert [e for e in log if isinstance(e, Added)] == [Added(1)]
    assert total == 1


async def test_a_pool_thread_in_an_ended_plain_turns_context_cannot_emit_into_a_later_turn(
        ) -> None:
    log, total = await _backlog([("save_ctx",), ("ctx_pool", 100), ("add", 1)])
    assert _said() == ["pool emit refused"]
    assert [e for e in log if isinstance(e, Added)] == [Added(1)]
    assert total == 1


async def test_a_copied_context_used_within_its_own_turn_or_after_the_backlog_behaves(
        ) -> None:
    # Held: the same turn may use its own copy; a later backlog's turn is a new one.
    store = MemoryEventStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Probe, "p", store=store)
        ref.tell(("save_ctx",))
        await ref.ask(("total",))
        await ref.ask(("ctx_emit", 100))  # another backlog (an inline ask): refused
        nursery.cancel_scope.cancel()
    assert _said() == ["ctx emit refused"]
    assert not [e for e in await _log(store, ref.stream) if isinstance(e, Added)]


async def test_a_copied_context_of_an_ended_plain_turn_cannot_read_time_into_a_later_turn(
        ) -> None:
    log, _ = await _backlog([("save_ctx",), ("ctx_time",), ("time", 1)])
    assert Probe.seen[0] == "ctx time refused"
    observed = [e for e in log if isinstance(e, TimeObserved)]
    assert [(e.scope, e.index) for e in observed] == [("once", 1)]


async def test_a_system_task_in_the_turns_context_cannot_emit_into_the_next(
        autojump_clock: trio.testing.MockClock) -> None:
    # (Held: trio changes the task's copy of the context, and the turn's refcount sees it.)
    log, total = await _backlog([("system_task",), ("release", 1)])
    assert _said() == ["late emit refused", "late time refused"]
    assert [e for e in log if isinstance(e, Added)] == [Added(1)]
    assert not [e for e in log if isinstance(e, TimeObserved)]
    assert total == 1


_APP_VARS: list[contextvars.ContextVar[int]] = [
    contextvars.ContextVar(f"redturn_app_{n}") for n in range(64)]
"""Context variables an application sets (logging, tracing, request ids): a few dozen."""


async def test_an_abandoned_thread_cannot_read_time_into_the_next_plain_turn(
        autojump_clock: trio.testing.MockClock) -> None:
    for var in _APP_VARS:
        var.set(1)
    for round_ in range(8):  # fresh variables each round: another layout of the mapping
        for n in range(16):
            var_: contextvars.ContextVar[int] = contextvars.ContextVar(
                f"redturn_round_{round_}_{n}")
            var_.set(n)
        Probe.seen = []
        log, total = await _backlog([("abandon",), ("release_thread", 1)])
        assert _said() == ["thread time refused"]
        assert not [e for e in log if isinstance(e, TimeObserved)]
        assert total == 1


async def test_a_system_task_in_the_turns_context_is_refused_whatever_the_context_holds(
        autojump_clock: trio.testing.MockClock) -> None:
    # Held (0 to 120 extra variables tried): trio's spawn makes the turn's refcount go up.
    for var in _APP_VARS:
        var.set(1)
    log, _ = await _backlog([("system_task",), ("release", 1)])
    assert _said() == ["late emit refused", "late time refused"]
    assert [e for e in log if isinstance(e, Added)] == [Added(1)]


# -- a plain turn that fails, and the turns after it ------------------------------------------


async def test_a_plain_turn_failing_after_emitting_leaves_the_rest_of_its_backlog_intact(
        tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "e.db") as store:
        log, total = await _backlog(
            [("add", 1), ("time", 2), ("add", 2), ("add_fail", 30), ("total",), ("time", 1),
             ("add_fail", 40), ("add_fail", 50), ("add", 4), ("total",)], store)
        assert [e for e in log if isinstance(e, Added)] == [Added(1), Added(2), Added(4)]
        # Each surviving turn counts its durable calls from 1: the failed ones left no trace.
        assert [(e.scope, e.index) for e in log if isinstance(e, TimeObserved)] == [
            ("once", 1), ("once", 2), ("once", 1)]
        assert [s for s in Probe.seen if s[0] == "total"] == [
            ("total", 3), ("total", 7), ("total", 7)]
        assert total == 7
        assert await _recovered_total(store) == 7


async def test_an_ask_failing_after_emitting_in_a_backlog_gets_its_error_and_others_theirs(
        ) -> None:
    store = MemoryEventStore()
    results: dict[int, Any] = {}

    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Probe, "p", store=store, clock=actors.VirtualClock())

        async def asker(n: int, message: Any, *,
                        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            try:
                results[n] = await ref.ask(message)
            except Exception as exc:
                results[n] = type(exc).__name__

        ref.tell(("add", 1))  # the asks queue behind it: one backlog
        for n, message in enumerate([("add", 2), ("add_fail", 10), ("add", 3), ("add_fail", 5),
                                     ("total",)]):
            await nursery.start(asker, n, message)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert results == {0: 3, 1: "Boom", 2: 6, 3: "Boom", 4: 6}
    assert [e for e in await _log(store, ref.stream) if isinstance(e, Added)] == [
        Added(1), Added(2), Added(3)]


# -- a backlog of everything: ids, asks, durable time, timers, a stop --------------------------


@attrs.define
class Mixed(actors.Actor):
    kind = "RedMixed"
    total: int = 0
    fired: list[int] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        if isinstance(event, Added):
            self.total += event.n
        else:
            self.fired.append(event.token)

    async def receive(self, message: Any) -> Any:
        op, n = message
        if op == "add":
            self.emit(Added(n))
        elif op == "timed":
            await durable.time.aio()
            durable.now()
            self.emit(Added(n))
        elif op == "timer":
            self.notifier.notify_at(await durable.now.aio() + timedelta(seconds=n), n)
        return self.total

    async def on_notify(self) -> None:
        for token in self.notifier.due(await durable.now.aio()):
            self.emit(Fired(token))


@eventstore.event_type("tests.redturn.Fired")
@attrs.frozen
class Fired:
    token: int


async def test_a_mixed_backlog_commits_in_order_and_recovers_to_the_same_state(
        autojump_clock: trio.testing.MockClock) -> None:
    # (A memory store: with SQLite's worker threads the autojump clock jumps past a timer
    # while a commit is in its thread, and the test would look before the wake-up ran.)
    clock = actors.VirtualClock()
    async with MemoryEventStore() as store:
        replies: dict[str, Any] = {}
        async with trio.open_nursery() as nursery:
            ref = await actors.spawn(nursery, Mixed, "m", store=store, clock=clock)

            async def asker(key: str, message: Any, message_id: str | None = None, *,
                            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                            ) -> None:
                task_status.started()
                try:
                    replies[key] = await ref.ask(message, message_id=message_id)
                except Exception as exc:
                    replies[key] = type(exc).__name__

            ref.tell(("add", 1))
            ref.tell(("timed", 2))
            ref.tell(("timed", 3), message_id="id-a")
            ref.tell(("timer", 5))
            await nursery.start(asker, "ask1", ("timed", 4))
            ref.tell(("add", 5))
            ref.tell(("timed", 99), message_id="id-a")  # a resend: answered, not run
            await nursery.start(asker, "ask2", ("timed", 6), "id-b")
            ref.tell(("timer", 1))
            ref.tell(("timed", 7))
            await trio.sleep(10)  # both timers fire
            ref.tell(("add", 8))
            await nursery.start(asker, "ask3", ("add", 0))
            stopped = trio.Event()

            async def stop(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                           ) -> None:
                task_status.started()
                await ref.stop()
                stopped.set()

            await nursery.start(stop)
            await nursery.start(asker, "ask4", ("add", 1000))  # queued behind the stop
            await stopped.wait()
            with pytest.raises(actors.ActorStopped):
                ref.tell(("add", 1000))
            nursery.cancel_scope.cancel()
        assert replies == {"ask1": 10, "ask2": 21, "ask3": 36, "ask4": "ActorStopped"}
        log = await _log(store, ref.stream)
        assert [e.n for e in log if isinstance(e, Added)] == [1, 2, 3, 4, 5, 6, 7, 8, 0]
        assert [e.token for e in log if isinstance(e, Fired)] == [1, 5]
        observed = [(e.scope, e.index, e.function) for e in log if isinstance(e, TimeObserved)]
        plain = [x for x in observed if x[0] == "once"]
        # Each plain turn starts at index 1: time then now for "timed", now for "timer".
        assert [x[1:] for x in plain] == [(1, "time"), (2, "now"), (1, "now"), (1, "time"),
                                         (2, "now"), (1, "now"), (1, "time"), (2, "now")]
        assert [x for x in observed if x[0].startswith("msg:")] == [
            ("msg:id-a", 1, "time"), ("msg:id-a", 2, "now"),
            ("msg:id-b", 1, "time"), ("msg:id-b", 2, "now")]
        assert [e.scope for e in log if isinstance(e, ScopeCompleted)].count("msg:id-a") == 1
        recovered = await replay.state_at(store, Mixed, "m")
        assert (recovered.total, recovered.fired) == (36, [1, 5])
        assert (await replay.check(store, Mixed, "m")).ok


# -- a sequential model of tells, asks, ids, durable time and failures -------------------------


_OPS = st.one_of(
    st.tuples(st.just("add"), st.integers(1, 9)),
    st.tuples(st.just("add_fail"), st.integers(1, 9)),
    st.tuples(st.just("time"), st.integers(1, 3)),
    st.tuples(st.just("ask"), st.integers(1, 9)),
    st.tuples(st.just("ask_fail"), st.integers(1, 9)),
    st.tuples(st.just("tell_id"), st.integers(1, 9), st.sampled_from(["x", "y", "z"])),
    st.tuples(st.just("yield")),
    st.tuples(st.just("save_ctx")),
    st.tuples(st.just("poison"), st.integers(1, 9)),
    st.tuples(st.just("nap"), st.integers(1, 9)),
    st.tuples(st.just("nap"), st.integers(1, 9), st.just("fail")),
)


def _model(ops: list[tuple[Any, ...]]) -> tuple[list[int], list[tuple[str, int]], list[Any]]:
    """What running ``ops`` one at a time commits: the Added values, the (scope, index) of
    TimeObserved, the asks' replies."""
    added: list[int] = []
    observed: list[tuple[str, int]] = []
    replies: list[Any] = []
    done: set[str] = set()
    for op in ops:
        if op[0] in ("add", "ask"):
            added.append(op[1])
            if op[0] == "ask":
                replies.append(sum(added))
        elif op[0] == "ask_fail":
            replies.append("Boom")
        elif op[0] == "time":
            observed += [("once", i) for i in range(1, op[1] + 1)]
        elif op[0] == "nap":
            added.append(op[1])  # committed by the sleep's commit point, even if it fails
            if len(op) == 2:
                observed.append(("once", 2))
        elif op[0] == "tell_id" and op[2] not in done:
            done.add(op[2])
            added.append(op[1])
            observed.append((f"msg:{op[2]}", 1))
    return added, observed, replies


async def _drive(ops: list[tuple[Any, ...]], store: MemoryEventStore) -> list[Any]:
    replies: dict[int, Any] = {}
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Probe, "p", store=store, clock=actors.VirtualClock())

        async def asker(n: int, message: Any, *,
                        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            try:
                replies[n] = await ref.ask(message)
            except Exception as exc:
                replies[n] = type(exc).__name__

        for n, op in enumerate(ops):
            if op[0] == "yield":
                await trio.sleep(0)
            elif op[0] == "ask":
                await nursery.start(asker, n, ("add", op[1]))
            elif op[0] == "ask_fail":
                await nursery.start(asker, n, ("add_fail", op[1]))
            elif op[0] == "tell_id":
                ref.tell(("add_time", op[1]), message_id=op[2])
            else:
                ref.tell(op)
        await ref.ask(("total",))
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    return [replies[n] for n in sorted(replies)]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_OPS, max_size=25))
def test_any_interleaving_commits_what_running_the_messages_one_at_a_time_commits(
        ops: list[tuple[Any, ...]]) -> None:
    Probe.seen = []
    Probe.saved = {}
    store = MemoryEventStore()

    async def main() -> tuple[list[Any], list[Any], int]:
        replies = await _drive(ops, store)
        return replies, await _log(store, "RedProbe-p"), await _recovered_total(store)

    replies, log, recovered = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    added, observed, expected_replies = _model(ops)
    assert [e.n for e in log if isinstance(e, Added)] == added
    assert [(e.scope, e.index) for e in log if isinstance(e, TimeObserved)] == observed
    assert replies == expected_replies
    assert recovered == sum(added)


# -- a stale actor object, after its activation was passivated ---------------------------------


@attrs.define
class Keeper(actors.Actor):
    """Keeps its own object where the test (or its next activation) can reach it."""

    kind = "RedKeeper"
    kept: ClassVar[list[Any]] = []
    total: int = 0

    def apply(self, event: Added) -> None:
        self.total += event.n

    async def receive(self, message: Any) -> Any:
        if message == "keep":
            Keeper.kept.append(self)
        elif message == "stale emit":  # the old object, inside a turn of the new activation
            try:
                Keeper.kept[0].emit(Added(50))
            except Exception as exc:
                return exc
        elif message == "stale time":  # a durable call through nothing stale: must record
            return await durable.time.aio()
        else:
            self.emit(Added(message))
        return self.total


async def _stale(system: actors.ActorSystem) -> Keeper:
    Keeper.kept = []
    ref = system.ref(Keeper, "k")
    await ref.ask(5)
    await ref.ask("keep")
    await trio.sleep(2)
    assert system.active == 0
    stale: Keeper = Keeper.kept[0]
    return stale


_READS = {
    "version": lambda a: a.version,
    "notifier": lambda a: a.notifier,
}


@pytest.mark.parametrize("name", sorted(_READS))
async def test_a_stale_objects_runtime_reads_raise_actor_stopped_naming_the_fix(
        autojump_clock: trio.testing.MockClock, name: str) -> None:
    async with actors.ActorSystem(MemoryEventStore(), actors=[Keeper],
                                  clock=actors.VirtualClock(), idle_timeout=1) as system:
        stale = await _stale(system)
        with pytest.raises(actors.ActorStopped, match="use a ref"):
            _READS[name](stale)


async def test_a_stale_objects_id_and_ref_still_work_and_its_fields_keep_their_last_values(
        autojump_clock: trio.testing.MockClock) -> None:
    async with actors.ActorSystem(MemoryEventStore(), actors=[Keeper],
                                  clock=actors.VirtualClock(), idle_timeout=1) as system:
        stale = await _stale(system)
        assert stale.id == "k" and stale.total == 5
        assert await stale.ref(Keeper, "k").ask(1) == 6  # a ref: the documented way back
        assert stale.total == 5  # the new activation's state is another object


async def test_a_stale_objects_emit_outside_a_turn_raises_actor_stopped(
        autojump_clock: trio.testing.MockClock) -> None:
    async with actors.ActorSystem(MemoryEventStore(), actors=[Keeper],
                                  clock=actors.VirtualClock(), idle_timeout=1) as system:
        stale = await _stale(system)
        with pytest.raises(actors.ActorStopped, match="use a ref"):
            stale.emit(Added(1))


async def test_a_stale_objects_emit_inside_the_new_activations_turn_raises_actor_stopped(
        autojump_clock: trio.testing.MockClock) -> None:
    async with actors.ActorSystem(MemoryEventStore(), actors=[Keeper],
                                  clock=actors.VirtualClock(), idle_timeout=1) as system:
        await _stale(system)
        error = await system.ref(Keeper, "k").ask("stale emit")
        assert isinstance(error, actors.ActorStopped) and "use a ref" in str(error)
        assert await system.ref(Keeper, "k").ask(0) == 5  # and nothing was emitted


async def test_a_stale_objects_flush_raises_actor_stopped(
        autojump_clock: trio.testing.MockClock) -> None:
    async with actors.ActorSystem(MemoryEventStore(), actors=[Keeper],
                                  clock=actors.VirtualClock(), idle_timeout=1) as system:
        stale = await _stale(system)
        with pytest.raises(actors.ActorStopped, match="use a ref"):
            await stale.flush()


async def test_a_stale_objects_snapshot_raises_actor_stopped(
        autojump_clock: trio.testing.MockClock) -> None:
    async with actors.ActorSystem(MemoryEventStore(), actors=[Keeper],
                                  clock=actors.VirtualClock(), idle_timeout=1) as system:
        stale = await _stale(system)
        with pytest.raises(actors.ActorStopped, match="use a ref"):
            stale.snapshot()


async def test_a_stopped_spawned_actors_object_emits_and_flushes_nothing_naming_the_fix() -> None:
    store = MemoryEventStore()
    async with trio.open_nursery() as nursery:
        Keeper.kept = []
        ref = await actors.spawn(nursery, Keeper, "s", store=store)
        await ref.ask(3)
        await ref.ask("keep")
        await ref.stop()
        with pytest.raises(actors.ActorStopped, match="use a ref"):
            Keeper.kept[0].emit(Added(1))
        with pytest.raises(actors.ActorStopped, match="use a ref"):
            await Keeper.kept[0].flush()
        nursery.cancel_scope.cancel()
    assert await store.last_version("RedKeeper-s") == 1


async def test_a_projected_actors_flush_says_it_is_a_projection() -> None:
    projected = actors.testing.project(Keeper, [Added(2)])
    with pytest.raises(actors.NotInTurn, match=r"flush\(\): .*Keeper\('.*'\) is a projection"):
        await projected.flush()
    assert projected.snapshot() == {"total": 2}


async def test_a_ref_to_a_stopped_spawned_actor_raises_actor_stopped() -> None:
    # Cell.resolve now tests closing before stopped: a stopped cell must still refuse.
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Keeper, "s", store=MemoryEventStore())
        assert await ref.ask(3) == 3
        await ref.stop()
        with pytest.raises(actors.ActorStopped):
            ref.tell(1)
        with pytest.raises(actors.ActorStopped):
            await ref.ask(1)
        await ref.stop()  # does nothing
        nursery.cancel_scope.cancel()


# -- durable time: run(), on_start, a plain-def handler, outside; crash, recovery, replay -----


@eventstore.event_type("tests.redturn.Stamped")
@attrs.frozen
class Stamped:
    where: str
    value: float


@attrs.define
class Stamper(actors.Actor):
    kind = "RedStamper"
    started: ClassVar[list[float]] = []
    stamps: list[tuple[str, float]] = attrs.Factory(list)

    def apply(self, event: Stamped) -> None:
        self.stamps.append((event.where, event.value))

    async def on_start(self) -> None:
        Stamper.started.append(await durable.time.aio())

    async def run(self) -> None:
        t1 = durable.time()  # plainly, on trio's thread
        n1 = (await durable.now.aio()).timestamp()
        await durable.sleep.aio(0.5)
        t2 = await durable.time.aio()
        self.emit(Stamped("run", t1), Stamped("run", n1), Stamped("run", t2))

    def receive(self, message: str) -> tuple[float, float]:  # type: ignore[override]
        t = durable.time()
        n = durable.now().timestamp()
        self.emit(Stamped(message, t))
        return t, n


def _via_now(value: float) -> float:
    """A recorded ``now()`` as the handler reads it back: a datetime holds microseconds."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(value, UTC).timestamp()


async def _until(store: eventstore.EventStore, stream: str, cls: type) -> None:
    while not any(isinstance(e, cls) for e in await _log(store, stream)):
        await trio.sleep(0.01)


async def test_durable_time_replays_its_recorded_values_after_a_crash(tmp_path: Path) -> None:
    from actors._events import RunCompleted, SleepStarted

    Stamper.started = []
    path = tmp_path / "e.db"
    async with SQLiteEventStore(path) as store:
        async with trio.open_nursery() as nursery:
            ref = await actors.spawn(nursery, Stamper, "s", store=store)
            await _until(store, ref.stream, SleepStarted)
            nursery.cancel_scope.cancel()  # a crash mid-sleep
        first = [e for e in await _log(store, ref.stream) if isinstance(e, TimeObserved)]
        assert [(e.scope, e.index, e.function) for e in first] == [
            ("start", 1, "time"), ("run", 1, "time"), ("run", 2, "now")]
    async with SQLiteEventStore(path) as store:
        async with trio.open_nursery() as nursery:
            ref = await actors.spawn(nursery, Stamper, "s", store=store)
            await _until(store, ref.stream, RunCompleted)
            reply = await ref.ask("m", message_id="m-1")
            assert await ref.ask("other", message_id="m-1") == reply  # the recorded reply
            nursery.cancel_scope.cancel()
        log = await _log(store, ref.stream)
    observed = {(e.scope, e.index): e for e in log if isinstance(e, TimeObserved)}
    assert observed[("run", 1)] == first[1] and observed[("run", 2)] == first[2]
    stamps = [e for e in log if isinstance(e, Stamped)]
    assert stamps == [Stamped("run", first[1].value), Stamped("run", _via_now(first[2].value)),
                      Stamped("run", observed[("run", 4)].value),
                      Stamped("m", observed[("msg:m-1", 1)].value)]
    assert reply == (observed[("msg:m-1", 1)].value, _via_now(observed[("msg:m-1", 2)].value))
    assert observed[("run", 4)].value >= first[1].value + 0.5
    async with SQLiteEventStore(path) as store:
        assert (await replay.check(store, Stamper, "s")).ok
        versions = []
        async for step in replay.steps(store, Stamper, "s"):
            versions.append(step.version)
            if isinstance(step.event, Stamped):
                assert step.state.stamps[-1] == (step.event.where, step.event.value)
        assert versions == list(range(1, len(log) + 1))
        assert (await replay.state_at(store, Stamper, "s")).stamps == [
            (s.where, s.value) for s in stamps]


def test_durable_time_outside_an_actor_is_the_wall_clock() -> None:
    import time as _time
    from datetime import UTC, datetime

    before = _time.time()
    assert before <= durable.time() <= _time.time()
    assert durable.now().tzinfo is UTC
    assert abs(durable.now().timestamp() - datetime.now(UTC).timestamp()) < 5

    async def main() -> tuple[float, Any]:
        return await durable.time.aio(), await durable.now.aio()

    value, now = trio.run(main)
    assert before <= value <= _time.time() and now.tzinfo is UTC


class _FloatSub(float):
    pass


class _OddClock:
    """A custom clock whose readings are not plain floats: the codec must judge them."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def time(self) -> Any:
        return self.value

    def now(self) -> Any:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(float(self.value), UTC)


@pytest.mark.parametrize("value", [1767225600, _FloatSub(1767225600.25), 1767225600.5, -0.0])
async def test_time_observed_from_any_clock_round_trips_through_sqlite(
        tmp_path: Path, value: Any) -> None:
    async with SQLiteEventStore(tmp_path / "e.db") as store:
        async with trio.open_nursery() as nursery:
            ref = await actors.spawn(nursery, Probe, "p", store=store, clock=_OddClock(value))
            ref.tell(("time", 2))
            await ref.ask(("total",))
            nursery.cancel_scope.cancel()
        rows = [r async for r in store.read(ref.stream)]
        log = [store.codec.decode(r) for r in rows]
    observed = [e for e in log if isinstance(e, TimeObserved)]
    assert [(e.scope, e.index, e.value) for e in observed] == [
        ("once", 1, float(value)), ("once", 2, float(value))]
    assert all(r.metadata == {} for r in rows)
    assert [s for s in Probe.seen if s[0] == "time"] == [("time", [value, value])]


# -- poisoned turns, sends, and the same backlog watched by a hook or traced -------------------


async def test_a_poisoned_plain_turn_fails_alone_and_the_next_one_is_clean() -> None:
    store = MemoryEventStore()
    log, total = await _backlog([("add", 1), ("poison", 20), ("time", 1), ("add", 2),
                                 ("poison", 30), ("add", 4)], store)
    assert [e for e in log if isinstance(e, Added)] == [Added(1), Added(2), Added(4)]
    assert [(e.scope, e.index) for e in log if isinstance(e, TimeObserved)] == [("once", 1)]
    assert total == 7 and await _recovered_total(store) == 7


async def test_plain_turns_send_once_each_and_a_failed_turn_sends_nothing(
        autojump_clock: trio.testing.MockClock) -> None:
    store = MemoryEventStore()
    async with actors.ActorSystem(store, actors=[Probe], clock=actors.VirtualClock()) as system:
        p = system.ref(Probe, "p")
        for message in [("send", 1, "q"), ("send", 10, "q", "fail"), ("send", 2, "q"),
                        ("add", 5), ("send", 4, "q"), ("send", 20, "q", "fail"),
                        ("send", 8, "q")]:
            p.tell(message)
        assert await p.ask(("total",)) == 5
        await trio.sleep(1)
        assert await system.ref(Probe, "q").ask(("total",)) == 15
    q_log = await _log(store, "RedProbe-q")
    assert [e for e in q_log if isinstance(e, Added)] == [Added(1), Added(2), Added(4), Added(8)]


_HOOKED = [("add", 1), ("time", 2), ("add_fail", 3), ("save_ctx",), ("add", 2), ("time", 1),
           ("poison", 7), ("add", 3)]


def _shape(log: list[Any]) -> list[tuple[str, Any]]:
    return [(type(e).__name__, attrs.asdict(e)) for e in log]


async def test_the_lean_path_commits_what_a_turn_hook_or_telemetry_path_commits(
        autojump_clock: trio.testing.MockClock) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from actors.otel import OpenTelemetry

    hooked: list[int] = []

    async def hook(cell: Any) -> None:
        hooked.append(cell.version)

    logs = []
    variants: list[dict[str, Any]] = [{}, {"turn_hook": hook}]
    for options in variants:
        Probe.seen = []
        log, total = await _backlog(list(_HOOKED), clock=actors.VirtualClock(), **options)
        logs.append((_shape(log), total, list(Probe.seen)))
    for telemetry in (None, OpenTelemetry(tracer_provider=TracerProvider())):
        Probe.seen = []
        store = MemoryEventStore()
        async with actors.ActorSystem(store, actors=[Probe], clock=actors.VirtualClock(),
                                      telemetry=telemetry) as system:
            ref = system.ref(Probe, "p")
            for message in _HOOKED:
                ref.tell(message)
            total = await ref.ask(("total",))
        logs.append((_shape(await _log(store, ref.stream)), total, list(Probe.seen)))
    assert logs[0] == logs[1] == logs[2] == logs[3]
    assert hooked  # the hook did watch


async def test_durable_time_from_an_async_handlers_worker_thread_belongs_to_its_turn() -> None:
    log, _ = await _backlog([("thread_time",), ("time", 1), ("thread_time",), ("add", 1)])
    observed = [e for e in log if isinstance(e, TimeObserved)]
    assert [(e.scope, e.index) for e in observed] == [("once", 1)] * 3
    threaded = [s[1] for s in Probe.seen if s[0] == "thread_time"]
    assert threaded == [observed[0].value, observed[2].value]


async def test_a_message_with_an_id_resent_after_failing_past_a_commit_point_reads_its_time(
        autojump_clock: trio.testing.MockClock) -> None:
    store = MemoryEventStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Probe, "p", store=store, clock=actors.VirtualClock())
        with pytest.raises(Boom) as failed:
            await ref.ask(("once_then_fail",), message_id="k")
        await trio.sleep(100)
        again = await ref.ask(("once_then_fail",), message_id="k")
        assert again == failed.value.args[0]  # the recorded reading, 101 s later
        assert await ref.ask(("once_then_fail",), message_id="k") == again  # the reply
        nursery.cancel_scope.cancel()
    log = await _log(store, ref.stream)
    assert [(e.scope, e.index) for e in log if isinstance(e, TimeObserved)] == [("msg:k", 1)]


@attrs.define
class SyncProbe(actors.Actor):
    kind = "RedSyncProbe"

    def receive(self, message: int) -> list[float]:  # type: ignore[override]
        return [durable.time() for _ in range(message)]


async def test_plain_def_told_turns_count_their_durable_calls_from_one_each() -> None:
    store = MemoryEventStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, SyncProbe, "s", store=store)
        for n in (2, 1, 3):
            ref.tell(n)
        values = await ref.ask(2)
        nursery.cancel_scope.cancel()
    observed = [e for e in await _log(store, ref.stream) if isinstance(e, TimeObserved)]
    assert [(e.scope, e.index) for e in observed] == [
        ("once", 1), ("once", 2), ("once", 1), ("once", 1), ("once", 2), ("once", 3),
        ("once", 1), ("once", 2)]
    assert values == [e.value for e in observed[-2:]]


async def test_plain_turns_that_send_to_their_own_actor_run_each_sent_message_once(
        autojump_clock: trio.testing.MockClock) -> None:
    store = MemoryEventStore()
    async with actors.ActorSystem(store, actors=[Probe], clock=actors.VirtualClock()) as system:
        p = system.ref(Probe, "p")
        for message in [("send", 1, "p"), ("send", 2, "p"), ("add", 4), ("time", 1),
                        ("send", 100, "p", "fail"), ("send", 8, "p"), ("add", 16)]:
            p.tell(message)
        await trio.sleep(1)
        assert await p.ask(("total",)) == 31
    log = await _log(store, "RedProbe-p")
    assert sorted(e.n for e in log if isinstance(e, Added)) == [1, 2, 4, 8, 16]
    assert await _recovered_total(store) == 31
    assert (await replay.check(store, Probe, "p")).ok


async def test_a_stale_object_of_a_cluster_member_raises_actor_stopped(tmp_path: Path) -> None:
    cluster = actors.Cluster(lease_seconds=2.0, poll_seconds=0.1, heartbeat_seconds=0.2)
    async with SQLiteEventStore(tmp_path / "e.db") as store, actors.ActorSystem(
            store, actors=[Keeper], cluster=cluster, idle_timeout=0.2) as system:
        Keeper.kept = []
        await system.ref(Keeper, "k").ask(5)
        await system.ref(Keeper, "k").ask("keep")
        with trio.fail_after(10):
            while system.active:
                await trio.sleep(0.05)
        with pytest.raises(actors.ActorStopped, match="use a ref"):
            Keeper.kept[0].version  # noqa: B018
