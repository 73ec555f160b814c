"""Run a coroutine on the calling task, shielded from the caller's cancellation only once it
suspends: an ask answered on the asker's task costs no cancel scope when its turn never waits.

A turn that never suspends cannot be cancelled (trio delivers cancellation only at a
checkpoint), so the shield is needed from its first suspension on. At that point the turn may
be inside cancel scopes of its own (``trio.sleep`` opens one): the shield then goes *around*
them, between the caller's cancel status and theirs, the way ``TaskStatus.started()`` moves a
task's cancel statuses under another nursery. That takes trio's private cancel-status tree;
when it is not what this module expects, ``LATE_SHIELD`` is False and callers shield up front.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import attrs
import trio
from trio._core._run import CancelStatus


def _fields(cls: type) -> set[str]:
    return {field.name for field in attrs.fields(cls)}


LATE_SHIELD = isinstance(getattr(CancelStatus, "parent", None), property) and \
    {"_scope", "_parent", "effectively_cancelled"} <= _fields(CancelStatus) and \
    "_cancel_status" in _fields(trio.lowlevel.Task) and \
    {"_cancel_status", "_deadline", "_shield"} <= _fields(trio.CancelScope)
"""Whether trio's cancel-status tree is the one this module knows; else shield up front."""


def cancel_status() -> Any:
    """The calling task's current cancel status (an opaque token for ``late_shield``)."""
    return trio.lowlevel.current_task()._cancel_status


def no_deadline() -> bool:
    """``trio.current_effective_deadline() == math.inf``, read from trio's private fields: an
    ask checks it before each inline turn, and trio's properties cost three times as much."""
    if not LATE_SHIELD:
        return trio.current_effective_deadline() == math.inf
    status: CancelStatus | None = trio.lowlevel.current_task()._cancel_status
    while status is not None:
        scope = status._scope
        if scope._deadline != math.inf or status.effectively_cancelled:
            return False
        if scope._shield:
            return True
        status = status._parent
    return True


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], trap: Any) -> Generator[Any, Any, Any]:
    """Go on running ``coro``, which just yielded ``trap`` to us, as part of this task."""
    while True:
        try:
            sent = yield trap
        except BaseException as exc:
            try:
                trap = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                trap = coro.send(sent)
            except StopIteration as stop:
                return stop.value


class _LateShield:
    """``scope`` (shielded, not entered) put around the cancel scopes the task entered since
    its cancel status was ``outer``."""

    __slots__ = ("outer", "scope")

    def __init__(self, scope: trio.CancelScope, outer: Any) -> None:
        self.scope = scope
        self.outer = outer

    def __enter__(self) -> trio.CancelScope:
        scope, outer = self.scope, self.outer
        task = trio.lowlevel.current_task()
        inner = task._cancel_status
        if inner is outer:
            scope.__enter__()
            return scope
        # The coroutine is inside scopes of its own: find the outermost of them, whose parent
        # is ``outer``, and hang it under the shield's status instead.
        child: CancelStatus | None = inner
        while child is not None and child.parent is not outer:
            child = child.parent
        if child is None:  # pragma: no cover - cancel scopes misnested by the coroutine
            raise RuntimeError("the turn's cancel scopes are not nested in the asker's")
        scope._has_been_entered = True
        status = CancelStatus(scope=scope, parent=outer)
        scope._cancel_status = status
        child.parent = status
        return scope

    def __exit__(self, *exc_info: Any) -> bool:
        return self.scope.__exit__(*exc_info)


def shielded_when_suspended(coro: Coroutine[Any, Any, Any],
                            shield: Callable[[], trio.CancelScope]
                            ) -> Coroutine[Any, Any, None] | None:
    """Run ``coro`` on this task up to its first suspension, now; from there on it must run
    inside a shielded scope.

    Args:
        coro: a coroutine not started yet; its result is dropped.
        shield: makes the scope (``trio.CancelScope(shield=True)``, not entered) when ``coro``
            first suspends; cancelling it cancels ``coro``.

    Returns:
        None if ``coro`` finished without suspending; else a coroutine to await at once, which
        runs the rest of ``coro`` in that scope (and ends it if the scope is cancelled).
    """
    if not LATE_SHIELD:
        return _shielded(coro, shield())
    outer = cancel_status()
    try:
        trap = coro.send(None)
    except StopIteration:
        return None
    return _late_shielded(coro, trap, shield(), outer)


async def _shielded(coro: Coroutine[Any, Any, Any], scope: trio.CancelScope) -> None:
    with scope:
        await coro


async def _late_shielded(coro: Coroutine[Any, Any, Any], trap: Any, scope: trio.CancelScope,
                         outer: Any) -> None:
    try:
        with _LateShield(scope, outer):
            await _resume(coro, trap)
    finally:
        coro.close()  # a no-op once it has finished
