"""``log`` shows the runtime's messaging events as one readable line each."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import shop_actors
import trio

import eventstore
from actors._cli import main
from actors._cli_render import sentence
from eventstore import Codec, RecordedEvent


@pytest.fixture
def shop_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/shop.db"

    async def fill() -> None:
        async with eventstore.open(url, create=True) as store:
            await shop_actors.fill(store)

    trio.run(fill)
    return url


def lines_of(capsys: pytest.CaptureFixture[str], *argv: str) -> list[tuple[str, str]]:
    """``(type, shown data)`` of each line ``log`` prints."""
    assert main(list(argv)) == 0
    out = capsys.readouterr().out.splitlines()[1:]
    return [tuple(line.split(maxsplit=4)[3:]) for line in out]  # type: ignore[misc]


def test_log_shows_sends_receipts_replies_calls_and_steps(
        capsys: pytest.CaptureFixture[str], shop_db: str) -> None:
    shown = dict(enumerate(lines_of(capsys, "log", shop_db, "Shop-s1"), start=1))
    assert shown[1] == ("actors.Received",
                        'received #1 shop.Order {"item": "tea", "qty": 2} (id order-1)')
    assert shown[3] == ("actors.StepRecorded", "step msg:order-1#2: fresh_code returned "
                                               f"{shown[3][1].rpartition(' ')[2]}")
    assert shown[4][1].startswith("call msg:order-1#3: ask Stock-s (id Shop-s1/msg:order-1/3) "
                                  "answered ")
    assert shown[5] == ("actors.MessageSent",
                        "sent shop.Mail to Mailer-m (id Shop-s1/msg:order-1/>0)")
    assert shown[6][0] == "shop.Ordered" and json.loads(shown[6][1])["item"] == "tea"
    assert shown[7] == ("actors.ReplyRecorded", "replied None to id order-1")
    assert shown[8] == ("actors.Consumed",
                        "consumed #1: its turn, cut by a commit point, is complete")
    assert shown[10][1] == 'received #2 shop.Order {"item": "jam", "qty": 3}'  # no id
    # Sequences are global across inboxes: the mails went in between.
    assert re.fullmatch(r"received #\d+ shop\.Order again \(id order-1\): processed before, "
                        r"consumed without running", shown[18][1])
    assert re.fullmatch(r"received #\d+ value \('plain', 1\)", shown[19][1])
    # Other runtime events keep their data, times as ISO instants.
    assert json.loads(shown[2][1])["value"].endswith("+00:00")
    assert json.loads(shown[9][1]) == {"scope": "msg:order-1"}
    # --json prints the events as stored.
    assert main(["log", "--json", shop_db, "Shop-s1", "--limit", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["data"] == {
        "seq": 1, "message_id": "order-1", "type": "shop.Order",
        "data": {"item": "tea", "qty": 2}}


def _recorded(type: str, data: Any) -> RecordedEvent:
    return RecordedEvent("S-1", 1, 1, type, data, {}, __import__("uuid").uuid4(),
                         datetime.now(UTC))


@pytest.mark.parametrize(("type", "data", "shown"), [
    ("actors.Received", {"seq": 4, "message_id": "m", "type": "shop.Order", "data": None},
     "received #4 shop.Order again (id m): processed before, consumed without running"),
    ("actors.MessageSent", {"to": "Mailer-m", "message_id": None, "type": "shop.Mail"},
     "sent shop.Mail to Mailer-m"),
    ("actors.CallReplied", {"scope": "run", "index": 2, "target": "Stock-s", "message_id": "x",
                            "value": None, "error": {"type": "builtins:ValueError",
                                                     "args": ["no"], "text": "ValueError: no"},
                            "branch": [1, 2]},
     "call run#2 (task 1.2): ask Stock-s (id x) failed: ValueError: no"),
    ("actors.StepRecorded", {"scope": "run", "index": 1, "function": "charge", "value": None,
                             "error": "TimeoutError: slow", "branch": []},
     "step run#1: charge failed: TimeoutError: slow"),
    ("actors.StepRecorded", {"scope": "run", "index": 1, "function": "pick", "value":
                             {"$attrs": ["not.Importable", 1, {"a": 1}]}, "branch": []},
     'step run#1: pick returned {"$attrs": ["not.Importable", 1, {"a": 1}]}'),
    ("actors.ReplyRecorded", {"message_id": "m", "value": {"$tuple": [1, 2]}, "at": 0.0},
     "replied (1, 2) to id m"),
    ("actors.DeadLettered", {"seq": 3, "message_id": None, "type": "shop.Order",
                             "data": {"item": "x", "qty": 1}, "error": "ValueError: bad",
                             "attempts": 1},
     'dead letter #3 shop.Order {"item": "x", "qty": 1} after 1 attempt: ValueError: bad'),
    ("actors.DeadLetterResolved", {"stream": "Shop-s1", "seq": 3, "action": "retried"},
     "dead letter #3 of Shop-s1 retried"),
    ("actors.Received", {"seq": "odd"}, None),  # not this release's shape: shown as stored
    ("actors.TimeObserved", {"scope": "run"}, None),
])
def test_sentences(type: str, data: Any, shown: str | None) -> None:
    assert sentence(_recorded(type, data), Codec()) == shown
