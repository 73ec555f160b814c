"""samples/drip_campaign.py: killed while it waits, run again, it resumes where it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from json_child import raw_log

SAMPLE = Path(__file__).parent.parent / "samples" / "drip_campaign.py"
STREAM = "Campaign-alice@example.com"
SECONDS = 1.5
WAIT = 20.0



def run_sample(db: Path) -> str:
    done = subprocess.run([sys.executable, str(SAMPLE), str(db), str(SECONDS)],
                          capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_killed_mid_wait_it_resumes_where_it_was(tmp_path: Path) -> None:
    db = tmp_path / "campaign.db"
    with subprocess.Popen([sys.executable, str(SAMPLE), str(db), str(SECONDS)],
                          stdout=subprocess.PIPE, text=True) as first:
        assert first.stdout is not None
        welcome = first.stdout.readline()
        due = first.stdout.readline()
        assert "email to alice@example.com: Welcome aboard!" in welcome
        assert due.startswith("follow-up due at ")
        deadline = time.monotonic() + WAIT
        # Kill once SleepStarted is committed.
        while "actors.SleepStarted" not in [t for t, _ in raw_log(db, STREAM)]:
            assert time.monotonic() < deadline, "the sample never started its durable sleep"
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(timeout=WAIT) == -signal.SIGKILL

    restarted_at = time.time()
    second = run_sample(db).splitlines()
    welcome_at = welcome[1:welcome.index("]")].split(" ")[1]
    assert second[:2] == [f"resuming: the welcome email went out at {welcome_at}", due.strip()]
    assert "How is it going?" in second[2] and len(second) == 4
    assert second[3] == "the campaign for alice@example.com is over"

    # The runtime's ScopeCommitted markers aside (they head run()'s mid-scope commits).
    log = [(t, data) for t, data in raw_log(db, STREAM) if t != "actors.ScopeCommitted"]
    assert [t for t, _ in log] == [
        "actors.TimeObserved", "drip.EmailSent", "actors.SleepStarted", "actors.TimeObserved",
        "drip.EmailSent", "actors.ScopeCompleted", "actors.RunCompleted"]
    assert [data["email"] for t, data in log if t == "drip.EmailSent"] == ["welcome", "follow-up"]
    slept = log[2][1]
    follow_up = datetime.fromisoformat(log[4][1]["at"]).timestamp()
    # The follow-up went out SECONDS after the sleep began, not SECONDS after the restart.
    assert slept["started_at"] + SECONDS - 0.01 <= follow_up < restarted_at + SECONDS

    # Over: a third run sends nothing and writes nothing.
    assert run_sample(db) == "the campaign for alice@example.com is over\n"
    assert [item for item in raw_log(db, STREAM) if item[0] != "actors.ScopeCommitted"] == log
