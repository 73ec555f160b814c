"""Bad input, fuzzed: only the packages' documented errors come out, and nothing half-written.

Random arguments go to every public function of the event store, to ``actors.durable`` and to
``MultiNotifier`` (plain and inside an actor); random bytes and JSON go straight into the rows of
a SQLite file, which is then read, subscribed to and recovered by an actor. A call may succeed or
raise ``EventStoreError``/``ActorError`` (and, where documented, ``TypeError``/``ValueError``);
any other exception fails the test. ``ACTORS_FUZZ_EXAMPLES`` sets the examples per target
(default 50, fixed examples); set it for a larger, randomised run.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import pickle
import shutil
import sqlite3
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from faults import recovered
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import actors
import eventstore
from actors import MultiNotifier, durable
from eventstore import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    EventStore,
    EventStoreError,
    NewEvent,
    RecordedEvent,
)
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore

EXAMPLES = int(os.environ.get("ACTORS_FUZZ_EXAMPLES", "0")) or None
FUZZ = settings(
    max_examples=EXAMPLES or 50,
    derandomize=EXAMPLES is None,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies -----------------------------------------------------------------------------------

UUID_POOL = [uuid.UUID(int=n) for n in range(1, 6)]  # reused ids: retries and duplicates

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6,
)
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**62)
           | st.floats() | st.text(max_size=12) | st.binary(max_size=8)
           | st.sampled_from([ANY, NO_STREAM, STREAM_EXISTS, object(), b"", "", "s", "t", 0, 1,
                              -1, 2**70, math.nan, math.inf, timedelta(seconds=1)])
           | st.uuids() | st.datetimes())
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=4) | st.integers(), inner, max_size=3)
    | st.frozensets(st.integers() | st.text(max_size=3), max_size=3),
    max_leaves=6,
)
streams = st.sampled_from(["s", "t", "u"]) | anything
versions = st.integers(min_value=-2, max_value=6) | anything
new_events = st.builds(
    NewEvent,
    type=st.sampled_from(["Happened", "Other"]) | anything,
    data=json_values | anything,
    metadata=st.none() | st.dictionaries(st.text(max_size=4), json_values, max_size=2),
    id=st.sampled_from(UUID_POOL) | st.uuids() | anything,
)
batches = st.lists(new_events, max_size=4) | anything


# -- the stores under test -----------------------------------------------------------------------

@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(request.param) if request.param == "memory" else str(tmp_path / "events.db")


def open_store(backend: str) -> EventStore:
    """A store for one example: fresh in memory, or the test's SQLite file, seeded below."""
    return MemoryEventStore() if backend == "memory" else SQLiteEventStore(backend)


async def seeded(backend: str) -> EventStore:
    store = await open_store(backend).__aenter__()
    if await store.last_version("s") == 0:
        await store.append("s", [NewEvent("Happened", {"n": n}) for n in range(3)])
        await store.append("t", [NewEvent("Other", None, id=UUID_POOL[0])])
        await store.save_snapshot("s", 2, {"n": 1})
    return store


async def contents(store: EventStore) -> tuple[list[tuple[Any, ...]], dict[str, int]]:
    """Everything a caller can see: every event, and each known stream's version."""
    events = [(e.stream, e.version, e.position, e.id, e.type) async for e in store.read_all()]
    heads = {name: await store.last_version(name) for name in ("s", "t", "u")}
    return events, heads


def check_stream(events: list[RecordedEvent], first: int, last: int | None) -> None:
    assert all(first <= e.version and (last is None or e.version <= last) for e in events)
    assert [e.version for e in events] == sorted({e.version for e in events})


# -- the event store's public functions ----------------------------------------------------------

