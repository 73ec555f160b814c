"""The journal: an actor's pending events, its commit points, recovery and snapshots.

Each pending event belongs to the turn that emitted it. A commit point of a turn appends that
turn's events only, never those of another turn still running, so a turn that fails later
leaves no trace. When a commit passes events another live turn emitted earlier, the live state
is re-derived in log order: the committed log folded, then the events still pending, so the
state always equals ``fold(log) + pending``. A failed turn's events are dropped the same way.

A commit also carries the turns' other effects, in the append's own transaction: the inbox
messages they consumed (acknowledged), the messages they sent (enqueued in other actors'
inboxes), and the actor's next wake time in the store's work index. Once an append is stored the
commit has succeeded, whatever fails after it (a snapshot): that failure is a warning. A lost
version race, or an append whose outcome the store could not determine, stops the actor instead
of guessing.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from eventstore import (
    KEEP,
    AppendOutcomeUnknown,
    EventStore,
    Fence,
    Fenced,
    NewEvent,
    WrongExpectedVersion,
)
from eventstore._validate import json_text

from ._errors import ActorError, ActorStopped, RecoveryError
from ._events import (
    NotificationCancelled,
    NotificationFired,
    NotificationScheduled,
    ScopeCommitted,
    markable,
)
from ._state import ActorState
from ._turn import CANCEL, DUE, Turn

if TYPE_CHECKING:
    from ._cell import Cell

log = logging.getLogger("actors")

_TAKEN = (NotificationFired, NotificationCancelled)
"""What a wake-up does to notifications another turn may have scheduled without committing."""
_NO_TURNS: set[Turn] = frozenset()  # type: ignore[assignment]  # shared until a turn is held

WorkHook = Callable[["Cell", "float | None"], None]
"""Told, after the store's work index changed, when an actor next needs to run (epoch s; 0 =
now; None = never)."""


@attrs.define(eq=False, slots=True)
class Pending:
    """One emitted event waiting for its turn's commit point."""

    new: NewEvent
    event: Any
    turn: Turn  # the root turn it belongs to
    branch: Turn  # the task of that turn that emitted it
    calls: int  # the branch's durable calls made before it
    side: Any = None
    """What its commit also writes: a consumed inbox message's id (``uuid.UUID``), or an
    ``Outgoing`` message for another actor's inbox."""


@attrs.define(eq=False, slots=True)
class Outgoing:
    """A message a turn sends: stored in ``stream``'s inbox by the turn's commit."""

    stream: str
    message: NewEvent
    deliver: Callable[[], None]
    """Tells the receiver, after the commit, that its inbox has a message."""


