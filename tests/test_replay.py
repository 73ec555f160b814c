"""actors.replay: steps, state_at, check (the determinism check), JSON Lines export and import."""

from __future__ import annotations

import io
import json
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import actors
import eventstore
from actors import NonDeterminismError, durable, replay
from actors.replay import ReplayError
from actors.testing import ActorTestKit, project
from eventstore import EventStore
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
from golden_actors import (  # noqa: E402 - the golden module is imported by this one name
    DAY,
    Charged,
    DriftedApply,
    DriftedSleep,
    Reminded,
    Subscribe,
    Subscribed,
    Subscription,
    Unguarded,
)

STREAM = "Subscription-alice"


async def _import_golden(store: EventStore, name: str = "subscription.jsonl") -> None:
    with (GOLDEN / name).open() as lines:
        await replay.import_jsonl(store, lines, source=name)


class NoWrites(MemoryEventStore):
    """Fails the test on any write once ``sealed``: check() must write nothing."""

    sealed = False

    async def _append(self, stream: str, events: Any, expected: Any,
                      side: Any) -> eventstore.AppendResult:
        assert not self.sealed, f"append to {stream}"
        return await super()._append(stream, events, expected, side)

    async def _save_snapshot(self, stream: str, version: int, state: str) -> None:
        assert not self.sealed, f"snapshot of {stream}"
        await super()._save_snapshot(stream, version, state)


# -- steps and state_at --------------------------------------------------------------------------


async def test_steps_give_each_event_and_the_state_after_it() -> None:
    store = MemoryEventStore()
    await _import_golden(store)
    seen = []
    async for step in replay.steps(store, Subscription, "alice"):
        seen.append((step.version, step.recorded.type, step.state.total,
                     len(step.state.notifier.pending()), step.state.version))
        if isinstance(step.event, Subscribed):
            assert step.state.plan == "pro"
    assert [v for v, *_ in seen] == list(range(1, 20))
    assert all(version == state_version for version, *_, state_version in seen)
    totals = {v: total for v, _, total, _, _ in seen}
    assert (totals[10], totals[11], totals[14], totals[17]) == (0, 10, 20, 30)
    # The runtime's own events are folded into the notifier: scheduled at 4, fired at 7.
    pending = {v: n for v, _, _, n, _ in seen}
    assert (pending[3], pending[4], pending[6], pending[7]) == (0, 1, 1, 0)


async def test_steps_from_a_version_and_up_to_one() -> None:
    store = MemoryEventStore()
    await _import_golden(store)
    steps = [(s.version, type(s.event).__name__, s.state.total) async for s in
             replay.steps(store, Subscription, "alice", from_version=11, to_version=14)]
    assert steps == [(11, "Charged", 10), (12, "SleepStarted", 10), (13, "TimeObserved", 10),
                     (14, "Charged", 20)]
    with pytest.raises(ReplayError, match="from_version"):
        replay.steps(store, Subscription, "alice", from_version=0)


async def test_state_at_any_version_and_past_the_end() -> None:
    store = MemoryEventStore()
    await _import_golden(store)
    assert (await replay.state_at(store, Subscription, "alice", 0)).plan is None
    assert (await replay.state_at(store, Subscription, "alice", 11)).charged == [1]
    final = await replay.state_at(store, Subscription, "alice")
    assert (final.charged, final.total, final.reminders) == ([1, 2, 3], 30, ["welcome"])
    assert final.version == 19
    with pytest.raises(ReplayError, match="no version 20: it ends at version 19"):
        await replay.state_at(store, Subscription, "alice", 20)


async def test_a_truncated_log_rebuilds_from_its_snapshot_but_cannot_be_stepped() -> None:
    store = MemoryEventStore()
    await _import_golden(store)  # holds snapshots at versions 5, 9, 15 and 19
    await store.delete_up_to(STREAM, 12)
    assert (await replay.state_at(store, Subscription, "alice", 16)).charged == [1, 2]
    steps = [s.version async for s in replay.steps(store, Subscription, "alice",
                                                   from_version=16)]
    assert steps == [16, 17, 18, 19]
    with pytest.raises(ReplayError, match="holds version 13 where version 1 should follow"):
        async for _ in replay.steps(store, Subscription, "alice"):
            pass


