"""``python -m actors``: log, replay, export/import, check (golden logs), timers, and errors."""

from __future__ import annotations

import importlib
import importlib.metadata
import io
import json
import signal
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import actors
import eventstore
from actors import durable
from actors._cli import main
from eventstore.memory import MemoryEventStore
from eventstore.sqlite import SQLiteEventStore

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
import golden_actors  # noqa: E402, F401 - imported by the one name the CLI tests use too

SUBSCRIPTION = "golden_actors:Subscription"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def golden_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """A SQLite store holding both golden logs."""
    url = f"sqlite:///{tmp_path}/golden.db"
    for name in ("subscription.jsonl", "subscription-inflight.jsonl"):
        status, _, err = run(capsys, "import", "-m", "golden_actors", url, str(GOLDEN / name))
        assert status == 0, err
    return url


# -- check: golden logs --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["subscription.jsonl", "subscription-inflight.jsonl"])
def test_the_golden_logs_still_replay(capsys: pytest.CaptureFixture[str], name: str) -> None:
    status, out, err = run(capsys, "check", "--actor", SUBSCRIPTION, str(GOLDEN / name))
    assert (status, err) == (0, "")
    assert ": ok: " in out and "recoveries re-run" in out


@pytest.mark.parametrize(("cls", "version", "says"), [
    ("DriftedSleep", 1, "NonDeterminismError"),
    ("DriftedApply", 15, "the snapshot at this version differs"),
    ("Unguarded", 12, "emit(Charged(month=1"),
])
def test_check_fails_with_status_1_at_the_first_divergence(
        capsys: pytest.CaptureFixture[str], cls: str, version: int, says: str) -> None:
    status, out, _ = run(capsys, "check", "--actor", f"golden_actors:{cls}",
                         str(GOLDEN / "subscription.jsonl"))
    assert status == 1
    assert f"DIVERGED: stream 'Subscription-alice', version {version}: " in out and says in out


def test_python_m_actors_passes_the_exit_status(tmp_path: Path) -> None:
    def status(*argv: str) -> int:
        return subprocess.run([sys.executable, "-m", "actors", *argv], cwd=GOLDEN, timeout=60,
                              capture_output=True).returncode

    log = str(GOLDEN / "subscription.jsonl")
    assert status("check", "--actor", SUBSCRIPTION, log) == 0
    assert status("check", "--actor", "golden_actors:DriftedSleep", log) == 1
    assert status("log", f"sqlite:///{tmp_path}/none.db", "S-1") == 2


def test_the_console_script_is_main() -> None:
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="actors")
    assert script.load() is main


# -- log, replay, export, import -----------------------------------------------------------------


def test_log_prints_a_timeline(capsys: pytest.CaptureFixture[str], golden_db: str) -> None:
    status, out, _ = run(capsys, "log", golden_db, "Subscription-alice")
    lines = out.splitlines()
    assert status == 0 and len(lines) == 20
    assert lines[0].split() == ["VERSION", "POSITION", "TIME", "TYPE", "DATA"]
    version, position, _time, kind, data = lines[2].split(maxsplit=4)
    assert (version, position, kind, data) == ("2", "2", "golden.Subscribed", '{"plan": "pro"}')
    status, out, _ = run(capsys, "log", "--json", golden_db, "Subscription-bob")
    items = [json.loads(line) for line in out.splitlines()]
    assert [item["version"] for item in items] == list(range(1, 13))
    assert items[1]["data"] == {"plan": "basic"} and items[1]["position"] == 21


def test_replay_prints_each_state_change(capsys: pytest.CaptureFixture[str],
                                         golden_db: str) -> None:
    status, out, _ = run(capsys, "replay", golden_db, "Subscription-alice", "--actor",
                         SUBSCRIPTION)
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == ('state at version 0: {"plan": null, "charged": [], "total": 0, '
                        '"reminders": []}')
    at = lines.index(next(line for line in lines if line.split()[:2] == ["14",
                                                                         "golden.Charged"]))
    assert lines[at + 1].strip() == (
        'state: {"plan": "pro", "charged": [1, 2], "total": 20, "reminders": ["welcome"]}')
    assert [line.strip() for line in lines[at + 2:at + 4]] == [
        "~ charged: [1] -> [1, 2]", "~ total: 10 -> 20"]
    assert lines[at + 4].split()[:2] == ["15", "actors.SleepStarted"]  # no state change


