"""The tutorial's steps (samples/tutorial_step_N.py) run as written, and run again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SAMPLES = Path(__file__).parent.parent / "samples"


def run_step(n: int, cwd: Path) -> list[str]:
    done = subprocess.run([sys.executable, str(SAMPLES / f"tutorial_step_{n}.py")], cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


def test_step_1_refuses_and_writes_nothing(tmp_path: Path) -> None:
    expected = [
        "alice withdraws 30: balance 70",
        "alice withdraws 1000: refused (account 'alice' holds 70, so it cannot pay 1000)",
        "alice's balance: 70",
        "the log of account-alice, where the refused withdrawal wrote nothing:",
        "  version 1: Deposited(amount=100)",
        "  version 2: Withdrawn(amount=30)",
    ]
    assert run_step(1, tmp_path) == expected
    assert run_step(1, tmp_path) == expected  # in memory: every run starts afresh
    assert list(tmp_path.iterdir()) == []


def test_step_2_recovers_the_balance_from_its_file(tmp_path: Path) -> None:
    first, second = run_step(2, tmp_path), run_step(2, tmp_path)
    assert first[:2] == ["alice's balance at start: 0", "alice deposits 100: balance 100"]
    assert second[:2] == ["alice's balance at start: 100", "alice deposits 100: balance 200"]
    assert first[2].startswith("tutorial_step_2.db keeps alice's log")


def test_step_3_activates_actors_on_demand(tmp_path: Path) -> None:
    first = run_step(3, tmp_path)
    assert first == [
        "actors in memory: 0",
        "alice deposits 100: balance 100",
        "actors in memory: 1",
        "bob withdraws 5000: refused (account 'bob' holds 0, so it cannot pay 5000)",
        "actors in memory: 2",
        "balances: alice 100, bob 0",
    ]
    second = run_step(3, tmp_path)
    assert second[0] == "actors in memory: 0"
    assert second[-1] == "balances: alice 200, bob 0"


def test_step_4_transfers_once_and_refunds_what_a_closed_account_refuses(
        tmp_path: Path) -> None:
    first = run_step(4, tmp_path)
    assert first == [
        "alice deposits 100: balance 100",
        "alice sends bob 30: transfer completed",
        "the same transfer sent again: completed",
        "alice sends carol 20: transfer refunded (account 'carol' is closed)",
        "what the refunded transfer recorded:",
        "  call 1 to account-alice: returned 50",
        "  call 2 to account-carol: AccountClosed: account 'carol' is closed",
        "  call 3 to account-alice: returned 70",
        "  TransferEnded(outcome=\"refunded (account 'carol' is closed)\")",
        "balances: alice 70, bob 30",
    ]
    second = run_step(4, tmp_path)  # new transfers on the same accounts
    assert second[0] == "alice deposits 100: balance 170"
    assert second[-1] == "balances: alice 140, bob 60"


def test_the_steps_keep_their_own_files(tmp_path: Path) -> None:
    for n in (1, 2, 3, 4):
        run_step(n, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "tutorial_step_2.db", "tutorial_step_3.db", "tutorial_step_4.db"]
