"""MultiNotifier: bytewax's cases, the extras, the event-sourcing hooks and a model test."""

from __future__ import annotations

import copy
import heapq
import pickle
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from actors._notifier import MultiNotifier

T0 = datetime(2024, 8, 20, 6, 0, 0, tzinfo=UTC)
PLUS5 = timezone(timedelta(hours=5))
MINUS330 = timezone(-timedelta(hours=3, minutes=30))


def at(minutes: float, tz: timezone = UTC) -> datetime:
    return (T0 + timedelta(minutes=minutes)).astimezone(tz)


class Recording(MultiNotifier[Any]):
    """Logs every hook call, as the event-sourced runtime would emit events."""

    __slots__ = ("log",)

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, tuple[Any, ...]]] = []

    def _on_schedule(self, seq: int, at: datetime, token: Any) -> None:
        self.log.append(("scheduled", (seq, at, token)))
        super()._on_schedule(seq, at, token)

    def _on_fire(self, seqs: list[int]) -> None:
        self.log.append(("fired", (list(seqs),)))
        super()._on_fire(seqs)

    def _on_cancel(self, seqs: list[int]) -> None:
        self.log.append(("cancelled", (list(seqs),)))
        super()._on_cancel(seqs)


def replay(log: Sequence[tuple[str, tuple[Any, ...]]]) -> MultiNotifier[Any]:
    fresh: MultiNotifier[Any] = MultiNotifier()
    for kind, args in log:
        getattr(fresh, f"_apply_{kind}")(*args)
    return fresh


class Failing(MultiNotifier[Any]):
    """Every hook raises, as an event store that refuses the event would."""

    __slots__ = ()

    def _on_schedule(self, seq: int, at: datetime, token: Any) -> None:
        raise RuntimeError("store down")

    def _on_fire(self, seqs: list[int]) -> None:
        raise RuntimeError("store down")

    def _on_cancel(self, seqs: list[int]) -> None:
        raise RuntimeError("store down")


# bytewax's cases -------------------------------------------------------------------------------


def test_next_at_is_the_earliest_whatever_the_insert_order() -> None:
    mn: MultiNotifier[str] = MultiNotifier()
    mn.notify_at(at(60), "b")
    mn.notify_at(at(0), "a")
    mn.notify_at(at(30), "c")
    assert mn.next_at() == at(0)


def test_next_at_is_none_when_empty() -> None:
    assert MultiNotifier[str]().next_at() is None


def test_due_is_inclusive_and_removes_what_it_returns() -> None:
    mn: MultiNotifier[str] = MultiNotifier()
    mn.notify_at(at(60), "b")
    mn.notify_at(at(0), "a")
    assert mn.due(at(-1)) == []
    assert mn.due(at(0)) == ["a"]
    assert mn.due(at(0)) == []
    assert mn.next_at() == at(60)
    assert mn.due(at(120)) == ["b"]
    assert mn.next_at() is None
    assert len(mn) == 0


# Order, duplicates, cancel, tokens, time zones --------------------------------------------------


def test_equal_times_fire_in_scheduling_order() -> None:
    mn: MultiNotifier[int] = MultiNotifier()
    for token in [5, 3, 9, 1]:
        mn.notify_at(at(10), token)
    mn.notify_at(at(5), 0)
    assert mn.due(at(10)) == [0, 5, 3, 9, 1]


def test_a_token_scheduled_twice_fires_twice() -> None:
    mn: MultiNotifier[str] = MultiNotifier()
    mn.notify_at(at(1), "x")
    mn.notify_at(at(1), "x")
    mn.notify_at(at(2), "x")
    assert len(mn) == 3
    assert mn.due(at(1)) == ["x", "x"]
    assert mn.due(at(2)) == ["x"]


def test_cancel_removes_every_copy_and_counts_them() -> None:
    mn: MultiNotifier[str] = MultiNotifier()
    for minutes, token in [(3, "a"), (1, "b"), (2, "a"), (4, "c"), (2, "a")]:
        mn.notify_at(at(minutes), token)
    assert mn.cancel("a") == 3
    assert mn.cancel("a") == 0
    assert mn.cancel("zzz") == 0
    assert len(mn) == 2
    assert mn.pending() == [(at(1), "b"), (at(4), "c")]
    assert mn.due(at(10)) == ["b", "c"]


