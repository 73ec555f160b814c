"""MultiNotifier throughput and memory, against sorted-list notifiers in the same run.

Ours and the peers take turns round by round. Throughput is a steady state at N pending, the
runtime's loop: each step asks ``next_at()``, fires what is due with ``due()`` (one, as times
are distinct) and schedules one notification at a random delay, so N stays constant; the figure
is notifications scheduled and fired per second.

Peers, reimplemented here since bytewax is not installed:
- "sorted list": bytewax 0.21's ``bytewax.timers.MultiNotifier`` as published: ``notify_at``
  appends then sorts by time, ``due`` partitions the whole list. O(n) per call.
- "insort list": a list kept sorted with ``bisect.insort``, ``due`` cutting the due prefix off
  the front. O(n) memmove per call, but in C: the stronger plain-list baseline.

Cancel: 1,000 ``cancel(token)`` calls over 100k pending, in cancels per second (ours includes
building its token index at the first cancel), against "scan+heapify", our notifier before
tombstones (scan the heap for the token, rebuild it). The peer's cost per cancel does not depend
on how many came before, so it runs as many cancels as fit in ``CANCEL_BUDGET`` (at least 3)
instead of all 1,000: its 1,000 would take about 30 s per repeat.
"""

from __future__ import annotations

import bisect
import gc
import heapq
import random
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, Generic, Protocol, TypeVar

from actors import MultiNotifier

from ._harness import Paired, Report, paired, rounds, scaled

T = TypeVar("T")
BASE = datetime(2024, 1, 1, tzinfo=UTC)
SIZES = [1_000, 100_000, 1_000_000]
QUICK = "notify_at + due at 100k pending, against bytewax's sorted-list notifier"
BUDGET = 0.25  # seconds of steps per repeat
CANCELS = 1_000
CANCEL_BUDGET = 1.0  # seconds of the peer's cancels per repeat


class Notifier(Protocol):
    def notify_at(self, at: datetime, token: Any) -> None: ...
    def next_at(self) -> datetime | None: ...
    def due(self, now: datetime) -> list[Any]: ...


class SortedListNotifier(Generic[T]):
    """bytewax 0.21's MultiNotifier, as published."""

    def __init__(self) -> None:
        self._alarms: list[tuple[datetime, T]] = []

    def notify_at(self, at: datetime, token: T) -> None:
        self._alarms.append((at, token))
        self._alarms.sort(key=itemgetter(0))

    def next_at(self) -> datetime | None:
        try:
            at, _token = self._alarms[0]
            return at
        except IndexError:
            return None

    def due(self, now: datetime) -> list[T]:
        due, still = _partition(self._alarms, lambda at_token: at_token[0] <= now)
        self._alarms = still
        return [token for _at, token in due]


def _partition(items: list[tuple[datetime, T]],
               pred: Callable[[tuple[datetime, T]], bool]
               ) -> tuple[list[tuple[datetime, T]], list[tuple[datetime, T]]]:
    """``bytewax._utils.partition``."""
    trues: list[tuple[datetime, T]] = []
    falses: list[tuple[datetime, T]] = []
    for item in items:
        (trues if pred(item) else falses).append(item)
    return trues, falses


class InsortNotifier(Generic[T]):
    """A list of (at, seq, token) kept sorted with bisect.insort; due cuts off the front."""

    def __init__(self) -> None:
        self._alarms: list[tuple[datetime, int, T]] = []
        self._seq = 0

    def notify_at(self, at: datetime, token: T) -> None:
        bisect.insort(self._alarms, (at, self._seq, token))
        self._seq += 1

    def next_at(self) -> datetime | None:
        return self._alarms[0][0] if self._alarms else None

    def due(self, now: datetime) -> list[T]:
        alarms = self._alarms
        cut = bisect.bisect_right(alarms, now, key=itemgetter(0))
        fired = [token for _at, _seq, token in alarms[:cut]]
        del alarms[:cut]
        return fired


class ScanHeapifyNotifier(Generic[T]):
    """Our heap before tombstones: ``cancel`` scans for the token and rebuilds the heap."""

    def __init__(self, heap: list[tuple[datetime, int, T]]) -> None:
        self._heap = heap

    def cancel(self, token: T) -> int:
        found = sorted((at, seq) for at, seq, t in self._heap if t is token or t == token)
        if found:
            gone = {seq for _, seq in found}
            kept = [entry for entry in self._heap if entry[1] not in gone]
            heapq.heapify(kept)
            self._heap = kept
        return len(found)


