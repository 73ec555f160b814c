"""The SQLite backend: the conformance suite, plus what only a file on disk can show."""

from __future__ import annotations

import functools
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from side_batches import inbox_state, side_batch

import eventstore.sqlite
from eventstore import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    DuplicateEventId,
    EventStore,
    EventStoreError,
    InvalidArgument,
    NewEvent,
    SchemaError,
    WrongExpectedVersion,
)
from eventstore._group_commit import AppendRequest
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore
from eventstore.testing import StoreConformance, collect, events


def execute(store: EventStore, sql: str, *args: object) -> list[Any]:
    """Run ``sql`` on a separate connection to the store's file and commit it."""
    assert isinstance(store, SQLiteEventStore)
    with sqlite3.connect(store.path, isolation_level=None) as conn:
        rows = conn.execute(sql, args).fetchall()
    conn.close()
    return rows


class TestSQLiteStore(StoreConformance):
    placeholder = "?"

    async def sql_rows(self, store: EventStore, query: str) -> list[tuple[Any, ...]]:
        return await trio.to_thread.run_sync(execute, store, query)

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[EventStore]:
        async with SQLiteEventStore(tmp_path / "events.db") as store:
            yield store

    async def corrupt_event(self, store: EventStore, stream: str, version: int) -> None:
        execute(store, "UPDATE events SET data = '{not json' WHERE stream = ? AND version = ?",
                stream, version)

    async def corrupt_snapshot(self, store: EventStore, stream: str, version: int) -> None:
        execute(store, "UPDATE snapshots SET state = '{not json' WHERE stream = ? AND version = ?",
                stream, version)


async def test_events_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore(path) as store:
        first = await store.append("s", events(3), expected_version=NO_STREAM)
        await store.save_snapshot("s", 2, {"total": 2})
        await store.delete_up_to("s", 1)
    async with SQLiteEventStore(str(path)) as store:
        assert await store.last_version("s") == 3
        recorded = await collect(store.read("s"))
        assert [(e.version, e.data["n"]) for e in recorded] == [(2, 2), (3, 3)]
        assert recorded[-1].position == first.position
        snapshot = await store.load_snapshot("s")
        assert snapshot is not None and snapshot.state == {"total": 2}
        after = await store.append("s", events(1), expected_version=3)
        assert (after.version, after.position) == (4, first.position + 1)


async def test_positions_are_never_reused_after_deleting_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore(path) as store:
        first = await store.append("s", events(2))
        await store.delete_up_to("s", 2)
    async with SQLiteEventStore(path) as store:
        again = await store.append("t", events(1))
        assert again.position == first.position + 1


async def test_wal_and_synchronous_are_applied(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "full.db") as store:
        await store.append("s", events(1))
        assert store._writer is not None
        assert store._writer.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert store._writer.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    async with SQLiteEventStore(tmp_path / "normal.db", synchronous="normal") as store:
        assert store._writer is not None
        assert store._writer.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
        assert store.synchronous == "NORMAL"
    assert execute(store, "PRAGMA journal_mode") == [("wal",)]  # stored in the file


async def test_the_file_is_opened_lazily(tmp_path: Path) -> None:
    path = tmp_path / "lazy.db"
    store = SQLiteEventStore(path)
    assert not path.exists()
    await store.append("s", events(1))
    assert path.exists()
    await store.aclose()
    assert store._writer is None and store._reader_conn is None


