"""SIGKILL at random moments: nothing acknowledged is lost or doubled, no timer or sleep is off.

A child process (``workload_child.py work``) runs 100 actors emitting events and setting timers
and 10 actors sleeping durably, on one SQLite file; it writes an acknowledgement line (fsync'd)
after each ask() reply. The test kills it with SIGKILL at a random moment, checks the log,
restarts it, ``ACTORS_KILLS`` times (default 6). Then a last child runs with no messages until
every timer has fired and every sleep has ended, woken by the work index alone, and the log is
checked once more. Set ``ACTORS_RELIABILITY_REPORT`` to a file name to get the figures as JSON.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from workload_child import SLEEPERS, Fired, Slept, nap

import actors
from eventstore import RecordedEvent
from eventstore.sqlite import SQLiteEventStore

KILLS = int(os.environ.get("ACTORS_KILLS", "6"))
ROUNDS = max(2, KILLS // 3)  # the sleepers' rounds last about as long as the kills
CHILD = Path(__file__).with_name("workload_child.py")
SLACK = 2.5  # seconds a wake-up may lag its deadline or its process's start (start-up, load)
EARLY = 0.05  # the wall clock and trio's clock may disagree by this much


@attrs.define
class Incarnation:
    launched: float
    ended: float = float("inf")


@attrs.define
class Figures:
    kills: int = 0
    killed_starting: int = 0  # killed before its drivers started: during start-up or recovery
    events: int = 0
    acknowledged: int = 0
    acknowledged_timers: int = 0
    notifications: int = 0
    sleeps: int = 0
    latest_wake: float = 0.0  # the most a sleep ended after its deadline or its process's start
    lost: int = 0
    duplicated: int = 0


def child(*args: str, **options: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ACTORS_SLEEP_ROUNDS": str(ROUNDS)}
    return subprocess.Popen([sys.executable, str(CHILD), *args], env=env, **options)


def acknowledgements(path: Path) -> list[list[str]]:
    """The complete lines of the acknowledgement file, split."""
    if not path.exists():
        return []
    text = path.read_text()
    return [line.split() for line in text[:text.rfind("\n") + 1].splitlines()]


async def check(db: Path, acks: list[list[str]], lives: list[Incarnation], *,
                final: bool) -> Figures:
    """Check the log against the acknowledgements and the rules; return what was checked."""
    figures = Figures()
    async with SQLiteEventStore(db) as store:
        log = [event async for event in store.read_all()]
        codec = store.codec
    positions = [event.position for event in log]
    assert positions == sorted(set(positions)), "global positions must strictly increase"
    assert len({event.id for event in log}) == len(log), "an event id is stored twice"
    figures.events = len(log)
    streams: dict[str, list[RecordedEvent]] = defaultdict(list)
    for event in log:
        streams[event.stream].append(event)
    for name, events in streams.items():
        assert [e.version for e in events] == list(range(1, len(events) + 1)), (
            f"{name}: a version gap or repeat")

    # Every acknowledged event once, where the reply said; no event twice.
    where: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for event in log:
        if event.type == "reliability.Emitted":
            where[event.data["key"]].append((event.stream, event.version))
    figures.duplicated = sum(len(found) - 1 for found in where.values() if len(found) > 1)
    for kind, stream, key, value in (line for line in acks if line[0] != "R"):
        if kind == "E":
            figures.acknowledged += 1
            figures.lost += where.get(key) != [(stream, int(value))]

    # Timers: each scheduled once, fired at most once, never early; all fired at the end.
    for name, events in streams.items():
        if not name.startswith("w-"):
            continue
        scheduled: dict[int, Any] = {}
        tokens: dict[str, float] = {}
        fired: Counter[int] = Counter()
        recorded: dict[str, float] = {}
        for event in events:
            decoded = codec.decode(event)
            if isinstance(decoded, actors.NotificationScheduled):
                assert decoded.seq not in scheduled, f"{name}: seq {decoded.seq} scheduled twice"
                scheduled[decoded.seq] = decoded
                tokens[codec.decode_value(decoded.token)] = decoded.at.timestamp()
            elif isinstance(decoded, actors.NotificationFired):
                for seq in decoded.seqs:
                    fired[seq] += 1
                    assert scheduled[seq].at <= event.recorded_at, f"{name}: fired early"
            elif isinstance(decoded, Fired):
                assert decoded.token not in recorded, f"{name}: {decoded.token} fired twice"
                recorded[decoded.token] = decoded.at
                assert decoded.at >= tokens[decoded.token], f"{name}: fired before its time"
        figures.duplicated += sum(n - 1 for n in fired.values())
        figures.notifications += len(fired)
        assert {codec.decode_value(scheduled[seq].token) for seq in fired} == set(recorded)
        if final:
            assert set(fired) == set(scheduled), f"{name}: timers that never fired"
        for _, stream, token, at in (line for line in acks if line[0] == "T"):
            if stream == name:
                figures.acknowledged_timers += 1
                figures.lost += tokens.get(token) != float(at)

    # Durable sleeps: each round slept as long as asked, from its first start, never more.
    for n in range(SLEEPERS):
        events = [codec.decode(event) for event in streams.get(f"sl-{n}", [])]
        calls = [(e.scope, e.index) for e in events
                 if isinstance(e, actors.TimeObserved | actors.SleepStarted)]
        assert len(calls) == len(set(calls)), f"sl-{n}: a durable call recorded twice"
        sleeps = {e.index: e for e in events if isinstance(e, actors.SleepStarted)}
        slept = [e for e in events if isinstance(e, Slept)]
        assert [e.round for e in slept] == list(range(len(slept))), f"sl-{n}: rounds"
        for done in slept:
            sleep = sleeps[3 * done.round + 2]
            assert sleep.seconds == nap(str(n), done.round)
            deadline = sleep.started_at + sleep.seconds
            assert done.woke >= deadline - EARLY, f"sl-{n} round {done.round} woke early"
            life = next(life for life in lives if life.launched <= done.woke <= life.ended)
            late = done.woke - max(deadline, life.launched)
            assert late <= SLACK, f"sl-{n} round {done.round} woke {late:.2f} s late"
            figures.latest_wake = max(figures.latest_wake, round(late, 3))
            figures.sleeps += 1
        if final:
            assert len(slept) == ROUNDS and isinstance(events[-1], actors.RunCompleted)
    assert figures.lost == 0 and figures.duplicated == 0, figures
    return figures


@pytest.mark.slow
async def test_nothing_acknowledged_is_lost_or_doubled_across_sigkills(tmp_path: Path) -> None:
    db, acks = tmp_path / "events.db", tmp_path / "acks"
    rng = random.Random(KILLS)
    lives: list[Incarnation] = []
    for incarnation in range(KILLS):
        with (tmp_path / f"child-{incarnation}.err").open("wb") as errors:
            life = Incarnation(time.time())
            lives.append(life)
            process = child("work", str(db), str(acks), str(incarnation), stderr=errors)
            if incarnation == 0:  # live until ready, so that every sleeper has started
                while not acknowledgements(acks):
                    assert process.poll() is None, (tmp_path / "child-0.err").read_text()
                    await trio.sleep(0.02)
            await trio.sleep(rng.uniform(0.15, 1.6))
            assert process.poll() is None, (tmp_path / f"child-{incarnation}.err").read_text()
            process.send_signal(signal.SIGKILL)
            await trio.to_thread.run_sync(process.wait)
            life.ended = time.time()
        await check(db, acknowledgements(acks), lives, final=False)
    lives.append(Incarnation(time.time()))
    with (tmp_path / "drain.err").open("wb") as errors:
        process = child("drain", str(db), stderr=errors)
        code = await trio.to_thread.run_sync(process.wait)
    assert code == 0, (tmp_path / "drain.err").read_text() or f"drain exited with {code}"
    lives[-1].ended = time.time()
    lines = acknowledgements(acks)
    figures = await check(db, lines, lives, final=True)
    figures.kills = KILLS
    assert figures.acknowledged > 10 * KILLS  # the kills hit a busy process
    figures.killed_starting = KILLS - sum(line[0] == "R" for line in lines)
    report = os.environ.get("ACTORS_RELIABILITY_REPORT")
    if report:
        Path(report).write_text(json.dumps(attrs.asdict(figures), indent=2) + "\n")
