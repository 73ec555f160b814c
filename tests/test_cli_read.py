"""``python -m actors``: streams, log's options, --version/--help, progress bars, and that the
read-only commands leave every store as they found it (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from postgres_server import postgres_reason

import eventstore
from actors import _cli_util
from actors._cli import main
from eventstore.sqlite import SQLiteEventStore

GOLDEN = Path(__file__).parent / "golden"
if str(GOLDEN) not in sys.path:
    sys.path.insert(0, str(GOLDEN))
import golden_actors  # noqa: E402

SUBSCRIPTION = "golden_actors:Subscription"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one error line of a command that must exit with status 2."""
    status, out, err = run(capsys, *argv)
    assert (status, out) == (2, ""), err
    assert err.count("\n") == 1 and err.startswith(f"actors {argv[0]}: error: "), err
    return err


@pytest.fixture
def golden_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    url = f"sqlite:///{tmp_path}/golden.db"
    for name in ("subscription.jsonl", "subscription-inflight.jsonl"):
        status, _, err = run(capsys, "import", "-m", "golden_actors", url, str(GOLDEN / name))
        assert status == 0, err
    return url


# -- streams -------------------------------------------------------------------------------------


def test_streams_lists_kind_events_version_and_last_activity(
        capsys: pytest.CaptureFixture[str], golden_db: str) -> None:
    status, out, _ = run(capsys, "streams", golden_db)
    lines = out.splitlines()
    assert status == 0 and lines[0].split() == ["STREAM", "KIND", "EVENTS", "VERSION", "LAST",
                                                "ACTIVITY"]
    rows = [line.split() for line in lines[1:]]
    assert [row[:4] for row in rows] == [["Subscription-alice", "Subscription", "19", "19"],
                                         ["Subscription-bob", "Subscription", "12", "12"]]
    assert rows[0][4].endswith("+00:00")
    status, out, _ = run(capsys, "streams", "--json", golden_db)
    items = [json.loads(line) for line in out.splitlines()]
    assert items[1] | {"last_activity": None} == {
        "stream": "Subscription-bob", "kind": "Subscription", "id": "bob", "events": 12,
        "last_version": 12, "last_activity": None}


def test_streams_filters_by_prefix_and_kind(capsys: pytest.CaptureFixture[str],
                                            golden_db: str) -> None:
    out = run(capsys, "streams", golden_db, "--prefix", "Subscription-b")[1]
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["Subscription-bob"]
    out = run(capsys, "streams", golden_db, "--kind", "Subscription", "--json")[1]
    assert len(out.splitlines()) == 2
    assert run(capsys, "streams", golden_db, "--prefix", "Nope")[1] == \
        "no streams starting with 'Nope'\n"
    assert run(capsys, "streams", golden_db, "--prefix", "Nope", "--json")[1] == ""
    err = fails(capsys, "streams", golden_db, "--kind", "Subscriptoin")
    assert "no stream of kind 'Subscriptoin'" in err and "did you mean 'Subscription'?" in err


# -- log -----------------------------------------------------------------------------------------


def test_log_from_limit_and_type(capsys: pytest.CaptureFixture[str], golden_db: str) -> None:
    out = run(capsys, "log", golden_db, "Subscription-alice", "--from", "10", "--limit", "3")[1]
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["10", "11", "12"]
    out = run(capsys, "log", "--json", golden_db, "Subscription-alice", "--type", "Charged")[1]
    items = [json.loads(line) for line in out.splitlines()]
    assert [item["data"]["month"] for item in items] == [1, 2, 3]
    assert {item["type"] for item in items} == {"golden.Charged"}
    out = run(capsys, "log", "--json", golden_db, "Subscription-alice", "--type",
              "golden.Charged", "--type", "actors.RunCompleted", "--limit", "2")[1]
    assert [json.loads(line)["type"] for line in out.splitlines()] == ["golden.Charged"] * 2
    err = fails(capsys, "log", golden_db, "Subscription-alice", "--from", "20")
    assert "--from 20 is outside stream 'Subscription-alice': it has versions 1 to 19" in err