def test_unhashable_and_incomparable_tokens() -> None:
    mn: MultiNotifier[Any] = MultiNotifier()
    mn.notify_at(at(1), {"k": 1})
    mn.notify_at(at(1), [1, 2])
    mn.notify_at(at(1), {"k": 1})
    mn.notify_at(at(0), object)
    assert mn.cancel({"k": 1}) == 2
    assert mn.due(at(1)) == [object, [1, 2]]


def test_mixed_time_zones_order_by_instant_and_come_back_in_utc() -> None:
    mn: MultiNotifier[str] = MultiNotifier()
    mn.notify_at(at(30, PLUS5), "second")  # 11:30 +05:00
    mn.notify_at(at(60, MINUS330), "third")  # 03:30 -03:30
    mn.notify_at(at(0, MINUS330), "first")
    assert mn.next_at() == at(0)
    assert mn.next_at().tzinfo is UTC  # type: ignore[union-attr]
    assert [when.tzinfo for when, _ in mn.pending()] == [UTC, UTC, UTC]
    assert mn.pending() == [(at(0), "first"), (at(30), "second"), (at(60), "third")]
    assert mn.due(at(30, PLUS5)) == ["first", "second"]


def test_len_and_pending_in_firing_order() -> None:
    mn: MultiNotifier[int] = MultiNotifier()
    for i in range(50):
        mn.notify_at(at((i * 37) % 11), i)
    expected = sorted(((i * 37) % 11, i) for i in range(50))
    assert len(mn) == 50
    assert mn.pending() == [(at(m), i) for m, i in expected]


def test_many_due_at_once_come_out_sorted() -> None:
    rng = random.Random(7)
    mn: MultiNotifier[int] = MultiNotifier()
    reference = []
    for seq in range(2_000):
        minutes = rng.randrange(300)
        mn.notify_at(at(minutes, rng.choice([UTC, PLUS5, MINUS330])), seq)
        reference.append((minutes, seq))
    reference.sort()
    for now in [-1, 0, 17, 150, 151, 299]:
        expected = [seq for minutes, seq in reference if minutes <= now]
        reference = [entry for entry in reference if entry[0] > now]
        assert mn.due(at(now)) == expected
        assert len(mn) == len(reference)
    assert mn.next_at() is None


@pytest.mark.parametrize(
    ("value", "error"),
    [(datetime(2024, 1, 1), ValueError), (1_700_000_000, TypeError), ("2024-01-01", TypeError),
     (T0.date(), TypeError)],
)
def test_naive_or_non_datetime_is_rejected_before_anything_changes(
        value: Any, error: type[Exception]) -> None:
    mn: MultiNotifier[str] = MultiNotifier()
    mn.notify_at(at(0), "a")
    before = copy.deepcopy(mn)
    with pytest.raises(error, match=r"datetime\.now\(timezone\.utc\)"):
        mn.notify_at(value, "b")
    with pytest.raises(error, match=r"datetime\.now\(timezone\.utc\)"):
        mn.due(value)
    assert mn == before
    assert mn._next_seq == 1


def test_an_instant_outside_utc_range_is_rejected() -> None:
    mn: MultiNotifier[str] = MultiNotifier()
    with pytest.raises(ValueError, match="range"):
        mn.notify_at(datetime.min.replace(tzinfo=PLUS5), "a")
    assert len(mn) == 0
    mn.notify_at(datetime.max.replace(tzinfo=UTC), "z")
    assert mn.next_at() == datetime.max.replace(tzinfo=UTC)
    with pytest.raises(ValueError, match="range"):
        mn.due(datetime.max.replace(tzinfo=MINUS330))
    assert mn.due(datetime.max.replace(tzinfo=UTC)) == ["z"]


# Copying and pickling ---------------------------------------------------------------------------


