"""Honest append outcomes: an error means nothing was written; each request gets one outcome.

The group committer is tested with a fake ``write_batch``; the backends with real faults: a real
``SQLITE_FULL`` (``PRAGMA max_page_count``), real refusals (SQLite's length limit, PostgreSQL's
index row size), and ``pg_terminate_backend`` on the store's writer while it commits.
"""

from __future__ import annotations

import os
import pickle
import random
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


# -- SQLite: a real SQLITE_FULL, a real refusal ----------------------------------------------------


async def set_pragma(store: SQLiteEventStore, pragma: str) -> int:
    return int(await store._write(lambda conn: conn.execute(f"PRAGMA {pragma}").fetchone()[0]))


async def check_log(store: EventStore, streams: list[str],
                    stored: list[tuple[str, list[NewEvent], AppendResult]],
                    failed: list[list[NewEvent]]) -> None:
    """Every stored append is in its stream at the versions its result gave; no failed one is."""
    where: dict[uuid.UUID, tuple[str, int]] = {}
    for stream in streams:
        log = await collect(store.read(stream))
        assert [e.version for e in log] == list(range(1, len(log) + 1)), stream
        for event in log:
            assert event.id not in where, f"event {event.id} stored twice"
            where[event.id] = (stream, event.version)
    for stream, batch, result in stored:
        first = result.version - len(batch) + 1
        assert [where.get(e.id) for e in batch] == [
            (stream, v) for v in range(first, result.version + 1)]
    assert not [e.id for batch in failed for e in batch if e.id in where]
    assert len(where) == sum(len(batch) for _, batch, _ in stored)


async def test_after_a_real_sqlite_full_appends_at_the_right_versions_succeed(
        tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "events.db") as store:
        streams = [f"s{n}" for n in range(8)]
        versions = dict.fromkeys(streams, 0)
        stored: list[tuple[str, list[NewEvent], AppendResult]] = []
        failed: list[list[NewEvent]] = []
        errors: list[EventStoreError] = []
        note = "x" * 1500  # the file grows every few appends

        async def append(stream: str) -> None:
            batch = events(2, note=note)
            try:
                result = await store.append(stream, batch, expected_version=versions[stream])
            except WrongExpectedVersion:
                raise  # a version this process never wrote: a lie about an earlier failure
            except EventStoreError as exc:
                errors.append(exc)
                failed.append(batch)
            else:
                versions[stream] = result.version
                stored.append((stream, batch, result))

        async def rounds(count: int) -> None:
            for _ in range(count):
                async with trio.open_nursery() as nursery:
                    for stream in streams:
                        nursery.start_soon(append, stream)

        await rounds(2)
        await set_pragma(store, f"max_page_count = {await set_pragma(store, 'page_count')}")
        await rounds(4)  # the file cannot grow: whole batches fail with SQLITE_FULL
        assert errors and all("SQLITE_FULL" in str(e) for e in errors)
        assert not any(isinstance(e, AppendOutcomeUnknown) for e in errors)
        await set_pragma(store, "max_page_count = 1000000000")
        count = len(stored)
        await rounds(3)  # every append succeeds at the version this process last saw
        assert len(stored) == count + 3 * len(streams)
        await check_log(store, streams, stored, failed)


async def spy_batches(store: Any) -> list[list[str]]:
    """The streams of each batch the store's group committer writes."""
    batches: list[list[str]] = []
    real = store._committer._write_batch

    async def spy(requests: list[AppendRequest]) -> None:
        batches.append([r.stream for r in requests])
        await real(requests)

    store._committer._write_batch = spy
    return batches


async def append_concurrently(store: EventStore, appends: dict[str, list[NewEvent]]
                              ) -> dict[str, AppendResult | EventStoreError]:
    outcomes: dict[str, AppendResult | EventStoreError] = {}

    async def append(stream: str, batch: list[NewEvent]) -> None:
        try:
            outcomes[stream] = await store.append(stream, batch)
        except EventStoreError as exc:
            outcomes[stream] = exc

    async with trio.open_nursery() as nursery:
        for stream, batch in appends.items():
            nursery.start_soon(append, stream, batch)
    return outcomes