class Journal:
    """Pending events, commit points, recovery and snapshots of one actor."""

    __slots__ = ("_lock", "_snapshot_version", "broken", "cell", "ended", "fence", "indexed",
                 "pending", "state", "store", "stream", "work_hook")

    def __init__(self, cell: Cell, state: ActorState, *, work_hook: WorkHook | None) -> None:
        self.cell = cell
        self.state = state
        self.store: EventStore = cell.store
        self.stream = cell.stream
        self.pending: list[Pending] = []
        self.ended: set[Turn] = _NO_TURNS  # ended uncommitted turns: the next commit takes theirs
        self.work_hook = work_hook
        self.broken: str | None = None  # why no more commits may be made (a lost race, ...)
        self._lock: trio.Lock | None = None  # made at the first commit
        self._snapshot_version = 0
        self.indexed: float | None = None
        self.fence: Fence | None = None
        """In a cluster: the claim this actor runs under; every write is fenced with it."""

    # -- recovery ------------------------------------------------------------------------------

    def fresh_state(self) -> ActorState:
        cell = self.cell
        return ActorState(cell.cls, cell.actor_id, cell.codec, emit_system=cell.emit_system,
                          runtime=cell)

    async def recover(self, *, to_version: int | None = None) -> None:
        """Rebuild the state from the newest snapshot and the log after it. Reads in pages."""
        fresh = self.fresh_state()
        self._snapshot_version = await recover_into(fresh, self.store, self.stream,
                                                    snapshots=self.cell.cls.snapshot_every
                                                    is not None, to_version=to_version)
        self.state.take(fresh)

    async def rebuild(self) -> None:
        """Make the state ``fold(log) + pending`` again (after a drop or a reordering).

        A live turn whose events no longer apply on the rebuilt state is poisoned: its events
        are dropped and it fails at its next commit point.
        """
        fresh = self.fresh_state()
        self._snapshot_version = await recover_into(
            fresh, self.store, self.stream, snapshots=self.cell.cls.snapshot_every is not None)
        self._settle(fresh)  # no checkpoint from here on: nothing else emits

    # -- commits ---------------------------------------------------------------------------------

    async def commit(self, turn: Turn | None, *, mid_scope: bool = False) -> None:
        """Append ``turn``'s pending events, and those of the ended turns waiting in ``ended``,
        in one batch (a commit point of that turn; with None, of the ended turns only).

        With ``mid_scope`` (``flush()``, a durable sleep, a stop) the batch starts with the
        marker that lets a re-execution of the scope match what it already committed; a
        wake-up's own ``NotificationFired`` stay pending: its firing is committed with its end,
        so a wake-up cut short (a crash, a stop, a failure) is handed its tokens again.

        Raises:
            ActorStopped: the actor lost a version race, or the store could not say whether the
                append was stored: the actor stops.
            ActorError: the turn cannot commit (an ``apply()`` of it raised).
            EventStoreError: the store refused the append; nothing of it was written.
        """
        root = None if turn is None else turn.root
        if root is not None and root.poisoned is not None:
            raise ActorError(f"{self.cell.name}: the turn cannot commit: applying one of its "
                             f"events raised {root.poisoned!r}") from root.poisoned
        if self.broken is not None:
            raise ActorStopped(self.cell.name, self.broken)
        if root is not None and root.is_wake_up:
            await self._commit_schedulers(root)
        async with self._commit_lock():
            pending = self.pending
            ended = set(self.ended)
            if all(item.turn is root or item.turn in ended for item in pending):
                mine, reordered = pending[:], False  # the usual case
            else:
                mine = [item for item in pending if item.turn is root or item.turn in ended]
                last = pending.index(mine[-1]) if mine else 0
                # Another live turn's firing (a sleeping wake-up's) is passed freely: no event
                # of these builds on it (its tokens are gone from the state, nothing can refer
                # to them), so the log folds the same.
                reordered = any(not (item.turn is root or item.turn in ended)
                                and type(item.event) is not NotificationFired
                                for item in pending[:last])
            if mid_scope and root is not None and root.is_wake_up:
                mine = [item for item in mine
                        if not (item.turn is root and type(item.event) is NotificationFired)]
            if not mine:
                self._forget(ended)
                return  # the lock was still awaited: a turn never ends during a commit
            batch = [item.new for item in mine]
            acknowledge: list[uuid.UUID] = []
            outgoing: list[Outgoing] = []
            for item in mine:
                if item.side is not None:
                    if isinstance(item.side, Outgoing):
                        outgoing.append(item.side)
                    else:
                        acknowledge.append(item.side)
            marker = self._marker(root, mine) \
                if mid_scope and root is not None and root.can_run_again else None
            if marker is not None:
                batch.insert(0, self.cell.codec.new_event(marker))
            reordered_state = await self._fold_ahead(mine) if reordered else None
            wake = self.cell.work_at()
            # The wake time goes with the commit; while other turns' events stay pending (they
            # may cancel a timer this log still holds) only an earlier one.
            wake_at: Any = KEEP
            if self.work_hook is not None and wake != self.indexed and (
                    len(mine) == len(pending) or _earlier(wake, self.indexed)):
                wake_at = wake
            fence = self.fence
            if fence is not None:
                text = stamp_text(fence)
                batch = [stamped(new, fence, text) for new in batch]
            if acknowledge or outgoing or wake_at is not KEEP or fence is not None:
                append = self.store.append(
                    self.stream, batch, expected_version=self.state.version,
                    acknowledge=acknowledge, wake_at=wake_at,
                    enqueue=[(out.stream, out.message) for out in outgoing], fence=fence)
            else:
                append = self.store.append(self.stream, batch,
                                           expected_version=self.state.version)
            if self.cell.telemetry is not None:
                append = self.cell.telemetry.commit(self.cell, len(batch), append)
            try:
                result = await append
            except WrongExpectedVersion as exc:
                self.broken = (f"another writer appended to its stream {self.stream!r} "
                               f"(version {exc.actual}, expected {exc.expected})")
                raise ActorStopped(self.cell.name, self.broken) from exc
            except Fenced as exc:
                raise ActorStopped(self.cell.name, self._fenced(exc)) from exc
            except AppendOutcomeUnknown as exc:
                # Neither "done" nor "not done" would be honest: stop, and let the next
                # activation read the log to learn which it was.
                self.broken = (f"the outcome of its last commit is unknown ({exc.reason}); it "
                               "stopped rather than guess, and recovers from the log when "
                               "activated again")
                raise ActorStopped(self.cell.name, self.broken) from exc
            if self.pending is pending and len(pending) == len(mine):
                self.pending = []  # nothing else was pending, nor emitted during the append
            else:
                committed = {id(item) for item in mine}
                self.pending = [item for item in self.pending if id(item) not in committed]
            self._forget(ended)
            self.state.version = result.version
            if reordered_state is not None:
                reordered_state.version = result.version
                self._settle(reordered_state)
            if marker is not None:
                assert root is not None  # a marker is only made for a turn's commit point
                self._record_marked(root, marker, mine)
            if wake_at is not KEEP:
                self.indexed = wake_at
                assert self.work_hook is not None
                self.work_hook(self.cell, wake_at)
            for out in outgoing:
                out.deliver()
            await self._after_commit()

    def _fenced(self, exc: Fenced) -> str:
        """A write was fenced: this member lost the actor (it was declared dead, since a claim
        takes an actor only from a dead member); the actor stops, and the member rejoins.
        Why it stops."""
        self.broken = (f"this member no longer owns it (epoch {exc.epoch}): another member may "
                       "serve it now")
        system = self.cell.system
        if system is not None:
            system.fenced(exc.member)
        return self.broken

    async def _commit_schedulers(self, wake_up: Turn) -> None:
        """Before a commit of ``wake_up``: commit the live turns (``run()``, say) that scheduled
        what it handed out or cancelled and have not committed that yet, each as a commit point
        of that turn (as at a stop), so the log never holds a firing or a cancel, or what a
        wake-up did with a token, before its scheduling.

        A turn that cannot commit (an ``apply()`` of it raised) is left alone: the wake-up then
        fails at its commit, writing nothing, and is tried again.
        """
        taken = {seq for item in self.pending
                 if item.turn is wake_up and type(item.event) in _TAKEN for seq in item.event.seqs}
        if not taken:
            return
        schedulers = [item.turn for item in self.pending
                      if type(item.event) is NotificationScheduled and item.event.seq in taken
                      and item.turn is not wake_up and item.turn not in self.ended
                      and item.turn.poisoned is None]
        for turn in dict.fromkeys(schedulers):
            await self.commit(turn, mid_scope=True)

    async def _fold_ahead(self, mine: list[Pending]) -> ActorState:
        """Before a commit that puts ``mine`` ahead of other live turns' earlier events: the
        state the log will fold to (the log, then ``mine``), proving that those events do not
        build on the other turns' uncommitted ones.

        Raises:
            ActorError: they do (an ``apply`` or a timer fails without them); nothing is
                written, and the turn fails rather than leave a log that cannot be replayed.
        """
        fresh = self.fresh_state()
        await recover_into(fresh, self.store, self.stream,
                           snapshots=self.cell.cls.snapshot_every is not None)
        for item in mine:
            try:
                fresh.fold(item.event)
            except Exception as exc:
                raise ActorError(
                    f"{self.cell.name}: this turn's events build on events another turn still "
                    f"running (run(), say) has not committed yet ({exc!r}); nothing was "
                    "written. Commit those first (await self.flush() in run() before it "
                    "awaits anything else), then retry") from exc
        return fresh

    def _settle(self, fresh: ActorState) -> None:
        """The state becomes ``fresh`` (the log) plus the events still pending; a live turn
        whose events no longer apply is poisoned and loses them."""
        while True:
            trial = self.fresh_state()
            fresh.copy_into(trial)
            failed = None
            for item in self.pending:
                try:
                    trial.fold(item.event)
                except Exception as exc:
                    failed = item.turn
                    failed.poisoned = exc
                    break
            if failed is None:
                self.state.take(trial)
                return
            self.pending = [item for item in self.pending if item.turn is not failed]

    def _forget(self, turns: set[Turn]) -> None:
        if self.ended:
            self.ended = (self.ended - turns) or _NO_TURNS

    def hold(self, turn: Turn) -> None:
        """``turn`` ended without a commit (a backlog's): the next commit takes its events."""
        if self.ended is _NO_TURNS:
            self.ended = set()
        self.ended.add(turn)

    @property
    def committing(self) -> bool:
        """Whether a commit is in flight."""
        return self._lock is not None and self._lock.locked()

    async def end_turn(self, turn: Turn) -> None:
        """The commit point at a turn's end: its events, or a wait for a commit in flight
        (whose events the turn may have read: its reply must not show what a crash takes back).
        """
        if turn.poisoned is not None or self.ended or \
                any(item.turn is turn for item in self.pending):
            await self.commit(turn)  # with the ended turns of a backlog: it read their events
        elif self._lock is not None and self._lock.locked():
            async with self._lock:
                pass

    def _marker(self, root: Turn, mine: list[Pending]) -> ScopeCommitted | None:
        """The marker of ``root``'s events in the batch: a mark per markable event after it,
        ``()`` for one of another (ended) turn in the same batch; for a wake-up, also what its
        ``due()`` calls handed out so far."""
        marks = tuple((*item.branch.branch, item.calls) if item.turn is root else ()
                      for item in mine if markable(item.event))
        calls = root.handouts or ()  # its notifier calls since its previous marker
        fired = tuple((mark, seqs) for kind, mark, seqs in calls if kind == DUE)
        cancelled = tuple((mark, seqs) for kind, mark, seqs in calls if kind == CANCEL)
        return ScopeCommitted(root.scope, marks, fired, cancelled) \
            if any(marks) or calls else None

    def _record_marked(self, root: Turn, marker: ScopeCommitted, mine: list[Pending]) -> None:
        """Fold the marker's events into the record, as recovery will, and move each branch's
        cursor past them: they are its own, not history to match."""
        record = self.state.record
        if marker.fired or marker.cancelled:
            record.add_taken(marker.scope, DUE, marker.fired)
            record.add_taken(marker.scope, CANCEL, marker.cancelled)
            handouts = root.handouts
            assert handouts is not None
            # (A task may have added more during the append.)
            del handouts[:len(marker.fired) + len(marker.cancelled)]
        users = [item for item in mine if markable(item.event)]
        for mark, item in zip(marker.marks, users, strict=True):
            if not mark:
                continue  # another turn's
            record.add_event(marker.scope, mark, item.event)
            scope = record.scopes[marker.scope]
            branch = item.branch
            if branch.cursors is None:
                branch.cursors = {}
            branch.cursors[item.calls] = len(scope.events[(mark[:-1], mark[-1])])

    async def _after_commit(self) -> None:
        """The snapshot after a stored commit, if one is due: a failure is a warning only.

        A snapshot holds the state the log folds to. While only firings are pending (a wake-up
        holds its own until it ends, through a durable sleep, say), the live state lacks their
        tokens, which the log still holds: the snapshot is folded from the log instead. Any
        other pending event makes it wait for a later commit (that event's turn's, say).
        """
        try:
            every = self.cell.cls.snapshot_every
            if every is None or self.state.version - self._snapshot_version < every:
                return
            state = self.state
            if self.pending:
                if any(type(item.event) is not NotificationFired for item in self.pending):
                    return
                state = self.fresh_state()
                await recover_into(state, self.store, self.stream, snapshots=True,
                                   to_version=self.state.version)
            await self.store.save_snapshot(self.stream, state.version, state.snapshot())
            self._snapshot_version = state.version
        except Exception as exc:
            warnings.warn(f"{self.cell.name}: its commit is stored, but saving a snapshot after "
                          f"it failed ({exc!r}); the actor goes on",
                          RuntimeWarning, stacklevel=2)

    async def _index(self, wake: float | None) -> None:
        """Set the wake time in the store's index without a commit (at start, at a stop)."""
        assert self.work_hook is not None
        try:
            await self.store.set_wake(self.stream, wake, fence=self.fence)
        except Fenced as exc:
            raise ActorStopped(self.cell.name, self._fenced(exc)) from exc
        self.indexed = wake
        self.work_hook(self.cell, wake)

    async def reindex(self) -> None:
        """Correct the work index to what the state says (at start, and after a stop).

        After a stop, a firing its cut-short turn kept pending is not in the log: the tokens
        are due again, so the actor has work now.
        """
        fired = any(type(item.event) is NotificationFired for item in self.pending)
        wake = 0.0 if fired else self.cell.work_at()
        if self.work_hook is not None and wake != self.indexed:
            await self._index(wake)

    async def index_now(self) -> None:
        if self.work_hook is not None and self.indexed != 0.0:
            await self._index(0.0)

    # -- failed turns ------------------------------------------------------------------------------

    async def abort(self, turn: Turn) -> None:
        """A turn failed: drop what it emitted since its last commit point, rebuild the state.

        Raises:
            Exception: the log could not be read back; the state is then unknown.
        """
        await self.drop({turn.root})

    async def drop(self, turns: set[Turn]) -> None:
        """Drop the pending events of ``turns`` (failed) and rebuild the state without them."""
        self._forget(turns)
        if not any(item.turn in turns for item in self.pending) and \
                all(turn.poisoned is None for turn in turns):
            return
        # Under the commit lock: a commit in flight is either in the log already or still
        # pending when the state is rebuilt, never both.
        async with self._commit_lock():
            self.pending = [item for item in self.pending if item.turn not in turns]
            await self.rebuild()

    def _commit_lock(self) -> trio.Lock:
        if self._lock is None:
            self._lock = trio.Lock()
        return self._lock


