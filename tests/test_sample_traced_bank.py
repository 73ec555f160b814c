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
    completed, refused = done.stdout.split("\nTrace of transfer ")[1:]
    lines = completed.splitlines()
    assert lines[0] == "1:"
    transfer = lines[1].split()[3].rstrip(",")
    assert lines[1] == f"transfer receive  transfer {transfer}, version 0 -> 3, ok"
    assert lines[2:] == [
        f"  actors.commit  transfer-{transfer}: 1 event(s)",
        "  account receive  account alice, version 1 -> 2, ok",
        "    actors.commit  account-alice: 1 event(s)",
        f"  actors.commit  transfer-{transfer}: 1 event(s)",
        "  account receive  account bob, version 1 -> 2, ok",
        "    actors.commit  account-bob: 1 event(s)",
        f"  actors.commit  transfer-{transfer}: 1 event(s)",
    ]
    lines = refused.splitlines()
    assert lines[1].endswith("version 0 -> 2, failed: InsufficientFunds: account 'bob' holds "
                             "80, so it cannot pay 5000")
    assert lines[3] == ("  account receive  account bob, version 2 -> 2, failed: "
                        "InsufficientFunds: account 'bob' holds 80, so it cannot pay 5000")
    assert (tmp_path / "traced_bank.db").exists()
