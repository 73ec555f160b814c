"""``python -m actors projections``: the list (offset, lag, state, error) and a rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from actors._cli import main
from eventstore import NewEvent
from eventstore.sqlite import SQLiteEventStore


async def fill(db: Path) -> None:
    async with SQLiteEventStore(db) as store:
        await store.append("s", [NewEvent("E", {"n": n}) for n in range(10)])
        await store.save_offset("balances", 10)
        await store.save_offset("reports", 4, state="failed", error="ValueError: bad data")


def test_projections_lists_offset_lag_and_state(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    trio.run(fill, db)
    assert main(["projections", f"sqlite:///{db}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["NAME", "OFFSET", "LAG", "LAG"]
    assert out[1].split()[:5] == ["balances", "10", "0", "0.0", "running"]
    assert out[2].split()[:4] == ["reports", "4", "6", out[2].split()[3]]
    assert "failed" in out[2] and out[3].strip() == "error: ValueError: bad data"
    assert main(["projections", "--json", f"sqlite:///{db}"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["offset"], r["lag"], r["state"]) for r in rows] == [
        ("balances", 10, 0, "running"), ("reports", 4, 6, "failed")]


def test_projections_rebuild_marks_the_offset(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    trio.run(fill, db)
    assert main(["projections", "rebuild", f"sqlite:///{db}", "balances"]) == 0
    assert "rebuild requested" in capsys.readouterr().out

    async def stored() -> tuple[int, str]:
        async with SQLiteEventStore(db) as store:
            offset = await store.load_offset("balances")
            assert offset is not None
            return offset.position, offset.state

    assert trio.run(stored) == (0, "rebuild")
    assert main(["projections", "rebuild", f"sqlite:///{db}", "balance"]) == 2
    assert "did you mean 'balances'" in capsys.readouterr().err
    assert main(["projections", "rebuild", f"sqlite:///{db}"]) == 2
    assert "usage" in capsys.readouterr().err


def test_projections_on_a_store_without_any(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    db = tmp_path / "app.db"

    async def empty() -> None:
        async with SQLiteEventStore(db):
            pass

    trio.run(empty)
    assert main(["projections", f"sqlite:///{db}"]) == 0
    assert "no projections" in capsys.readouterr().out
