"""The actor's own notifier: every change is an event in the actor's log, folded back in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from eventstore import Codec

from ._events import (
    NotificationCancelled,
    NotificationFired,
    NotificationScheduled,
    SystemEvent,
)
from ._notifier import MultiNotifier, _utc
from ._turn import CANCEL, DUE, current_turn


class EventSourcedNotifier(MultiNotifier[Any]):
    """``self.notifier`` inside an actor: ``notify_at``, ``due`` and ``cancel`` emit events.

    The public API is the ``MultiNotifier`` one; changes are only allowed inside a turn, and a
    token the codec cannot encode is refused before anything changes.
    """

    __slots__ = ("_codec", "_emit", "_taken")

    def __init__(self, codec: Codec, emit: Callable[[SystemEvent], None]) -> None:
        super().__init__()
        self._codec = codec
        self._emit = emit
        self._taken: tuple[int, ...] = ()  # what the last firing or cancel took

    def due(self, now: datetime) -> list[Any]:
        """``MultiNotifier.due``; in a wake-up that runs again (cut short after a commit point),
        what that ``due()`` call handed out the first time, those of it still pending."""
        turn = current_turn.get()
        if turn is None or not turn.root.is_wake_up or turn.cell.state.notifier is not self:
            return super().due(now)
        cell = turn.cell
        seqs = cell.recorded_take(turn, DUE)
        if seqs is not None:
            _utc(now, "now")  # the same argument checks
            tokens = self._hand_out(seqs)
            cell.took(turn, DUE, None)
            return tokens
        self._taken = ()
        tokens = super().due(now)
        cell.took(turn, DUE, self._taken)
        return tokens

    def is_pending(self, seq: int) -> bool:
        """Whether notification ``seq`` is pending."""
        return self._is_pending(seq)

    def cancel(self, token: Any) -> int:
        """``MultiNotifier.cancel``; in a scope that runs again, what that ``cancel()`` call
        removed the first time, those of it still pending, and the same count. Past its recorded
        calls, the notifications the scope itself scheduled (and committed) further on in its
        first execution are left alone: they did not exist yet when it cancelled there, and the
        scope matches them when it gets there."""
        turn = current_turn.get()
        if turn is None or not turn.can_run_again or turn.cell.state.notifier is not self:
            return super().cancel(token)
        cell = turn.cell
        seqs = cell.recorded_take(turn, CANCEL)
        if seqs is not None:  # in firing order, as the first time removed them
            present = self._still_pending(seqs)
            if present:
                self._on_cancel(present)
            cell.took(turn, CANCEL, None)
            return len(seqs)
        self._taken = ()
        count = self._cancel(token, cell.scheduled_later(turn))
        cell.took(turn, CANCEL, self._taken)
        return count

    def _hand_out(self, seqs: tuple[int, ...]) -> list[Any]:
        """Fire the notifications ``seqs`` that are still pending (not cancelled since), in
        that order."""
        present = self._still_pending(seqs)
        if not present:
            return []
        entries = self._indexed().entries
        tokens = [entries[seq][2] for seq in present]
        self._on_fire(present)
        return tokens

    def _still_pending(self, seqs: tuple[int, ...]) -> list[int]:
        """Those of ``seqs`` still pending, in that order."""
        if not seqs:
            return []
        entries = self._indexed().entries
        return [seq for seq in seqs if seq in entries]

    def _on_schedule(self, seq: int, at: datetime, token: Any) -> None:
        encoded = self._codec.encode_value(token)
        self._emit(NotificationScheduled(seq, at, encoded))

    def _on_fire(self, seqs: list[int]) -> None:
        self._taken = taken = tuple(seqs)
        self._emit(NotificationFired(taken))

    def _on_cancel(self, seqs: list[int]) -> None:
        self._taken = taken = tuple(seqs)
        self._emit(NotificationCancelled(taken))

    def fold(self, event: NotificationScheduled | NotificationFired | NotificationCancelled
             ) -> None:
        """Apply one of the notifier's events (at emit time and at recovery)."""
        if isinstance(event, NotificationScheduled):
            self._apply_scheduled(event.seq, event.at, self._codec.decode_value(event.token))
        elif isinstance(event, NotificationFired):
            self._apply_fired(event.seqs)
        else:
            self._apply_cancelled(event.seqs)

    def next_seq(self) -> int:
        """The sequence number the next ``notify_at`` gives: what is scheduled from now on has
        this one or a higher one."""
        return self._next_seq

    def earliest_seq(self) -> int | None:
        """The sequence number of the earliest pending notification (a wake-up's identity)."""
        return self._heap[0][1] if self._heap else None  # the root is never a tombstone

    def next_after(self, moment: float) -> datetime | None:
        """The earliest pending instant later than epoch ``moment``. O(n): for stale wake-ups."""
        # Over the pending entries, not the heap: the heap may hold cancelled tombstones.
        return min((at for at, _, _ in self._pending() if at.timestamp() > moment),
                   default=None)

    def dump(self) -> dict[str, Any]:
        return {
            "next_seq": self._next_seq,
            "pending": [[seq, at.isoformat(), self._codec.encode_value(token)]
                        for at, seq, token in self._sorted()],
        }

    def load(self, data: dict[str, Any]) -> None:
        self._reset()
        for seq, at, token in sorted(data["pending"], key=lambda item: item[0]):  # seq order
            self._apply_scheduled(seq, datetime.fromisoformat(at),
                                  self._codec.decode_value(token))
        self._next_seq = max(self._next_seq, data["next_seq"])
