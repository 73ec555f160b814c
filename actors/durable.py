"""Durable time and recorded side effects: ``sleep``, ``time``, ``now``, ``step``, ``uuid4``,
``random`` and ``patched``, which survive crashes (Flyte's API for time).

Inside an actor each call has a key: its scope (``run``, the message id, or the wake-up) and its
place among the scope's durable calls. The first call at a key records an event in the actor's
log (``TimeObserved`` or ``SleepStarted``); any later call at that key (after a crash, a restart
or a resent message) returns the recorded value, and a sleep waits only for what is left of it.

Each function is callable plainly or as ``await f.aio(...)``. Outside an actor they are plain
``time.time()``, ``datetime.now(timezone.utc)``, ``trio.sleep()``, a plain call of the step's
function, ``uuid.uuid4()`` and ``random.random()``, and record nothing.
"""

from __future__ import annotations

import math
import time as _time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Generic, ParamSpec, TypeVar

import msgspec
import trio

from eventstore import NewEvent
from eventstore._model import encoded_new_event

from . import _steps
from ._calls import current, describe, next_call, on_trio_thread
from ._errors import InvalidActorArgument, InvalidActorType, NonDeterminismError
from ._events import SleepStarted, TimeObserved
from ._steps import step_key
from ._turn import Turn

__all__ = ["now", "patched", "random", "sleep", "step", "step_key", "time", "uuid4"]

P = ParamSpec("P")
R = TypeVar("R")


_OBSERVED: str = getattr(TimeObserved, "__event_type__").name  # noqa: B009 - its @event_type
_encode_json = msgspec.json.Encoder().encode


def _observed(scope: str, index: int, function: str, value: float,
              branch: tuple[int, ...]) -> NewEvent | None:
    """``TimeObserved`` with these fields as a new event, its JSON text written here in one C
    call: what the codec writes (str and int fields, a float, a list of ints), without its
    generic checks. None for what only the codec should judge: a value that is not a finite
    float (a custom clock's), a scope that is not ASCII."""
    if type(value) is not float or not math.isfinite(value) or not scope.isascii():
        return None
    data = {"scope": scope, "index": index, "function": function, "value": value,
            "branch": [*branch]}
    return encoded_new_event(_OBSERVED, data, {}, None, _encode_json(data).decode())


