"""`MultiNotifier`: many pending timers keyed by time, bytewax's API on a heap.

Each pending notification is one ``(at, seq, token)`` tuple in a binary heap: ``at`` is an
aware UTC datetime and ``seq`` a number unique per notifier, so tuples order by time, then by
scheduling order, and tokens are never compared.

Removing a notification that is not the earliest (``cancel``, or a replayed fire out of order)
leaves its tuple in the heap as a tombstone: it is dropped when it reaches the top, and the heap
is rebuilt once tombstones outnumber the pending notifications, so each removal costs O(log n)
amortised instead of a rebuild. The root of the heap is always pending. Telling tombstones apart
and finding a token's notifications takes an `_Index` (by seq, by token), built in O(n) the
first time something is removed out of order and kept up to date from then on: a notifier that
only schedules and fires pays nothing for it, in time or memory. ``seq`` is never reused, so
"its seq is in the index" is what tells a pending tuple from a tombstone.

Every mutation is split in two so the actor runtime can event-source it: a public method
validates and works out the change without touching anything, then hands it to one hook
(``_on_schedule``, ``_on_fire``, ``_on_cancel``); the default hooks call the matching
``_apply_*`` method, which a replay (a fold over events) calls directly.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from datetime import UTC, datetime
from heapq import heapify, heappop, heappush
from typing import Any, Generic, TypeVar

__all__ = ["MultiNotifier"]

T = TypeVar("T")

_Entry = tuple[datetime, int, T]

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


class _Index(Generic[T]):
    """Every pending notification by seq, and by token (the hashable ones through a dict)."""

    __slots__ = ("by_token", "entries", "unhashable")

    def __init__(self, pending: Iterable[_Entry[T]]) -> None:
        self.entries: dict[int, _Entry[T]] = {}
        self.by_token: dict[Any, int | set[int]] = {}  # token -> its seq, or seqs
        self.unhashable: dict[int, T] = {}  # seq -> token, for tokens that cannot be hashed
        for entry in pending:
            self.add(entry)

    def add(self, entry: _Entry[T]) -> None:
        _, seq, token = entry
        self.entries[seq] = entry
        by_token = self.by_token
        try:
            found = by_token.get(token)
        except TypeError:
            self.unhashable[seq] = token
            return
        if found is None:
            by_token[token] = seq
        elif isinstance(found, int):
            by_token[token] = {found, seq}
        else:
            found.add(seq)

    def remove(self, seq: int) -> None:
        _, _, token = self.entries.pop(seq)
        if self.unhashable.pop(seq, _ABSENT) is not _ABSENT:
            return
        by_token = self.by_token
        found = by_token[token]
        if isinstance(found, int):
            del by_token[token]
        else:
            found.discard(seq)
            if not found:
                del by_token[token]

    def find(self, token: T) -> list[int]:
        """The seqs of the pending notifications whose token equals ``token``, in no order."""
        try:
            found = self.by_token.get(token)
        except TypeError:  # unhashable: compare it with every pending token
            return [seq for seq, (_, _, t) in self.entries.items() if t is token or t == token]
        seqs = [] if found is None else [found] if isinstance(found, int) else list(found)
        # An unhashable token may equal a hashable one: {1} == frozenset({1}).
        seqs += [seq for seq, t in self.unhashable.items() if t is token or t == token]
        return seqs


_ABSENT = object()


class MultiNotifier(Generic[T]):
    """Pending notifications: tokens to hand back once their time has come.

    Tokens fire in time order, equal times in the order scheduled; scheduling a token twice
    makes it fire twice. Tokens need not be hashable or comparable (``cancel`` uses ``==``).
    Instants are stored in UTC, so mixed time zones order correctly. The notifier survives
    ``copy.deepcopy`` and pickle.

    ``cancel`` finds a hashable token through a dict, so a hashable token must keep its hash
    while it is pending (as a dict key must); unhashable tokens are compared one by one.
    """

    __slots__ = ("_heap", "_index", "_next_seq")

    def __init__(self) -> None:
        """Make an empty notifier."""
        self._heap: list[_Entry[T]] = []  # pending tuples, and tombstones (never at the root)
        self._index: _Index[T] | None = None  # None until a removal out of order: no tombstones
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
            # Only the root is due (and the root is never a tombstone): the common case.
            _, seq, token = heap[0]
            self._on_fire([seq])
            return [token]
        # Walk the heap best-first without popping, so that nothing changes before the hook.
        # A tombstone is passed over, but its children are still visited.
        live = None if self._index is None else self._index.entries
        seqs: list[int] = []
        tokens: list[T] = []
        frontier = [(heap[0][0], heap[0][1], 0)]
        while frontier:
            _, seq, i = heappop(frontier)
            if live is None or seq in live:
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
        """Remove every pending notification whose token equals ``token``.

        O(k log n) amortised for the k removed when ``token`` is hashable, plus a comparison
        with each pending unhashable token; O(n) when ``token`` is unhashable. The first cancel
        of a notifier also indexes its pending notifications, once: O(n).

        Args:
            token: The token to look for, compared with ``==``.

        Returns:
            How many notifications were removed.
        """
        return self._cancel(token, ())

    def _cancel(self, token: T, kept: Container[int]) -> int:
        """``cancel(token)``, leaving the notifications ``kept`` alone."""
        index = self._indexed()
        seqs = [seq for seq in index.find(token) if seq not in kept]
        if seqs:
            entries = index.entries
            seqs.sort(key=lambda seq: (entries[seq][0], seq))  # firing order
            self._on_cancel(seqs)
        return len(seqs)

    def pending(self) -> list[tuple[datetime, T]]:
        """Every pending ``(at, token)``, ``at`` in UTC, in firing order."""
        return [(at, token) for at, _, token in self._sorted()]

    def __len__(self) -> int:
        return len(self._heap) if self._index is None else len(self._index.entries)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MultiNotifier):
            return NotImplemented
        return self._next_seq == other._next_seq and self._sorted() == other._sorted()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pending={len(self)} next_at={self.next_at()!r}>"

    def _pending(self) -> Iterable[_Entry[T]]:
        """The pending tuples, in no order (the heap holds tombstones too)."""
        return self._heap if self._index is None else self._index.entries.values()

    def _sorted(self) -> list[_Entry[T]]:
        # (at, seq) is unique, so sorting never compares tokens.
        return sorted(self._pending())

    def _indexed(self) -> _Index[T]:
        if self._index is None:
            self._index = _Index(self._heap)  # no tombstones before there is an index
        return self._index

    def _reset(self) -> None:
        """Forget every notification and the sequence counter."""
        self._heap = []
        self._index = None
        self._next_seq = 0

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
            ValueError: ``seq`` is pending already, or ``at`` is invalid.
        """
        if seq < self._next_seq and self._is_pending(seq):
            # (A lower seq that is not pending is fine: an actor's turns may commit timers
            # they scheduled in another order than they numbered them.)
            raise ValueError(f"seq {seq} is already pending")
        entry = (_utc(at, "at"), seq, token)
        if self._index is not None:
            self._index.add(entry)
        heappush(self._heap, entry)
        self._next_seq = max(self._next_seq, seq + 1)

    def _is_pending(self, seq: int) -> bool:
        if self._index is not None:
            return seq in self._index.entries
        return any(entry[1] == seq for entry in self._heap)

    def _apply_fired(self, seqs: Sequence[int]) -> None:
        """Remove the notifications ``seqs``: O(log n) each (amortised), in any order.

        Raises:
            KeyError: A seq is not pending; nothing changes then.
        """
        heap = self._heap
        if self._index is None:
            # No tombstones: the earliest first, as due() lists them, pop one by one.
            popped: list[_Entry[T]] = []
            for seq in seqs:
                if not heap or heap[0][1] != seq:
                    for entry in popped:  # out of order (a replay of some other order)
                        heappush(heap, entry)
                    break
                popped.append(heappop(heap))
            else:
                return
        self._remove(seqs)

    def _apply_cancelled(self, seqs: Sequence[int]) -> None:
        """Remove the notifications ``seqs``, wherever they are: O(log n) each, amortised.

        Raises:
            KeyError: A seq is not pending; nothing changes then.
        """
        self._remove(seqs)

    def _remove(self, seqs: Sequence[int]) -> None:
        index = self._indexed()
        entries = index.entries
        missing = sorted({seq for seq in seqs if seq not in entries})
        if missing:
            raise KeyError(f"not pending: seqs {missing}")
        heap = self._heap
        for seq in seqs:
            if seq not in entries:
                continue  # listed twice
            index.remove(seq)
            if heap[0][1] == seq:
                heappop(heap)
                # Drop the tombstones that surface, so that the root stays pending.
                while heap and heap[0][1] not in entries:
                    heappop(heap)
            # Otherwise its tuple stays in the heap as a tombstone.
        if len(heap) > 2 * len(entries):
            # Tombstones are the majority: rebuild, O(n) once per n/2 removals.
            heap = list(entries.values())
            heapify(heap)
            self._heap = heap
