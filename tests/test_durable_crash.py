"""Durable time across real crashes: a child process is killed with SIGKILL and started again.

The child (``children/durable_napper.py``) runs, in an ``ActorSystem`` on a SQLite file, an actor
whose ``run()`` calls ``durable.time()``, ``durable.sleep(seconds)``, ``durable.time()``. These
tests wait in real time (that is what they test), within bounded loops.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from json_child import WAIT, JsonChild

from actors import RunCompleted, ScopeCompleted, SleepStarted, TimeObserved
from eventstore.sqlite import SQLiteEventStore

CHILD = Path(__file__).parent / "children" / "durable_napper.py"
STREAM = "Napper-n1"
CLOCKS = 0.01  # seconds: wall clock against trio's monotonic clock over a few seconds




def read_log(db: Path) -> list[Any]:
    """The napper's decoded events, with versions checked to run 1, 2, 3, ... ."""

    async def read() -> list[Any]:
        async with SQLiteEventStore(db) as store:
            recorded = [r async for r in store.read(STREAM)]
            assert [r.version for r in recorded] == list(range(1, len(recorded) + 1))
            return [store.codec.decode(r) for r in recorded]

    return trio.run(read)


def wait_for_sleep_started(db: Path) -> SleepStarted:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        started = [e for e in read_log(db) if isinstance(e, SleepStarted)]
        if started:
            return started[0]
        time.sleep(0.02)
    pytest.fail(f"no SleepStarted was committed within {WAIT} s")


def check_final_log(db: Path, seconds: float, t0: float, t1: float) -> SleepStarted:
    """Exactly one of each durable call, then the run's end; the napper's timing holds."""
    log = read_log(db)
    assert len(log) == 5, log
    sleep: SleepStarted = log[1]
    assert log == [
        TimeObserved("run", 1, "time", t0),
        SleepStarted("run", 2, sleep.started_at, seconds),
        TimeObserved("run", 3, "time", t1),
        ScopeCompleted("run"),
        RunCompleted(),
    ]
    assert t0 <= sleep.started_at
    assert t1 >= sleep.started_at + seconds - CLOCKS  # the whole sleep, counted from its start
    return sleep


def test_a_killed_sleep_resumes_for_the_remainder_only(tmp_path: Path) -> None:
    db = tmp_path / "napper.db"
    seconds = 3.0
    first = JsonChild(CHILD, str(db), str(seconds))
    t0 = first.value("t0")
    first.value("sleeping")
    sleep = wait_for_sleep_started(db)
    time.sleep(max(0.0, sleep.started_at + 1.5 - time.time()))
    first.kill()  # 1.5 s into the 3 s sleep
    assert read_log(db) == [TimeObserved("run", 1, "time", t0), sleep]

    restarted_at = time.time()
    # --no-spawn: the system's work index must bring the actor back by itself
    second = JsonChild(CHILD, str(db), str(seconds), "--no-spawn")
    assert second.value("t0") == t0  # the recorded value, not the time of the restart
    second.value("sleeping")
    t1 = second.value("t1")
    second.finish()
    # It ended 3 s after the sleep first began (+ slack), not 3 s after the restart.
    assert sleep.started_at + seconds - CLOCKS <= t1 < sleep.started_at + seconds + 1.0
    assert t1 < restarted_at + seconds
    check_final_log(db, seconds, t0, t1)


@pytest.mark.slow
def test_kills_around_the_commit_of_sleep_started_lose_and_double_nothing(
        tmp_path: Path) -> None:
    repeats = int(os.environ.get("DURABLE_CRASH_REPEATS", "5"))
    seed = int(os.environ.get("DURABLE_CRASH_SEED", str(random.randrange(2**32))))
    rng = random.Random(seed)
    seconds = 0.2
    outcomes = {"before the commit": 0, "after the commit": 0}
    for n in range(repeats):
        db = tmp_path / f"napper-{n}.db"
        # The commit takes about a millisecond here: the child kills itself (SIGKILL, from a
        # thread) at a random point of it, counted from the line it prints before the sleep.
        delay = rng.uniform(0.0, 0.002)
        first = JsonChild(CHILD, str(db), str(seconds), f"--kill-after={delay}")
        t0 = first.value("t0")
        first.value("sleeping")
        assert first.wait() == -signal.SIGKILL
        after_kill = read_log(db)
        where = f"repeat {n}, killed {delay * 1000:.2f} ms after the marker (seed {seed})"
        # TimeObserved and SleepStarted commit in one batch: both or neither.
        if after_kill:
            assert len(after_kill) == 2, where
            assert after_kill[0] == TimeObserved("run", 1, "time", t0), where
            assert isinstance(after_kill[1], SleepStarted), where
            outcomes["after the commit"] += 1
        else:
            outcomes["before the commit"] += 1

        second = JsonChild(CHILD, str(db), str(seconds), "--no-spawn")
        replayed_t0 = second.value("t0")
        second.value("sleeping")
        t1 = second.value("t1")
        second.finish()
        if after_kill:
            assert replayed_t0 == t0, where  # recorded: replayed
        else:
            assert replayed_t0 > t0, where  # never recorded: observed afresh
        sleep = check_final_log(db, seconds, replayed_t0, t1)
        if after_kill:
            assert sleep == after_kill[1], where
    print(f"seed {seed}: {outcomes}")