def _observe(turn: Turn, function: str) -> float:
    cell = turn.cell
    scope, index, recorded = next_call(turn)
    if recorded is None:
        value = cell.clock.time()
        branch = turn.branch
        cell.emit_call(turn, TimeObserved(scope, index, function, value, branch),
                       _observed(scope, index, function, value, branch))
    elif not isinstance(recorded, TimeObserved) or recorded.function != function:
        raise NonDeterminismError(cell.name, scope, index, describe(recorded), f"{function}()")
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
    scope, index, recorded = next_call(turn)
    if recorded is None:
        started = cell.clock.time()
        cell.emit_system(SleepStarted(scope, index, started, seconds, turn.branch))
        # The commit point before waiting: a crash from now on resumes the sleep.
        await cell.journal.commit(turn, mid_scope=True)
        end = started + seconds  # the commit's time is slept too
    elif not isinstance(recorded, SleepStarted) or recorded.seconds != seconds:
        raise NonDeterminismError(cell.name, scope, index, describe(recorded),
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
    turn = current()
    if turn is None:
        return _time.time()
    if on_trio_thread():
        return _observe(turn, "time")
    return trio.from_thread.run_sync(_observe, turn, "time")


async def _time_aio() -> float:
    """``time()`` for async code; a checkpoint (before anything is recorded)."""
    await trio.lowlevel.checkpoint()
    turn = current()
    if turn is None:
        return _time.time()
    return _observe(turn, "time")


def _now_sync() -> datetime:
    """An aware UTC datetime; inside an actor, the one recorded at this call's key.

    Recorded as ``TimeObserved`` (function ``now``); replays return the same datetime.
    """
    turn = current()
    if turn is None:
        return datetime.now(UTC)
    if on_trio_thread():
        value = _observe(turn, "now")
    else:
        value = trio.from_thread.run_sync(_observe, turn, "now")
    return datetime.fromtimestamp(value, UTC)


async def _now_aio() -> datetime:
    """``now()`` for async code; a checkpoint (before anything is recorded)."""
    await trio.lowlevel.checkpoint()
    turn = current()
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
    turn = current()
    if on_trio_thread():
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
    turn = current()
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


def _in_turn(turn: Turn, fn: Callable[..., R], *args: Any) -> R:
    """Run ``fn(turn, *args)`` on trio's thread, from it or from a plain-def handler's thread."""
    if on_trio_thread():
        return fn(turn, *args)
    return trio.from_thread.run_sync(fn, turn, *args)


class _Step:
    """``durable.step``: call a side effect once, record its outcome, replay it afterwards."""

    __name__ = "step"

    def __call__(self, fn: Callable[..., R], /, *args: Any, retries: int = 0,
                 backoff: float = 1.0, **kwargs: Any) -> R:
        """Run ``fn(*args, **kwargs)`` as a recorded step, from a plain-def handler.

        The first execution at this key calls ``fn`` (up to ``1 + retries`` times, waiting
        ``backoff``, then twice as long, ... between attempts), records what it returned or how
        it failed (``StepRecorded``) and commits that before returning. Any later execution of
        the scope returns the recorded value, or raises ``StepFailed`` again, without calling
        ``fn``. The value must be one the store's codec can encode; the caller gets the decoded
        copy, the same on every execution.

        Raises:
            StepFailed: ``fn`` failed on every attempt (now or when it was recorded).
            TypeError: ``fn`` is not callable, or returned a value the codec cannot encode.
            ValueError: bad ``retries``/``backoff``; called on trio's thread inside an actor
                (use ``await durable.step.aio(fn, ...)``).
            NonDeterminismError: the log recorded something else at this key.
        """
        _steps.check_step(fn, retries, backoff)
        turn = current()
        if turn is None:
            result: R = _steps.plain(fn, args, kwargs, retries, backoff)
            return result
        if on_trio_thread():
            raise InvalidActorArgument(
                "durable.step() would block trio's thread: use `await durable.step.aio(fn, ...)` "
                "in async code")
        value: R = trio.from_thread.run(_steps.run_step, turn, fn, args, kwargs, retries,
                                        backoff)
        return value

    async def aio(self, fn: Callable[..., Awaitable[R]] | Callable[..., R], /, *args: Any,
                  retries: int = 0, backoff: float = 1.0, **kwargs: Any) -> R:
        """``step()`` for async code: ``fn`` may be async, or sync (run in a worker thread)."""
        _steps.check_step(fn, retries, backoff)
        turn = current()
        if turn is None:
            result: R = await _steps.attempt(fn, args, kwargs, retries, backoff, trio.sleep)
            return result
        value: R = await _steps.run_step(turn, fn, args, kwargs, retries, backoff)
        return value

    def __repr__(self) -> str:
        return "<durable step>"


def _value_sync(function: str, make: Callable[[], R]) -> R:
    turn = current()
    if turn is None:
        return make()
    value: R = _in_turn(turn, _steps.recorded_value, function, make)
    return value


def _uuid4_sync() -> uuid.UUID:
    """A random UUID; inside an actor, recorded at this call's key (``StepRecorded``)."""
    return _value_sync("durable.uuid4", _steps.make_uuid)


async def _uuid4_aio() -> uuid.UUID:
    """``uuid4()`` for async code; a checkpoint."""
    await trio.lowlevel.checkpoint()
    return _uuid4_sync()


def _random_sync() -> float:
    """A float in [0, 1); inside an actor, recorded at this call's key (``StepRecorded``)."""
    return _value_sync("durable.random", _steps.make_random)


async def _random_aio() -> float:
    """``random()`` for async code; a checkpoint."""
    await trio.lowlevel.checkpoint()
    return _random_sync()


def _check_patch(patch: object) -> str:
    if not isinstance(patch, str) or not patch:
        raise InvalidActorType(f"durable.patched() takes the patch's name as a non-empty str, "
                               f"got {type(patch).__name__} {patch!r}")
    return patch


def _patched_sync(patch: str) -> bool:
    """Whether this execution runs code that has ``patch`` (Temporal's ``patched``).

    True outside an actor, and where the scope makes new history (the marker ``PatchMarked``
    is recorded); where it replays history, True when that history was made by code with the
    patch and False when it was made before it. Keep the old branch until no unfinished scope
    (``run()``, a sleeping wake-up, a message with an id) can still replay old history.
    """
    name = _check_patch(patch)
    turn = current()
    if turn is None:
        return True
    return _in_turn(turn, _steps.patched, name)


async def _patched_aio(patch: str) -> bool:
    """``patched()`` for async code; a checkpoint."""
    await trio.lowlevel.checkpoint()
    return _patched_sync(patch)


step = _Step()
uuid4 = _Durable(_uuid4_sync, _uuid4_aio)
random = _Durable(_random_sync, _random_aio)
patched = _Durable(_patched_sync, _patched_aio)
