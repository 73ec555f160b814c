"""Ctrl-C on a sample prints one line and exits 130 (``actors.run_program``), for real."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from actors._program import only_interrupts

ROOT = Path(__file__).parent.parent
SAMPLES = ROOT / "samples"
CHILD = Path(__file__).parent / "children" / "interrupt_at_print.py"
WAIT = 60.0

# (script, arguments, how many lines it prints before the test presses Ctrl-C). A program that
# would end on its own is held at that line (``children/interrupt_at_print.py``); the two services
# wait by themselves: drip_campaign for its follow-up, reminders for stdin.
SERVICES = {"drip_campaign.py", "reminders.py"}
PROGRAMS = [
    ("bank.py", [], 2),
    ("bank_balances.py", [], 1),
    ("drip_campaign.py", ["campaign.db", "3600"], 2),
    ("reminders.py", ["reminders.db"], 1),
    ("saga_timeout.py", [], 1),
    ("traced_bank.py", [], 2),
    ("tutorial_step_1.py", [], 1),
    ("tutorial_step_2.py", [], 1),
    ("tutorial_step_3.py", [], 2),
    ("tutorial_step_4.py", [], 2),
]


NEEDS_A_SERVER = {"cluster.py"}  # its Ctrl-C: tests/test_sample_cluster.py


def test_every_sample_is_covered() -> None:
    assert sorted([name for name, _, _ in PROGRAMS] + sorted(NEEDS_A_SERVER)) == sorted(
        p.name for p in SAMPLES.glob("*.py"))


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt; a terminal's Ctrl-C meets the default handler.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("script", "args", "lines"), PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_ctrl_c_prints_one_line_and_exits_130(script: str, args: list[str], lines: int,
                                              tmp_path: Path) -> None:
    held = script not in SERVICES
    command = [sys.executable, *([str(CHILD), str(lines)] if held else []),
               str(SAMPLES / script), *args]
    with subprocess.Popen(command, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint) as child:
        assert child.stdout is not None and child.stderr is not None
        if script == "reminders.py":  # it prints only when asked
            assert child.stdin is not None
            child.stdin.write("remind alice 1h water the plants\n")
            child.stdin.flush()
        printed = [child.stdout.readline() for _ in range(lines + held)]
        assert all(printed), (printed, child.stderr.read())
        assert not held or printed[-1] == "<ready for Ctrl-C>\n", printed
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=WAIT)
    assert child.returncode == 130, stderr
    assert stderr.splitlines() == [f"{script}: interrupted"]
    assert "Traceback" not in stdout


def test_a_real_error_beside_the_interrupt_is_not_hidden() -> None:
    assert only_interrupts(KeyboardInterrupt())
    assert only_interrupts(BaseExceptionGroup("", [BaseExceptionGroup("", [KeyboardInterrupt()])]))
    assert not only_interrupts(BaseExceptionGroup("", [KeyboardInterrupt(), ValueError("x")]))
    assert not only_interrupts(ValueError("x"))
    assert not only_interrupts(SystemExit(1))