def test_log_shows_runtime_times_as_iso_instants(capsys: pytest.CaptureFixture[str],
                                                 golden_db: str) -> None:
    out = run(capsys, "log", golden_db, "Subscription-alice", "--type", "SleepStarted",
              "--limit", "1")[1]
    data = json.loads(out.splitlines()[1].split(maxsplit=4)[4])
    assert data["started_at"] == "2026-01-01T00:00:00+00:00" and data["seconds"] == 2592000.0
    out = run(capsys, "log", golden_db, "Subscription-alice", "--type", "TimeObserved",
              "--limit", "1")[1]
    assert json.loads(out.splitlines()[1].split(maxsplit=4)[4])["value"].endswith("+00:00")
    # --json is the export format: the stored data as it is.
    out = run(capsys, "log", "--json", golden_db, "Subscription-alice", "--limit", "1")[1]
    assert json.loads(out)["data"]["started_at"] == 1767225600.0


def test_log_to_a_file(capsys: pytest.CaptureFixture[str], golden_db: str,
                       tmp_path: Path) -> None:
    status, out, _ = run(capsys, "log", golden_db, "Subscription-bob", "-o",
                         str(tmp_path / "bob.txt"))
    assert (status, out) == (0, "")
    assert len((tmp_path / "bob.txt").read_text().splitlines()) == 13


def test_a_wrong_stream_name_suggests_near_ones(capsys: pytest.CaptureFixture[str],
                                                golden_db: str) -> None:
    err = fails(capsys, "log", golden_db, "Subscription-alise")
    assert "stream 'Subscription-alise' has no events in" in err
    assert "did you mean 'Subscription-alice'" in err
    err = fails(capsys, "export", golden_db, "Account-1")
    assert "did you mean" not in err and "`python -m actors streams URL` lists them" in err


FOLLOWER = """
import sys
from actors._cli import main
sys.exit(main(sys.argv[1:]))
"""


async def _append_charge(url: str, stream: str, month: int) -> None:
    async with eventstore.open(url) as store:
        event = store.codec.new_event(golden_actors.Charged(month, 10, 0.0))
        await store.append(stream, [event])
        await store.append("Subscription-bob", [store.codec.new_event(
            golden_actors.Charged(99, 1, 0.0))])  # another stream: not printed


def test_log_follow_prints_new_events_as_they_are_appended(golden_db: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", FOLLOWER, "log", "--json", "--follow", "--from", "19",
         "--limit", "3", golden_db, "Subscription-alice"],
        cwd=GOLDEN, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert json.loads(child.stdout.readline())["version"] == 19  # printed, then follows
        trio.run(_append_charge, golden_db, "Subscription-alice", 4)
        assert json.loads(child.stdout.readline())["data"]["month"] == 4
        trio.run(_append_charge, golden_db, "Subscription-alice", 5)
        assert json.loads(child.stdout.readline())["data"]["month"] == 5
        assert child.wait(timeout=60) == 0  # --limit 3 reached
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# -- --version, --help, --json on every command --------------------------------------------------


def test_version_and_examples_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == f"python -m actors (trio-actors) {_installed_version()}\n"
    for command in ("streams", "log", "replay", "export", "import", "check", "timers",
                    "dead-letters"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "examples:" in text and f"python -m actors {command} " in text
        assert "--json" in text and "--module" in text


def _installed_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("trio-actors")


def test_json_of_export_import_and_check(capsys: pytest.CaptureFixture[str], golden_db: str,
                                         tmp_path: Path) -> None:
    exported = str(tmp_path / "alice.jsonl")
    status, _, err = run(capsys, "export", "--json", golden_db, "Subscription-alice", "-o",
                         exported)
    assert json.loads(err) == {"stream": "Subscription-alice", "events": 19, "file": exported}
    status, out, _ = run(capsys, "import", "--json", f"sqlite:///{tmp_path}/c.db", exported)
    assert json.loads(out) == {"stream": "Subscription-alice", "imported": 19,
                               "already_held": 0}
    out = run(capsys, "import", "--json", f"sqlite:///{tmp_path}/c.db", exported)[1]
    assert json.loads(out) == {"stream": "Subscription-alice", "imported": 0,
                               "already_held": 19}
    status, out, _ = run(capsys, "check", "--json", "--actor", SUBSCRIPTION, exported)
    assert status == 0 and json.loads(out) == {
        "file": exported, "stream": "Subscription-alice", "ok": True, "events": 19,
        "snapshots": 4, "reruns": 3, "turns": 0, "divergence": None}
    status, out, _ = run(capsys, "check", "--json", "--actor", "golden_actors:DriftedSleep",
                         exported)
    item = json.loads(out)
    assert status == 1 and item["ok"] is False and item["divergence"]["version"] == 1
    assert "NonDeterminismError" in item["divergence"]["reason"]


@pytest.mark.parametrize("argv", [
    ["streams", "{url}"], ["log", "{url}", "S-1"], ["export", "{url}", "S-1"],
    ["replay", "{url}", "Subscription-1", "--actor", SUBSCRIPTION], ["timers", "{url}"],
    ["import", "{url}", str(GOLDEN / "subscription.jsonl")],
], ids=lambda argv: argv[0])
@pytest.mark.parametrize(("url", "says"), [
    ("nosql://x", "unknown store URL 'nosql://x'"),
    ("sqlite://", "a SQLite URL names a file"),
    ("postgresql://[::1", "malformed"),
    ("memory://", "lives only inside one process"),
])
def test_a_bad_url_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], url: str,
                               says: str) -> None:
    assert says in fails(capsys, *(arg.format(url=url) for arg in argv))


