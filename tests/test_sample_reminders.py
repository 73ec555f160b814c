"""samples/reminders.py: reminders set before a restart (here a kill -9) still fire after it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from json_child import raw_log

SAMPLE = Path(__file__).parent.parent / "samples" / "reminders.py"
WAIT = 20.0
DELIVERY = re.compile(r"^\[(?P<at>\S+)\] (?P<user>\w+): (?P<text>.+) \(due (?P<due>\S+)\)$")


def run_sample(db: Path, seconds: float, commands: str = "") -> list[str]:
    done = subprocess.run([sys.executable, str(SAMPLE), str(db), str(seconds)], input=commands,
                          capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def deliveries(lines: list[str]) -> list[tuple[str, str, datetime, datetime]]:
    """``(user, text, due, delivered at)`` of each delivery line."""
    found = []
    for line in lines:
        match = DELIVERY.match(line)
        if match:
            found.append((match["user"], match["text"], datetime.fromisoformat(match["due"]),
                          datetime.fromisoformat(match["at"])))
    return found



def test_reminders_set_before_a_restart_fire_after_it(tmp_path: Path) -> None:
    db = tmp_path / "reminders.db"
    commands = ("remind bob 0.2 tea\n"
                "remind alice 1.5 stretch your legs\n"
                "remind alice 1h call Bob\n"
                "remind carol 2.5 water the plants\n"
                "cancel alice call Bob\n"
                "list alice\n")
    with subprocess.Popen([sys.executable, str(SAMPLE), str(db)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as first:
        assert first.stdin is not None and first.stdout is not None
        first.stdin.write(commands)
        first.stdin.close()
        lines = [first.stdout.readline().rstrip("\n") for _ in range(8)]
        assert lines[0].startswith("bob: 'tea' at ")
        assert lines[4:7] == ["alice: cancelled 1", "alice: 1 pending",
                              f"  'stretch your legs' at {lines[1].split(' at ')[1]}"]
        assert deliveries(lines[7:]) and deliveries(lines[7:])[0][:2] == ("bob", "tea")
        deadline = time.monotonic() + WAIT
        while "reminders.Delivered" not in [kind for kind, _ in raw_log(db, "Reminders-bob")]:
            assert time.monotonic() < deadline, "bob's delivery was never committed"
            time.sleep(0.02)
        # Bob's delivery is committed (killed earlier, it would be delivered again: at least
        # once); alice's and carol's are still pending.
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(timeout=WAIT) == -signal.SIGKILL
    due = {user: datetime.fromisoformat(lines[n].split(" at ")[1])
           for n, user in [(0, "bob"), (1, "alice"), (3, "carol")]}

    # Stay down until alice's reminder is overdue; carol's comes due while the sample runs.
    time.sleep(min(WAIT, max(0.0, due["alice"].timestamp() + 0.1 - time.time())))
    restarted_at = time.time()
    second = run_sample(db, max(0.5, due["carol"].timestamp() + 0.5 - time.time()))
    delivered = deliveries(second)
    # Each user's reminders come in order; between users, overdue ones may come in any order.
    assert sorted((user, text) for user, text, _, _ in delivered) == [
        ("alice", "stretch your legs"), ("carol", "water the plants")]
    for user, _, due_at, at in delivered:
        assert due_at == due[user]
        assert at >= due_at  # never early
    assert min(at for *_, at in delivered).timestamp() >= restarted_at
    assert len(second) == 2  # bob's tea was not delivered again, the cancelled one never

    third = run_sample(db, 0.5, "list alice\nlist bob\nlist carol\n")
    assert third == ["alice: 0 pending", "bob: 0 pending", "carol: 0 pending"]
    log = [kind for kind, _ in raw_log(db, "Reminders-alice")]
    assert log.count("reminders.Delivered") == 1
    assert log.count("actors.NotificationCancelled") == 1


def test_bad_commands_are_reported_and_the_service_goes_on(tmp_path: Path) -> None:
    out = run_sample(tmp_path / "reminders.db", 0.5,
                     "snooze alice\nremind alice soon tea\nremind bob 0 tea\n")
    assert out[0].startswith("error: cannot read 'snooze alice'")
    assert out[1].startswith("error: a delay is seconds >= 0")
    assert out[2].startswith("bob: 'tea' at ")
    assert [(user, text) for user, text, _, _ in deliveries(out[3:])] == [("bob", "tea")]
