"""samples/saga_timeout.py: a booking that missed its deadline is cancelled, also when it ran."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).parent.parent / "samples" / "saga_timeout.py"


def test_a_late_booking_runs_and_is_undone(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SAMPLE)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "order o-1: booked",
        "order o-2: cancelled (no answer within 0.2 s)",
        "the courier's bookings: ['o-1']",
        "the courier's log:",
        "  Booked(order='o-1')",
        "  Booked(order='o-2')",
        "  Cancelled(order='o-2')",
    ]
