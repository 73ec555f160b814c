"""Durable timers across a real crash: a child process is killed with SIGKILL and started again.

The child (``children/timers_crash.py``) runs an actor in an ``ActorSystem`` on a SQLite file.
This test waits in real time (that is what it tests), within bounded loops.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import trio

from eventstore.sqlite import SQLiteEventStore

CHILD = Path(__file__).parent / "children" / "timers_crash.py"
STREAM = "Alarms-a1"
WAIT = 20.0  # seconds: a bound on every wait, never reached unless something is broken
DELAYS = (1.0, 2.0, 3.0)


class Child:
    """The child in a subprocess; threads read its stdout (JSON lines) and its stderr."""

    def __init__(self, db: Path, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(CHILD), str(db), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.errors: list[str] = []
        self._readers = [threading.Thread(target=self._pump, daemon=True),
                         threading.Thread(target=self._drain, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        self.errors.extend(self.proc.stderr)

    def expect(self, key: str) -> dict[str, Any]:
        """The next line, which must be a JSON object holding ``key``; stamped with ``seen``."""
        try:
            line = self.lines.get(timeout=WAIT)
        except queue.Empty:
            self.kill()
            pytest.fail(f"the child printed nothing for {WAIT} s (waiting for {key!r})")
        if line is None:
            pytest.fail(f"the child exited ({self.wait()}) before printing {key!r}:\n"
                        f"{''.join(self.errors)}")
        fields: dict[str, Any] = json.loads(line)
        assert key in fields, f"expected {key!r}, the child printed {line!r}"
        fields["seen"] = time.time()
        return fields

    def wait(self) -> int:
        code = self.proc.wait(timeout=WAIT)
        for reader in self._readers:
            reader.join(timeout=WAIT)
        return code

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.wait() == -signal.SIGKILL

    def finish(self) -> None:
        assert self.wait() == 0, "".join(self.errors)
        assert self.lines.get(timeout=WAIT) is None, "the child printed more than expected"


def raw_log(db: Path) -> list[tuple[str, Any]]:
    """``(type, data)`` of each event: the child's event class lives in its ``__main__``."""

    async def read() -> list[tuple[str, Any]]:
        async with SQLiteEventStore(db) as store:
            recorded = [r async for r in store.read(STREAM)]
        assert [r.version for r in recorded] == list(range(1, len(recorded) + 1))
        return [(r.type, r.data) for r in recorded]

    return trio.run(read)


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_every_token_fires_once_and_never_early_across_a_kill(tmp_path: Path) -> None:
    db = tmp_path / "alarms.db"
    first = Child(db, "schedule", *map(str, DELAYS))
    scheduled = first.expect("scheduled")["scheduled"]
    t1 = first.expect("fired")
    assert t1["fired"] == "t1"
    first.kill()  # right after t1's Reminded event was committed
    due = [scheduled + delay for delay in DELAYS]

    # Stay down until t2 is overdue: it must fire at recovery, t3 later, live.
    time.sleep(max(0.0, due[1] + 0.2 - time.time()))
    restarted_at = time.time()
    second = Child(db, "resume", str(len(DELAYS)))  # nobody asks: the work index brings it back
    t2 = second.expect("fired")
    t3 = second.expect("fired")
    second.finish()

    assert [t1["fired"], t2["fired"], t3["fired"]] == ["t1", "t2", "t3"]
    for line, at in zip((t1, t2, t3), due, strict=True):
        assert line["at"] == pytest.approx(at, abs=1e-6)
        assert line["now"] >= line["at"]  # never early, in durable time...
        assert line["seen"] >= line["at"]  # ...nor on the parent's clock
    assert t2["now"] >= restarted_at  # came due while down: fired at recovery
    assert t2["seen"] < restarted_at + WAIT / 2
    assert t3["now"] < t3["at"] + 1.0  # live: on time (a generous bound)

    log = raw_log(db)
    reminded = [data for kind, data in log if kind == "tests.timers_crash.Reminded"]
    assert [r["name"] for r in reminded] == ["t1", "t2", "t3"]  # each once in the log
    for r in reminded:
        assert epoch(r["now"]) >= epoch(r["at"])
    fired = [seq for kind, data in log if kind == "actors.NotificationFired"
             for seq in data["seqs"]]
    assert fired == [0, 1, 2]
    scheduled_events = [data for kind, data in log if kind == "actors.NotificationScheduled"]
    assert [s["seq"] for s in scheduled_events] == [0, 1, 2]