def test_replay_to_a_version_and_as_json(capsys: pytest.CaptureFixture[str],
                                         golden_db: str) -> None:
    status, out, _ = run(capsys, "replay", golden_db, "Subscription-alice", "--actor",
                         SUBSCRIPTION, "--to", "11")
    assert status == 0
    assert out.splitlines()[0].startswith('state at version 10: {"plan": "pro", "charged": []')
    assert "~ total: 0 -> 10" in out and len(out.splitlines()) == 5
    status, out, _ = run(capsys, "replay", "--json", golden_db, "Subscription-alice",
                         "--actor", SUBSCRIPTION)
    items = [json.loads(line) for line in out.splitlines()]
    assert len(items) == 19 and items[-1]["state"]["total"] == 30
    assert items[10]["changes"] == [{"path": "charged", "before": [], "after": [1]},
                                    {"path": "total", "before": 0, "after": 10}]


def test_export_and_import_round_trip_between_stores(capsys: pytest.CaptureFixture[str],
                                                     golden_db: str, tmp_path: Path) -> None:
    exported = tmp_path / "alice.jsonl"
    status, _, err = run(capsys, "export", golden_db, "Subscription-alice", "-o", str(exported))
    assert status == 0 and "exported 19 events" in err
    status, out, _ = run(capsys, "export", golden_db, "Subscription-alice")
    assert out == exported.read_text()
    copy = f"sqlite:///{tmp_path}/copy.db"
    status, out, _ = run(capsys, "import", copy, str(exported))
    assert status == 0 and out == "imported 19 events into 'Subscription-alice'\n"

    def comparable(text: str) -> list[Any]:
        items = [json.loads(line) for line in text.splitlines()]
        for item in items:
            item.pop("position", None)  # the target store's own
        return items

    again = run(capsys, "export", copy, "Subscription-alice")[1]
    assert comparable(again) == comparable(exported.read_text())  # recorded_at kept too
    assert '"recorded_at": "2026-' in again


def test_import_reads_stdin(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO((GOLDEN / "subscription.jsonl").read_text()))
    status, out, _ = run(capsys, "import", f"sqlite:///{tmp_path}/in.db", "-")
    assert status == 0 and "19 events" in out


# -- timers --------------------------------------------------------------------------------------


@attrs.define
class Alarm(actors.Actor):
    snapshot_every = 1

    async def receive(self, message: Any) -> Any:
        now = await durable.now.aio()
        self.notifier.notify_at(now + timedelta(seconds=message), f"in {message} s")


@attrs.define
class Sleeper(actors.Actor):
    async def run(self) -> None:
        await durable.sleep.aio(30)
        await durable.sleep.aio(7200)


