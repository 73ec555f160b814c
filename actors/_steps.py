"""Recorded side effects: ``durable.step``, recorded values and ``durable.patched``.

A step runs its function at most once per key *successfully recorded*: the first execution at
a key runs ``fn`` (with retries), records its outcome as ``StepRecorded`` and commits it before
the scope goes on, so any later execution of the scope (a restart, a resent message, ``check``)
gets the recorded value, or the recorded failure, without running ``fn`` again. A crash while
``fn`` runs, before the record commits, runs it again: a step is at least once until recorded,
and ``step_key()`` gives ``fn`` a key to make the outside world deduplicate that.
"""

from __future__ import annotations

import functools
import inspect
import math
import random as _random
import time as _time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import trio

from ._calls import describe, next_call
from ._errors import InvalidActorArgument, InvalidActorType, NonDeterminismError, StepFailed
from ._events import PatchMarked, StepRecorded
from ._turn import Turn

_key: ContextVar[str | None] = ContextVar("actors_step_key", default=None)


def step_key() -> str | None:
    """Inside a step's function: a key unique to this step of this actor, stable across retries
    and re-executions (an idempotency key for a payment API). None outside a step."""
    return _key.get()


def key(turn: Turn, index: int) -> str:
    """The step's idempotency key: the same on every attempt and every execution of the scope.

    A scope that never runs again (a message without an id) or runs afresh at each activation
    (``on_start``) has no stable identity across executions: its keys get a random part, so two
    executions never share one.
    """
    place = ".".join(map(str, (*turn.branch, index)))
    scope = turn.scope
    if not turn.can_run_again or scope == "start":
        scope = f"{scope}-{uuid.uuid4().hex[:12]}"
    return f"{turn.cell.stream}/{scope}/{place}"


def function_name(fn: Callable[..., Any]) -> str:
    """The name a step is recorded under: the function's qualified name."""
    target = fn.func if isinstance(fn, functools.partial) else fn
    return getattr(target, "__qualname__", None) or type(target).__qualname__


def is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None))  # noqa: B004 - an object with an async __call__


def check_step(fn: object, retries: object, backoff: object) -> None:
    """Validate ``step``'s arguments the same way everywhere."""
    if not callable(fn):
        raise InvalidActorType(f"durable.step() takes a function to call first, got "
                               f"{type(fn).__name__} {fn!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidActorArgument(f"durable.step(retries=) takes an int >= 0, got {retries!r}")
    if isinstance(backoff, bool) or not isinstance(backoff, int | float) \
            or not math.isfinite(backoff) or backoff < 0:
        raise InvalidActorArgument(f"durable.step(backoff=) takes finite seconds >= 0, got "
                                   f"{backoff!r}")


def delay(backoff: float, attempt: int) -> float:
    """The wait before retry number ``attempt`` (1, 2, ...): exponential from ``backoff``."""
    return float(backoff * 2 ** (attempt - 1))


def replayed(turn: Turn, index: int, recorded: object, function: str) -> Any:
    """The outcome recorded at a step's key: its value, or ``StepFailed`` again."""
    if not isinstance(recorded, StepRecorded) or recorded.function != function:
        raise NonDeterminismError(turn.cell.name, turn.scope, index, describe(recorded),
                                  f"step({function})")
    if recorded.error is not None:
        raise StepFailed(function, recorded.error)
    return turn.cell.codec.decode_value(recorded.value)


async def attempt(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                  retries: int, backoff: float, wait: Callable[[float], Any]) -> Any:
    """Call ``fn`` (async, or sync in a worker thread) up to ``1 + retries`` times."""
    for n in range(retries + 1):
        if n:
            await wait(delay(backoff, n))
        try:
            if is_async(fn):
                return await fn(*args, **kwargs)
            return await trio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
        except Exception:
            if n == retries:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def run_step(turn: Turn, fn: Callable[..., Any], args: tuple[Any, ...],
                   kwargs: dict[str, Any], retries: int, backoff: float) -> Any:
    """Run or replay the step at ``turn``'s next key, recording and committing a new outcome."""
    cell = turn.cell
    function = function_name(fn)
    scope, index, recorded = next_call(turn)
    if recorded is not None:
        return replayed(turn, index, recorded, function)
    cell.clock.time()  # a re-run (``check``) stops here: it never runs a side effect

    async def wait(seconds: float) -> None:
        await cell.sleep_until(cell.clock.time() + seconds)

    token = _key.set(key(turn, index))
    failure: Exception | None = None
    try:
        value = await attempt(fn, args, kwargs, retries, backoff, wait)
    except Exception as exc:
        failure, value = exc, None
    finally:
        _key.reset(token)
    try:
        encoded = cell.codec.encode_value(value)
    except Exception as exc:
        raise InvalidActorType(
            f"durable.step({function}) returned {type(value).__name__} {value!r}, which the "
            f"store's codec cannot record ({exc}); return attrs instances or plain values "
            "(str, int, float, list, dict, tuple, datetime, UUID, ...)") from exc
    error = None if failure is None else f"{type(failure).__name__}: {failure}"
    cell.emit_system(StepRecorded(scope, index, function, encoded, error, turn.branch))
    # The commit point before going on: from here on the step's outcome is the log's.
    await cell.journal.commit(turn, mid_scope=True)
    if failure is not None:
        raise StepFailed(function, error or "") from failure
    return cell.codec.decode_value(encoded)


def recorded_value(turn: Turn, function: str, make: Callable[[], Any]) -> Any:
    """A value made once at ``turn``'s next key (``uuid4``, ``random``), then read back."""
    cell = turn.cell
    scope, index, recorded = next_call(turn)
    if recorded is not None:
        return replayed(turn, index, recorded, function)
    cell.clock.time()  # a re-run (``check``) stops at a call the log has not recorded
    encoded = cell.codec.encode_value(make())
    cell.emit_system(StepRecorded(scope, index, function, encoded, None, turn.branch))
    return cell.codec.decode_value(encoded)


def make_uuid() -> uuid.UUID:
    return uuid.uuid4()


def make_random() -> float:
    return _random.random()


def patched(turn: Turn, patch: str) -> bool:
    """Whether the scope runs code with ``patch``: True when its history has the patch's marker
    here or ends here (new history), False when the history here was made without it."""
    cell = turn.cell
    record = cell.state.record.scopes.get(turn.scope) if turn.can_run_again else None
    place = turn.calls
    if record is not None:
        calls = record.calls.get(turn.branch, [])
        recorded = calls[place] if place < len(calls) else None
        if isinstance(recorded, PatchMarked) and recorded.patch == patch:
            turn.calls += 1
            return True
        unmet = len(record.events.get((turn.branch, place), ())) > \
            (turn.cursors or {}).get(place, 0)
        if recorded is not None or unmet or record.continues_after(turn.branch, place):
            return False  # made by code without the patch: it is not a call of that history
    turn.calls += 1
    cell.emit_system(PatchMarked(turn.scope, turn.calls, patch, turn.branch))
    return True


def plain(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
          retries: int, backoff: float) -> Any:
    """A step outside an actor, from sync code: ``fn`` with its retries, recorded nowhere."""
    if is_async(fn):
        raise InvalidActorType(f"durable.step({function_name(fn)}) is a coroutine function: "
                               "use `await durable.step.aio(fn, ...)`")
    for n in range(retries + 1):
        if n:
            _time.sleep(delay(backoff, n))
        try:
            return fn(*args, **kwargs)
        except Exception:
            if n == retries:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
