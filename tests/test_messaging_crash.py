"""An idempotent ask across a real crash: the child is killed with SIGKILL and asks again."""

from __future__ import annotations

from pathlib import Path

from json_child import JsonChild, raw_log

CHILD = Path(__file__).parent / "children" / "depositor.py"


def test_a_resent_message_id_after_kill_9_gets_the_recorded_reply(tmp_path: Path) -> None:
    db = tmp_path / "bank.db"
    for _ in range(3):  # the same ask, from three processes in turn, each SIGKILLed
        child = JsonChild(CHILD, str(db))
        assert child.value("balance") == 5  # the recorded reply: never 10 or 15
        child.kill()
    log = raw_log(db, "Account-a")
    assert [t for t, _ in log] == ["depositor.Deposited", "actors.ReplyRecorded"]
    assert log[1][1]["message_id"] == "d-1"