def _busy() -> MultiNotifier[Any]:
    mn: MultiNotifier[Any] = MultiNotifier()
    for minutes, token in [(2, "a"), (1, ["l"]), (2, "a"), (0, "x"), (3, {"d": 1})]:
        mn.notify_at(at(minutes), token)
    mn.due(at(0))
    return mn


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_keeps_order_duplicates_and_seq(protocol: int) -> None:
    mn = _busy()
    back = pickle.loads(pickle.dumps(mn, protocol))
    assert back == mn
    assert back._next_seq == mn._next_seq == 5
    back.notify_at(at(2), "new")
    assert back.due(at(10)) == [["l"], "a", "a", "new", {"d": 1}]


def test_deepcopy_is_independent() -> None:
    mn = _busy()
    twin = copy.deepcopy(mn)
    assert twin == mn
    assert twin.due(at(10)) == [["l"], "a", "a", {"d": 1}]
    assert len(mn) == 4
    assert twin != mn


def test_a_subclass_keeps_its_attributes_through_pickle() -> None:
    mn = Recording()
    mn.notify_at(at(1), "a")
    back = pickle.loads(pickle.dumps(mn))
    assert back.log == mn.log
    assert back == mn


# Event-sourcing hooks --------------------------------------------------------------------------


def test_hooks_get_seqs_in_firing_order_and_replay_is_exact() -> None:
    mn = Recording()
    mn.notify_at(at(5), "a")  # seq 0
    mn.notify_at(at(1, PLUS5), "b")  # seq 1
    mn.notify_at(at(5), "c")  # seq 2
    mn.notify_at(at(9), "b")  # seq 3
    assert mn.due(at(5)) == ["b", "a", "c"]
    assert mn.cancel("b") == 1
    assert mn.due(at(4)) == []
    assert mn.cancel("nothing") == 0
    assert mn.log == [
        ("scheduled", (0, at(5), "a")),
        ("scheduled", (1, at(1), "b")),
        ("scheduled", (2, at(5), "c")),
        ("scheduled", (3, at(9), "b")),
        ("fired", ([1, 0, 2],)),
        ("cancelled", ([3],)),
    ]
    assert mn.log[1][1][1].tzinfo is UTC  # the hook gets the instant in UTC
    assert replay(mn.log) == mn


def test_apply_scheduled_moves_the_counter_past_seq() -> None:
    mn: MultiNotifier[str] = MultiNotifier()
    mn._apply_scheduled(7, at(1), "a")
    assert mn._next_seq == 8
    with pytest.raises(ValueError, match="already pending"):
        mn._apply_scheduled(7, at(2), "b")
    mn._apply_scheduled(3, at(3), "c")  # lower, not pending: committed in another order
    assert mn._next_seq == 8
    mn.notify_at(at(0), "z")
    assert mn.pending() == [(at(0), "z"), (at(1), "a"), (at(3), "c")]
    assert mn._next_seq == 9


def test_apply_with_an_unknown_seq_raises_and_changes_nothing() -> None:
    mn = _busy()
    before = copy.deepcopy(mn)
    with pytest.raises(KeyError):
        mn._apply_fired([1, 99])  # seq 1 is the earliest: popped, then put back
    with pytest.raises(KeyError):
        mn._apply_cancelled([4, 99])
    assert mn == before


def test_apply_fired_out_of_heap_order_still_removes_them() -> None:
    mn = _busy()
    mn._apply_fired([2, 1])
    assert mn.pending() == [(at(2), "a"), (at(3), {"d": 1})]


@pytest.mark.parametrize("action", ["notify_at", "due", "cancel"])
def test_a_hook_that_raises_leaves_the_notifier_unchanged(action: str) -> None:
    mn = Failing()
    for minutes, token in [(2, "a"), (1, "b"), (2, "a")]:
        mn._apply_scheduled(mn._next_seq, at(minutes), token)
    before = copy.deepcopy(mn)
    with pytest.raises(RuntimeError, match="store down"):
        if action == "notify_at":
            mn.notify_at(at(0), "c")
        elif action == "due":
            mn.due(at(5))
        else:
            mn.cancel("a")
    assert mn == before
    assert mn.due(at(0)) == []  # nothing due: the hook is not called


