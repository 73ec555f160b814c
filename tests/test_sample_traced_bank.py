"""samples/traced_bank.py prints each transfer's trace: the accounts' turns inside the
transfer's, every commit inside the turn that made it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).parent.parent / "samples" / "traced_bank.py"


def test_each_transfer_is_one_trace(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SAMPLE)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "alice sends bob 30: transfer completed" in done.stdout
    completed, refused, refunded = done.stdout.split("\nTrace of transfer ")[1:]
    lines = completed.splitlines()
    assert lines[0] == "1:"
    transfer = lines[1].split()[3].rstrip(",")
    assert lines[1] == f"transfer receive  transfer {transfer}, version 0 -> 6, ok"
    assert lines[2:] == [  # the transfer's own commit is shared with the ask for its outcome
        "  account receive  account alice, version 1 -> 3, ok",
        "    actors.commit  account-alice: 2 event(s)",
        "  account receive  account bob, version 1 -> 3, ok",
        "    actors.commit  account-bob: 2 event(s)",
    ]
    lines = refused.splitlines()
    assert lines[1].endswith("version 0 -> 5, ok")
    assert lines[2] == ("  account receive  account bob, version 3 -> 3, failed: "
                        "InsufficientFunds: account 'bob' holds 80, so it cannot pay 5000")
    lines = refunded.splitlines()
    transfer = lines[1].split()[3].rstrip(",")
    assert lines[2:] == [
        "  account receive  account alice, version 3 -> 5, ok",
        "    actors.commit  account-alice: 2 event(s)",
        "  account receive  account carol, version 1 -> 1, failed: AccountClosed: account "
        "'carol' is closed",
        f"  actors.commit  transfer-{transfer}: 3 event(s)",  # the flush before the refund
        "  account receive  account alice, version 5 -> 7, ok",
        "    actors.commit  account-alice: 2 event(s)",
    ]
    assert (tmp_path / "traced_bank.db").exists()
