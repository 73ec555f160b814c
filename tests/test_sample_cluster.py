"""samples/cluster.py: two member processes and a client on PostgreSQL; a member is SIGKILLed,
its accounts are claimed by the survivor, and no deposit is lost or applied twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).parent.parent / "samples"


@pytest.mark.postgres
def test_the_cluster_sample_survives_a_killed_member(postgres_url: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SAMPLES / "cluster.py"), postgres_url],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count(" ready\n") == 2
    killed = out.split("killed member ")[1].split("\n")[0]
    after = out.split(f"killed member {killed}\n")[1]
    assert killed not in after.split("alice:")[0]  # every account is owned by the survivor now
    for n, name in enumerate(["alice", "bob", "carol", "dave", "erin", "frank", "grace",
                              "heidi"]):
        assert f"{name}: {110 + n}\n" in out  # 10 + n, then 100: each deposit exactly once