@FUZZ
@given(stream=streams, events=batches, expected=versions)
async def test_append(backend: str, stream: Any, events: Any, expected: Any) -> None:
    store = await seeded(backend)
    async with store:
        before = await contents(store)
        try:
            result = await store.append(stream, events, expected_version=expected)
        except EventStoreError:
            assert await contents(store) == before  # refused: nothing written
            return
        assert isinstance(result, AppendResult)
        after, heads = await contents(store)
        added = after[len(before[0]):]
        assert after[:len(before[0])] == before[0]
        if added:  # a new batch: all of it, at the end of the stream, in order
            assert len(added) == len(events)
            assert [(e[0], e[1]) for e in added] == [
                (stream, before[1].get(stream, 0) + n) for n in range(1, len(events) + 1)]
            assert [e[3] for e in added] == [event.id for event in events]
        assert result.version == heads.get(stream, result.version)


@FUZZ
@given(stream=streams, first=versions, last=versions, limit=versions)
async def test_read(backend: str, stream: Any, first: Any, last: Any, limit: Any) -> None:
    async with await seeded(backend) as store:
        try:
            events = [e async for e in store.read(stream, from_version=first, to_version=last,
                                                  limit=limit)]
        except EventStoreError:
            return
        check_stream(events, first, last)
        assert limit is None or len(events) <= limit


@FUZZ
@given(after=versions, limit=versions, types=st.none() | st.lists(st.sampled_from(
    ["Happened", "Other", "x"]), min_size=1) | anything)
async def test_read_all(backend: str, after: Any, limit: Any, types: Any) -> None:
    async with await seeded(backend) as store:
        try:
            events = [e async for e in store.read_all(after_position=after, limit=limit,
                                                      types=types)]
        except EventStoreError:
            return
        positions = [e.position for e in events]
        assert positions == sorted(set(positions)) and all(p > after for p in positions)
        assert limit is None or len(events) <= limit


@FUZZ
@given(after=versions, types=st.none() | st.lists(st.sampled_from(["Happened", "Other", "x"]),
                                                   min_size=1) | anything)
async def test_subscribe(backend: str, after: Any, types: Any) -> None:
    async with await seeded(backend) as store:
        try:
            subscription = store.subscribe(after_position=after, types=types)
        except EventStoreError:
            return
        expected = [e async for e in store.read_all(after_position=after, types=types)]
        seen: list[RecordedEvent] = []
        async with contextlib.aclosing(subscription):  # type: ignore[type-var]
            if expected:
                with trio.fail_after(10):
                    async for event in subscription:
                        seen.append(event)
                        if len(seen) == len(expected):
                            break
        assert [e.position for e in seen] == [e.position for e in expected]


@FUZZ
@given(stream=streams)
async def test_last_version(backend: str, stream: Any) -> None:
    async with await seeded(backend) as store:
        try:
            version = await store.last_version(stream)
        except EventStoreError:
            return
        assert isinstance(version, int) and version >= 0


@FUZZ
@given(stream=streams, version=versions)
async def test_delete_up_to(backend: str, stream: Any, version: Any) -> None:
    async with await seeded(backend) as store:
        before = await contents(store)
        try:
            await store.delete_up_to(stream, version)
        except EventStoreError:
            assert await contents(store) == before
            return
        after, heads = await contents(store)
        assert heads == before[1]  # deleting never lowers a version
        assert after == [e for e in before[0] if not (e[0] == stream and e[1] <= version)]


@FUZZ
@given(stream=streams, version=versions, state=json_values | anything)
async def test_save_snapshot(backend: str, stream: Any, version: Any, state: Any) -> None:
    async with await seeded(backend) as store:
        try:
            await store.save_snapshot(stream, version, state)
        except EventStoreError:
            return
        snapshot = await store.load_snapshot(stream, max_version=version)
        assert snapshot is not None and snapshot.version == version
        assert snapshot.state == json.loads(json.dumps(state))


