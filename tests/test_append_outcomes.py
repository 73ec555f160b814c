"""Honest append outcomes: an error means nothing was written; each request gets one outcome.

The group committer is tested with a fake ``write_batch``; the backends with real faults: a real
``SQLITE_FULL`` (``PRAGMA max_page_count``), real refusals (SQLite's length limit, PostgreSQL's
index row size), and ``pg_terminate_backend`` on the store's writer while it commits.
"""

from __future__ import annotations

import os
import pickle
import random
import secrets
import sqlite3
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
import trio.testing
from psycopg.conninfo import make_conninfo

from eventstore import (
    ANY,
    AppendOutcomeUnknown,
    AppendResult,
    EventStore,
    EventStoreError,
    NewEvent,
    WrongExpectedVersion,
)
from eventstore._group_commit import AppendRequest, GroupCommitter
from eventstore._validate import EncodedEvent, encode_events
from eventstore.sqlite import SQLiteEventStore
from eventstore.testing import collect, events

# -- the group committer, with a fake backend ------------------------------------------------------


class FakeBackend:
    """A ``write_batch`` that records what it writes; ``gate`` holds a batch until released.

    A batch holding the stream ``fail_at`` settles the requests before it, then raises.
    """

    def __init__(self, fail_at: str | None = None) -> None:
        self.written: list[str] = []  # streams, in commit order
        self.batches: list[list[str]] = []
        self.writing = 0
        self.most_writing = 0
        self.gate: trio.Event | None = None
        self.fail_at = fail_at

    async def write_batch(self, requests: list[AppendRequest]) -> None:
        self.writing += 1
        self.most_writing = max(self.most_writing, self.writing)
        try:
            self.batches.append([r.stream for r in requests])
            if self.gate is not None:
                await self.gate.wait()  # cancellable: a cancelled batch wrote nothing
            for request in requests:
                if request.stream == self.fail_at:
                    raise EventStoreError("injected: nothing of the rest was written")
                self.written.append(request.stream)
                request.settle(AppendResult(len(self.written), len(self.written)))
        finally:
            self.writing -= 1


def encoded(n: int = 1) -> list[EncodedEvent]:
    return encode_events("s", events(n))


@pytest.fixture
def settles(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """How many times each request (by id) was settled."""
    counts: Counter[int] = Counter()
    real = AppendRequest.settle

    def settle(self: AppendRequest, result: AppendResult | BaseException) -> None:
        counts[id(self)] += 1
        real(self, result)

    monkeypatch.setattr(AppendRequest, "settle", settle)
    return counts


async def test_a_failed_batch_settles_each_request_once_and_the_writer_goes_on(
        settles: Counter[int]) -> None:
    backend = FakeBackend(fail_at="b")
    committer = GroupCommitter(backend.write_batch, max_batch=3)
    backend.gate = trio.Event()
    outcomes: dict[str, object] = {}

    async def submit(stream: str) -> None:
        try:
            outcomes[stream] = await committer.submit(stream, encoded(), ANY)
        except EventStoreError as exc:
            outcomes[stream] = exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(submit, "writer")
        await trio.testing.wait_all_tasks_blocked()  # the writer's batch is in write_batch
        for name in ("a", "b", "c", "d"):
            nursery.start_soon(submit, name)
            await trio.testing.wait_all_tasks_blocked()  # queued in this order
        backend.gate.set()
    # The writer's own append is stored: it gets its result, never the later batch's error,
    # and it goes on to write what is queued (no second writer starts).
    assert backend.batches == [["writer"], ["a", "b", "c"], ["d"]]
    assert isinstance(outcomes["writer"], AppendResult)
    assert isinstance(outcomes["a"], AppendResult)
    assert isinstance(outcomes["b"], EventStoreError) and outcomes["b"] is outcomes["c"]
    assert backend.written == ["writer", "a", "d"]
    assert sorted(settles.values()) == [1] * 5
    assert backend.most_writing == 1


@pytest.mark.parametrize("round", range(20))
async def test_a_cancelled_writer_hands_the_pen_over_exactly_once(
        round: int, settles: Counter[int]) -> None:
    # Each round races a newcomer against the caller the pen is handed to: with two writers
    # one of them would find its request taken by the other ("finished without a result").
    backend = FakeBackend()
    committer = GroupCommitter(backend.write_batch)
    backend.gate = trio.Event()
    outcomes: dict[str, object] = {}

    async def submit(stream: str) -> None:
        outcomes[stream] = await committer.submit(stream, encoded(), ANY)

    async def cancellable_writer(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            await submit("writer")
        outcomes.setdefault("writer", "cancelled")

    async with trio.open_nursery() as nursery:
        scope = await nursery.start(cancellable_writer)
        await trio.testing.wait_all_tasks_blocked()
        for name in ("a", "b"):
            nursery.start_soon(submit, name)
        await trio.testing.wait_all_tasks_blocked()
        backend.gate = None  # the batches to come go straight through
        scope.cancel()
        nursery.start_soon(submit, "newcomer")  # arrives while the pen changes hands
    assert outcomes["writer"] == "cancelled"
    assert "writer" not in backend.written  # cancelled in write_batch: nothing written
    assert sorted(backend.written) == ["a", "b", "newcomer"]
    assert all(isinstance(outcomes[name], AppendResult) for name in ("a", "b", "newcomer"))
    assert backend.most_writing == 1
    assert sorted(settles.values()) == [1, 1, 1]


async def test_a_caller_cancelled_while_queued_withdraws_its_append() -> None:
    backend = FakeBackend()
    committer = GroupCommitter(backend.write_batch)
    backend.gate = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(committer.submit, "writer", encoded(), ANY)
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(0) as waiting:
            nursery.start_soon(committer.submit, "other", encoded(), ANY)
            await committer.submit("quitter", encoded(), ANY)
        assert waiting.cancelled_caught
        backend.gate.set()
    assert sorted(backend.written) == ["other", "writer"]


async def test_an_unexpected_error_in_write_batch_is_an_unknown_outcome() -> None:
    async def write_batch(requests: list[AppendRequest]) -> None:
        raise RuntimeError("the driver broke after sending")

    committer = GroupCommitter(write_batch)
    with pytest.raises(AppendOutcomeUnknown, match="driver broke") as caught:
        await committer.submit("s", encoded(2), ANY)
    assert (caught.value.stream, caught.value.count) == ("s", 2)
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_append_outcome_unknown_is_data() -> None:
    error = AppendOutcomeUnknown("orders-7", 3, "the connection was lost while committing")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.stream, copy.count, copy.reason) == ("orders-7", 3, error.reason)
    assert str(copy) == str(error)
    assert "'orders-7'" in str(error) and "retry it with the same event ids" in str(error)
    assert isinstance(error, EventStoreError)