async def test_two_stores_on_one_file_race_with_expected_versions(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    async with SQLiteEventStore(path) as one, SQLiteEventStore(path) as two:

        async def writer(store: EventStore, name: str) -> None:
            for n in range(20):
                while True:  # a lost race only ever raises WrongExpectedVersion: try again
                    version = await store.last_version("counter")
                    try:
                        await store.append("counter", [NewEvent("Inc", {"w": name, "n": n})],
                                           expected_version=version)
                        break
                    except WrongExpectedVersion:
                        pass
                await trio.sleep(0)

        async with trio.open_nursery() as nursery:
            for store, name in [(one, "a"), (two, "b"), (one, "c"), (two, "d")]:
                nursery.start_soon(writer, store, name)
        for store in (one, two):
            recorded = await collect(store.read("counter"))
            assert [e.version for e in recorded] == list(range(1, 81))
            assert sorted((e.data["w"], e.data["n"]) for e in recorded) == sorted(
                (w, n) for w in "abcd" for n in range(20))
            assert await store.last_version("counter") == 80


CHILD = textwrap.dedent("""
    import sys
    import trio
    from eventstore import NewEvent, WrongExpectedVersion
    from eventstore.sqlite import SQLiteEventStore

    async def main(path, count):
        async with SQLiteEventStore(path) as store:
            print("ready", flush=True)
            sys.stdin.readline()
            version = 0
            for n in range(count):
                await store.append("child", [NewEvent("E", {"n": n})])
                while True:
                    try:
                        version = (await store.append(
                            "shared", [NewEvent("E", {"who": "child", "n": n})],
                            expected_version=version)).version
                        break
                    except WrongExpectedVersion as lost:
                        version = lost.actual

    trio.run(main, sys.argv[1], int(sys.argv[2]))
""")


async def test_a_second_process_appends_to_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    count = 60
    async with SQLiteEventStore(path) as store:
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                child: trio.Process = await nursery.start(functools.partial(
                    trio.run_process, [sys.executable, "-c", CHILD, str(path), str(count)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, check=False))
                assert child.stdin is not None and child.stdout is not None
                ready = b""
                while not ready.endswith(b"\n"):
                    chunk = await child.stdout.receive_some(64)
                    assert chunk, "the child process exited before it was ready"
                    ready += chunk
                assert ready == b"ready\n"
                await child.stdin.send_all(b"go\n")
                version = 0
                for n in range(count):
                    await store.append("parent", [NewEvent("E", {"n": n})])
                    while True:
                        try:
                            version = (await store.append(
                                "shared", [NewEvent("E", {"who": "parent", "n": n})],
                                expected_version=version)).version
                            break
                        except WrongExpectedVersion as lost:
                            version = lost.actual
                await child.wait()
            assert child.returncode == 0
        everything = await collect(store.read_all())
        positions = [e.position for e in everything]
        assert positions == sorted(set(positions))
        assert len(everything) == 4 * count
        for stream in ("parent", "child"):
            recorded = await collect(store.read(stream))
            assert [e.version for e in recorded] == list(range(1, count + 1))
            assert [e.data["n"] for e in recorded] == list(range(count))
        shared = await collect(store.read("shared"))
        assert [e.version for e in shared] == list(range(1, 2 * count + 1))
        for who in ("parent", "child"):
            assert [e.data["n"] for e in shared if e.data["who"] == who] == list(range(count))


async def test_concurrent_appends_share_transactions(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "events.db") as store:
        await store.append("warm-up", events(1))
        batches: list[int] = []
        write_batch = store._committer._write_batch

        async def counting(requests: list[AppendRequest]) -> None:
            batches.append(len(requests))
            await write_batch(requests)

        store._committer._write_batch = counting

        async def writer(n: int) -> None:
            await store.append(f"s{n}", [NewEvent("E", {"n": n})], expected_version=NO_STREAM)

        async with trio.open_nursery() as nursery:
            for n in range(100):
                nursery.start_soon(writer, n)
        assert sum(batches) == 100
        assert len(batches) < 100
        assert len(await collect(store.read_all())) == 101


async def test_a_conflict_in_a_shared_transaction_fails_alone(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "events.db") as store:
        await store.append("s", events(2))
        outcomes: dict[str, object] = {}

        async def append(name: str, stream: str, expected: int) -> None:
            try:
                outcomes[name] = (await store.append(stream, events(1),
                                                     expected_version=expected)).version
            except WrongExpectedVersion as exc:
                outcomes[name] = exc.actual

        async with trio.open_nursery() as nursery:
            nursery.start_soon(append, "first", "s", 2)
            nursery.start_soon(append, "conflict", "s", 2)
            nursery.start_soon(append, "other", "t", 0)
        assert outcomes == {"first": 3, "conflict": 3, "other": 1}


async def test_a_retry_in_a_shared_transaction_returns_the_first_result(
        tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "events.db") as store:
        batch = events(2)
        first = await store.append("s", batch)
        outcomes: dict[str, object] = {}

        async def append(name: str, stream: str, new: list[NewEvent]) -> None:
            outcomes[name] = await store.append(stream, new)

        twice = events(1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(append, "retry", "s", batch)
            nursery.start_soon(append, "new", "s", events(1))
            nursery.start_soon(append, "other", "t", events(3))
            nursery.start_soon(append, "twice-a", "u", twice)
            nursery.start_soon(append, "twice-b", "u", twice)
        assert outcomes["retry"] == first
        assert outcomes["twice-a"] == outcomes["twice-b"]
        assert await store.last_version("s") == 3
        assert await store.last_version("t") == 3
        assert await store.last_version("u") == 1
        positions = [e.position for e in await collect(store.read_all())]
        assert len(positions) == 7 and positions == sorted(set(positions))


async def test_appends_with_and_without_a_side_share_a_batch(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "events.db") as store:
        await store.append("warm-up", events(1))
        sizes: list[int] = []
        write_batch = store._committer._write_batch

        async def counting(requests: list[AppendRequest]) -> None:
            sizes.append(len(requests))
            await write_batch(requests)

        store._committer._write_batch = counting
        sent: list[NewEvent] = []

        async def plain(n: int) -> None:
            await store.append(f"s{n % 5}", events(1))

        async def with_side(n: int) -> None:
            message = NewEvent("Msg", {"n": n})
            sent.append(message)
            await store.append(f"s{n % 5}", events(1), enqueue=[("inbox", message)],
                               wake_at=float(n))

        async with trio.open_nursery() as nursery:
            for n in range(40):
                nursery.start_soon(plain if n % 2 else with_side, n)
        assert max(sizes) > 1
        for n in range(5):
            assert [e.version for e in await collect(store.read(f"s{n}"))] == list(range(1, 9))
        assert [m.id for m in await collect(store.read_inbox("inbox"))] == [m.id for m in sent]
        work = {entry.stream: entry for entry in await store.work()}
        assert work["inbox"].waiting == 20 and all(work[f"s{n}"].wake_at is not None
                                                   for n in range(5))


async def test_a_stale_version_from_another_writer_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore(path) as one, SQLiteEventStore(path) as two:
        await one.append("s", events(2))  # ``one`` now expects the stream at version 2
        await two.append("s", events(1), expected_version=2)
        await two.delete_up_to("s", 3)  # the stored rows no longer show version 3
        with pytest.raises(WrongExpectedVersion) as caught:
            await one.append("s", events(1), expected_version=2)
        assert caught.value.actual == 3
        assert (await one.append("s", events(1))).version == 4
        assert [e.version for e in await collect(two.read("s"))] == [4]


async def test_appends_larger_than_one_statement(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "events.db") as store:
        store._rows_per_insert = 3
        results: list[Any] = []

        async def append(stream: str, count: int) -> None:
            results.append(await store.append(stream, events(count)))

        async with trio.open_nursery() as nursery:
            for n in range(6):
                nursery.start_soon(append, f"s{n}", 2)
            nursery.start_soon(append, "big", 10)
        assert await store.last_version("big") == 10
        recorded = await collect(store.read_all())
        assert len(recorded) == 22
        assert [e.position for e in recorded] == sorted({e.position for e in recorded})
        big = [e for e in recorded if e.stream == "big"]
        assert [e.version for e in big] == list(range(1, 11))
        assert [e.position for e in big] == list(range(big[0].position, big[0].position + 10))
        assert sorted(r.position for r in results) == sorted(
            max(e.position for e in recorded if e.stream == stream)
            for stream in {e.stream for e in recorded})


async def test_ids_of_deleted_events_stay_taken(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "events.db") as store:
        batch = events(2)
        first = await store.append("s", batch)
        await store.delete_up_to("s", 2)
        assert await store.append("s", batch, expected_version=0) == first
        with pytest.raises(DuplicateEventId):
            await store.append("t", [batch[0]])
        assert await collect(store.read_all()) == []


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore(path) as store:
        await store.append("s", events(1))
    execute(store, f"PRAGMA user_version = {eventstore.sqlite.SCHEMA_VERSION + 1}")
    store = SQLiteEventStore(path)
    with pytest.raises(SchemaError, match="newer"):
        async with store:
            pass
    assert store.closed
    with pytest.raises(SchemaError, match="newer"):
        await SQLiteEventStore(path).last_version("s")


async def test_a_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
    conn.close()
    with pytest.raises(SchemaError, match="not an event store"):
        async with SQLiteEventStore(path):
            pass
    (tmp_path / "text.db").write_text("just some text, long enough to fill a header " * 10)
    with pytest.raises(EventStoreError, match="SQLITE_NOTADB"):
        async with SQLiteEventStore(tmp_path / "text.db"):
            pass


async def test_a_full_disk_gives_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "events.db") as store:
        await store.append("s", events(2))
        assert store._writer is not None
        [(pages,)] = store._writer.execute("PRAGMA page_count").fetchall()
        store._writer.execute(f"PRAGMA max_page_count = {pages}")
        big = [NewEvent("Big", {"blob": "x" * 200_000})]
        with pytest.raises(EventStoreError, match=r"SQLITE_FULL.*free disk space") as caught:
            await store.append("s", [*events(3), *big], expected_version=2)
        assert "nothing of this append was written" in str(caught.value)
        assert isinstance(caught.value.__cause__, sqlite3.Error)
        assert await store.last_version("s") == 2
        assert len(await collect(store.read_all())) == 2
        store._rows_per_insert = 1  # the careful way: one transaction with savepoints
        with pytest.raises(EventStoreError, match="SQLITE_FULL"):
            await store.append("s", [*events(3), *big], expected_version=2)
        assert await store.last_version("s") == 2
        store._writer.execute("PRAGMA max_page_count = 1073741823")
        assert (await store.append("s", big, expected_version=2)).version == 3


async def test_a_lock_held_past_busy_timeout_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore(path, busy_timeout=0) as store:
        await store.append("s", events(1))
        with sqlite3.connect(path, isolation_level=None) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(EventStoreError, match=r"SQLITE_BUSY.*busy_timeout"):
                await store.append("s", events(1))
            other.execute("ROLLBACK")
        other.close()
        assert (await store.append("s", events(1))).version == 2


@pytest.mark.parametrize(("arguments", "match"), [
    ({"path": ""}, "path"),
    ({"path": ":memory:"}, "MemoryEventStore"),
    ({"path": 3}, "path"),
    ({"path": b"events.db"}, "path"),
    ({"synchronous": "SOMETIMES"}, "synchronous"),
    ({"synchronous": 2}, "synchronous"),
    ({"busy_timeout": -1}, "busy_timeout"),
    ({"busy_timeout": float("inf")}, "busy_timeout"),
    ({"busy_timeout": "30"}, "busy_timeout"),
    ({"page_size": 0}, "page_size"),
    ({"poll_interval": 0}, "poll_interval"),
])
def test_bad_constructor_arguments(tmp_path: Path, arguments: dict[str, Any],
                                   match: str) -> None:
    options: dict[str, Any] = {"path": tmp_path / "events.db", **arguments}
    with pytest.raises(InvalidArgument, match=match):
        SQLiteEventStore(**options)
    assert list(tmp_path.iterdir()) == []


async def test_recorded_at_is_aware_utc_and_shared_by_a_batch(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "events.db") as store:
        await store.append("s", events(3))
        recorded = await collect(store.read("s"))
        assert len({e.recorded_at for e in recorded}) == 1
        assert recorded[0].recorded_at.tzname() == "UTC"


OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("append"), st.sampled_from("ab"), st.integers(1, 3),
              st.sampled_from([ANY, NO_STREAM, STREAM_EXISTS, 0, 1, 2, 3, 4])),
    st.tuples(st.just("retry"), st.sampled_from("ab"), st.integers(0, 20),
              st.sampled_from([ANY, 0, 2])),
    st.tuples(st.just("delete"), st.sampled_from("ab"), st.integers(0, 5), st.just(ANY)),
), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=OPERATIONS, two=st.booleans())
def test_the_same_operations_give_the_same_outcomes_as_memory(
        tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, str, int, Any]],
        two: bool) -> None:
    """Appends, retries, conflicts and deletions, one at a time, against the reference backend.

    With ``two``, every other operation goes through a second store on the same file, so each
    store's idea of the stream versions is often stale.
    """
    path = tmp_path_factory.mktemp("equivalence") / "events.db"

    async def outcomes(stores: list[EventStore]) -> list[object]:
        batches: list[list[NewEvent]] = []
        seen: list[object] = []
        for turn, (kind, stream, n, expected) in enumerate(operations):
            store = stores[turn % len(stores)]
            try:
                if kind == "delete":
                    await store.delete_up_to(stream, n)
                    seen.append(None)
                    continue
                if kind == "retry" and batches:
                    batch = batches[n % len(batches)]
                else:
                    batch = [NewEvent("E", {"n": k}, id=uuid.UUID(int=len(batches) * 8 + k + 1))
                             for k in range(n if kind == "append" else 1)]
                    batches.append(batch)
                result = await store.append(stream, batch, expected_version=expected)
                seen.append((result.version, result.position))
            except EventStoreError as exc:
                seen.append(type(exc).__name__)
        store = stores[0]
        seen.append([(e.stream, e.version, e.position, e.id) async for e in store.read_all()])
        seen.append([await store.last_version(stream) for stream in "ab"])
        return seen

    async def main() -> None:
        async with MemoryEventStore() as memory:
            expected = await outcomes([memory])
        async with SQLiteEventStore(path) as one, SQLiteEventStore(path) as other:
            assert await outcomes([one, other] if two else [one]) == expected

    trio.run(main)


