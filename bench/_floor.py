"""Trio's floor under an appenders target: raw rows through the store's group commit.

Each of the appenders is a trio task handing its rows, built beforehand, one at a time to the
store's ``GroupCommitter`` and waiting for each commit, as a caller of ``append`` does; each
batch goes to the raw peer's own write in a worker thread. No validation, encoding, id,
version check or result of the store's: what waiting callers cost by themselves, which the
store's figure cannot go above (``docs/performance.md``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import trio

from eventstore import AppendResult, ExpectedVersion
from eventstore._group_commit import AppendRequest, GroupCommitter

Row = tuple[Any, ...]


def trio_floor(write: Callable[[list[Row]], None], appenders: Sequence[Sequence[Row]]) -> float:
    """Rows per second: one trio task per sequence of ``appenders`` submits its rows (a row's
    first field is its stream) one at a time; ``write`` commits each batch's rows."""

    async def write_batch(batch: list[AppendRequest]) -> None:
        await trio.to_thread.run_sync(write, [request.events for request in batch])
        for request in batch:
            request.settle(AppendResult(0, 0))

    async def main() -> float:
        committer = GroupCommitter(write_batch)

        async def appender(rows: Sequence[Row]) -> None:
            for row in rows:
                await committer.submit(row[0], row, ExpectedVersion.ANY)  # type: ignore[arg-type]

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for rows in appenders:
                nursery.start_soon(appender, rows)
        return sum(map(len, appenders)) / (time.perf_counter() - started)

    result: float = trio.run(main)
    return result
