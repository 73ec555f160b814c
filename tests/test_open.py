from pathlib import Path

import pytest

import eventstore
from eventstore.memory import MemoryEventStore


async def test_memory_url() -> None:
    async with eventstore.open("memory://") as store:
        assert isinstance(store, MemoryEventStore)
        await store.append("s", [eventstore.NewEvent("E", {})])
        assert await store.last_version("s") == 1


async def test_sqlite_url_relative_and_absolute(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from eventstore.sqlite import SQLiteEventStore

    monkeypatch.chdir(tmp_path)
    async with eventstore.open("sqlite:///relative.db") as store:
        assert isinstance(store, SQLiteEventStore)
        await store.append("s", [eventstore.NewEvent("E", {})])
    assert (tmp_path / "relative.db").exists()
    absolute = tmp_path / "sub dir" / "absolute.db"
    absolute.parent.mkdir()
    async with eventstore.open(f"sqlite:///{absolute}") as store:
        await store.append("s", [eventstore.NewEvent("E", {})])
    assert absolute.exists()


def test_options_reach_the_backend() -> None:
    store = eventstore.open("memory://", page_size=7)
    assert store.page_size == 7


@pytest.mark.parametrize("url", ["", "mysql://x", "sqlite://", "sqlite:///", "events.db", 3])
def test_bad_urls_say_what_is_accepted(url: object) -> None:
    with pytest.raises(eventstore.InvalidArgument, match="sqlite:///"):
        eventstore.open(url)  # type: ignore[arg-type]


def test_a_postgres_schema_comes_from_the_query() -> None:
    pytest.importorskip("psycopg")
    from eventstore.postgres import PostgresEventStore

    store = eventstore.open("postgresql://u@h:5/db?schema=billing&connect_timeout=3")
    assert isinstance(store, PostgresEventStore) and store.schema == "billing"
    assert eventstore.open("postgresql://u@h/db").schema == "eventstore"  # type: ignore[attr-defined]
    with pytest.raises(eventstore.InvalidArgument, match="more than once"):
        eventstore.open("postgresql://u@h/db?schema=a&schema=b")
    with pytest.raises(eventstore.InvalidArgument, match="schema must be"):
        eventstore.open("postgresql://u@h/db?schema=pg_x")


async def test_create_false_never_makes_a_sqlite_file(tmp_path: Path) -> None:
    store = eventstore.open(f"sqlite:///{tmp_path}/none.db", create=False)
    with pytest.raises(eventstore.EventStoreError, match="cannot open"):
        await store.last_version("s")
    await store.aclose()
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(eventstore.SchemaError, match="is not an event store"):
        async with eventstore.open(f"sqlite:///{tmp_path}/empty.db", create=False):
            pass
    assert (tmp_path / "empty.db").read_bytes() == b""
