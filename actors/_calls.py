"""The key of a durable call: the current turn, its next call index, and the record there.

Every durable function (``time``, ``sleep``, ``step``, ``uuid4``, ``patched``...) numbers its
calls per scope and per branch; the n-th call of a branch meets the n-th recorded one.
"""

from __future__ import annotations

from typing import Any

import trio

from ._events import CallReplied, PatchMarked, SleepStarted, StepRecorded, TimeObserved
from ._turn import ONCE, Turn, current_turn


def on_trio_thread() -> bool:
    """Whether the caller runs on trio's thread (not a worker thread of a plain-def handler)."""
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def current() -> Turn | None:
    """The turn (branch) being executed by a running actor, or None outside one."""
    turn = current_turn.get()
    if turn is None or turn.cell.stopped.is_set():
        return None
    return turn


def next_call(turn: Turn) -> tuple[str, int, Any]:
    """Count one more durable call of ``turn``: its scope, index and the record at that key."""
    calls = turn.calls = turn.calls + 1
    scope = turn.scope
    if scope is ONCE:  # a message without an id: its calls are never kept for a replay
        return scope, calls, None
    return scope, calls, turn.cell.state.record.get(scope, calls, turn.branch)


def describe(recorded: Any) -> str:
    """A recorded call as the code that made it would read, for ``NonDeterminismError``."""
    if isinstance(recorded, TimeObserved):
        return f"{recorded.function}() = {recorded.value}"
    if isinstance(recorded, SleepStarted):
        return f"sleep({recorded.seconds})"
    if isinstance(recorded, StepRecorded):
        return f"step({recorded.function})"
    if isinstance(recorded, CallReplied):
        return f"ask({recorded.target})"
    if isinstance(recorded, PatchMarked):
        return f"patched({recorded.patch!r})"
    return "nothing"