# -- a batch's sides, planned: one transaction for the whole plan ---------------------------------

@pytest.mark.parametrize("seed", range(20))
async def test_planned_sides_give_what_one_by_one_gives(tmp_path: Path, seed: int) -> None:
    """Each batch through ``plan_batch`` and ``commit_batch``; the same appends one by one on the
    memory store, in the order the batch settled them (plans first, then careful appends)."""
    import random

    from eventstore._sqlite_write import commit_batch, plan_batch

    rng = random.Random(seed)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(8)]
    done: list[AppendRequest] = []
    known: dict[str, int] = {}
    async with SQLiteEventStore(tmp_path / "events.db") as store, MemoryEventStore() as memory:
        for _ in range(8):
            batch = side_batch(rng, ids, done)
            if rng.random() < 0.3:  # a stale hint: the plan fails and goes the careful way
                known = {stream: version + 1 for stream, version in known.items()}
            plans, careful = plan_batch(batch, known, store._shapes, 1_000_000, 1000)
            outcomes, versions = await store._write(
                lambda conn, plans=plans, careful=careful: commit_batch(  # type: ignore[misc]
                    conn, plans, careful, 1_000_000, 1000, store.path, store._shapes))
            known.update(versions)
            assert sorted(map(id, batch)) == sorted(id(request) for request, _ in outcomes)
            for request, outcome in outcomes:
                try:
                    expected: object = await memory._append(
                        request.stream, request.events, request.expected, request.side)
                except EventStoreError as exc:
                    expected = type(exc)
                got = type(outcome) if isinstance(outcome, Exception) else outcome
                if not request.events and not isinstance(outcome, Exception):
                    continue  # an enqueue's result is not used
                assert (got if isinstance(got, type) else got.version) == (
                    expected if isinstance(expected, type) else expected.version)
            assert await inbox_state(store) == await inbox_state(memory)