async def recover_into(state: ActorState, store: EventStore, stream: str, *, snapshots: bool,
                       to_version: int | None = None) -> int:
    """Fold ``stream`` into ``state`` (empty), from its newest snapshot when ``snapshots``.

    Returns:
        The version of the snapshot used (0 for none).

    Raises:
        RecoveryError: a gap in the log, a snapshot ahead of the log, a trimmed log whose
            snapshot cannot be restored, a version that is not an int.
        DecodeError: an event cannot be decoded with the current code.
    """
    used = 0
    unusable = ""
    if snapshots:
        snapshot = await store.load_snapshot(stream, max_version=to_version)
        if snapshot is not None:
            try:
                state.restore(snapshot.state, snapshot.version)
            except Exception as exc:
                unusable = (f"; the snapshot at version {snapshot.version} cannot be restored "
                            f"({exc!r})")
                warnings.warn(f"the snapshot of {stream!r} at version {snapshot.version} cannot "
                              f"be restored ({exc!r}); replaying the log instead",
                              RuntimeWarning, stacklevel=2)
            else:
                used = snapshot.version
                last = await store.last_version(stream)
                if last < used:
                    raise RecoveryError(stream, used, (
                        f"the snapshot at version {used} is ahead of the log, which ends at "
                        f"version {last}; the log was changed or replaced: delete the snapshot "
                        "or restore the log"))
    decode = state.codec.decode
    fold = state.fold_recorded
    async with contextlib.aclosing(store.read_pages(stream, from_version=state.version + 1,
                                                    to_version=to_version)) as pages:
        async for page in pages:
            if unusable and page[0].version != state.version + 1:
                raise RecoveryError(stream, state.version + 1, (
                    f"events up to version {page[0].version - 1} were deleted{unusable}, so the "
                    "state there cannot be rebuilt: fix the snapshot's class or restore the log"))
            for recorded in page:
                fold(recorded, decode(recorded))
    return used


def stamped(new: NewEvent, fence: Fence, text: str) -> NewEvent:
    """``new`` with the member and epoch it is committed under in its metadata (``text``: that
    metadata as JSON, for an event that has no other)."""
    if new.metadata:
        return NewEvent(new.type, new.data, {**new.metadata, "member": fence.member,
                                             "epoch": fence.epoch}, new.id)
    event = NewEvent(new.type, new.data, {"member": fence.member, "epoch": fence.epoch}, new.id)
    object.__setattr__(event, "data_json", new.data_json)
    object.__setattr__(event, "metadata_json", text)
    return event


def stamp_text(fence: Fence) -> str:
    """The metadata JSON of an event stamped with ``fence`` and nothing else."""
    return json_text({"member": fence.member, "epoch": fence.epoch})


def _earlier(new: float | None, old: float | None) -> bool:
    return new is not None and (old is None or new < old)
