"""The conformance cases for consumer offsets (see ``eventstore._offsets``)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
import trio

from . import ConsumerOffset, EventStore, EventStoreError, InvalidArgument, OffsetConflict
from ._conformance import ConformanceBase, collect, events


class OffsetConformance(ConformanceBase):
    """Consumer offsets: stored apart from events, compare-and-set, with SQL in one transaction.

    A backend with SQL sets ``placeholder`` (its driver's positional parameter mark) and
    implements ``sql_rows``; the cases with statements are skipped otherwise, and statements must
    then be refused.
    """

    placeholder: str | None = None

    async def sql_rows(self, store: EventStore, query: str) -> list[tuple[Any, ...]]:
        """The rows of ``query``, run on a separate connection to the store's database."""
        pytest.skip(f"{type(self).__name__} does not implement sql_rows")

    async def test_a_consumer_without_an_offset_has_none(self, store: EventStore) -> None:
        assert await store.load_offset("balances") is None
        assert await store.offsets() == []

    async def test_saved_offsets_read_back(self, store: EventStore) -> None:
        await store.save_offset("b", 5, state="paused")
        await store.save_offset("a", 3)
        a = await store.load_offset("a")
        assert isinstance(a, ConsumerOffset)
        assert (a.name, a.position, a.state, a.error) == ("a", 3, "running", None)
        assert a.updated_at.tzinfo is not None and a.updated_at.utcoffset() == UTC.utcoffset(None)
        assert [(o.name, o.position, o.state) for o in await store.offsets()] == [
            ("a", 3, "running"), ("b", 5, "paused")]
        await store.save_offset("a", 7, state="failed", error="ValueError: boom\x00")
        a = await store.load_offset("a")
        assert a is not None and (a.position, a.state) == (7, "failed")
        assert a.error is not None and a.error.startswith("ValueError: boom")

    async def test_offsets_are_not_events(self, store: EventStore) -> None:
        await store.save_offset("a", 3)
        assert await collect(store.read_all()) == []
        assert await store.head_position() == 0

    async def test_the_head_position_follows_appends(self, store: EventStore) -> None:
        await store.append("s", events(3))
        assert await store.head_position() == 3
        await store.append("t", events(2))
        assert await store.head_position() == 5

    async def test_an_expected_offset_is_a_compare_and_set(self, store: EventStore) -> None:
        with pytest.raises(OffsetConflict) as missing:
            await store.save_offset("a", 5, expected=2)
        assert (missing.value.name, missing.value.expected, missing.value.actual) == ("a", 2, 0)
        assert await store.load_offset("a") is None
        await store.save_offset("a", 3, expected=0)
        with pytest.raises(OffsetConflict) as stale:
            await store.save_offset("a", 5, expected=0)
        assert (stale.value.expected, stale.value.actual) == (0, 3)
        await store.save_offset("a", 5, expected=3)
        offset = await store.load_offset("a")
        assert offset is not None and offset.position == 5
        await store.save_offset("a", 0)  # without expected: unconditional (a rebuild)
        offset = await store.load_offset("a")
        assert offset is not None and offset.position == 0

    async def test_racing_runners_never_both_win(self, store: EventStore) -> None:
        wins: list[int] = []

        async def runner(n: int) -> None:
            for _ in range(5):
                offset = await store.load_offset("a")
                at = 0 if offset is None else offset.position
                try:
                    await store.save_offset("a", at + 1, expected=at)
                except OffsetConflict:
                    continue
                wins.append(n)

        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(runner, n)
        offset = await store.load_offset("a")
        assert offset is not None and offset.position == len(wins) >= 5

    @pytest.mark.parametrize("call", [
        {"name": ""}, {"name": None}, {"name": "x" * 10_000}, {"name": "a\x00"},
        {"position": -1}, {"position": True}, {"position": "3"}, {"expected": -1},
        {"state": ""}, {"state": 3}, {"error": 5}, {"statements": "SELECT 1"},
        {"statements": [(1, ())]}, {"statements": [("SELECT 1", "x")]},
        {"statements": [("SELECT 1",)]},
    ])
    async def test_bad_arguments_write_nothing(self, store: EventStore,
                                               call: dict[str, Any]) -> None:
        args: dict[str, Any] = {"name": "a", "position": 1, **call}
        with pytest.raises(InvalidArgument):
            await store.save_offset(args.pop("name"), args.pop("position"), **args)
        assert await store.offsets() == []
        with pytest.raises(InvalidArgument):
            await store.load_offset("")

    async def test_statements_need_sql(self, store: EventStore) -> None:
        if self.placeholder is not None:
            pytest.skip("this store takes statements")
        with pytest.raises(InvalidArgument, match="no SQL"):
            await store.save_offset("a", 1, statements=[("INSERT INTO t VALUES (1)", ())])
        assert await store.load_offset("a") is None

    async def test_statements_commit_with_the_offset(self, store: EventStore) -> None:
        if self.placeholder is None:
            pytest.skip("this store takes no statements")
        mark = self.placeholder
        await store.save_offset("a", 0, statements=[
            "CREATE TABLE conformance_model (k TEXT PRIMARY KEY, n INTEGER NOT NULL)"])
        insert = f"INSERT INTO conformance_model (k, n) VALUES ({mark}, {mark})"
        await store.save_offset("a", 2, expected=0,
                                statements=[(insert, ("x", 1)), (insert, ["y", 2])])
        assert sorted(await self.sql_rows(store, "SELECT k, n FROM conformance_model")) == [
            ("x", 1), ("y", 2)]
        with pytest.raises(EventStoreError, match="nothing was written"):
            await store.save_offset("a", 3, expected=2,
                                    statements=[(insert, ("z", 3)), (insert, ("x", 9))])
        with pytest.raises(OffsetConflict):
            await store.save_offset("a", 3, expected=1, statements=[(insert, ("z", 3))])
        assert sorted(await self.sql_rows(store, "SELECT k, n FROM conformance_model")) == [
            ("x", 1), ("y", 2)]
        offset = await store.load_offset("a")
        assert offset is not None and offset.position == 2