def _cancels(kind: str, ats: list[datetime], victims: list[int]) -> Callable[[], float]:
    """One repeat: a fresh notifier of ``len(ats)`` pending, then cancels; cancels/s."""

    def work() -> float:
        notifier: MultiNotifier[int] | ScanHeapifyNotifier[int]
        if kind == "ours":
            ours: MultiNotifier[int] = MultiNotifier()
            for token, at in enumerate(ats):
                ours.notify_at(at, token)
            notifier = ours
        else:
            heap = [(at, seq, seq) for seq, at in enumerate(ats)]
            heapq.heapify(heap)
            notifier = ScanHeapifyNotifier(heap)
        gc.collect()
        cancel: Callable[[int], int] = notifier.cancel
        done = 0
        started = time.perf_counter()
        for token in victims:
            assert cancel(token) == 1
            done += 1
            if kind != "ours" and done >= 3 and time.perf_counter() - started >= CANCEL_BUDGET:
                break
        return done / (time.perf_counter() - started)

    return work


def _instants(n: int, rng: random.Random) -> list[datetime]:
    """``n`` distinct random instants spread over 2n seconds from BASE."""
    return [BASE + timedelta(microseconds=us)
            for us in rng.sample(range(2 * n * 1_000_000), n)]


def _filled(kind: str, ats: list[datetime], tokens: list[int]) -> Notifier:
    if kind == "ours":
        ours: MultiNotifier[int] = MultiNotifier()
        for at, token in zip(ats, tokens, strict=True):
            ours.notify_at(at, token)
        return ours
    # Building the peers one notify_at at a time is O(n^2): fill them with the same state directly.
    entries = sorted(zip(ats, tokens, strict=True), key=itemgetter(0))
    if kind == "sorted list":
        plain: SortedListNotifier[int] = SortedListNotifier()
        plain._alarms = entries
        return plain
    insort: InsortNotifier[int] = InsortNotifier()
    insort._alarms = [(at, seq, token) for seq, (at, token) in enumerate(entries)]
    insort._seq = len(entries)
    return insort


def _steady(notifier: Notifier, delays: list[timedelta]) -> Callable[[], float]:
    """One repeat: schedule-one / fire-what-is-due steps for BUDGET seconds; notifications/s."""
    cursor = [0]

    def work() -> float:
        notify_at, next_at, due = notifier.notify_at, notifier.next_at, notifier.due
        i = cursor[0]
        fired = 0
        steps = 0
        batch = 1
        started = time.perf_counter()
        while True:
            for _ in range(batch):
                now = next_at()
                assert now is not None
                fired += len(due(now))
                notify_at(now + delays[i % len(delays)], i)
                i += 1
            steps += batch
            elapsed = time.perf_counter() - started
            if elapsed >= BUDGET and steps >= 3:
                break
            batch = min(batch * 2, 4096)
        cursor[0] = i
        assert fired == steps
        return steps / elapsed

    return work


def _bytes_per_pending(kind: str, n: int) -> float:
    rng = random.Random(2)
    ats = _instants(n, rng)
    tokens = list(range(n))
    gc.collect()
    tracemalloc.start()
    try:
        if kind == "ours":
            notifier = _filled("ours", ats, tokens)
        else:
            # The published notify_at (append, then sort) would take O(n^2) here; appending in
            # time order and sorting once gives the same list and the same allocations.
            plain: SortedListNotifier[int] = SortedListNotifier()
            for at, token in sorted(zip(ats, tokens, strict=True), key=itemgetter(0)):
                plain._alarms.append((at, token))
            notifier = plain
        gc.collect()
        current, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del notifier
    return current / n


def run(report: Report, *, quick: bool = False) -> None:
    rng = random.Random(1)
    # The target is at 100k pending: quick mode runs that size alone, not scaled down.
    for n in [100_000] if quick else [scaled(size) for size in SIZES]:
        ats = _instants(n, rng)
        tokens = list(range(n))
        delays = [timedelta(microseconds=rng.randrange(1, 2 * n * 1_000_000))
                  for _ in range(200_000)]
        kinds = ("ours", "sorted list", "insort list")
        figures = rounds({kind: _steady(_filled(kind, ats, tokens), delays) for kind in kinds})
        case = f"notify_at+due, {n:,} pending"
        for peer, target in (("sorted list", ">= 20x" if n == 100_000 else None),
                             ("insort list", None)):
            report.row("notifier", case, Paired.of(figures, "ours", peer), "notifications/s",
                       peer=peer, target=target)
        gc.collect()
    if quick:
        return
    n = scaled(100_000)
    # tracemalloc counts are deterministic: one round.
    report.row("notifier", f"memory, {n:,} pending",
               paired(lambda: _bytes_per_pending("ours", n),
                      lambda: _bytes_per_pending("sorted list", n),
                      higher_is_better=False, repeats=1),
               "bytes/pending", peer="sorted list")
    cancels = scaled(CANCELS)
    ats = _instants(n, rng)
    victims = rng.sample(range(n), min(cancels, n))
    report.row("notifier", f"cancel {len(victims):,} of {n:,} pending",
               paired(_cancels("ours", ats, victims), _cancels("scan+heapify", ats, victims)),
               "cancels/s", peer="scan+heapify")