async def test_sides_larger_than_one_statement(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "events.db") as store:
        store._rows_per_insert = 3  # messages too go in statements of 3 rows
        sent = [NewEvent("Msg", {"n": n}) for n in range(1100)]  # acknowledged in chunks
        await store.enqueue("a", sent)
        assert [m.data["n"] for m in await collect(store.read_inbox("a"))] == list(range(1100))

        async def consume(part: int) -> None:
            await store.append(f"a-{part}", events(1), wake_at=float(part),
                               enqueue=[(f"b{part}", NewEvent("Msg", {}))])

        store._rows_per_insert = 1000
        await store.append("a", events(1), acknowledge=[m.id for m in sent[:1050]])
        sizes: list[int] = []
        write_batch = store._committer._write_batch

        async def counting(requests: list[AppendRequest]) -> None:
            sizes.append(len(requests))
            await write_batch(requests)

        store._committer._write_batch = counting
        async with trio.open_nursery() as nursery:  # wake times in chunks
            for part in range(600):
                nursery.start_soon(consume, part)
        assert max(sizes) > 500
        assert [m.data["n"] for m in await collect(store.read_inbox("a"))] == list(
            range(1050, 1100))
        work = await store.work()
        assert len(work) == 1 + 600 + 600
        assert {e.stream: e.wake_at for e in work if e.stream.startswith("a-")} == {
            f"a-{part}": float(part) for part in range(600)}


async def test_a_version_changed_outside_the_library_is_an_error_not_a_crash(
        tmp_path: Path) -> None:
    path = tmp_path / "changed.db"
    async with SQLiteEventStore(path) as store:
        await store.append("ledger-a", [NewEvent("E", {})])
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE events SET version = ? WHERE position = 1", (b"",))
    conn.close()
    async with SQLiteEventStore(path) as store:
        with pytest.raises(EventStoreError, match="not an integer"):
            await store.last_version("ledger-a")


def test_bytes_and_none_bind_through_identity_adapters_but_a_programs_own_stay() -> None:
    import sqlite3

    from eventstore import sqlite as module

    key = (bytes, sqlite3.PrepareProtocol)
    assert sqlite3.adapters[key](b"\x00id") == b"\x00id"
    assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)](None) is None
    saved = sqlite3.adapters[key]

    def own(value: bytes) -> str:
        return value.hex()

    sqlite3.register_adapter(bytes, own)
    try:
        module._bind_without_adapting()  # as on a second import: a program's own adapter stays
        assert sqlite3.adapters[key] is own
    finally:
        sqlite3.adapters[key] = saved
