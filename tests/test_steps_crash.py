"""A recorded step across a real crash: the child is killed with SIGKILL and started again."""

from __future__ import annotations

from pathlib import Path

from json_child import JsonChild, raw_log

CHILD = Path(__file__).parent / "children" / "step_charger.py"


def test_a_step_that_returned_is_never_run_again_after_kill_9(tmp_path: Path) -> None:
    db, ledger = tmp_path / "charger.db", tmp_path / "ledger.txt"
    first = JsonChild(CHILD, str(db), str(ledger))
    assert first.value("charged") == 1
    first.kill()
    types = [t for t, _ in raw_log(db, "Charger-c1")]
    assert "actors.StepRecorded" in types

    # --no-spawn: the system's work index brings the unfinished run() back by itself.
    second = JsonChild(CHILD, str(db), str(ledger), "--no-spawn")
    assert second.value("charged") == 1  # the recorded value: the ledger was not written again
    second.kill()
    assert ledger.read_text().splitlines() == ["Charger-c1/run/1 30"]
    steps = [data for t, data in raw_log(db, "Charger-c1") if t == "actors.StepRecorded"]
    assert len(steps) == 1 and steps[0]["value"] == 1 and steps[0]["function"] == "charge"
