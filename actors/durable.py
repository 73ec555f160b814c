"""Durable time: ``sleep``, ``time`` and ``now`` that survive crashes (Flyte's API).

Inside an actor each call has a key: its scope (``run``, the message id, or the wake-up) and its
place among the scope's durable calls. The first call at a key records an event in the actor's
log (``TimeObserved`` or ``SleepStarted``); any later call at that key (after a crash, a restart
or a resent message) returns the recorded value, and a sleep waits only for what is left of it.

Each function is callable plainly or as ``await f.aio(...)``. Outside an actor they are plain
``time.time()``, ``datetime.now(timezone.utc)`` and ``trio.sleep()``, and record nothing.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Generic, ParamSpec, TypeVar

import trio

from ._errors import InvalidActorArgument, InvalidActorType, NonDeterminismError
from ._events import SleepStarted, TimeObserved
from ._turn import Turn, current_turn

__all__ = ["now", "sleep", "time"]

P = ParamSpec("P")
R = TypeVar("R")


def _on_trio_thread() -> bool:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def _turn() -> Turn | None:
    turn = current_turn.get()
    if turn is None or turn.cell.stopped.is_set():
        return None
    return turn


def _next_call(turn: Turn) -> tuple[str, int, Any]:
    turn.calls += 1
    scope = turn.scope
    return scope, turn.calls, turn.cell.state.record.get(scope, turn.calls, turn.branch)


def _describe(recorded: Any) -> str:
    if isinstance(recorded, TimeObserved):
        return f"{recorded.function}() = {recorded.value}"
    if isinstance(recorded, SleepStarted):
        return f"sleep({recorded.seconds})"
    return "nothing"


def _observe(turn: Turn, function: str) -> float:
    cell = turn.cell
    scope, index, recorded = _next_call(turn)
    if recorded is None:
        value = cell.clock.time()
        cell.emit_system(TimeObserved(scope, index, function, value, turn.branch))
    elif not isinstance(recorded, TimeObserved) or recorded.function != function:
        raise NonDeterminismError(cell.name, scope, index, _describe(recorded), f"{function}()")
    else:
        value = recorded.value
    if cell.telemetry is not None:
        cell.telemetry.durable_call(turn, function, value, recorded is not None)
    return value


def _seconds(seconds: object) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InvalidActorType(f"sleep() takes seconds as an int or float, got "
                               f"{type(seconds).__name__} {seconds!r}"
                               + ("; use td.total_seconds()" if hasattr(seconds, "total_seconds")
                                  else ""))
    try:
        value = float(seconds)  # an int beyond a float's range raises OverflowError
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise InvalidActorArgument(f"sleep() needs a finite number of seconds, got {seconds!r}")
    return value


async def _sleep_in(turn: Turn, seconds: float) -> None:
    telemetry = turn.cell.telemetry
    if telemetry is None:
        await _sleep_recorded(turn, seconds)
    else:
        await telemetry.durable_sleep(turn, seconds, _sleep_recorded(turn, seconds))


async def _sleep_recorded(turn: Turn, seconds: float) -> None:
    cell = turn.cell
    scope, index, recorded = _next_call(turn)
    if recorded is None:
        started = cell.clock.time()
        cell.emit_system(SleepStarted(scope, index, started, seconds, turn.branch))
        # The commit point before waiting: a crash from now on resumes the sleep.
        await cell.journal.commit(turn, mid_scope=True)
        end = started + seconds  # the commit's time is slept too
    elif not isinstance(recorded, SleepStarted) or recorded.seconds != seconds:
        raise NonDeterminismError(cell.name, scope, index, _describe(recorded),
                                  f"sleep({seconds})")
    else:
        end = recorded.started_at + recorded.seconds
    await cell.sleep_until(end)


class _Durable(Generic[P, R]):
    """A durable function: call it plainly, or ``await f.aio(...)`` from async code."""

    def __init__(self, sync: Callable[P, R], aio: Callable[P, Awaitable[R]]) -> None:
        self._sync = sync
        self.aio = aio
        self.__doc__ = sync.__doc__
        self.__name__ = sync.__name__

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._sync(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<durable {self.__name__}>"


def _time_sync() -> float:
    """Seconds since the epoch; inside an actor, the value recorded at this call's key.

    The first call at a key records ``TimeObserved`` (committed with the turn); later calls at
    the key return the recorded value. Works on the trio thread and on worker threads.
    """
    turn = _turn()
    if turn is None:
        return _time.time()
    if _on_trio_thread():
        return _observe(turn, "time")
    return trio.from_thread.run_sync(_observe, turn, "time")


async def _time_aio() -> float:
    """``time()`` for async code; a checkpoint (before anything is recorded)."""
    await trio.lowlevel.checkpoint()
    turn = _turn()
    if turn is None:
        return _time.time()
    return _observe(turn, "time")


def _now_sync() -> datetime:
    """An aware UTC datetime; inside an actor, the one recorded at this call's key.

    Recorded as ``TimeObserved`` (function ``now``); replays return the same datetime.
    """
    turn = _turn()
    if turn is None:
        return datetime.now(UTC)
    if _on_trio_thread():
        value = _observe(turn, "now")
    else:
        value = trio.from_thread.run_sync(_observe, turn, "now")
    return datetime.fromtimestamp(value, UTC)


async def _now_aio() -> datetime:
    """``now()`` for async code; a checkpoint (before anything is recorded)."""
    await trio.lowlevel.checkpoint()
    turn = _turn()
    if turn is None:
        return datetime.now(UTC)
    return datetime.fromtimestamp(_observe(turn, "now"), UTC)


def _sleep_sync(seconds: float) -> None:
    """Sleep ``seconds``; inside an actor, durably.

    The first call at a key records ``SleepStarted(started_at, seconds)`` and commits it before
    waiting; a replay waits only for ``started_at + seconds - now`` and returns at once when that
    is not positive. Zero and negative seconds return at once and record nothing. On a worker
    thread it blocks that thread; on the trio thread use ``await durable.sleep.aio(seconds)``.

    Raises:
        TypeError: ``seconds`` is not an int or float (a ``timedelta``, a string).
        ValueError: ``seconds`` is NaN or infinite.
        NonDeterminismError: the log recorded something else at this key.
    """
    value = _seconds(seconds)
    turn = _turn()
    if _on_trio_thread():
        raise InvalidActorArgument(
            "durable.sleep() would block trio's thread: use `await durable.sleep.aio(seconds)` "
            "in async code")
    if value <= 0:
        return
    if turn is None:
        try:
            trio.from_thread.run(trio.sleep, value)
        except RuntimeError:
            _time.sleep(value)
        return
    trio.from_thread.run(_sleep_in, turn, value)


async def _sleep_aio(seconds: float) -> None:
    """``sleep()`` for async code: a checkpoint. Cancelling it leaves ``SleepStarted`` recorded,
    so the same call after a restart waits only for the rest."""
    value = _seconds(seconds)
    turn = _turn()
    if value <= 0:
        await trio.lowlevel.checkpoint()
        return
    if turn is None:
        await trio.sleep(value)
        return
    await _sleep_in(turn, value)


time = _Durable(_time_sync, _time_aio)
now = _Durable(_now_sync, _now_aio)
sleep = _Durable(_sleep_sync, _sleep_aio)