def test_equality() -> None:
    a: MultiNotifier[str] = MultiNotifier()
    b: MultiNotifier[str] = MultiNotifier()
    assert a == b
    a.notify_at(at(1), "x")
    assert a != b
    b.notify_at(at(1, PLUS5), "x")
    assert a == b
    b.notify_at(at(1), "y")
    b.cancel("y")
    assert a != b  # same pending, but b has used one more seq
    assert a != "not a notifier"


# Cost: cancel looks tokens up, and removes without rebuilding the heap ------------------------


class Counted:
    """A hashable token that counts how often it is compared."""

    compared = 0
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        Counted.compared += 1
        return isinstance(other, Counted) and other.n == self.n

    def __hash__(self) -> int:
        return hash(self.n)


def _heapify_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def counting(heap: list[Any]) -> None:
        calls.append(len(heap))
        heapq.heapify(heap)

    monkeypatch.setattr("actors._notifier.heapify", counting)
    return calls


def test_cancel_compares_only_matching_tokens_and_never_rebuilds_the_heap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(3)
    mn: MultiNotifier[Counted] = MultiNotifier()
    minutes = [rng.randrange(10_000) for _ in range(20_000)]
    for n, minute in enumerate(minutes):
        mn.notify_at(at(minute), Counted(n))
    heapify_calls = _heapify_calls(monkeypatch)
    Counted.compared = 0
    victims = rng.sample(range(20_000), 1_000)
    for n in victims:
        assert mn.cancel(Counted(n)) == 1
    # A scan would compare ~20 million times; a lookup compares the one equal token.
    assert Counted.compared <= 2 * len(victims)
    assert heapify_calls == []
    assert len(mn) == 19_000
    gone = set(victims)
    expected = sorted((minute, n) for n, minute in enumerate(minutes) if n not in gone)
    assert [token.n for token in mn.due(at(10_000))] == [n for _, n in expected]
    assert len(mn) == 0


def test_folding_cancels_at_recovery_does_not_rebuild_the_heap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(4)
    mn: MultiNotifier[int] = MultiNotifier()
    for n in range(20_000):
        mn._apply_scheduled(n, at(rng.randrange(10_000)), n)
    heapify_calls = _heapify_calls(monkeypatch)
    victims = rng.sample(range(20_000), 2_000)
    for start in range(0, len(victims), 10):  # as NotificationCancelled events of 10 seqs
        mn._apply_cancelled(victims[start:start + 10])
    mn._apply_fired(rng.sample(sorted(set(range(20_000)) - set(victims)), 50))  # out of order
    assert heapify_calls == []
    assert len(mn) == 20_000 - 2_050


def test_tombstones_never_surface_and_are_compacted() -> None:
    mn: MultiNotifier[int] = MultiNotifier()
    for n in range(100):
        mn.notify_at(at(n), n)
    assert mn.cancel(1) == 1  # not the earliest: left behind as a tombstone
    assert mn.cancel(0) == 1  # the earliest: popped, and the tombstone under it too
    assert mn.next_at() == at(2)
    assert len(mn._heap) == 98
    for n in range(50, 100):
        mn.cancel(n)
    assert mn.next_at() == at(2)
    assert len(mn) == 48
    assert len(mn._heap) <= 2 * len(mn)  # rebuilt once tombstones were the majority
    assert mn.due(at(99)) == list(range(2, 50))
    assert mn._heap == [] and mn.next_at() is None


def test_an_unhashable_token_may_equal_a_hashable_one() -> None:
    mn: MultiNotifier[Any] = MultiNotifier()
    mn.notify_at(at(1), {1, 2})  # a set: unhashable
    mn.notify_at(at(2), frozenset({1, 2}))
    mn.notify_at(at(3), 1.0)
    mn.notify_at(at(4), True)
    assert mn.cancel(frozenset({1, 2})) == 2  # found by hash, and the equal set by comparison
    assert mn.cancel(1) == 2  # 1 == 1.0 == True, as == says
    assert len(mn) == 0
    mn.notify_at(at(1), frozenset({3}))
    mn.notify_at(at(2), {3})
    assert mn.cancel({3}) == 2  # an unhashable token is compared with every pending one


