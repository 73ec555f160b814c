"""``check`` reads a JSON Lines log through ``JsonlLog``: every line checked, memory bounded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import trio

import eventstore
from actors import replay
from actors._jsonl_log import JsonlLog

GOLDEN = Path(__file__).parent / "golden"
if str(GOLDEN) not in sys.path:
    sys.path.insert(0, str(GOLDEN))
import golden_actors  # noqa: E402, F401 - registers the golden logs' event classes

COUNTER = '''
import attrs

import actors
import eventstore


@eventstore.event_type("big.Counted")
@attrs.frozen
class Counted:
    n: int
    note: str


@attrs.define
class Counter(actors.Actor):
    total: int = 0

    def apply(self, event: Counted) -> None:
        self.total += event.n
'''

CHILD = """
import sys
from actors._cli import main
status = main(sys.argv[1:])
# The peak resident size of this program's own memory: VmHWM, not ru_maxrss, which on Linux
# also keeps the resident size of the (much larger) pytest process this one was forked from.
with open("/proc/self/status") as status_file:
    peak = next(line.split()[1] for line in status_file if line.startswith("VmHWM:"))
print("maxrss", peak)  # KiB
sys.exit(status)
"""


def _write_log(path: Path, events: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for version in range(1, events + 1):
            out.write(json.dumps({
                "stream": "Counter-c", "version": version, "position": version,
                "recorded_at": "2026-01-01T00:00:00+00:00", "type": "big.Counted",
                "data": {"n": 1, "note": "x" * 60}, "metadata": {},
                "id": str(uuid.UUID(int=version))}) + "\n")


@pytest.mark.slow
def test_check_runs_in_bounded_memory(tmp_path: Path) -> None:
    """≤ 100 MB whatever the log's length (ACTORS_TEST_CHECK_EVENTS=300000 for the issue's)."""
    events = int(os.environ.get("ACTORS_TEST_CHECK_EVENTS", "30000"))
    (tmp_path / "counter.py").write_text(COUNTER)
    log = tmp_path / "big.jsonl"
    _write_log(log, events)
    child = subprocess.run([sys.executable, "-c", CHILD, "check", "--actor", "counter:Counter",
                            str(log)], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    assert lines[0] == f"{log}: Counter-c: ok: {events} events, 0 snapshots compared, " \
                       "0 recoveries re-run"
    maxrss_mb = int(lines[1].split()[1]) / 1024
    print(f"check of {events} events: maxrss {maxrss_mb:.0f} MB")
    assert maxrss_mb <= 100


async def test_a_log_file_reads_like_the_store_it_was_exported_from() -> None:
    path = GOLDEN / "subscription.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    async with JsonlLog(str(path)) as log:
        log.index()
        assert log.streams == {"Subscription-alice": 19}
        assert await log.last_version("Subscription-alice") == 19
        assert await log.last_version("Other-1") == 0
        read = [replay._event_json(e) async for e in log.read("Subscription-alice",
                                                              from_version=3, to_version=17)]
        assert read == [line for line in lines if "snapshot" not in line][2:17]
        snapshots = [line["snapshot"] for line in lines if "snapshot" in line]
        newest = await log.load_snapshot("Subscription-alice")
        assert newest is not None and newest.version == snapshots[-1]["version"]
        assert newest.state == snapshots[-1]["state"]
        below = await log.load_snapshot("Subscription-alice", max_version=newest.version - 1)
        assert below is not None and below.version < newest.version
        with pytest.raises(replay.ReplayError, match="read-only"):
            await log.append("Subscription-alice", [eventstore.NewEvent("x", {})])
        with pytest.raises(replay.ReplayError, match="read-only"):
            await log.save_snapshot("Subscription-alice", 1, {})


async def test_a_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = (GOLDEN / "subscription.jsonl").read_text().splitlines(keepends=True)
    path.write_bytes("".join(good[:4]).encode() + b"\xff\xfe\n")
    async with JsonlLog(str(path)) as log:
        with pytest.raises(replay.ReplayError, match=r"bad.jsonl line 5: not UTF-8 text"):
            log.index()
    path.write_text("".join(good[:4]) + "[1, 2]\n")
    async with JsonlLog(str(path)) as log:
        with pytest.raises(replay.ReplayError, match=r"line 5: expected a JSON object"):
            log.index()
    await trio.lowlevel.checkpoint()