def test_timers_lists_notifications_and_sleeps_soonest_first(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/timers.db"
    memory = MemoryEventStore()  # virtual time and SQLite's threads do not mix: copy after

    async def record() -> None:
        clock = actors.VirtualClock()
        async with actors.ActorSystem(memory, clock=clock) as system:
            ref = await system.spawn(Alarm, "a")
            await ref.ask(3600)
            await ref.ask(60)
            await system.spawn(Sleeper, "s")
            await trio.sleep(40)  # the first sleep is over, the second one is waiting
        async with trio.open_nursery() as nursery:  # not in the system's index
            loose = await actors.spawn(nursery, Alarm, "loose", store=memory, clock=clock)
            await loose.ask(600)
            await loose.stop()

    async def copy() -> None:
        async with SQLiteEventStore(tmp_path / "timers.db") as store:
            streams: dict[str, list[eventstore.NewEvent]] = {}
            async for e in memory.read_all():
                streams.setdefault(e.stream, []).append(
                    eventstore.NewEvent(e.type, e.data, e.metadata, e.id))
            for stream, events in streams.items():
                await store.append(stream, events)
                snapshot = await memory.load_snapshot(stream)
                if snapshot is not None:
                    await store.save_snapshot(stream, snapshot.version, snapshot.state)
            for entry in await memory.work():  # the system's work index
                await store.set_wake(entry.stream, entry.wake_at)
            # The alarm's timers are in its snapshot only now: the index still finds it.
            await store.delete_up_to("Alarm-a", await store.last_version("Alarm-a"))

    trio.run(record, clock=trio.testing.MockClock(autojump_threshold=0))
    trio.run(copy)
    status, out, _ = run(capsys, "timers", url)
    assert status == 0
    rows = [line.split(maxsplit=2) for line in out.splitlines()[1:]]
    assert [(due, stream) for due, stream, _ in rows] == [
        ("2026-01-01T00:01:00+00:00", "Alarm-a"),
        ("2026-01-01T00:10:40+00:00", "Alarm-loose"),
        ("2026-01-01T01:00:00+00:00", "Alarm-a"),
        ("2026-01-01T02:00:30+00:00", "Sleeper-s"),
    ]
    assert rows[0][2] == "notification 'in 60 s'"
    assert rows[3][2] == "sleep run#2 (2:00:00 from 2026-01-01T00:00:30+00:00)"
    status, out, _ = run(capsys, "timers", "--json", url)
    items = [json.loads(line) for line in out.splitlines()]
    assert items[3] == {"due": "2026-01-01T02:00:30+00:00", "stream": "Sleeper-s",
                        "kind": "sleep", "scope": "run", "index": 2,
                        "started_at": "2026-01-01T00:00:30+00:00", "seconds": 7200.0}


def test_timers_on_an_empty_store(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run(capsys, "import", f"sqlite:///{tmp_path}/t.db", str(GOLDEN / "subscription.jsonl"),
        "-m", "golden_actors")
    assert run(capsys, "timers", f"sqlite:///{tmp_path}/t.db")[1] == "no pending timers\n"


TOKENS = """
from datetime import timedelta
from typing import Any

import attrs

import actors
import eventstore
from actors import durable


@eventstore.event_type("tokens.Remind")
@attrs.frozen
class Remind:
    what: str


@attrs.define
class Reminder(actors.Actor):
    snapshot_every = 2

    async def receive(self, message: Any) -> Any:
        now = await durable.now.aio()
        self.notifier.notify_at(now + timedelta(seconds=message), Remind(f"in {message} s"))

    async def on_notify(self) -> None:
        self.notifier.due(await durable.now.aio())
"""


def test_timers_decode_attrs_tokens_with_m_and_show_them_raw_without(
        tmp_path: Path) -> None:
    (tmp_path / "tokens_mod.py").write_text(TOKENS)
    sys.path.insert(0, str(tmp_path))
    try:
        tokens = importlib.import_module("tokens_mod")
    finally:
        sys.path.remove(str(tmp_path))
    memory = MemoryEventStore()

    async def record() -> None:
        async with actors.ActorSystem(memory, clock=actors.VirtualClock()) as system:
            ref = await system.spawn(tokens.Reminder, "r")
            await ref.ask(60)
            await ref.ask(7200)
            await trio.sleep(120)  # the first one fired

    async def copy() -> None:
        async with SQLiteEventStore(tmp_path / "tokens.db") as store:
            async for e in memory.read_all():
                await store.append(e.stream, [eventstore.NewEvent(e.type, e.data, e.metadata,
                                                                  e.id)])

    trio.run(record, clock=trio.testing.MockClock(autojump_threshold=0))
    trio.run(copy)

    def timers(*argv: str) -> list[str]:
        child = subprocess.run([sys.executable, "-m", "actors", "timers",
                                f"sqlite:///{tmp_path}/tokens.db", *argv], cwd=tmp_path,
                               capture_output=True, text=True, timeout=60)
        assert (child.returncode, child.stderr) == (0, "")
        return child.stdout.splitlines()

    raw = timers()
    assert len(raw) == 2 and raw[1].split()[1:3] == ["Reminder-r", "notification"]
    assert "<undecoded {" in raw[1] and "tokens.Remind" in raw[1] and "in 7200 s" in raw[1]
    decoded = timers("-m", "tokens_mod")
    assert decoded[1].endswith("notification Remind(what='in 7200 s')")
    (item,) = [json.loads(line) for line in timers("-m", "tokens_mod", "--json")]
    assert item["token"] == "Remind(what='in 7200 s')" and item["due"].endswith("+00:00")


# -- errors: one line, status 2 ------------------------------------------------------------------


def _without_id(line: str) -> str:
    item = json.loads(line)
    item.pop("id", None)
    return json.dumps(item) + "\n"


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    lines = (GOLDEN / "subscription.jsonl").read_text().splitlines(keepends=True)
    files = {
        "truncated": "".join(lines[:-1]) + lines[-1][:40],
        "unknown": "".join(lines).replace('"golden.Reminded"', '"golden.Gone"'),
        "gap": "".join(line for line in lines if '"version": 3,' not in line),
        "other_ids": "".join(_without_id(line) for line in lines),
    }
    paths = {}
    for name, text in files.items():
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_text(text)
    return paths


@pytest.mark.parametrize(("argv", "says"), [
    (["log", "nosql://x", "S-1"], "unknown store URL 'nosql://x'"),
    (["log", "sqlite:///{tmp}/missing.db", "S-1"], "no SQLite database at"),
    (["log", "{db}", "Subscription-carol"], "stream 'Subscription-carol' has no events"),
    (["replay", "{db}", "Subscription-alice", "--actor", "nope_module:X"],
     "cannot import 'nope_module' (--actor nope_module:X): ModuleNotFoundError"),
    (["replay", "{db}", "Subscription-alice", "--actor", "golden_actors:Nope"],
     "module 'golden_actors' has no 'Nope'"),
    (["replay", "{db}", "Subscription-alice", "--actor", "golden_actors:Subscribe"],
     "is not a subclass of actors.Actor"),
    (["replay", "{db}", "Subscription-alice", "--actor", "Subscription"], "takes module:Class"),
    (["replay", "{db}", "Other-alice", "--actor", SUBSCRIPTION],
     "stream 'Other-alice' is not a Subscription stream"),
    (["replay", "{db}", "Subscription-alice", "--actor", SUBSCRIPTION, "--to", "20"],
     "--to 20 is outside stream 'Subscription-alice': it has versions 1 to 19"),
    (["import", "{db}", "{other_ids}"],
     "stream 'Subscription-alice' already holds 19 events in the target store and they are "
     "not the log's"),
    (["check", "--actor", SUBSCRIPTION, "{truncated}"],
     "truncated.jsonl line 23: not valid JSON"),
    (["check", "--actor", SUBSCRIPTION, "{unknown}"],
     "unknown.jsonl line 9: cannot decode stream 'Subscription-alice', version 8, type "
     "'golden.Gone'"),
    (["check", "--actor", SUBSCRIPTION, "{gap}"],
     "gap.jsonl line 3: stream 'Subscription-alice' goes from version 2 to 4"),
    (["import", "sqlite:///{tmp}/new.db", "{gap}"], "gap.jsonl line 3"),
    (["check", "--actor", "golden_actors:Subscription", "{tmp}/none.jsonl"], "no log file at"),
    (["check", "--actor", "test_cli:Alarm", str(GOLDEN / "subscription.jsonl")],
     "holds no Alarm stream (named Alarm-<id>); it holds 'Subscription-alice'"),
])
def test_errors_print_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], golden_db: str,
                                          tmp_path: Path, argv: list[str], says: str) -> None:
    names = {"db": golden_db, "tmp": str(tmp_path),
             **{k: str(v) for k, v in _bad_files(tmp_path).items()}}
    status, out, err = run(capsys, *(arg.format(**names) for arg in argv))
    assert status == 2
    assert out == "" and err.count("\n") == 1 and err.startswith(f"actors {argv[0]}: error: ")
    assert says in err


