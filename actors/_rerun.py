"""Re-running an actor's recovery against its log, writing nothing (``actors.replay.check``).

A recovery at version v runs ``on_start``, then ``run()`` from its first line with the state
at v; the n-th durable call of ``run()`` meets the n-th recorded call. The re-run does the same
in a fork of the replaying cell whose commits go nowhere and whose clock is past every recorded
instant (so recorded sleeps are over), and stops at the first durable call the log has not
recorded: from there on a real process would be making new history.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import trio
import trio.testing

from eventstore import AppendResult, EventStore, Expected, RecordedEvent, WorkEntry
from eventstore._validate import EncodedEvent
from eventstore._work import Side

from ._actor_class import overrides
from ._cell import Cell
from ._events import SleepStarted, TimeObserved
from ._state import ActorState
from ._turn import Turn, current_turn


class _EndOfHistory(BaseException):
    """The re-run asked for a durable call the log has not recorded: it caught up with the log.

    A ``BaseException`` (like the other two below) so user code catching ``Exception`` does not
    swallow it.
    """


class _Repeated(BaseException):
    """Replaying ``run()``'s recorded calls changed the state: it redid what the log holds."""


class _ReplayClock:
    """What durable time reads in a re-run: one instant, after everything the log mentions.

    A new durable call reads the clock before it records anything; when ``run()``'s turn has
    made more calls than its scope recorded, that read ends the re-run. The read that replays
    the last recorded sleep calls ``at_last_sleep`` first.
    """

    def __init__(self, at: float) -> None:
        self.at = at
        self.run_turn: Turn | None = None
        self.recorded = 0
        self.at_last_sleep: Callable[[], None] | None = None

    def time(self) -> float:
        turn = self.run_turn
        if turn is not None:
            if turn.calls > self.recorded:
                raise _EndOfHistory
            if turn.calls == self.recorded and self.at_last_sleep is not None:
                hook, self.at_last_sleep = self.at_last_sleep, None
                hook()
        return self.at

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)


class _Sandbox(EventStore):
    """Takes the re-run's commits and keeps nothing, so it never writes to a real log."""

    async def _append(self, stream: str, events: list[EncodedEvent], expected: Expected,
                      side: Side) -> AppendResult:
        await trio.lowlevel.checkpoint()
        base = expected if isinstance(expected, int) else 0
        return AppendResult(base + len(events), 0)

    async def _read_inbox_page(self, stream: str, after: int,
                               size: int) -> list[RecordedEvent]:
        return []

    async def _set_wake(self, stream: str, wake_at: float | None) -> None:
        pass

    async def _work(self) -> list[WorkEntry]:
        return []

    async def _read_page(self, stream: str, first: int, last: int | None,
                         size: int) -> list[RecordedEvent]:
        return []

    async def _read_all_page(self, after: int, size: int,
                             types: frozenset[str] | None) -> list[RecordedEvent]:
        return []

    async def _last_version(self, stream: str) -> int:
        return 0

    async def _delete_up_to(self, stream: str, version: int) -> None:
        pass

    async def _save_snapshot(self, stream: str, version: int, state: str) -> None:
        pass

    async def _load_snapshot(self, stream: str,
                             max_version: int | None) -> tuple[int, str, datetime] | None:
        return None

    async def _aclose(self) -> None:
        pass


def _fields(state: ActorState) -> dict[str, Any]:
    state_class: Any = state.cls
    return {field.name: getattr(state.actor, field.name) for field in attrs.fields(state_class)}


def _fork(state: ActorState, store: EventStore, clock: _ReplayClock) -> Cell:
    """A cell in a copy of ``state`` that commits into a sandbox and reads ``clock``."""
    fork = Cell(state.cls, state.actor_id, store=_Sandbox(codec=store.codec), clock=clock)
    state.copy_into(fork.state)
    return fork


def _latest_instant(state: ActorState, recorded: RecordedEvent | None) -> float:
    """The latest instant the log mentions: when every recorded sleep has ended."""
    instants = [0.0 if recorded is None else recorded.recorded_at.timestamp()]
    for calls in state.record.calls():
        for call in calls:
            if isinstance(call, TimeObserved):
                instants.append(call.value)
            elif isinstance(call, SleepStarted):
                instants.append(call.started_at + max(call.seconds, 0.0))
    return max(instants)


async def rerun(state: ActorState, store: EventStore,
                recorded: RecordedEvent | None) -> tuple[str, Any] | None:
    """Recover the actor as a process that crashed at ``state.version`` would.

    Args:
        state: the replaying state, at the version to recover from (it is not changed).
        store: the store the log comes from (for its codec; nothing is written to it).
        recorded: the event at that version, if it is the one the re-run starts after.

    Returns:
        None when the recovery replays the log faithfully; else ``(reason, error)``.
    """
    clock = _ReplayClock(_latest_instant(state, recorded))
    fork = _fork(state, store, clock)
    run_record = fork.state.record.scopes.get("run")
    calls = [] if run_record is None else run_record.calls.get((), [])
    outcome: tuple[str, Any] | None = None
    stage = "on_start"

    def compare_with(before: dict[str, Any], timers: dict[str, Any]) -> Callable[[], None]:
        def compare() -> None:
            nonlocal outcome
            after = _fields(fork.state)
            changed = [f"{name}: {before[name]!r} -> {after[name]!r}" for name in before
                       if before[name] != after[name]]
            if fork.notifier.dump() != timers:
                changed.append("its timers")
            if changed:
                outcome = (f"re-running run() from this version, as a recovery would, changed "
                           f"the state again before reaching its last recorded call "
                           f"(#{len(calls)}): {'; '.join(changed)}. The log already holds those "
                           "effects; guard emit() and notify_at() with the state", None)
                raise _Repeated

        return compare

    async def recover(nursery: trio.Nursery) -> None:
        nonlocal outcome, stage
        try:
            if overrides(fork.cls, "on_start"):
                await _as_turn(Turn(fork, scope="start"), fork.actor.on_start)
            stage = "run()"
            clock.run_turn = run_turn = Turn(fork, scope="run")
            clock.recorded = len(calls)
            if calls and isinstance(calls[-1], SleepStarted):
                before = {name: copy.deepcopy(value)
                          for name, value in _fields(fork.state).items()}
                timers = fork.notifier.dump()
                clock.at_last_sleep = compare_with(before, timers)
            await _as_turn(run_turn, fork.actor.run)  # type: ignore[attr-defined]
        except (_EndOfHistory, _Repeated):
            pass
        except BaseExceptionGroup as group:
            rest = group.split((_EndOfHistory, _Repeated))[1]
            if rest is not None and not isinstance(rest, Exception):
                raise rest from None
            if rest is not None and outcome is None:
                outcome = (_raised(stage, rest), rest)
        except Exception as exc:
            outcome = (_raised(stage, exc), exc)
        finally:
            nursery.cancel_scope.cancel()

    await until_blocked(recover)
    return outcome


async def until_blocked(body: Callable[[trio.Nursery], Awaitable[None]]) -> None:
    """Run ``body(nursery)`` until it ends, or until every task waits: then it waits for what
    only another actor or a message would bring, and the log can take it no further."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(body, nursery)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()


def _raised(stage: str, error: BaseException) -> str:
    return (f"recovering from this version, {stage} raised {type(error).__name__}: {error} "
            "(a process that crashed here would fail the same way)")


async def _as_turn(turn: Turn, body: Callable[[], Awaitable[Any]]) -> None:
    token = current_turn.set(turn)
    try:
        await body()
    finally:
        current_turn.reset(token)