async def test_a_row_sqlite_refuses_fails_alone_in_its_batch(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "events.db") as store:
        await store.append("warm-up", events(1))
        # A real SQLITE_TOOBIG: the writer connection takes no value longer than 10 000 bytes.
        await store._write(lambda conn: conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 10_000))
        batches = await spy_batches(store)
        appends = {f"ok-{n}": events(2) for n in range(10)}
        appends["too-big"] = events(1, text="y" * 20_000)
        outcomes = await append_concurrently(store, appends)
        assert any("too-big" in batch and len(batch) > 1 for batch in batches)
        refused = outcomes.pop("too-big")
        assert isinstance(refused, EventStoreError)
        assert "'too-big'" in str(refused) and "SQLITE_TOOBIG" in str(refused)
        assert "nothing of it was written" in str(refused)
        assert all(isinstance(outcome, AppendResult) for outcome in outcomes.values())
        assert await store.last_version("too-big") == 0
        for stream in outcomes:
            assert await store.last_version(stream) == 2


# -- PostgreSQL ------------------------------------------------------------------------------------

postgres = pytest.mark.postgres


@pytest.fixture
async def pg(postgres_url: str, postgres_schema: str) -> AsyncIterator[Any]:
    from eventstore.postgres import PostgresEventStore

    async with PostgresEventStore(postgres_url, schema=postgres_schema) as store:
        await store.append("warm-up", events(1))
        yield store


def sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


async def run_sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    return await trio.to_thread.run_sync(sql, url, query, *params)


@postgres
async def test_a_row_postgresql_refuses_fails_alone_in_its_batch(
        pg: Any, postgres_url: str, postgres_schema: str) -> None:
    # The shared validation refuses every row PostgreSQL would refuse by itself, so the server
    # is made to refuse one for real: a CHECK constraint in this test's own schema (SQLSTATE
    # 23514, a constraint violation, raised by the server inside the batch's transaction).
    await run_sql(postgres_url, f'ALTER TABLE "{postgres_schema}".events '
                  "ADD CONSTRAINT refuse_one CHECK (stream <> 'refused-stream')")
    refused_name = "refused-stream"
    batches = await spy_batches(pg)
    appends = {f"ok-{n}": events(2) for n in range(10)}
    appends[refused_name] = events(1)
    outcomes = await append_concurrently(pg, appends)
    assert any(refused_name in batch and len(batch) > 1 for batch in batches)
    refused = outcomes.pop(refused_name)
    assert isinstance(refused, EventStoreError)
    assert "refuse_one" in str(refused) and "nothing was written" in str(refused)
    assert refused_name in str(refused)  # it names the stream
    assert all(isinstance(outcome, AppendResult) for outcome in outcomes.values()), outcomes
    for stream in outcomes:
        assert await pg.last_version(stream) == 2
    assert await pg.last_version(refused_name) == 0


