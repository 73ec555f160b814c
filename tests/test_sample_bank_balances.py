"""samples/bank_balances.py folds the bank's log into a table and queries it; a second run goes
on from its offset."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

SAMPLES = Path(__file__).parent.parent / "samples"


def run(sample: str, db: Path) -> str:
    done = subprocess.run([sys.executable, str(SAMPLES / sample), str(db)], cwd=db.parent,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_read_model_follows_the_bank(tmp_path: Path) -> None:
    db = tmp_path / "bank.db"
    bank = run("bank.py", db)  # hosts the projection: the table is up to date
    assert "Accounts below 100: alice 70, bob 80" in bank
    first = run("bank_balances.py", db)  # the projection alone: nothing new to fold
    assert "Accounts below 100: alice 70, bob 80" in first
    assert "after position 0 " not in first
    with sqlite3.connect(db) as conn:  # a rebuild: from the start, into an empty table
        conn.execute("DELETE FROM balances")
        conn.execute("DELETE FROM offsets WHERE name = 'balances'")
    rebuilt = run("bank_balances.py", db)
    assert "after position 0 " in rebuilt and "Accounts below 100: alice 70, bob 80" in rebuilt
    assert "Accounts below 100: none" in run("bank.py", db)
