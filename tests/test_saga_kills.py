"""The bank's transfer saga under SIGKILL: no money appears or vanishes, each transfer once.

A child process (``children/saga_bank.py``) runs ``samples/bank.py``'s accounts and transfers on
a SQLite file; the test sends it transfers (``send`` with the transfer id as message id) and
kills it with SIGKILL at random moments: during start-up and recovery, or while transfers are
being sent and run. After each kill it starts a new child, which re-sends every transfer whose
``send`` was not acknowledged, with the same id, and a few acknowledged ones again. A last child
re-sends what is left and waits until every transfer has ended. Then the log must show:

- the total of all balances is what the accounts were funded with;
- every transfer ended once (``TransferEnded``), consumed its message, and moved the money its
  outcome says, once: a withdrawal and a deposit (completed), a withdrawal and a refund
  (refunded), or nothing (refused), each an account turn under the call's own message id;
- no inbox holds a message, and nothing was set aside as a dead letter.

``ACTORS_TEST_SAGA_KILLS`` sets the number of kills (default 3), ``ACTORS_TEST_SAGA_SEED`` the
random seed; the figures, with the seed, are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio
from json_child import WAIT, JsonChild

from eventstore.sqlite import SQLiteEventStore

KILLS = int(os.environ.get("ACTORS_TEST_SAGA_KILLS", "3"))
CHILD = Path(__file__).parent / "children" / "saga_bank.py"
ACCOUNTS = [f"a{n}" for n in range(5)] + ["shut"]
CLOSED = "shut"  # funded, then closed: it refuses both withdrawals and deposits
FUND = 1000
PER_LIFE = 60  # new transfers planned for each child


def new_transfers(rng: random.Random, life: int) -> list[list[Any]]:
    made = []
    for n in range(PER_LIFE):
        source, target = rng.sample(ACCOUNTS, 2)
        made.append([f"t{life}-{n}", source, target, rng.randint(1, 700)])
    return made


def acknowledged(child: JsonChild) -> set[str]:
    """The transfers whose send returned before the child died (it is dead: read to the end)."""
    acks = set()
    while (line := child.lines.get()) is not None:
        try:
            fields = json.loads(line)
        except ValueError:
            continue  # a line cut by the kill
        if "ack" in fields:
            acks.add(fields["ack"])
    return acks


def launch(mode: str, db: Path, plan_file: Path, transfers: list[list[Any]],
           everything: list[list[Any]]) -> JsonChild:
    plan_file.write_text(json.dumps({"accounts": ACCOUNTS, "closed": CLOSED, "fund": FUND,
                                     "transfers": transfers, "everything": everything}))
    return JsonChild(CHILD, mode, str(db), str(plan_file))


async def read_back(db: Path, streams: list[str]) -> tuple[list[Any], list[str]]:
    """Every event of the file, and the streams among ``streams`` whose inbox is not empty."""
    async with SQLiteEventStore(db) as store:
        log = [event async for event in store.read_all()]
        waiting = [s for s in streams if [m async for m in store.read_inbox(s)]]
    return log, waiting


async def half_done(db: Path, transfers: list[list[Any]]) -> tuple[int, int]:
    """Right after a kill: how many transfers had moved money but not ended, and how many
    messages were waiting in their inboxes (what the next child must finish)."""
    async with SQLiteEventStore(db) as store:
        log = [event async for event in store.read_all()]
        waiting = sum([len([m async for m in store.read_inbox(f"transfer-{t[0]}")])
                       for t in transfers])
    started = {e.data["message_id"].split("/")[0] for e in log
               if e.type == "actors.ReplyRecorded" and e.data["message_id"].startswith("transfer-")}
    ended = {e.stream for e in log if e.type == "bank.TransferEnded"}
    return len(started - ended), waiting


def check(log: list[Any], waiting: list[str], everything: list[list[Any]]) -> Counter[str]:
    """Check the rules of the module docstring; the transfers' outcomes, counted."""
    assert waiting == [], f"messages left in inboxes: {waiting}"
    assert not [e for e in log if e.type == "actors.DeadLettered"], "a transfer was dead-lettered"
    # Account effects: each domain event is followed by the reply its turn recorded, under the
    # id of the call (or of the funding ask) that caused it.
    balances = dict.fromkeys(ACCOUNTS, 0)
    effects: dict[str, tuple[str, str, int]] = {}  # message id -> (account, event type, amount)
    by_stream: dict[str, list[Any]] = {}
    for event in log:
        by_stream.setdefault(event.stream, []).append(event)
    for account in ACCOUNTS:
        events = by_stream.get(f"account-{account}", [])
        for event, after in zip(events, [*events[1:], None], strict=True):
            if event.type not in ("bank.Deposited", "bank.Withdrawn"):
                continue
            amount = event.data["amount"]
            balances[account] += amount if event.type == "bank.Deposited" else -amount
            assert after is not None and after.type == "actors.ReplyRecorded", (account, event)
            message_id = after.data["message_id"]
            assert message_id not in effects, f"{message_id} moved money twice"
            effects[message_id] = (account, event.type, amount)
    assert sum(balances.values()) == FUND * len(ACCOUNTS), balances
    assert {effects.pop(f"fund-{a}") for a in ACCOUNTS} == {
        (a, "bank.Deposited", FUND) for a in ACCOUNTS}

    outcomes: Counter[str] = Counter()
    for tid, source, target, amount in everything:
        events = by_stream.get(f"transfer-{tid}", [])
        ended = [e.data["outcome"] for e in events if e.type == "bank.TransferEnded"]
        assert len(ended) == 1, f"transfer {tid} ended {len(ended)} times: {ended}"
        consumed = [e for e in events if e.type == "actors.Received" and e.data["data"]]
        assert len(consumed) == 1, f"transfer {tid} ran its message {len(consumed)} times"
        outcome = ended[0].split(" ")[0]
        outcomes[outcome] += 1
        call = f"transfer-{tid}/msg:{tid}/"
        moved = {n: effects.pop(f"{call}{n}", None) for n in (1, 2, 3)}
        expected = {
            "completed": {1: (source, "bank.Withdrawn", amount),
                          2: (target, "bank.Deposited", amount), 3: None},
            "refunded": {1: (source, "bank.Withdrawn", amount), 2: None,
                         3: (source, "bank.Deposited", amount)},
            "refused": {1: None, 2: None, 3: None},
        }[outcome]
        assert moved == expected, f"transfer {tid} {ended[0]}: moved {moved}"
    assert effects == {}, f"money moved by no transfer: {effects}"
    return outcomes


