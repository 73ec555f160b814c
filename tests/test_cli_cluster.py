"""``python -m actors cluster``: the members (alive, dead, left) and the actors each one owns."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

import eventstore
from actors._cli import main
from actors._cli_cluster import duration
from eventstore import NewEvent
from eventstore.sqlite import SQLiteEventStore


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    status, out, err = run(capsys, *argv)
    assert (status, out) == (2, ""), err
    assert err.count("\n") == 1 and err.startswith("actors cluster: error: "), err
    return err


def _sql(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture
def target(postgres_url: str) -> Iterator[str]:
    """A store URL naming a fresh PostgreSQL schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex}"
    yield f"{postgres_url}?schema={schema}"
    _sql(postgres_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def form_cluster(url: str) -> None:
    """m1 (alive) owns Account-00..24; m2 owns Shop-s1, s2 and stops beating (dead); m3 owned
    Till-t1 and left (released); c1 is an alive client that owns nothing."""
    async with eventstore.open(url) as store:
        await store.join("m1", lease_seconds=30, host="web-1", pid=101)
        await store.join("m2", lease_seconds=0.5, host="web-2", pid=202)
        await store.join("m3", lease_seconds=30, host="web-3", pid=303)
        await store.join("c1", lease_seconds=30, hosting=False)
        for n in range(25):
            assert (await store.claim(f"Account-{n:02d}", "m1")).claimed
        for stream in ("Shop-s1", "Shop-s2"):
            assert (await store.claim(stream, "m2")).claimed
        assert (await store.claim("Till-t1", "m3")).claimed
        await store.leave("m3")
        schema = url.rpartition("schema=")[2]
        base = url.partition("?")[0]
        # m2's process stopped a minute ago: its 0.5 s lease ran out long since (no real wait).
        await trio.to_thread.run_sync(
            _sql, base, f"UPDATE \"{schema}\".members SET heartbeat_at = heartbeat_at "
                        "- interval '1 minute' WHERE id = 'm2'")


@pytest.mark.postgres
def test_cluster_lists_members_and_what_they_own(capsys: pytest.CaptureFixture[str],
                                                 target: str) -> None:
    trio.run(form_cluster, target)
    status, out, err = run(capsys, "cluster", target)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["MEMBER", "STATE", "HOST/PID", "HOSTING", "HEARTBEAT", "LEASE",
                                "ACTORS"]
    table = {line.split()[0]: line.split() for line in lines[1:5]}
    assert table["m1"][:4] == ["m1", "alive", "web-1/101", "yes"]
    assert table["m1"][5:] == ["ago", "30s", "25"]
    assert table["m2"][:5] == ["m2", "dead", "web-2/202", "yes", "1m00s"]
    assert table["m2"][6:] == ["0.5s", "2"]
    assert table["m3"][:4] == ["m3", "left", "web-3/303", "yes"] and table["m3"][-1] == "0"
    assert table["c1"][:4] == ["c1", "alive", "-", "no"] and table["c1"][-1] == "0"
    assert [line.split()[0] for line in lines[1:5]] == ["m1", "m2", "m3", "c1"]  # join order

    m1 = lines.index("m1 owns 25 actors:")
    listed = lines[m1 + 1:m1 + 21]
    assert [line.split()[0] for line in listed] == [f"Account-{n:02d}" for n in range(20)]
    assert listed[0].split()[1:3] == ["epoch", "1"] and "since" in listed[0]
    assert lines[m1 + 21] == "  ... and 5 more (`--member m1` lists them all)"
    m2 = lines.index("m2 owns 2 actors, dead: any live member may claim them:")
    assert [line.split()[0] for line in lines[m2 + 1:m2 + 3]] == ["Shop-s1", "Shop-s2"]
    assert "m3 owns" not in out and "c1 owns" not in out
    assert lines[-1] == ("4 members (2 alive, 1 dead, 1 left); 27 actors owned (2 of them by "
                         "dead members); 1 released (no owner)")


@pytest.mark.postgres
def test_cluster_limit_and_one_member(capsys: pytest.CaptureFixture[str], target: str) -> None:
    trio.run(form_cluster, target)
    out = run(capsys, "cluster", target, "--limit", "3")[1]
    assert "  ... and 22 more (`--member m1` lists them all)" in out.splitlines()
    assert "more" not in out.split("m2 owns")[1]  # m2's two fit

    status, out, err = run(capsys, "cluster", target, "--member", "m1")
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 + 1 + 1 + 25 and lines[1].split()[:2] == ["m1", "alive"]
    assert lines[3] == "m1 owns 25 actors:" and "more" not in out and "released" not in out
    assert [line.split()[0] for line in lines[4:]] == [f"Account-{n:02d}" for n in range(25)]

    out = run(capsys, "cluster", target, "--member", "m3")[1]
    assert out.splitlines()[1].split()[:2] == ["m3", "left"] and "owns" not in out

    err = fails(capsys, "cluster", target, "--member", "m11")
    assert "no member 'm11'" in err and "did you mean 'm1'?" in err


@pytest.mark.postgres
def test_cluster_json(capsys: pytest.CaptureFixture[str], target: str) -> None:
    trio.run(form_cluster, target)
    status, out, err = run(capsys, "cluster", "--json", target, "--limit", "2")
    assert status == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(row["member"], row["state"], row["owned"]) for row in rows] == [
        ("m1", "alive", 25), ("m2", "dead", 2), ("m3", "left", 0), ("c1", "alive", 0),
        (None, "released", 1)]
    m1, m2, _, c1, released = rows
    assert len(m1["actors"]) == 25  # --limit shapes the table only
    assert m1["actors"][0]["stream"] == "Account-00" and m1["actors"][0]["epoch"] == 1
    assert (m1["host"], m1["pid"], m1["hosting"], m1["lease_seconds"]) == ("web-1", 101, True,
                                                                           30.0)
    assert m2["heartbeat_age"] >= 60 and c1["hosting"] is False
    assert [row["stream"] for row in released["actors"]] == ["Till-t1"]

    out = run(capsys, "cluster", "--json", target, "--member", "m2")[1]
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["member"] == "m2" and [a["stream"] for a in row["actors"]] == ["Shop-s1",
                                                                                "Shop-s2"]


