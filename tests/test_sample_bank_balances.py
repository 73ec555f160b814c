"""samples/bank_balances.py folds the bank's log into a table and queries it; a second run goes
on from its offset."""

from __future__ import annotations

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
    run("bank.py", db)
    first = run("bank_balances.py", db)
    assert "Accounts below 100: alice 70, bob 80" in first
    assert "after position 0 " in first
    run("bank.py", db)
    second = run("bank_balances.py", db)
    assert "Accounts below 100: none" in second
    assert "after position 0 " not in second