@pytest.mark.parametrize("argv", [
    ["streams", "{db}"], ["log", "{db}", "Subscription-alice"],
    ["export", "{db}", "Subscription-alice"], ["timers", "{db}"],
    ["replay", "{db}", "Subscription-alice", "--actor", SUBSCRIPTION],
    ["check", "--actor", SUBSCRIPTION, str(GOLDEN / "subscription.jsonl")],
    ["import", "{db}", str(GOLDEN / "subscription.jsonl")],
], ids=lambda argv: argv[0])
def test_an_unknown_module_is_one_line(capsys: pytest.CaptureFixture[str], golden_db: str,
                                       argv: list[str]) -> None:
    err = fails(capsys, *(arg.format(db=golden_db) for arg in argv), "-m", "no_such_mod")
    assert "cannot import 'no_such_mod' (-m no_such_mod): ModuleNotFoundError" in err


def test_an_undecodable_event_says_to_give_its_module(tmp_path: Path) -> None:
    # A fresh process: golden_actors is not imported there.
    child = subprocess.run([sys.executable, "-m", "actors", "import", f"sqlite:///{tmp_path}/y.db",
                            str(GOLDEN / "subscription.jsonl")], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == 2 and child.stderr.count("\n") == 1
    assert "cannot decode stream 'Subscription-alice', version 2" in child.stderr
    assert child.stderr.rstrip().endswith("give the module that defines it with -m MODULE)")


# -- progress bars -------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "says"), [
    (["export", "{db}", "Subscription-alice", "-o", "{tmp}/a.jsonl"], "export Subscription-alice"),
    (["log", "{db}", "Subscription-alice", "-o", "{tmp}/a.txt"], "log Subscription-alice"),
    (["import", "sqlite:///{tmp}/copy.db", str(GOLDEN / "subscription.jsonl")], "import"),
    (["check", "--actor", SUBSCRIPTION, str(GOLDEN / "subscription.jsonl")],
     "check Subscription-alice"),
    (["replay", "{db}", "Subscription-alice", "--actor", SUBSCRIPTION], "replay Subscription"),
])
def test_long_commands_draw_a_progress_bar_on_a_terminal(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, golden_db: str,
        tmp_path: Path, argv: list[str], says: str) -> None:
    names = {"db": golden_db, "tmp": str(tmp_path)}
    argv = [arg.format(**names) for arg in argv]
    status, _, err = run(capsys, *argv)
    assert (status, err.count("\r")) == (0, 0)  # not a terminal: no bar
    if argv[0] == "import":
        os.remove(tmp_path / "copy.db")
    monkeypatch.setattr(_cli_util, "stderr_is_terminal", lambda: True)
    status, _, err = run(capsys, *argv)
    assert status == 0 and f"\r{says}" in err and "%|" in err


# -- read-only commands leave no trace -----------------------------------------------------------


def _snapshot_of(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


READ_ONLY = [
    ["streams", "{url}"],
    ["log", "{url}", "Subscription-alice"],
    ["log", "{url}", "Subscription-alice", "--follow", "--limit", "1"],
    ["replay", "{url}", "Subscription-alice", "--actor", SUBSCRIPTION],
    ["export", "{url}", "Subscription-alice"],
    ["timers", "{url}"],
    ["dead-letters", "{url}"],
    ["dead-letters", "{url}", "--all", "--json"],
]


@pytest.mark.parametrize("argv", READ_ONLY, ids=lambda argv: argv[0])
@pytest.mark.parametrize("content", ["missing", "empty file", "other database", "store"])
def test_read_only_commands_create_nothing_in_sqlite(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str],
        content: str) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "app.db"
    if content == "empty file":
        path.write_bytes(b"")
    elif content == "other database":
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE notes (text TEXT)")
        conn.close()
    elif content == "store":
        run(capsys, "import", f"sqlite:///{path}", str(GOLDEN / "subscription.jsonl"))
    before = _snapshot_of(folder)
    status, out, err = run(capsys, *(arg.format(url=f"sqlite:///{path}") for arg in argv))
    assert _snapshot_of(folder) == before  # no file, table or byte more
    if content == "store":
        assert status == 0, err
    else:
        assert (status, out) == (2, "") and err.count("\n") == 1
        assert ("no SQLite database at" if content == "missing" else
                "is not an event store") in err