def test_a_failed_import_writes_nothing(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/target.db"
    bad = _bad_files(tmp_path)["truncated"]
    assert run(capsys, "import", url, str(bad))[0] == 2
    status, _, err = run(capsys, "log", url, "Subscription-alice")
    assert status == 2 and "no SQLite database" in err


# -- import: resumable, and no new file when it fails --------------------------------------------


def _many_streams(tmp_path: Path, count: int) -> Path:
    """The golden log copied into ``count`` streams (ids derived, as the lines have none)."""
    text = "".join(_without_id(line) for line in
                   (GOLDEN / "subscription.jsonl").read_text().splitlines(keepends=True))
    path = tmp_path / "many.jsonl"
    path.write_text("".join(text.replace("Subscription-alice", f"Subscription-s{n}")
                            for n in range(count)))
    return path


async def _stored(url: str) -> tuple[list[tuple[str, int, str]], list[int | None]]:
    """Every event (stream, version, id) in position order, and each stream's snapshot."""
    async with eventstore.open(url) as store:
        events = [(e.stream, e.version, str(e.id)) async for e in store.read_all()]
        snapshots = []
        for stream in sorted({stream for stream, _, _ in events}):
            snapshot = await store.load_snapshot(stream)
            snapshots.append(None if snapshot is None else snapshot.version)
    return events, snapshots


KILLED_CHILD = """
import os, signal, sys
from eventstore.sqlite import SQLiteEventStore

append, appended = SQLiteEventStore.append, 0

async def append_then_die(self, *args, **kwargs):
    global appended
    result = await append(self, *args, **kwargs)
    appended += 1
    if appended == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    return result

SQLiteEventStore.append = append_then_die
from actors._cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("killed_after", [2, 6])
def test_an_import_killed_mid_way_is_finished_by_running_it_again(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, killed_after: int) -> None:
    log = _many_streams(tmp_path, 6)
    url = f"sqlite:///{tmp_path}/target.db"
    argv = ["import", "-m", "golden_actors", url, str(log)]
    # SIGKILLed right after the k-th stream's append committed (the 6th: before the snapshots).
    first = subprocess.run([sys.executable, "-c", KILLED_CHILD, str(killed_after), *argv],
                           cwd=GOLDEN, capture_output=True, text=True, timeout=120)
    assert first.returncode == -signal.SIGKILL, first.stderr
    events, snapshots = trio.run(_stored, url)
    assert len(events) == 19 * killed_after and snapshots == [None] * killed_after

    again = subprocess.run([sys.executable, "-m", "actors", *argv], cwd=GOLDEN,
                           capture_output=True, text=True, timeout=120)
    assert (again.returncode, again.stderr) == (0, "")
    assert again.stdout.splitlines() == [
        f"'Subscription-s{n}' already held its 19 events" if n < killed_after
        else f"imported 19 events into 'Subscription-s{n}'" for n in range(6)]

    reference = f"sqlite:///{tmp_path}/reference.db"
    assert run(capsys, "import", reference, str(log))[0] == 0
    events, snapshots = trio.run(_stored, url)
    expected, expected_snapshots = trio.run(_stored, reference)
    assert len(events) == len(set(events)) == 6 * 19  # every stream once, nothing twice
    assert sorted(events) == sorted(expected)
    assert snapshots == expected_snapshots == [19] * 6  # the newest of each stream


def test_running_an_import_again_adds_nothing(capsys: pytest.CaptureFixture[str],
                                              golden_db: str) -> None:
    before = trio.run(_stored, golden_db)
    status, out, err = run(capsys, "import", golden_db, str(GOLDEN / "subscription.jsonl"))
    assert (status, out, err) == (0, "'Subscription-alice' already held its 19 events\n", "")
    assert trio.run(_stored, golden_db) == before


def _listing(tmp_path: Path) -> list[str]:
    return sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*"))


@pytest.mark.parametrize(("target", "source", "says"), [
    ("sqlite:///{tmp}/new.db", "{truncated}", "not valid JSON"),
    ("sqlite:///{tmp}/new.db", "{unknown}", "cannot decode"),
    ("sqlite:///{tmp}/new.db", "{tmp}/missing.jsonl", "no log file at"),
    ("sqlite:///{tmp}/new.db", "{empty}", "holds no events"),
    ("sqlite:///{tmp}/no-such-dir/new.db", str(GOLDEN / "subscription.jsonl"), "cannot open"),
    ("nosql://{tmp}/new.db", str(GOLDEN / "subscription.jsonl"), "unknown store URL"),
])
def test_a_failed_import_leaves_no_new_file(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                            target: str, source: str, says: str) -> None:
    names = {"tmp": str(tmp_path), **{k: str(v) for k, v in _bad_files(tmp_path).items()}}
    (tmp_path / "empty.jsonl").write_text("\n")
    names["empty"] = str(tmp_path / "empty.jsonl")
    before = _listing(tmp_path)
    status, out, err = run(capsys, "import", target.format(**names), source.format(**names))
    assert (status, out) == (2, "") and says in err
    assert _listing(tmp_path) == before


def test_an_import_that_fills_the_disk_removes_the_file_it_created(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    log = _many_streams(tmp_path, 30)
    reference = tmp_path / "reference.db"
    assert run(capsys, "import", f"sqlite:///{reference}", str(log))[0] == 0
    with sqlite3.connect(reference) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    connection = SQLiteEventStore._connection

    def small_disk(self: SQLiteEventStore) -> sqlite3.Connection:
        conn = connection(self)
        conn.execute(f"PRAGMA max_page_count = {pages // 2}")  # a real SQLITE_FULL mid-way
        return conn

    monkeypatch.setattr(SQLiteEventStore, "_connection", small_disk)
    before = _listing(tmp_path)
    status, _, err = run(capsys, "import", f"sqlite:///{tmp_path}/target.db", str(log))
    assert status == 2 and "database or disk is full" in err
    assert _listing(tmp_path) == before  # target.db and its -wal and -shm are gone


def test_a_failed_import_never_removes_a_database_that_existed(
        capsys: pytest.CaptureFixture[str], golden_db: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    held = trio.run(_stored, golden_db)
    status, _, err = run(capsys, "import", golden_db, str(_bad_files(tmp_path)["other_ids"]))
    assert status == 2 and "not the log's" in err
    assert trio.run(_stored, golden_db) == held
    connection = SQLiteEventStore._connection

    def full_disk(self: SQLiteEventStore) -> sqlite3.Connection:
        conn = connection(self)
        conn.execute("PRAGMA max_page_count = 1")  # below its size: every write is SQLITE_FULL
        return conn

    monkeypatch.setattr(SQLiteEventStore, "_connection", full_disk)
    log = _many_streams(tmp_path, 3)
    status, _, err = run(capsys, "import", golden_db, log.as_posix())
    assert status == 2 and "database or disk is full" in err
    monkeypatch.undo()
    # SQLite keeps max_page_count at least the file's size, so a stream may still fit in its
    # free pages: what is there is the old content, then whole streams, which a re-run accepts.
    events, _ = trio.run(_stored, golden_db)
    assert events[:len(held[0])] == held[0] and len(events) < len(held[0]) + 3 * 19
    assert (len(events) - len(held[0])) % 19 == 0
    assert run(capsys, "import", golden_db, log.as_posix())[0] == 0
    assert len(trio.run(_stored, golden_db)[0]) == len(held[0]) + 3 * 19


# -- the progress bar ----------------------------------------------------------------------------