async def test_replay_reads_in_pages_so_memory_does_not_grow_with_the_log() -> None:
    async def peak(n: int) -> int:
        store = MemoryEventStore(page_size=200)
        codec = store.codec
        for _ in range(n // 1000):
            await store.append("Subscription-m", [codec.new_event(Charged(1, 1, 0.0))
                                                  for _ in range(1000)])
        tracemalloc.start()
        try:
            count = 0
            async for step in replay.steps(store, Subscription, "m"):
                count += 1
                step.state.charged.clear()  # the state itself stays small
            assert count == n
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = await peak(2_000), await peak(20_000)
    assert large < 2 * small, (small, large)


_domain_events = st.one_of(
    st.builds(Subscribed, st.sampled_from(["basic", "pro"])),
    st.builds(Charged, st.integers(1, 12), st.integers(0, 100), st.just(0.0)),
    st.builds(Reminded, st.text(max_size=5)),
)


@settings(max_examples=40, deadline=None)
@given(events=st.lists(_domain_events, max_size=30), cut=st.integers(0, 30))
def test_steps_state_at_and_project_agree_on_any_log(events: list[Any], cut: int) -> None:
    cut = min(cut, len(events))

    async def main() -> None:
        store = MemoryEventStore(page_size=7)
        if events:
            await store.append(STREAM, [store.codec.new_event(e) for e in events])
        totals = [step.state.total async for step in replay.steps(store, Subscription, "alice")]
        assert totals == [project(Subscription, events[:n]).total
                          for n in range(1, len(events) + 1)]
        assert await replay.state_at(store, Subscription, "alice", cut) == project(
            Subscription, events[:cut])

    trio.run(main)


# -- check: the determinism check ---------------------------------------------------------------


async def test_check_passes_on_the_log_the_class_recorded_and_writes_nothing() -> None:
    store = NoWrites()
    await _import_golden(store)
    before = [e.id async for e in store.read_all()]
    store.sealed = True
    seen: list[int] = []
    result = await replay.check(store, Subscription, "alice", progress=seen.append)
    assert result.ok and result.divergence is None
    assert (result.events, result.snapshots, result.reruns) == (19, 4, 3)
    assert seen == list(range(1, 20))
    assert [e.id async for e in store.read_all()] == before


async def test_check_reports_a_changed_durable_call_as_non_determinism() -> None:
    store = MemoryEventStore()
    await _import_golden(store)
    result = await replay.check(store, DriftedSleep, "alice")
    divergence = result.divergence
    assert divergence is not None and divergence.version == 1
    assert isinstance(divergence.error, actors.NonDeterminismError)
    assert "sleep(2592000.0)" in str(divergence) and "sleep(2678400.0)" in str(divergence)
    assert str(divergence).startswith("stream 'Subscription-alice', version 1: ")


async def test_check_reports_a_changed_apply_at_the_first_snapshot_it_breaks() -> None:
    store = MemoryEventStore()
    await _import_golden(store)
    divergence = (await replay.check(store, DriftedApply, "alice")).divergence
    assert divergence is not None and divergence.version == 15
    assert divergence.expected["state"]["total"] == 20
    assert divergence.actual["state"]["total"] == 40
    assert "state.total: 20 in the snapshot, 40 by folding" in divergence.reason


async def test_check_reports_a_recovery_that_redoes_what_the_log_holds() -> None:
    store = MemoryEventStore()
    await _import_golden(store)
    divergence = (await replay.check(store, Unguarded, "alice")).divergence
    assert divergence is not None and divergence.version == 12  # the sleep after month 1
    # Re-run, the unguarded run() emits month 1's charge again where the log (written before
    # scopes recorded what they committed) says it went on to its next sleep.
    assert isinstance(divergence.error, NonDeterminismError)
    assert "Charged(month=1" in divergence.reason


async def test_check_to_a_version_stops_there() -> None:
    store = MemoryEventStore()
    await _import_golden(store)
    result = await replay.check(store, DriftedApply, "alice", to_version=14)
    assert result.ok and (result.events, result.snapshots) == (14, 2)


@eventstore.event_type("test_replay.Got")
@attrs.frozen
class Got:
    what: str


@attrs.define
class Waiter(actors.Actor):
    """run() sleeps, then waits for a message; on_start counts recoveries."""

    starts: int = 0
    got: list[str] = attrs.Factory(list)
    fail_on_recovery: bool = False

    def apply(self, event: Any) -> None:
        match event:
            case Got(what="start"):
                self.starts += 1
            case Got(what=what):
                self.got.append(what)

    async def on_start(self) -> None:
        self.emit(Got("start"))

    async def receive(self, message: Any) -> Any:
        self.emit(Got(message))

    async def run(self) -> None:
        await durable.sleep.aio(60)
        if self.starts > 1 and self.fail_on_recovery:
            raise RuntimeError("cannot resume")
        while "go" not in self.got:  # only a message gets it further
            await trio.sleep(3600)
        self.emit(Got("done"))


@attrs.define
class FailingWaiter(Waiter):
    kind = "Waiter"
    fail_on_recovery: bool = True


async def test_check_reruns_on_start_and_stops_where_only_a_message_would_help(
        autojump_clock: trio.testing.MockClock) -> None:
    store = NoWrites()
    async with ActorTestKit(store=store) as kit:
        ref = await kit.spawn(Waiter, "w")
        await kit.advance(120)
        await ref.ask("noise")
    store.sealed = True
    result = await replay.check(store, Waiter, "w")
    assert result.ok and result.reruns == 2  # at the sleep, and at the end (run unfinished)
    # on_start ran in the re-run (a second start) before run(), whose second try raises:
    failed = (await replay.check(store, FailingWaiter, "w")).divergence
    assert failed is not None and failed.version == 2
    assert isinstance(failed.error, RuntimeError) and "run() raised" in failed.reason


# -- snapshots and the record's scopes -------------------------------------------------------------


@attrs.define
class Interleaved(actors.Actor):
    """run() commits a Got every second (scope "run": committed events only); a message with
    an id takes the time, commits a Got and sleeps an hour (scope "msg:m": durable calls and an
    event). The log meets "run" first; a snapshot lists "msg:m" first, as it has calls."""

    snapshot_every = 5

    got: list[str] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        self.got.append(event.what)

    async def receive(self, message: Any) -> Any:
        await durable.now.aio()
        self.emit(Got(message))
        await durable.sleep.aio(3600)

    async def run(self) -> None:
        for _ in range(20):
            self.emit(Got("tick"))
            await self.flush()
            await trio.sleep(1)


async def _interleaved(kit: ActorTestKit, *, crash: bool) -> actors.ActorRef:
    ref = await kit.spawn(Interleaved, "i")
    await kit.advance(1.5)
    await ref.send("m", message_id="m")
    await kit.advance(5)
    if crash:
        await kit.crash(ref)
        await kit.recover(ref)  # from a snapshot
    await kit.advance(30)
    return ref


async def test_snapshots_after_a_recovery_from_a_snapshot_are_the_fold_of_the_log(
        autojump_clock: trio.testing.MockClock) -> None:
    """Recovered from a snapshot, the record meets its scopes in the snapshot's order, not the
    log's: the snapshots it saves then must still be what folding the log gives."""
    async with ActorTestKit() as kit:
        await _interleaved(kit, crash=True)
    result = await replay.check(kit.store, Interleaved, "i")
    assert result.ok, result.divergence
    assert result.snapshots >= 6


async def test_check_accepts_a_record_whose_scopes_go_in_the_order_earlier_code_wrote(
        autojump_clock: trio.testing.MockClock) -> None:
    """Earlier code listed a record's scopes in the order the state had met them: the events
    of "run" before those of "msg:m". The same record in another order is no divergence."""
    async with ActorTestKit() as kit:
        ref = await _interleaved(kit, crash=False)
    snapshot = await kit.store.load_snapshot(ref.stream)
    assert snapshot is not None
    record = snapshot.state["record"]
    calls = [item for item in record if item["kind"] != "event"]
    events = [item for item in record if item["kind"] == "event"]
    met = calls + sorted(events, key=lambda item: item["scope"] != "run")
    assert met != record
    await kit.store.save_snapshot(ref.stream, snapshot.version, {**snapshot.state, "record": met})
    assert (await replay.check(kit.store, Interleaved, "i")).ok


# -- changes ---------------------------------------------------------------------------------------


def test_changes_name_the_paths_that_differ() -> None:
    before = {"a": 1, "b": {"c": [1, 2], "d": "x"}, "gone": 1}
    after = {"a": 1, "b": {"c": [1, 3], "d": "y"}, "new": 2}
    assert replay.changes(before, after) == [
        ("b.c[1]", 2, 3), ("b.d", "x", "y"), ("gone", 1, ...), ("new", ..., 2)]
    assert replay.changes([1], [1, 2]) == [("(state)", [1], [1, 2])]
    assert replay.changes(before, before) == []


# -- JSON Lines --------------------------------------------------------------------------------


async def _recorded_on(store: EventStore) -> None:
    async with ActorTestKit(store=store) as kit:
        ref = await kit.spawn(Subscription, "alice")
        await ref.ask(Subscribe("pro"))
        await kit.advance(70 * DAY)


async def test_a_log_exported_from_sqlite_replays_to_the_same_state_elsewhere(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    out = io.StringIO()
    async with SQLiteEventStore(tmp_path / "source.db") as source:
        await _recorded_on(source)
        expected = await replay.state_at(source, Subscription, "alice")
        assert await replay.export_jsonl(source, STREAM, out) == expected.version
    lines = out.getvalue().splitlines(keepends=True)
    assert any('"snapshot"' in line for line in lines)
    first = json.loads(lines[0])
    assert set(first) == {"stream", "version", "position", "recorded_at", "type", "data",
                          "metadata", "id"}
    targets: list[EventStore] = [MemoryEventStore(), SQLiteEventStore(tmp_path / "copy.db")]
    for target in targets:
        async with target:
            assert await replay.import_jsonl(target, lines) == {STREAM: expected.version}
            copy = await replay.state_at(target, Subscription, "alice")
            assert copy == expected and copy.version == expected.version
            assert (await replay.check(target, Subscription, "alice")).ok
            ids = [str(e.id) async for e in target.read(STREAM)]
            assert ids == [json.loads(line)["id"] for line in lines if '"snapshot"' not in line]


async def test_a_log_imports_into_postgres_and_replays_to_the_same_state(
        postgres_store: EventStore) -> None:
    memory = MemoryEventStore()
    await _import_golden(memory)
    expected = await replay.state_at(memory, Subscription, "alice")
    stream = "Subscription-pg"
    lines = [line.replace(STREAM, stream) for line in
             (GOLDEN / "subscription.jsonl").read_text().splitlines(keepends=True)]
    lines = [line for line in lines if '"snapshot"' not in line or stream in line]
    await replay.import_jsonl(postgres_store, [_fresh_id(line) for line in lines])
    copy = await replay.state_at(postgres_store, Subscription, "pg")
    assert (copy.charged, copy.total, copy.reminders) == (
        expected.charged, expected.total, expected.reminders)


def _fresh_id(line: str) -> str:
    """The same event under a new id (a shared server may hold the golden ids already)."""
    item = json.loads(line)
    item.pop("id", None)
    return json.dumps(item) + "\n"


async def _import_fails(lines: list[str], match: str) -> MemoryEventStore:
    store = MemoryEventStore()
    with pytest.raises(ReplayError, match=match):
        await replay.import_jsonl(store, lines, source="log.jsonl")
    assert [e async for e in store.read_all()] == []  # all or nothing
    return store


def _golden_lines() -> list[str]:
    return (GOLDEN / "subscription.jsonl").read_text().splitlines(keepends=True)


async def test_import_rejects_a_truncated_last_line_and_writes_nothing() -> None:
    lines = _golden_lines()
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    await _import_fails(lines, r"log.jsonl line 23: not valid JSON .* the file looks truncated")


async def test_import_rejects_an_unknown_event_type_naming_the_line() -> None:
    lines = _golden_lines()
    at = next(n for n, line in enumerate(lines) if '"golden.Reminded"' in line)
    assert at == 8  # line 9: versions 1-5, a snapshot, versions 6-8
    lines[at] = lines[at].replace('"golden.Reminded"', '"golden.Nobody"')
    await _import_fails(lines, r"line 9: cannot decode stream 'Subscription-alice', version 8, "
                               r"type 'golden.Nobody'")


async def test_import_rejects_a_version_gap_and_a_late_start() -> None:
    lines = [line for line in _golden_lines() if '"version": 7,' not in line]
    await _import_fails(lines, r"line 8: stream 'Subscription-alice' goes from version 6 to 8")
    await _import_fails(_golden_lines()[1:], "starts at version 2; an imported log starts at "
                                             "version 1")


async def test_import_rejects_bad_lines() -> None:
    good = _golden_lines()[0]
    item = json.loads(good)
    cases = [
        ("[1, 2]\n", "line 1: expected a JSON object, got list"),
        (json.dumps({**item, "version": "1"}) + "\n", "'version' must be an int"),
        (json.dumps({k: v for k, v in item.items() if k != "data"}) + "\n", "has no 'data'"),
        (json.dumps({**item, "id": "nope"}) + "\n", "'id' must be a UUID"),
        (json.dumps({**item, "stream": ""}) + "\n", "'stream' must be a non-empty string"),
        (json.dumps({"snapshot": {"stream": STREAM, "version": 1, "state": {}}}) + "\n",
         "must follow the event of that version"),
    ]
    for line, match in cases:
        await _import_fails([line], match)


def _inflight_lines() -> list[str]:
    return (GOLDEN / "subscription-inflight.jsonl").read_text().splitlines(keepends=True)


async def _all_events(store: EventStore) -> list[tuple[str, int, str]]:
    return [(e.stream, e.version, str(e.id)) async for e in store.read_all()]


async def test_a_stream_holding_other_events_is_refused_before_anything_is_written() -> None:
    store = MemoryEventStore()
    # The same events under other ids: another log, not an interrupted import of this one.
    await replay.import_jsonl(store, [_fresh_id(line) for line in _inflight_lines()
                                      if '"snapshot"' not in line])
    before = await _all_events(store)
    with pytest.raises(ReplayError, match=r"'Subscription-bob' already holds 12 events in the "
                                          r"target store and they are not the log's \(its "
                                          r"event 1 has another id"):
        await replay.import_jsonl(store, _golden_lines() + _inflight_lines())
    assert await _all_events(store) == before
    assert await store.load_snapshot("Subscription-bob") is None
    # More events than the log has: the stream went on after an import.
    extra = MemoryEventStore()
    await replay.import_jsonl(extra, _inflight_lines())
    await extra.append("Subscription-bob", [extra.codec.new_event(actors.NotificationFired((0,)))])
    with pytest.raises(ReplayError, match=r"already holds 13 events .* \(the log has 12\)"):
        await replay.import_jsonl(extra, _golden_lines() + _inflight_lines())
    assert await extra.last_version(STREAM) == 0


async def test_an_interrupted_import_is_finished_by_running_it_again(tmp_path: Path) -> None:
    both = _golden_lines() + _inflight_lines()
    async with SQLiteEventStore(tmp_path / "target.db") as store:
        # As if the first run was killed after appending one stream, before its snapshots.
        await replay.import_jsonl(store, [line for line in _inflight_lines()
                                          if '"snapshot"' not in line])
        assert await replay.import_jsonl(store, both) == {STREAM: 19, "Subscription-bob": 0}
        after = await _all_events(store)
        assert await replay.import_jsonl(store, both) == {STREAM: 0, "Subscription-bob": 0}
        assert await _all_events(store) == after  # nothing twice
        expected = [(json.loads(line)["stream"], json.loads(line)["version"],
                     json.loads(line)["id"]) for line in both if '"snapshot"' not in line]
        assert sorted(after) == sorted(expected)
        snapshot = await store.load_snapshot("Subscription-bob")
        assert snapshot is not None and snapshot.version == 9
        assert (await replay.check(store, Subscription, "bob")).ok


async def test_lines_without_ids_get_the_same_ids_on_a_re_run() -> None:
    store = MemoryEventStore()
    lines = [_fresh_id(line) for line in _golden_lines() if '"snapshot"' not in line]
    assert await replay.import_jsonl(store, lines) == {STREAM: 19}
    ids = await _all_events(store)
    assert await replay.import_jsonl(store, lines) == {STREAM: 0}
    assert await _all_events(store) == ids
    # Derived from the content: another event at the same version gets another id.
    changed = json.loads(lines[0])
    changed["metadata"] = {"note": "edited"}
    other = MemoryEventStore()
    await replay.import_jsonl(other, [json.dumps(changed) + "\n"])
    assert (await _all_events(other))[0][2] != ids[0][2]


async def test_import_rejects_an_id_used_twice_in_the_log() -> None:
    lines = _golden_lines()[:3]
    copied = json.loads(lines[2])
    copied["id"] = json.loads(lines[0])["id"]
    await _import_fails([lines[0], lines[1], json.dumps(copied) + "\n"],
                        r"log.jsonl line 3: id [0-9a-f-]+ is already the id of stream "
                        r"'Subscription-alice' version 1 \(line 1\): every event needs its own id")


async def test_a_log_whose_timers_contradict_each_other_is_refused() -> None:
    store = MemoryEventStore()
    await store.append(STREAM, [store.codec.new_event(actors.NotificationFired((3,)))])
    with pytest.raises(ReplayError, match=r"'Subscription-alice' at version 1: "
                                          "actors.NotificationFired contradicts"):
        async for _ in replay.steps(store, Subscription, "alice"):
            pass