@postgres
async def test_an_error_after_the_commit_went_out_is_checked_not_guessed(
        pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = pg._send

    def send_then_break(*args: Any) -> Any:
        real(*args)  # committed
        raise RuntimeError("the driver broke after sending")

    monkeypatch.setattr(pg, "_send", send_then_break)
    batch = events(3)
    result = await pg.append("s", batch)  # found stored by its ids: a success
    monkeypatch.undo()
    assert result.version == 3
    assert [e.id for e in await collect(pg.read("s"))] == [e.id for e in batch]


async def wait_for_lock_wait(url: str, pid: int) -> None:
    while not await run_sql(url, "SELECT 1 FROM pg_stat_activity WHERE pid = %s "
                            "AND wait_event_type = 'Lock'", pid):
        await trio.sleep(0.01)


@postgres
async def test_an_unreachable_server_leaves_the_outcome_unknown_never_guessed(
        pg: Any, postgres_url: str, autojump_clock: trio.testing.MockClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from eventstore.postgres import ConnectionFailed

    writer_pid = pg._writer.info.backend_pid
    batch = events(2)
    failures: list[BaseException] = []

    def unreachable() -> Any:
        raise ConnectionFailed(pg._server, "connection refused (the test cut the server off)")

    with psycopg.connect(postgres_url) as blocker:
        # Hold the position lock: the append waits inside its transaction, then is cut off.
        blocker.execute(f'SELECT * FROM "{pg.schema}".global_position FOR UPDATE')
        async with trio.open_nursery() as nursery:
            async def append() -> None:
                try:
                    await pg.append("s", batch)
                except EventStoreError as exc:
                    failures.append(exc)

            nursery.start_soon(append)
            await wait_for_lock_wait(postgres_url, writer_pid)
            monkeypatch.setattr(pg, "_connect", unreachable)
            start = trio.current_time()
            await run_sql(postgres_url, "SELECT pg_terminate_backend(%s)", writer_pid)
        blocker.rollback()
    [error] = failures
    assert isinstance(error, AppendOutcomeUnknown)
    assert (error.stream, error.count) == ("s", 2)
    assert "looking its event ids up failed" in error.reason
    assert trio.current_time() - start >= pg.resolve_timeout  # it kept trying, on trio's clock
    monkeypatch.undo()
    assert await pg.last_version("s") == 0  # in truth nothing was stored...
    assert (await pg.append("s", batch)).version == 2  # ... and the retry the error asks for works


APPENDERS = 50
APPENDS = int(os.environ.get("ACTORS_PG_KILL_APPENDS", "20"))


@postgres
@pytest.mark.slow
async def test_killing_the_writer_under_load_never_misreports_an_append(
        postgres_url: str, postgres_schema: str) -> None:
    from eventstore.postgres import PostgresEventStore

    # Our own application_name, so the killer never touches another test's connections.
    name = f"h1-kill-{uuid.uuid4().hex[:12]}"
    url = make_conninfo(postgres_url, application_name=name)
    stored: list[tuple[str, list[NewEvent], AppendResult]] = []
    failed: list[list[NewEvent]] = []
    unknown_retries = 0
    cut_off = Counter[str]()
    async with PostgresEventStore(url, schema=postgres_schema) as store:
        await store.append("warm-up", events(1))
        real = store._settle_unsure

        async def counting(unsure: list[tuple[AppendRequest, Any]], backend: Any) -> None:
            await real(unsure, backend)
            for request, _ in unsure:
                cut_off[type(request.result).__name__] += 1

        store._settle_unsure = counting

        async def appender(task: int) -> None:
            nonlocal unknown_retries
            own, version = f"own-{task}", 0
            for n in range(APPENDS):
                batch = events(1 + n % 3, task=task)
                # Half append ANY to shared streams; half keep the exact version of their own.
                stream, expected = ((f"shared-{task % 5}", ANY) if task % 2 else (own, version))
                while True:
                    try:
                        result = await store.append(stream, batch, expected_version=expected)
                    except AppendOutcomeUnknown:
                        unknown_retries += 1
                        continue  # the same ids: safe
                    except WrongExpectedVersion:
                        raise  # the store said "failed" about events it stored
                    except EventStoreError:
                        failed.append(batch)
                    else:
                        stored.append((stream, batch, result))
                        version = result.version if stream == own else version
                    break

        async def killer(done: trio.Event) -> None:
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                while not done.is_set():
                    await trio.to_thread.run_sync(
                        conn.execute, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = %s", (name,))
                    await trio.sleep(random.uniform(0.005, 0.03))

        done = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(killer, done)
            async with trio.open_nursery() as appenders:
                for task in range(APPENDERS):
                    appenders.start_soon(appender, task)
            done.set()
        streams = [f"own-{t}" for t in range(0, APPENDERS, 2)] + [f"shared-{n}" for n in range(5)]
        await check_log(store, streams, stored, failed)
    print(f"{len(stored)} stored, {len(failed)} failed, commits cut off: {dict(cut_off)}, "
          f"retries after an unknown outcome: {unknown_retries}")
    assert sum(cut_off.values()) > 0  # the kills did land while batches committed
    assert len(stored) + len(failed) == APPENDERS * APPENDS


# -- enqueues: messages leave no trace once consumed ----------------------------------------------

class FailingCommit:
    """A SQLite connection whose next ``COMMIT`` fails: after it went through (``applied``), or
    before it was sent."""

    def __init__(self, conn: sqlite3.Connection, applied: bool) -> None:
        self.conn = conn
        self.applied = applied

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            if self.applied:
                self.conn.execute(sql)
            raise sqlite3.OperationalError("disk I/O error (the test's)")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


async def waiting_ids(store: EventStore, stream: str) -> list[uuid.UUID]:
    return [m.id for m in await collect(store.read_inbox(stream))]


async def test_a_sqlite_enqueue_whose_commit_failed_is_looked_up_in_its_inbox(
        tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "events.db") as store:
        await store.append("warm-up", events(1))
        real = store._writer
        assert real is not None
        early = NewEvent("Msg", 0)
        await store.enqueue("a", [early])
        sent = [NewEvent("Msg", n) for n in range(2)]

        store._writer = FailingCommit(real, applied=True)  # type: ignore[assignment]
        await store.enqueue("a", sent)  # stored: every message waits
        store._writer = real
        assert await waiting_ids(store, "a") == [early.id, *(m.id for m in sent)]

        later = NewEvent("Msg", 9)
        store._writer = FailingCommit(real, applied=False)  # type: ignore[assignment]
        with pytest.raises(AppendOutcomeUnknown) as caught:  # not all of them wait
            await store.enqueue("a", [early, later])
        assert (caught.value.stream, caught.value.count) == ("a", 0)
        with pytest.raises(EventStoreError, match="nothing of this append was written") as failed:
            await store.append("b", events(1), enqueue=[("a", later)])  # its ids say: not stored
        assert not isinstance(failed.value, AppendOutcomeUnknown)
        store._writer = real
        assert await waiting_ids(store, "a") == [early.id, *(m.id for m in sent)]
        await store.enqueue("a", [early, later])  # the retry the error asks for
        assert (await waiting_ids(store, "a"))[-1] == later.id


async def test_a_sqlite_enqueue_that_fails_before_its_commit_wrote_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore(path, busy_timeout=0) as store:
        await store.append("s", events(1))
        message = NewEvent("Msg", 1)
        with sqlite3.connect(path, isolation_level=None) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(EventStoreError, match=r"SQLITE_BUSY") as caught:
                await store.enqueue("a", [message])
            other.execute("ROLLBACK")
        other.close()
        assert not isinstance(caught.value, AppendOutcomeUnknown)  # certain: nothing written
        assert await waiting_ids(store, "a") == []
        await store.enqueue("a", [message])
        assert await waiting_ids(store, "a") == [message.id]


@postgres
async def test_a_postgres_enqueue_whose_commit_was_cut_off_is_looked_up(
        pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = pg._send

    def send_then_break(*args: Any) -> Any:
        real(*args)  # committed
        raise RuntimeError("the driver broke after sending")

    def break_before(*args: Any) -> Any:
        raise RuntimeError("the driver broke before sending")

    sent = [NewEvent("Msg", n) for n in range(3)]
    monkeypatch.setattr(pg, "_send", send_then_break)
    await pg.enqueue("a", sent)  # found waiting: a success
    monkeypatch.setattr(pg, "_send", break_before)
    later = NewEvent("Msg", 9)
    with pytest.raises(AppendOutcomeUnknown) as caught:
        await pg.enqueue("a", [sent[0], later])  # later is not waiting: it may have been consumed
    assert (caught.value.stream, caught.value.count) == ("a", 0)
    monkeypatch.undo()
    assert await waiting_ids(pg, "a") == [m.id for m in sent]
    await pg.enqueue("a", [sent[0], later])
    assert await waiting_ids(pg, "a") == [*(m.id for m in sent), later.id]


async def side_appends(store: EventStore, refused_target: str, big: str = ""
                       ) -> dict[str, AppendResult | EventStoreError]:
    """Concurrent appends that each send a message; the one from "refused" is refused."""
    outcomes: dict[str, AppendResult | EventStoreError] = {}

    async def append(stream: str) -> None:
        bad = stream == "refused"
        message = NewEvent("Msg", {"text": big if bad else "ok"})
        try:
            outcomes[stream] = await store.append(
                stream, events(2), enqueue=[(refused_target if bad else "inbox", message)],
                wake_at=1.0)
        except EventStoreError as exc:
            outcomes[stream] = exc

    async with trio.open_nursery() as nursery:
        for stream in [*(f"ok-{n}" for n in range(10)), "refused"]:
            nursery.start_soon(append, stream)
    return outcomes


async def check_refused_alone(store: EventStore, batches: list[list[str]],
                              outcomes: dict[str, AppendResult | EventStoreError]) -> None:
    assert any("refused" in batch and len(batch) > 1 for batch in batches)
    refused = outcomes.pop("refused")
    assert isinstance(refused, EventStoreError) and not isinstance(refused, AppendOutcomeUnknown)
    assert all(isinstance(outcome, AppendResult) for outcome in outcomes.values()), outcomes
    assert await store.last_version("refused") == 0
    assert len(await collect(store.read_inbox("inbox"))) == 10
    work = {entry.stream: entry for entry in await store.work()}
    assert "refused" not in work and all(work[stream].wake_at == 1.0 for stream in outcomes)


async def test_a_message_sqlite_refuses_fails_its_append_alone(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "events.db") as store:
        await store.append("warm-up", events(1))
        await store._write(lambda conn: conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 10_000))
        batches = await spy_batches(store)
        outcomes = await side_appends(store, "elsewhere", big="y" * 20_000)
        assert "SQLITE_TOOBIG" in str(outcomes["refused"])
        await check_refused_alone(store, batches, outcomes)


@postgres
async def test_a_message_postgresql_refuses_fails_its_append_alone(
        pg: Any, postgres_url: str, postgres_schema: str) -> None:
    await run_sql(postgres_url, f'ALTER TABLE "{postgres_schema}".inbox '
                  "ADD CONSTRAINT refuse_one CHECK (stream <> 'refused-inbox')")
    batches = await spy_batches(pg)
    outcomes = await side_appends(pg, "refused-inbox")
    assert "refuse_one" in str(outcomes["refused"])
    await check_refused_alone(pg, batches, outcomes)