@FUZZ
@given(stream=streams, most=versions)
async def test_load_snapshot(backend: str, stream: Any, most: Any) -> None:
    async with await seeded(backend) as store:
        try:
            snapshot = await store.load_snapshot(stream, max_version=most)
        except EventStoreError:
            return
        assert snapshot is None or (snapshot.stream == stream
                                    and (most is None or snapshot.version <= most))


ACCEPTED = {  # the options each backend's constructor takes (others are a Python TypeError)
    "memory": ["page_size", "codec"],
    "sqlite": ["page_size", "codec", "poll_interval", "synchronous", "busy_timeout"],
    "postgres": ["page_size", "codec", "poll_interval", "schema", "readers", "connect_timeout",
                 "max_batch"],
}
URL_STARTS = ["memory://", "sqlite:///", "sqlite://x", "postgresql://", "postgres://h/db"]


@FUZZ
@given(url=st.text(max_size=20) | anything | st.sampled_from(URL_STARTS).flatmap(
    lambda start: st.text(max_size=12).map(lambda rest: start + rest)),
       options=st.dictionaries(st.sampled_from(ACCEPTED["postgres"] + ACCEPTED["sqlite"]),
                               anything, max_size=2))
async def test_open(url: Any, options: dict[str, Any]) -> None:
    scheme = next((name for name in ACCEPTED if isinstance(url, str) and url.startswith(name)),
                  None)
    if scheme is not None:
        options = {key: value for key, value in options.items() if key in ACCEPTED[scheme]}
    try:
        store = eventstore.open(url, **options)
    except EventStoreError:
        return
    assert isinstance(store, EventStore)
    await store.aclose()  # never used: nothing was opened, nothing is written


@FUZZ
@given(type=anything, data=anything, metadata=anything, id=anything)
async def test_new_event(backend: str, type: Any, data: Any, metadata: Any, id: Any) -> None:
    try:
        event = NewEvent(type, data, metadata, id)
    except EventStoreError:
        return
    async with await seeded(backend) as store:
        before = await contents(store)
        try:
            await store.append("u", [event])
        except EventStoreError:
            assert await contents(store) == before
            return
        assert (await contents(store))[1]["u"] == before[1]["u"] + 1


# -- rows written straight into the SQLite file ---------------------------------------------------

@eventstore.event_type("reliability.fuzz.Added")
@attrs.frozen
class Added:
    amount: int


@attrs.define
class Ledger(actors.Actor):
    """Sums amounts; every message also reads the clock and sets a timer a day ahead."""

    kind = "ledger"
    snapshot_every = 4
    total: int = 0

    def apply(self, event: Any) -> None:
        if isinstance(event, Added):
            self.total += event.amount

    async def receive(self, message: Any) -> Any:
        if message == "state":
            return self.total, self.version, len(self.notifier)
        now = await durable.now.aio()
        self.notifier.notify_at(now + timedelta(days=1), message)
        self.emit(Added(message))
        return self.total


TYPE_NAMES = ["reliability.fuzz.Added", "actors.TimeObserved", "actors.SleepStarted",
              "actors.ScopeCompleted", "actors.RunCompleted", "actors.NotificationScheduled",
              "actors.NotificationFired", "actors.NotificationCancelled", "nothing.Known",
              "os:getcwd", "json:JSONDecoder"]
FIELD_NAMES = ["amount", "scope", "index", "function", "value", "started_at", "seconds", "seq",
               "at", "token", "seqs", "state", "record", "notifier", "run_done", "pending",
               "next_seq"]
EVENT_COLUMNS = ["data", "metadata", "type", "id", "recorded_at", "stream", "version"]
shaped = st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=4)
cell_values = (st.binary(max_size=24) | st.text(max_size=24) | st.integers(-(2**63), 2**63 - 1)
               | st.floats()
               | st.sampled_from(TYPE_NAMES)
               | (json_values | shaped).map(json.dumps))