# Model test ------------------------------------------------------------------------------------

ZONES = st.sampled_from([UTC, PLUS5, MINUS330])
INSTANTS = st.builds(at, st.integers(0, 30), ZONES)
TOKENS = st.one_of(st.integers(0, 5), st.lists(st.integers(0, 1), max_size=2),
                   st.sampled_from([1.0, True]), st.frozensets(st.integers(0, 1), max_size=2),
                   st.sets(st.integers(0, 1), max_size=2))


def _hashable(token: Any) -> bool:
    try:
        hash(token)
    except TypeError:
        return False
    return True


class NotifierMachine(RuleBasedStateMachine):
    """Against a sorted list of (at, seq, token), with replay and pickle checked at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.notifier = Recording()
        self.model: list[tuple[datetime, int, Any]] = []
        self.seq = 0

    @rule(when=INSTANTS, token=TOKENS)
    def notify_at(self, when: datetime, token: Any) -> None:
        self.notifier.notify_at(when, token)
        self.model.append((when, self.seq, token))
        self.model.sort(key=lambda entry: entry[:2])
        self.seq += 1

    @rule(now=INSTANTS)
    def due(self, now: datetime) -> None:
        fired = [entry for entry in self.model if entry[0] <= now]
        self.model = [entry for entry in self.model if entry[0] > now]
        assert self.notifier.due(now) == [token for _, _, token in fired]

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def cancel_pending(self, data: st.DataObject) -> None:
        self.cancel(data.draw(st.sampled_from([token for _, _, token in self.model])))

    @rule(token=TOKENS)
    def cancel(self, token: Any) -> None:
        kept = [entry for entry in self.model if entry[2] != token]
        assert self.notifier.cancel(token) == len(self.model) - len(kept)
        self.model = kept

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), kind=st.sampled_from(["fired", "cancelled"]))
    def remove_in_any_order(self, data: st.DataObject, kind: str) -> None:
        """What a fold does with an event written in another order (or by another version)."""
        seqs = data.draw(st.lists(st.sampled_from([seq for _, seq, _ in self.model]),
                                  min_size=1, unique=True))
        getattr(self.notifier, f"_apply_{kind}")(seqs)
        self.notifier.log.append((kind, (seqs,)))
        self.model = [entry for entry in self.model if entry[1] not in seqs]

    @rule(how=st.sampled_from(["deepcopy", "pickle"]))
    def carry_on_with_a_copy(self, how: str) -> None:
        copied = (copy.deepcopy(self.notifier) if how == "deepcopy"
                  else pickle.loads(pickle.dumps(self.notifier)))
        assert copied == self.notifier
        self.notifier = copied
        self.model = [(when, seq, copy.deepcopy(token)) for when, seq, token in self.model]

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert len(self.notifier) == len(self.model)
        assert self.notifier.next_at() == (self.model[0][0] if self.model else None)
        pending = self.notifier.pending()
        assert pending == [(when, token) for when, _, token in self.model]
        assert [type(token) for _, token in pending] == [type(t) for _, _, t in self.model]

    @invariant()
    def tombstones_stay_inside_their_bounds(self) -> None:
        mn = self.notifier
        index = mn._index
        if index is None:  # no index yet: no tombstones either
            assert len(mn._heap) == len(self.model)
            return
        assert not mn._heap or mn._heap[0][1] in index.entries
        assert len(mn._heap) <= 2 * len(index.entries)
        assert {entry[1] for entry in mn._heap} >= set(index.entries)
        indexed = [seq for found in index.by_token.values()
                   for seq in ([found] if isinstance(found, int) else found)]
        assert sorted(indexed + list(index.unhashable)) == sorted(index.entries)
        assert all(not _hashable(token) for token in index.unhashable.values())

    @invariant()
    def replays_and_pickles_exactly(self) -> None:
        assert replay(self.notifier.log) == self.notifier
        assert pickle.loads(pickle.dumps(self.notifier)) == self.notifier


NotifierMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40,
                                             deadline=None)
TestNotifierMachine = NotifierMachine.TestCase
