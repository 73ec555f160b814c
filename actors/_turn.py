"""The turn being executed, and its branches: the context variable durable time reads.

A turn is one execution of a scope (a message, a wake-up, ``on_start`` or the ``run()`` body).
Tasks a turn starts (``nursery.start_soon`` inside a handler) are *branches* of it, named by the
order in which they were started: ``(1,)``, ``(2,)``, then ``(2, 1)`` for the first task the
second one starts. Each branch counts its own durable calls, so calls made concurrently replay
against the same records whatever order trio happens to run the tasks in. A trio instrument
hands each started task its branch, from the parent's turn, at the moment it is started.
"""

from __future__ import annotations

import weakref
from contextvars import ContextVar
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from ._cell import Cell


DUE, CANCEL = "due", "cancel"
"""The kinds of notifier calls a scope that runs again replays: ``due()`` and ``cancel()``."""

ONCE = "once"
"""The scope of a message sent without an id: nothing can send it again, so its durable calls
are recorded in the log but never kept for a replay (and it needs no ``ScopeCompleted``)."""


WAKE_UP = "notify:"
"""The prefix of a wake-up's scope (``on_notify``): ``notify:`` and the sequence number of the
earliest due notification."""


class Turn:
    """One execution of a scope, or one branch (task) of it.

    ``calls`` counts the branch's durable calls so far, so its n-th call meets its n-th
    record; ``cursors`` says, per count of calls, how many of the events it committed there a
    re-execution has met again. ``root`` is the turn the branch belongs to (itself for the
    turn's own task): pending events, commits and failures belong to the root.
    """

    __slots__ = ("_parent_root", "_scope", "branch", "calls", "cell", "children", "cursors",
                 "finished", "fires", "handouts", "message_id", "poisoned", "sends")

    def __init__(self, cell: Cell, *, scope: str | None = None,
                 message_id: str | None = None, parent: Turn | None = None) -> None:
        self.cell = cell
        if scope is None and message_id is not None:
            scope = f"msg:{message_id}"  # a resend runs the same scope again
        self._scope = scope
        self.message_id = message_id
        self.calls = 0
        self.sends = 0  # messages this branch sent (tell/send to other actors)
        self.children = 0
        self.cursors: dict[int, int] | None = None  # made when a re-execution matches
        # The branch's notifier calls (due(), cancel()) per (kind, count of durable calls).
        self.fires: dict[tuple[str, int], int] | None = None
        # On the root turn: those calls since its last ScopeCommitted, (kind, (*branch, calls),
        # seqs), written by its next commit point (see Journal._marker).
        self.handouts: list[tuple[str, tuple[int, ...], tuple[int, ...]]] | None = None
        self.branch: tuple[int, ...] = ()
        # None for a root turn: no reference to itself, so a turn is freed as soon as it is
        # dropped, not by a pass of the cyclic garbage collector (one turn per message).
        self._parent_root = None if parent is None else parent.root
        self.poisoned: BaseException | None = None
        self.finished = False  # ended or failed: a task that outlives it cannot emit into it

    @property
    def root(self) -> Turn:
        """The turn this branch belongs to (itself, for the turn's own task)."""
        root = self._parent_root
        return self if root is None else root

    @property
    def scope(self) -> str:
        """The scope's name: ``ONCE`` for a message sent without a message id."""
        root = self.root
        if root._scope is None:
            root._scope = ONCE
        return root._scope

    @property
    def can_run_again(self) -> bool:
        """Whether this scope may execute again (``run``, a wake-up, a message with an id)."""
        scope = self.root._scope
        return scope is not None and scope != ONCE

    @property
    def is_wake_up(self) -> bool:
        """Whether this is (a branch of) a wake-up's turn."""
        scope = self.root._scope
        return scope is not None and scope.startswith(WAKE_UP)

    def child(self) -> Turn:
        """The branch for the next task this branch starts."""
        self.children += 1
        branch = Turn(self.cell, parent=self)
        branch.branch = (*self.branch, self.children)
        return branch


current_turn: ContextVar[Turn | None] = ContextVar("actors_current_turn", default=None)

runtime_nurseries: weakref.WeakSet[trio.Nursery] = weakref.WeakSet()
"""Nurseries of the runtime itself: a task started there (an actor activated from inside
another actor's turn) belongs to no turn."""


class _Branches(trio.abc.Instrument):
    """Gives each task started inside a turn its branch, in the order the tasks are started."""

    def __init__(self) -> None:
        self._system: trio.Nursery | None = None

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        nursery = task.parent_nursery
        if nursery is None:
            return
        turn = task.context.get(current_turn)
        if turn is None:
            return
        if self._system is None:
            root = trio.lowlevel.current_root_task()
            self._system = None if root is None else root.parent_nursery
        if nursery is self._system:
            return  # trio's own (``from_thread``): it carries the thread's turn as it is
        if nursery in runtime_nurseries:
            task.context.run(current_turn.set, None)
        else:
            # The task that starts it is the one whose context it copies, whichever nursery
            # it goes into: a new branch of that task's branch.
            task.context.run(current_turn.set, turn.child())


_tracking: trio.lowlevel.RunVar[bool] = trio.lowlevel.RunVar("actors_branches", default=False)


def track_branches() -> None:
    """Install the branch instrument in this trio run, once."""
    if not _tracking.get():
        trio.lowlevel.add_instrument(_Branches())
        _tracking.set(True)