async def template(tmp_path: Path) -> Path:
    """A SQLite file holding a ledger's log (user and runtime events) and its snapshots."""
    path = tmp_path / "template.db"
    if not path.exists():
        async with SQLiteEventStore(tmp_path / "making.db") as store, \
                trio.open_nursery() as nursery:
            ref = await actors.spawn(nursery, Ledger, "a", store=store,
                                     clock=actors.VirtualClock())
            for amount in range(1, 6):
                await ref.ask(amount)
            await ref.stop()
        (tmp_path / "making.db").rename(path)
    return path


async def drain(events: AsyncIterator[RecordedEvent], most: int = 1000) -> list[RecordedEvent]:
    found = []
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            found.append(event)
            if len(found) == most:
                break
    return found


async def decode_all(store: EventStore, read: Callable[[], AsyncIterator[RecordedEvent]]
                     ) -> list[RecordedEvent] | None:
    """Read and decode every event; None if the read failed (as a store may: DecodeError)."""
    try:
        events = await drain(read())
    except EventStoreError:
        return None
    for event in events:
        with contextlib.suppress(EventStoreError):
            store.codec.decode(event)
    return events


@FUZZ
@given(table=st.sampled_from(["events", "snapshots"]), row=st.integers(1, 20),
       column=st.sampled_from(EVENT_COLUMNS), value=cell_values)
async def test_corrupt_rows_in_a_sqlite_file(tmp_path: Path, table: str, row: int, column: str,
                                             value: Any) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    shutil.copy(await template(tmp_path), path)
    conn = sqlite3.connect(path)
    try:
        with conn:
            if table == "events":
                conn.execute(f"UPDATE events SET {column} = ? WHERE position = ?", (value, row))
            else:
                column = ["state", "recorded_at", "version"][row % 3]
                conn.execute(f"UPDATE snapshots SET {column} = ? WHERE version = "
                             "(SELECT max(version) FROM snapshots)", (value,))
    except sqlite3.IntegrityError:
        assume(False)  # the schema itself refuses it (a duplicate id or version)
    finally:
        conn.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an undecodable snapshot is skipped
        async with SQLiteEventStore(path) as store:
            await decode_all(store, lambda: store.read("ledger-a"))
            everything = await decode_all(store, store.read_all)
            with trio.fail_after(10):  # a subscription fails as read_all did, or catches up
                if everything is None:
                    with pytest.raises(EventStoreError):
                        await drain(store.subscribe())
                elif everything:
                    await drain(store.subscribe(), len(everything))
            with contextlib.suppress(EventStoreError):
                await store.last_version("ledger-a")
            with contextlib.suppress(EventStoreError):
                await store.load_snapshot("ledger-a")
            try:
                state = await recovered(store, Ledger, "a")
            except (EventStoreError, actors.ActorError):
                return
        assert isinstance(state, tuple)
    path.unlink()


# -- durable time ---------------------------------------------------------------------------------

seconds_values = (st.floats() | st.integers() | st.integers(min_value=2**1024)
                  | st.integers(max_value=-(2**1024)) | anything)