@pytest.mark.postgres
def test_cluster_without_members(capsys: pytest.CaptureFixture[str], target: str) -> None:
    async def empty() -> None:
        async with eventstore.open(target) as store:
            await store.append("s", [NewEvent("E", {})])

    trio.run(empty)
    assert run(capsys, "cluster", target)[:2] == (
        0, "no members: no process has joined a cluster on this store\n")
    assert run(capsys, "cluster", "--json", target)[:2] == (0, "")
    err = fails(capsys, "cluster", target, "--member", "m1")
    assert "no member 'm1'" in err and "no process has joined" in err


@pytest.mark.postgres
def test_cluster_creates_no_postgres_schema(capsys: pytest.CaptureFixture[str],
                                            target: str) -> None:
    err = fails(capsys, "cluster", target)
    assert "holds no event store" in err


def test_cluster_refused_where_the_store_cannot_coordinate(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "app.db"

    async def fill() -> None:
        async with SQLiteEventStore(db) as store:
            await store.append("s", [NewEvent("E", {})])

    trio.run(fill)
    # SQLite does not coordinate yet; once it does, this still checks the refusal path.
    monkeypatch.setattr(SQLiteEventStore, "coordinates", False)
    err = fails(capsys, "cluster", f"sqlite:///{db}")
    assert "is a SQLiteEventStore, which does not coordinate a cluster" in err
    assert "postgresql://" in err
    err = fails(capsys, "cluster", "memory://")
    assert "lives only inside one process" in err


def test_duration() -> None:
    assert [duration(s) for s in (0.05, 0.5, 1, 12.34, 30, 59.9, 60.4, 187, 3600 * 5 + 130,
                                  86400 * 2 + 3600 * 4 + 5)] == [
        "0.05s", "0.5s", "1s", "12.3s", "30s", "59.9s", "1m00s", "3m07s", "5h02m", "2d04h"]
