"""Durable timers across a real crash: a child process is killed with SIGKILL and started again.

The child (``children/timers_crash.py``) runs an actor in an ``ActorSystem`` on a SQLite file.
This test waits in real time (that is what it tests), within bounded loops.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest
from json_child import WAIT, JsonChild, raw_log

CHILD = Path(__file__).parent / "children" / "timers_crash.py"
STREAM = "Alarms-a1"
DELAYS = (1.0, 2.0, 3.0)





def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_every_token_fires_once_and_never_early_across_a_kill(tmp_path: Path) -> None:
    db = tmp_path / "alarms.db"
    first = JsonChild(CHILD, str(db), "schedule", *map(str, DELAYS))
    scheduled = first.expect("scheduled")["scheduled"]
    t1 = first.expect("fired")
    assert t1["fired"] == "t1"
    first.kill()  # right after t1's Reminded event was committed
    due = [scheduled + delay for delay in DELAYS]

    # Stay down until t2 is overdue: it must fire at recovery, t3 later, live.
    time.sleep(max(0.0, due[1] + 0.2 - time.time()))
    restarted_at = time.time()
    # nobody asks: the work index brings it back
    second = JsonChild(CHILD, str(db), "resume", str(len(DELAYS)))
    t2 = second.expect("fired")
    if t2["fired"] == "t1":
        # Killed after t1's Reminded was committed (its flush) but before its wake-up ended:
        # the wake-up runs again (at least once), replaying its durable now; its event is
        # not appended twice (checked in the log below).
        assert t2["now"] == t1["now"]
        t2 = second.expect("fired")
    t3 = second.expect("fired")
    second.finish(nothing_more=True)

    assert [t1["fired"], t2["fired"], t3["fired"]] == ["t1", "t2", "t3"]
    for line, at in zip((t1, t2, t3), due, strict=True):
        assert line["at"] == pytest.approx(at, abs=1e-6)
        assert line["now"] >= line["at"]  # never early, in durable time...
        assert line["seen"] >= line["at"]  # ...nor on the parent's clock
    assert t2["now"] >= restarted_at  # came due while down: fired at recovery
    assert t2["seen"] < restarted_at + WAIT / 2
    assert t3["now"] < t3["at"] + 1.0  # live: on time (a generous bound)

    log = raw_log(db, STREAM)
    reminded = [data for kind, data in log if kind == "tests.timers_crash.Reminded"]
    assert [r["name"] for r in reminded] == ["t1", "t2", "t3"]  # each once in the log
    for r in reminded:
        assert epoch(r["now"]) >= epoch(r["at"])
    fired = [seq for kind, data in log if kind == "actors.NotificationFired"
             for seq in data["seqs"]]
    assert fired == [0, 1, 2]
    scheduled_events = [data for kind, data in log if kind == "actors.NotificationScheduled"]
    assert [s["seq"] for s in scheduled_events] == [0, 1, 2]