@attrs.define
class Napper(actors.Actor):
    """Sleeps (durably, a moment at most) for whatever it is sent; answers the time it woke."""

    kind = "napper"

    async def receive(self, message: Any) -> Any:
        with trio.move_on_after(0.001):
            await durable.sleep.aio(message)
        return await durable.time.aio()


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Call the plain form of a durable function from a worker thread."""
    return await trio.to_thread.run_sync(lambda: function(*args))


@FUZZ
@given(seconds=seconds_values)
async def test_durable_sleep(seconds: Any) -> None:
    for thread in (False, True):
        try:
            with trio.move_on_after(0.001):
                if thread:
                    await in_thread(durable.sleep, seconds)
                else:
                    await durable.sleep.aio(seconds)
        except (TypeError, ValueError) as exc:
            assert isinstance(exc, actors.ActorError)  # documented, and the package's own
    with pytest.raises(actors.ActorError):  # on the trio thread: invalid, or would block it
        durable.sleep(seconds)
    store = MemoryEventStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Napper, "a", store=store)
        try:
            assert isinstance(await ref.ask(seconds), float)
        except (TypeError, ValueError) as exc:
            assert isinstance(exc, actors.ActorError)
        assert isinstance(await ref.ask(0), float)  # the actor goes on
        nursery.cancel_scope.cancel()
    log = [e async for e in store.read("napper-a")]
    assert [e.version for e in log] == list(range(1, len(log) + 1))


@FUZZ
@given(args=st.lists(anything, max_size=2))
async def test_durable_time_and_now(args: list[Any]) -> None:
    for function in (durable.time, durable.now):
        for how in ("plain", "thread", "aio"):
            try:
                if how == "plain":
                    value = function(*args)
                elif how == "thread":
                    value = await in_thread(function, *args)
                else:
                    value = await function.aio(*args)
            except TypeError:
                assert args  # only a call with arguments is refused, as Python refuses it
                continue
            assert not args and isinstance(value, float | datetime)


# -- MultiNotifier --------------------------------------------------------------------------------

offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59),
                        max_value=timedelta(hours=23, minutes=59))
instants = st.datetimes(timezones=st.none() | st.just(UTC) | offsets.map(timezone)) | anything
tokens = json_values | anything


@FUZZ
@given(steps=st.lists(st.tuples(st.sampled_from(["notify_at", "due", "cancel", "next_at",
                                                 "pending", "len", "copy"]),
                                instants, tokens), max_size=8))
def test_multinotifier(steps: list[tuple[str, Any, Any]]) -> None:
    notifier: MultiNotifier[Any] = MultiNotifier()
    for name, at, token in steps:
        before = shape(notifier)
        try:
            if name == "notify_at":
                notifier.notify_at(at, token)
                assert len(notifier) == len(before) + 1
            elif name == "due":
                fired = notifier.due(at)
                assert [id(t) for t in fired] == [t for _, t in before[:len(fired)]]
            elif name == "cancel":
                assert notifier.cancel(token) == len(before) - len(notifier)
            elif name == "next_at":
                assert notifier.next_at() == (before[0][0] if before else None)
            elif name == "pending":
                assert len(notifier.pending()) == len(notifier)
            elif name == "len":
                assert len(notifier) == len(before)
            else:
                assert len(copy.deepcopy(notifier)) == len(pickle.loads(pickle.dumps(
                    notifier))) == len(notifier)
        except (TypeError, ValueError):
            assert name in ("notify_at", "due")  # documented: a bad instant
            assert shape(notifier) == before  # and nothing changed


def shape(notifier: MultiNotifier[Any]) -> list[tuple[datetime, int]]:
    """What is pending, tokens by identity (a token need not equal itself: NaN)."""
    return [(at, id(token)) for at, token in notifier.pending()]


@attrs.define
class Alarm(actors.Actor):
    """Schedules what it is sent on its own notifier; ``"state"`` answers what is pending."""

    kind = "alarm"

    async def on_notify(self) -> None:
        self.notifier.due(await durable.now.aio())

    async def receive(self, message: Any) -> Any:
        if message == "state":
            return [(at.isoformat(), repr(token)) for at, token in self.notifier.pending()]
        at, token = message
        self.notifier.notify_at(at, token)
        return len(self.notifier)


@FUZZ
@given(at=instants, token=tokens)
async def test_an_actors_notifier(at: Any, token: Any) -> None:
    store = MemoryEventStore()
    async with trio.open_nursery() as nursery:
        ref = await actors.spawn(nursery, Alarm, "a", store=store)
        with contextlib.suppress(TypeError, ValueError, EventStoreError):  # documented
            assert await ref.ask((at, token)) == 1
        await trio.testing.wait_all_tasks_blocked()  # a due notification has fired
        live = await ref.ask("state")
        await ref.stop()
    assert live == await recovered(store, Alarm, "a")