def test_an_older_sqlite_store_is_not_upgraded_by_a_reader(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    run(capsys, "import", f"sqlite:///{path}", str(GOLDEN / "subscription.jsonl"))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    before = path.read_bytes()
    err = fails(capsys, "log", f"sqlite:///{path}", "Subscription-alice")
    assert "older than this library's" in err and path.read_bytes() == before


# -- PostgreSQL: ?schema= and no schema created --------------------------------------------------


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    url, reason = postgres_reason()
    if url is None:
        if os.environ.get("ACTORS_REQUIRE_POSTGRES"):
            pytest.fail(reason)
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex}"
    yield url, schema
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _schemas(url: str) -> set[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT nspname FROM pg_namespace")}


@pytest.mark.postgres
@pytest.mark.parametrize("argv", READ_ONLY, ids=lambda argv: argv[0])
def test_read_only_commands_create_no_postgres_schema(
        capsys: pytest.CaptureFixture[str], pg_schema: tuple[str, str], argv: list[str]) -> None:
    url, schema = pg_schema
    assert schema not in _schemas(url)
    err = fails(capsys, *(arg.format(url=f"{url}?schema={schema}") for arg in argv))
    assert f"schema {schema!r} on PostgreSQL" in err and "holds no event store" in err
    # Only that schema could have been created (other test runs on the server come and go).
    assert schema not in _schemas(url)


@pytest.mark.postgres
def test_a_postgres_schema_is_named_in_the_url(capsys: pytest.CaptureFixture[str],
                                               pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    target = f"{url}?schema={schema}"
    assert run(capsys, "import", target, str(GOLDEN / "subscription.jsonl"))[0] == 0
    assert schema in _schemas(url)
    status, out, _ = run(capsys, "streams", "--json", target)
    assert status == 0 and json.loads(out)["stream"] == "Subscription-alice"
    assert run(capsys, "streams", url + "?schema=t_elsewhere_" + uuid.uuid4().hex)[0] == 2

    async def schema_of() -> str:
        async with eventstore.open(target) as store:
            return store.schema  # type: ignore[attr-defined, no-any-return]

    assert trio.run(schema_of) == schema


@pytest.mark.postgres
def test_export_import_keeps_recorded_at_through_postgres(
        capsys: pytest.CaptureFixture[str], pg_schema: tuple[str, str], golden_db: str,
        tmp_path: Path) -> None:
    url, schema = pg_schema
    target = f"{url}?schema={schema}"
    exported = run(capsys, "export", golden_db, "Subscription-bob")[1]
    (tmp_path / "bob.jsonl").write_text(exported)
    assert run(capsys, "import", target, str(tmp_path / "bob.jsonl"))[0] == 0
    again = run(capsys, "export", target, "Subscription-bob")[1]
    times = [json.loads(line).get("recorded_at") for line in exported.splitlines()]
    assert [json.loads(line).get("recorded_at") for line in again.splitlines()] == times


def test_recorded_at_must_be_an_aware_iso_time(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    lines = (GOLDEN / "subscription.jsonl").read_text().splitlines(keepends=True)
    bad = tmp_path / "naive.jsonl"
    bad.write_text("".join(lines[:2]) + lines[2].replace("+00:00", ""))
    err = fails(capsys, "import", f"sqlite:///{tmp_path}/n.db", str(bad))
    assert "naive.jsonl line 3: 'recorded_at' must be an ISO 8601 time with a UTC offset" in err
    assert not (tmp_path / "n.db").exists()


def test_sqlite_store_without_create_refuses_a_missing_file(tmp_path: Path) -> None:
    async def open_missing() -> None:
        async with SQLiteEventStore(tmp_path / "none.db", create=False):
            pass

    with pytest.raises(eventstore.EventStoreError, match="cannot open"):
        trio.run(open_missing)
    assert list(tmp_path.iterdir()) == []
