"""samples/bank.py runs, refuses what it must, and a second run goes on from the first one's log."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).parent.parent / "samples" / "bank.py"


def run_bank(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, str(SAMPLE), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def balances(output: str, when: str) -> dict[str, int]:
    match = re.search(rf"^Balances at {when}: alice (\d+), bob (\d+), carol (\d+)$", output,
                      re.MULTILINE)
    assert match, output
    return {"alice": int(match[1]), "bob": int(match[2]), "carol": int(match[3])}


def test_two_runs_share_one_log(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    first = run_bank(str(db), cwd=tmp_path)
    assert balances(first, "start") == {"alice": 0, "bob": 0, "carol": 0}
    assert "bob withdraws 1000: refused (account 'bob' holds 50, so it cannot pay 1000)" in first
    assert "alice sends bob 30: transfer completed" in first
    assert "bob sends alice 5000: transfer refused (account 'bob' holds 80, so it cannot pay " \
        "5000)" in first
    assert "alice sends carol 20: transfer refunded (account 'carol' is closed)" in first
    assert balances(first, "end") == {"alice": 70, "bob": 80, "carol": 0}
    assert "Accounts below 100: alice 70, bob 80" in first  # the read model
    # Two deposits and carol's closing; four account steps of transfers, each with its
    # recorded reply; the three transfers' own logs (6 + 5 + 8 events).
    assert f"{db} holds 30 events" in first

    second = run_bank(str(db), cwd=tmp_path)
    assert balances(second, "start") == {"alice": 70, "bob": 80, "carol": 0}
    assert balances(second, "end") == {"alice": 140, "bob": 160, "carol": 0}
    assert f"{db} holds 59 events" in second  # carol is closed already: no second Closed
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["ledger.db"]


def test_the_default_log_is_bank_db_in_the_working_directory(tmp_path: Path) -> None:
    output = run_bank(cwd=tmp_path)
    assert output.startswith("Bank log: bank.db\n")
    assert (tmp_path / "bank.db").exists()
    assert balances(output, "end") == {"alice": 70, "bob": 80, "carol": 0}
