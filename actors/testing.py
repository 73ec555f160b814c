"""Testing actors: fold events without a runtime, and a kit that drives actors in a test.

- ``project(Account, [Deposited(5), Withdrew(2)])`` returns the state those events fold to:
  pure, no store, no trio.
- ``ActorTestKit`` (``async with``) runs actors on a memory store and a ``VirtualClock``:
  ``spawn``, ``crash`` (as a killed process: the turn in flight is not committed),
  ``recover``, ``advance`` (virtual time), ``events`` (the log, decoded) and ``given`` (events
  already in the log). With ``always_replay=True`` every turn ends with the actor rebuilt from
  its log, which must equal the live actor: that catches an impure ``apply`` and a state change
  made outside ``apply``.
- ``await feed(Balances(), events, db=...)`` runs a projection over a list of events, with no
  store; a projection that writes SQL runs its statements on a ``sqlite3`` connection.
- A pytest plugin (installed with the package): the ``actor_kit`` fixture, in always-replay
  mode under the ``actors_always_replay`` marker or with ``pytest --actors-always-replay``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

import attrs
import trio
import trio.testing

from eventstore import EventStore
from eventstore.memory import MemoryEventStore

from ._actor import Actor
from ._actor_class import check_actor_class, check_actor_id, kind_of
from ._cell import Cell
from ._clock import Clock, VirtualClock
from ._errors import ActorError, ActorStopped, DuplicateActor, InvalidActorArgument
from ._events import SystemEvent
from ._journal import recover_into
from ._projection_testing import feed as feed
from ._ref import ActorRef
from ._registry import running
from ._spawn import start_cell
from ._state import ActorState
from ._turn import runtime_nurseries

__all__ = ["ActorTestKit", "ReplayMismatch", "feed", "project"]

A = TypeVar("A", bound=Actor)


def project(cls: type[A], events: Iterable[Any], *, actor_id: str = "projected") -> A:
    """The state of a ``cls`` actor whose log holds ``events``: recovery's fold, nothing else.

    Runtime events (``NotificationScheduled``, ``TimeObserved``...) may be among them: they go
    to the actor's ``notifier`` and durable-call record, the others to ``apply``. The returned
    actor answers ``version`` and ``notifier.pending()``; it cannot emit.
    """
    state = ActorState(check_actor_class(cls), check_actor_id(actor_id), MemoryEventStore().codec)
    for event in events:
        state.fold(event)
        state.version += 1
    actor: A = state.actor  # type: ignore[assignment]
    return actor


class ReplayMismatch(ActorError, AssertionError):
    """Always-replay mode: the actor rebuilt from its log differs from the live actor."""

    def __init__(self, actor: str, version: int, differences: list[str]) -> None:
        super().__init__(actor, version, differences)
        self.actor = actor
        self.version = version
        self.differences = differences

    def __str__(self) -> str:
        return (f"actor {self.actor} at version {self.version}: rebuilding it from its log gives "
                f"another state ({'; '.join(self.differences)}). apply() must be a pure fold, "
                "and the state may only change through emit()")


def _differences(live: ActorState, rebuilt: ActorState) -> list[str]:
    """What differs between two states of the same actor: fields, timers, record, run()."""
    state_class: Any = live.cls
    found = []
    for field in attrs.fields(state_class):
        now, then = getattr(live.actor, field.name), getattr(rebuilt.actor, field.name)
        if now != then:
            found.append(f"{field.name}: {now!r} live, {then!r} rebuilt")
    if live.notifier != rebuilt.notifier:
        found.append(f"timers: {live.notifier.pending()!r} live, "
                     f"{rebuilt.notifier.pending()!r} rebuilt")
    if live.record.dump(live.codec) != rebuilt.record.dump(rebuilt.codec):
        found.append("the durable-call record")
    if live.run_done != rebuilt.run_done:
        found.append(f"run() done: {live.run_done} live, {rebuilt.run_done} rebuilt")
    return found


@attrs.define(eq=False)
class _Hosted:
    """One actor the kit knows: its class and id, and the cell while it runs."""

    cls: type[Actor]
    actor_id: str
    cell: Cell | None = None
    scope: trio.CancelScope | None = None
    crashed: bool = False

    @property
    def running(self) -> bool:
        return self.cell is not None and not self.cell.stopped.is_set()


class ActorTestKit:
    """Actors on a memory store and a virtual clock, with crash, recover and time travel.

    Use it as ``async with ActorTestKit() as kit:`` inside a trio test; run the test with
    pytest-trio's ``autojump_clock`` fixture so ``advance`` and durable sleeps take no real
    time. Leaving the block stops every actor (committing what is pending), then raises the
    first always-replay mismatch, if any.

    Args:
        always_replay: after every turn, rebuild the actor from its log (no snapshot) and
            record a ``ReplayMismatch`` in ``mismatches`` when it differs from the live actor;
            the kit raises the first one when it exits. (The turn itself is committed, so its
            asker gets its reply.)
        store: the store (default a new ``MemoryEventStore``).
        clock: what durable time reads (default ``VirtualClock()``, 2026-01-01 UTC).
    """

    def __init__(self, *, always_replay: bool = False, store: EventStore | None = None,
                 clock: Clock | None = None) -> None:
        self.store = MemoryEventStore() if store is None else store
        self.clock = VirtualClock() if clock is None else clock
        self.always_replay = always_replay
        self.mismatches: list[ReplayMismatch] = []
        self._hosted: dict[str, _Hosted] = {}
        self._nursery: trio.Nursery | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self._lifetime())
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:
        stack, self._stack = self._stack, None
        assert stack is not None, "ActorTestKit.__aexit__ without __aenter__"
        try:
            handled = await stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            if exc is None or group.exceptions != (exc,):
                raise
            handled = False  # the test's own error: let it through as it was raised
        if exc is None and self.mismatches:
            raise self.mismatches[0]
        return handled

    @contextlib.asynccontextmanager
    async def _lifetime(self) -> AsyncIterator[None]:
        """The kit's lifetime: its nursery, and every actor stopped cleanly at the end."""
        await trio.lowlevel.checkpoint()  # entering is a checkpoint, as leaving is
        async with trio.open_nursery() as nursery:
            runtime_nurseries.add(nursery)
            self._nursery = nursery
            try:
                yield
                await trio.lowlevel.checkpoint()
                for hosted in self._hosted.values():
                    if hosted.running:
                        assert hosted.cell is not None
                        hosted.cell.request_stop()
                        await hosted.cell.stopped.wait()
            finally:
                nursery.cancel_scope.cancel()
                self._nursery = None

    # -- actors ----------------------------------------------------------------------------------

    def ref(self, cls: type[Actor], actor_id: str) -> ActorRef:
        """A ref to ``cls``/``actor_id`` that stays valid across ``crash`` and ``recover``.

        The actor does not start until ``spawn``; messages sent before that raise
        ``ActorStopped``.
        """
        cls = check_actor_class(cls)
        check_actor_id(actor_id)
        kind = kind_of(cls)
        stream = f"{kind}-{actor_id}"
        hosted = self._hosted.get(stream)
        if hosted is None:
            hosted = self._hosted[stream] = _Hosted(cls, actor_id)
        elif hosted.cls is not cls:
            raise InvalidActorArgument(f"{stream!r} is already used by "
                                       f"{hosted.cls.__qualname__} in this kit")

        def resolve() -> Cell:
            cell = hosted.cell
            if cell is None:
                raise ActorStopped(f"{cls.__qualname__}({actor_id!r})",
                                   "it was not spawned yet: await kit.spawn(...)")
            if cell.stopped.is_set():
                reason = "it crashed: await kit.recover(ref)" if hosted.crashed else (
                    cell.stop_reason)
                raise ActorStopped(cell.name, reason)
            return cell

        def current() -> Cell | None:
            return hosted.cell if hosted.running else None

        return ActorRef(kind, actor_id, stream, resolve, current, self.store)

    async def spawn(self, cls: type[Actor], actor_id: str) -> ActorRef:
        """Start ``cls``/``actor_id`` and return its ref once it has recovered. A checkpoint.

        Raises:
            DuplicateActor: it already runs in this kit.
        """
        ref = self.ref(cls, actor_id)
        hosted = self._hosted[ref.stream]
        if hosted.running:
            raise DuplicateActor(f"{hosted.cls.__qualname__}({actor_id!r})")
        await self._start(hosted)
        return ref

    async def crash(self, ref: ActorRef) -> None:
        """Kill the actor as a crashed process would die: nothing pending is committed.

        The turn in flight is cancelled where it stands (a handler in a worker thread first
        finishes its call); what it emitted but did not commit is lost, and waiting asks fail
        with ``ActorStopped``. A checkpoint; returns once the actor is gone.
        """
        hosted = self._running(ref)
        assert hosted.scope is not None and hosted.cell is not None
        hosted.crashed = True
        hosted.scope.cancel()
        await hosted.cell.stopped.wait()

    async def recover(self, ref: ActorRef) -> ActorRef:
        """Start a crashed (or stopped) actor again from its log; returns ``ref``."""
        hosted = self._known(ref)
        if hosted.running:
            raise DuplicateActor(f"{hosted.cls.__qualname__}({hosted.actor_id!r})")
        await self._start(hosted)
        return ref

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, timers and durable sleeps firing on the way.

        Returns once every actor is idle again. Needs trio's ``MockClock`` with autojump
        (pytest-trio's ``autojump_clock`` fixture).
        """
        clock = trio.lowlevel.current_clock()
        if not isinstance(clock, trio.testing.MockClock) or clock.autojump_threshold == math.inf:
            raise ActorError("advance() needs trio's MockClock with autojump: add pytest-trio's "
                             "autojump_clock fixture to the test's arguments")
        await trio.sleep(seconds)
        await trio.testing.wait_all_tasks_blocked()

    async def events(self, ref: ActorRef, *, system: bool = False) -> list[Any]:
        """The events in the actor's log, decoded; the runtime's own only with ``system``."""
        decode = self.store.codec.decode
        found = []
        async with contextlib.aclosing(self.store.read(ref.stream)) as events:
            async for recorded in events:
                event = decode(recorded)
                if system or not isinstance(event, SystemEvent):
                    found.append(event)
        return found

    async def given(self, ref: ActorRef, *events: Any) -> None:
        """Append ``events`` to the actor's log, as history it recovers from.

        A running actor is stopped first (its pending events committed) and started again
        afterwards, so it recovers with the new events.
        """
        hosted = self._known(ref)
        restart = hosted.running
        if restart:
            await ref.stop()
        codec = self.store.codec
        await self.store.append(ref.stream, [codec.new_event(event) for event in events])
        if restart:
            await self._start(hosted)

    def state(self, ref: ActorRef) -> Actor:
        """The live actor object (its fields are the state); for assertions."""
        cell = self._running(ref).cell
        assert cell is not None
        return cell.actor

    # -- internals -------------------------------------------------------------------------------

    def _known(self, ref: ActorRef) -> _Hosted:
        hosted = self._hosted.get(ref.stream)
        if hosted is None:
            raise InvalidActorArgument(f"{ref!r} is not an actor of this kit: use kit.ref(), "
                                       "kit.spawn()")
        return hosted

    def _running(self, ref: ActorRef) -> _Hosted:
        hosted = self._known(ref)
        if not hosted.running:
            raise ActorStopped(f"{hosted.cls.__qualname__}({hosted.actor_id!r})",
                               "it is not running in the kit")
        return hosted

    async def _start(self, hosted: _Hosted) -> None:
        if self._nursery is None:
            raise ActorError("use the kit inside `async with ActorTestKit() as kit:`")
        other = running(self.store, f"{kind_of(hosted.cls)}-{hosted.actor_id}")
        if other is not None:
            raise DuplicateActor(other.name)
        hosted.crashed = False
        await self._nursery.start(self._host, hosted)

    async def _host(self, hosted: _Hosted,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run one actor in a cancel scope of its own, so ``crash`` can cancel just it."""
        hook = self._verify if self.always_replay else None
        with trio.CancelScope() as scope:
            hosted.scope = scope
            async with trio.open_nursery() as nursery:
                hosted.cell = await start_cell(nursery, hosted.cls, hosted.actor_id,
                                               store=self.store, clock=self.clock,
                                               turn_hook=hook)
                task_status.started()

    async def _verify(self, live: Cell) -> None:
        """The always-replay check, after a turn's commit."""
        if live.journal.pending:
            return  # another turn has events pending: the log is behind the state for a while
        rebuilt = ActorState(live.cls, live.actor_id, live.codec)
        await recover_into(rebuilt, self.store, live.stream, snapshots=False)
        found = _differences(live.state, rebuilt)
        if found:
            # Recorded, not raised: the turn is committed, so its asker gets its reply; the kit
            # raises the first mismatch when it exits.
            self.mismatches.append(ReplayMismatch(live.name, live.version, found))


try:
    import pytest
    import pytest_trio  # type: ignore[import-untyped]
except ImportError:  # the kit works without pytest; only the plugin needs it
    pass
else:
    def pytest_addoption(parser: pytest.Parser) -> None:
        parser.addoption("--actors-always-replay", action="store_true",
                         help="run the actor_kit fixture in always-replay mode in every test")

    def pytest_configure(config: pytest.Config) -> None:
        config.addinivalue_line("markers", "actors_always_replay: run this test's actor_kit "
                                           "fixture in always-replay mode")

    @pytest_trio.trio_fixture  # type: ignore[untyped-decorator]
    async def actor_kit(request: pytest.FixtureRequest) -> AsyncIterator[ActorTestKit]:
        """An entered ``ActorTestKit``; add ``autojump_clock`` to the test for virtual time."""
        always = bool(request.config.getoption("--actors-always-replay")) or \
            request.node.get_closest_marker("actors_always_replay") is not None
        async with ActorTestKit(always_replay=always) as kit:
            yield kit
