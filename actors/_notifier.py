"""`MultiNotifier`: many pending timers keyed by time, bytewax's API on a heap.

Each pending notification is one ``(at, seq, token)`` tuple in a binary heap: ``at`` is an
aware UTC datetime and ``seq`` a number unique per notifier, so tuples order by time, then by
scheduling order, and tokens are never compared.

Every mutation is split in two so the actor runtime can event-source it: a public method
validates and works out the change without touching anything, then hands it to one hook
(``_on_schedule``, ``_on_fire``, ``_on_cancel``); the default hooks call the matching
``_apply_*`` method, which a replay (a fold over events) calls directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from heapq import heapify, heappop, heappush
from typing import Generic, TypeVar

__all__ = ["MultiNotifier"]

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(value: object, name: str) -> datetime:
    """The aware datetime ``value`` as a plain datetime in UTC, checked."""
    if type(value) is datetime and value.tzinfo is UTC:
        return value
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a timezone-aware datetime such as "
                        f"datetime.now(timezone.utc), not {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value!r}; pass e.g. "
                         f"datetime.now(timezone.utc) or dt.replace(tzinfo=timezone.utc)")
    try:
        # Through a timedelta, so a datetime subclass comes back as a plain datetime.
        return _EPOCH + (value - _EPOCH)
    except OverflowError:
        raise ValueError(f"{name}={value!r} is outside the range of a UTC datetime") from None


class MultiNotifier(Generic[T]):
    """Pending notifications: tokens to hand back once their time has come.

    Tokens fire in time order, equal times in the order scheduled; scheduling a token twice
    makes it fire twice. Tokens need not be hashable or comparable (``cancel`` uses ``==``).
    Instants are stored in UTC, so mixed time zones order correctly. The notifier survives
    ``copy.deepcopy`` and pickle.
    """

    __slots__ = ("_heap", "_next_seq")

    def __init__(self) -> None:
        """Make an empty notifier."""
        self._heap: list[tuple[datetime, int, T]] = []
        self._next_seq = 0

    # Public API --------------------------------------------------------------------------------

    def notify_at(self, at: datetime, token: T) -> None:
        """Schedule ``token`` to be returned by `due` once ``at`` has come. O(log n).

        Args:
            at: When, as a timezone-aware datetime.
            token: Any object; the same token may be scheduled several times.

        Raises:
            TypeError: ``at`` is not a datetime.
            ValueError: ``at`` is naive or outside the range of a UTC datetime.
        """
        self._on_schedule(self._next_seq, _utc(at, "at"), token)

    def next_at(self) -> datetime | None:
        """The earliest pending instant, as an aware UTC datetime; None when nothing is pending."""
        heap = self._heap
        return heap[0][0] if heap else None

    def due(self, now: datetime) -> list[T]:
        """Remove and return the tokens scheduled at or before ``now``. O(log n) each.

        Args:
            now: The current time, as a timezone-aware datetime.

        Returns:
            The due tokens in time order, equal times in the order scheduled; empty if none.

        Raises:
            TypeError: ``now`` is not a datetime.
            ValueError: ``now`` is naive or outside the range of a UTC datetime.
        """
        now = _utc(now, "now")
        heap = self._heap
        if not heap or heap[0][0] > now:
            return []
        n = len(heap)
        if (n < 2 or heap[1][0] > now) and (n < 3 or heap[2][0] > now):
            # Only the root is due: the common case, without the walk below.
            _, seq, token = heap[0]
            self._on_fire([seq])
            return [token]
        # Walk the heap best-first without popping, so that nothing changes before the hook.
        seqs: list[int] = []
        tokens: list[T] = []
        frontier = [(heap[0][0], heap[0][1], 0)]
        while frontier:
            _, seq, i = heappop(frontier)
            seqs.append(seq)
            tokens.append(heap[i][2])
            child = 2 * i + 1
            if child < n:
                at, seq, _ = heap[child]
                if at <= now:
                    heappush(frontier, (at, seq, child))
                child += 1
                if child < n:
                    at, seq, _ = heap[child]
                    if at <= now:
                        heappush(frontier, (at, seq, child))
        self._on_fire(seqs)
        return tokens

    def cancel(self, token: T) -> int:
        """Remove every pending notification whose token equals ``token``. O(n).

        Args:
            token: The token to look for, compared with ``==``.

        Returns:
            How many notifications were removed.
        """
        found = sorted((at, seq) for at, seq, t in self._heap if t is token or t == token)
        if found:
            self._on_cancel([seq for _, seq in found])
        return len(found)

    def pending(self) -> list[tuple[datetime, T]]:
        """Every pending ``(at, token)``, ``at`` in UTC, in firing order."""
        return [(at, token) for at, _, token in self._sorted()]

    def __len__(self) -> int:
        return len(self._heap)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MultiNotifier):
            return NotImplemented
        return self._next_seq == other._next_seq and self._sorted() == other._sorted()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pending={len(self)} next_at={self.next_at()!r}>"

    def _sorted(self) -> list[tuple[datetime, int, T]]:
        # (at, seq) is unique, so sorting never compares tokens.
        return sorted(self._heap)

    # Hooks: the event-sourced runtime overrides these to emit events ---------------------------

    def _on_schedule(self, seq: int, at: datetime, token: T) -> None:
        """Record that ``token`` is scheduled at ``at`` (aware, UTC) under the new ``seq``."""
        self._apply_scheduled(seq, at, token)

    def _on_fire(self, seqs: list[int]) -> None:
        """Record that the notifications ``seqs`` (the earliest, in firing order) fired.

        Not called when nothing is due, so no empty change is ever recorded.
        """
        self._apply_fired(seqs)

    def _on_cancel(self, seqs: list[int]) -> None:
        """Record that the notifications ``seqs`` (in firing order, never empty) were cancelled."""
        self._apply_cancelled(seqs)

    # Apply methods: the only code that changes state; a replay calls them directly -------------

    def _apply_scheduled(self, seq: int, at: datetime, token: T) -> None:
        """Add notification ``seq`` and move the sequence counter past it. O(log n).

        Raises:
            ValueError: ``seq`` was already used (is below the counter), or ``at`` is invalid.
        """
        if seq < self._next_seq:
            raise ValueError(f"seq {seq} is already used (next free seq is {self._next_seq})")
        heappush(self._heap, (_utc(at, "at"), seq, token))
        self._next_seq = seq + 1

    def _apply_fired(self, seqs: Sequence[int]) -> None:
        """Remove the notifications ``seqs``: O(k log n) when they are the earliest, in order.

        Raises:
            KeyError: A seq is not pending; nothing changes then.
        """
        heap = self._heap
        if len(seqs) == 1 and heap and heap[0][1] == seqs[0]:
            heappop(heap)
            return
        popped: list[tuple[datetime, int, T]] = []
        for i, seq in enumerate(seqs):
            if heap and heap[0][1] == seq:
                popped.append(heappop(heap))
                continue
            # Not the earliest (a replay of some other order): fall back to O(n).
            try:
                self._remove(seqs[i:])
            except KeyError:
                for entry in popped:
                    heappush(self._heap, entry)
                raise
            return

    def _apply_cancelled(self, seqs: Sequence[int]) -> None:
        """Remove the notifications ``seqs``, wherever they are. O(n).

        Raises:
            KeyError: A seq is not pending; nothing changes then.
        """
        if seqs:
            self._remove(seqs)

    def _remove(self, seqs: Sequence[int]) -> None:
        gone = set(seqs)
        kept = [entry for entry in self._heap if entry[1] not in gone]
        if len(self._heap) - len(kept) != len(gone):
            missing = gone - {entry[1] for entry in self._heap}
            raise KeyError(f"not pending: seqs {sorted(missing)}")
        heapify(kept)
        self._heap = kept
