"""Event ids: UUID version 7, time-ordered and monotonic within a process."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

import eventstore._ids as ids
from eventstore import Codec, NewEvent
from eventstore._ids import uuid7


def check_v7(value: uuid.UUID) -> None:
    assert type(value) is uuid.UUID
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert uuid.UUID(str(value)) == value  # the same as one uuid.UUID builds with its checks


@given(st.integers(min_value=1, max_value=300))
def test_ids_made_in_a_row_sort_in_creation_order(count: int) -> None:
    made = [uuid7() for _ in range(count)]
    for value in made:
        check_v7(value)
    assert sorted(made) == made
    assert sorted(value.bytes for value in made) == [value.bytes for value in made]
    assert len(set(made)) == count


def test_the_timestamp_is_unix_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= value.int >> 80 <= after


def test_new_events_get_version_7_ids() -> None:
    check_v7(NewEvent("E", {}).id)
    assert NewEvent("E", {}).id < NewEvent("E", {}).id


@given(st.lists(st.integers(min_value=-5, max_value=5), min_size=1, max_size=50))
def test_order_holds_while_the_clock_stands_still_or_goes_back(
        steps: list[int]) -> None:
    now = [1_800_000_000_000 * 1_000_000]

    def fake_time_ns() -> int:
        return now[0]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ids.time, "time_ns", fake_time_ns)
        made = [uuid7()]
        for step in steps:
            now[0] += step * 1_000_000  # milliseconds forward, none, or back
            made.append(uuid7())
    assert sorted(made) == made and len(set(made)) == len(made)
    for value in made:
        check_v7(value)


def test_a_full_counter_moves_on_to_the_next_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_800_000_000_000 * 1_000_000)
    first = uuid7()
    monkeypatch.setattr(ids, "_counter", ids._COUNTER_MAX)
    second = uuid7()
    check_v7(second)
    assert second > first
    assert second.int >> 80 == (first.int >> 80) + 1


def test_ids_made_on_many_threads_are_distinct() -> None:
    made: list[list[uuid.UUID]] = [[] for _ in range(8)]

    def work(out: list[uuid.UUID]) -> None:
        out.extend(uuid7() for _ in range(5000))

    threads = [threading.Thread(target=work, args=(out,)) for out in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [value for out in made for value in out]
    assert len(set(every)) == len(every)
    for out in made:
        assert sorted(out) == out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_counter() -> None:
    uuid7()
    parent_counter = ids._counter
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether its counter was reset
        os.close(read)
        os.write(write, b"1" if (ids._last_ms, ids._counter) == (-1, 0) else b"0")
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert ids._counter >= parent_counter


def test_the_codec_makes_version_7_ids() -> None:
    import attrs

    @attrs.frozen
    class Happened:
        n: int

    codec = Codec()
    codec.register(Happened, "Happened")
    check_v7(codec.new_event(Happened(1)).id)
