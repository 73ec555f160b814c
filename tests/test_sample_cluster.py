"""samples/cluster.py: two member processes and a client on PostgreSQL; a member is SIGKILLed,
its accounts are claimed by the survivor, and no deposit is lost or applied twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

SAMPLES = Path(__file__).parent.parent / "samples"


@pytest.mark.postgres
def test_the_cluster_sample_survives_a_killed_member(postgres_url: str, tmp_path: Path) -> None:
    # SIGINT as a terminal gives it (pytest run as a background job has it ignored, and then the
    # demo's members inherit that and never leave). A session of its own: should the demo hang,
    # its members are killed with it rather than left running for the rest of the suite.
    with subprocess.Popen([sys.executable, str(SAMPLES / "cluster.py"), postgres_url],
                          cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, start_new_session=True, preexec_fn=default_sigint) as demo:
        try:
            out, err = demo.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            out, err = demo.communicate()
            pytest.fail(f"the demo hung for 120 s:\n{out}\n{err}")
    assert demo.returncode == 0, err
    assert out.count(" ready\n") == 2
    killed = out.split("killed member ")[1].split("\n")[0]
    after = out.split(f"killed member {killed}\n")[1]
    assert killed not in after.split("alice:")[0]  # every account is owned by the survivor now
    for n, name in enumerate(["alice", "bob", "carol", "dave", "erin", "frank", "grace",
                              "heidi"]):
        assert f"{name}: {110 + n}\n" in out  # 10 + n, then 100: each deposit exactly once


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.postgres
async def test_ctrl_c_on_a_member_leaves_the_cluster_and_exits_130(
        postgres_url: str, postgres_schema: str, tmp_path: Path) -> None:
    await trio.to_thread.run_sync(interrupt_a_member, postgres_url, postgres_schema, tmp_path)


def interrupt_a_member(postgres_url: str, postgres_schema: str, tmp_path: Path) -> None:
    url = f"{postgres_url}?schema={postgres_schema}"
    with subprocess.Popen([sys.executable, str(SAMPLES / "cluster.py"), url, "member"],
                          cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, preexec_fn=default_sigint) as child:
        assert child.stdout is not None
        assert child.stdout.readline().endswith(" ready\n")
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert stderr.splitlines() == ["cluster.py: interrupted"]
    import psycopg
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        states = conn.execute(f'SELECT state FROM "{postgres_schema}".members').fetchall()
    assert states == [("left",)]