@pytest.mark.slow
def test_transfers_survive_kill_9_with_balances_conserved(tmp_path: Path) -> None:
    seed = int(os.environ.get("ACTORS_TEST_SAGA_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    db, plan_file = tmp_path / "bank.db", tmp_path / "plan.json"
    everything: list[list[Any]] = []
    acked: set[str] = set()
    figures: Counter[str] = Counter()
    started = time.monotonic()
    for life in range(KILLS):
        fresh = new_transfers(rng, life)
        everything += fresh
        resent = rng.sample(sorted(acked), min(3, len(acked)))  # acknowledged, sent again
        unacked = [t for t in everything if t[0] not in acked and t not in fresh]
        figures["resent unacknowledged"] += len(unacked)
        figures["resent acknowledged"] += len(resent)
        transfers = unacked + [t for t in everything if t[0] in resent] + fresh
        rng.shuffle(transfers)  # old and new ones interleave, as retries and new work would
        child = launch("work", db, plan_file, transfers, everything)
        if rng.random() < 0.25:  # from launch: maybe during start-up or recovery
            time.sleep(rng.uniform(0.1, 0.8))
            figures["killed early (from launch)"] += 1
        else:
            child.expect("ready")
            time.sleep(rng.uniform(0.0, 0.4))
        child.kill()
        figures["kills"] += 1
        acked |= acknowledged(child)
        if db.exists():
            moved, waiting = trio.run(half_done, db, everything)
            figures["half-done at a kill"] += moved
            figures["waiting in inboxes at a kill"] += waiting
    last = [t for t in everything if t[0] not in acked]
    figures["resent unacknowledged"] += len(last)
    child = launch("drain", db, plan_file, last, everything)
    child.expect("ready")
    for _ in last:
        child.expect("ack")
    line = child.lines.get(timeout=WAIT + 10.0 + len(everything) / 25)  # the child's deadline
    assert line is not None, "".join(child.errors)
    drained = json.loads(line)  # {"drained": n}, or {"stuck": [ids]}
    assert drained.get("drained") == len(everything), f"{drained}; the log is {db}"
    child.finish()
    log, waiting = trio.run(read_back, db, [f"transfer-{t[0]}" for t in everything] +
                            [f"account-{a}" for a in ACCOUNTS])
    outcomes = check(log, waiting, everything)
    figures.update({"transfers": len(everything), "acknowledged before the drain": len(acked),
                    "events": len(log), **outcomes})
    print(f"\nsaga kill test, seed {seed} ({time.monotonic() - started:.1f} s): {dict(figures)}")
