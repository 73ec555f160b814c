"""Child process for tests/test_saga_kills.py: the bank of ``samples/bank.py`` on a SQLite file.

Usage: ``saga_bank.py work DB PLAN`` or ``saga_bank.py drain DB PLAN``. PLAN is a JSON file:
``{"accounts": [...], "closed": "...", "fund": n, "transfers": [[id, source, target, amount],
...]}``. Both modes start an ``ActorSystem`` (which resumes every actor with waiting inbox
messages), fund each account once (an ask with a message id) and close the ``closed`` one, print
``{"ready": 1}``, then send each transfer of the plan (``send`` with the transfer's id as
message id) from a few tasks at once, printing ``{"ack": id}`` once a send has returned.

``work`` then waits to be killed. ``drain`` waits until every transfer of the plan has ended,
prints ``{"drained": n}`` and exits, leaving the system (which commits and stops every actor);
or prints ``{"stuck": [ids]}``, the transfers that have not ended after ``deadline()`` seconds.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).parents[2] / "samples"))

from bank import (  # the sample, found through the path above
    Account,
    Close,
    Deposit,
    GetOutcome,
    StartTransfer,
    Transfer,
)

import actors
from eventstore.sqlite import SQLiteEventStore

SENDERS = 4


def deadline(transfers: int) -> float:
    """Seconds a drain may take; never reached unless something is broken."""
    return 10.0 + transfers / 25


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def send_all(system: actors.ActorSystem, transfers: list[list[object]]) -> None:
    queue = list(reversed(transfers))

    async def sender() -> None:
        while queue:
            tid, source, target, amount = queue.pop()
            assert isinstance(tid, str) and isinstance(source, str)
            assert isinstance(target, str) and isinstance(amount, int)
            await system.ref(Transfer, tid).send(StartTransfer(source, target, amount),
                                                 message_id=tid)
            say(ack=tid)
            await trio.sleep(random.uniform(0, 0.01))

    async with trio.open_nursery() as nursery:
        for _ in range(SENDERS):
            nursery.start_soon(sender)


async def main(mode: str, db: str, plan_file: str) -> None:
    plan = json.loads(Path(plan_file).read_text())
    async with SQLiteEventStore(db) as store, \
            actors.ActorSystem(store, actors=[Account, Transfer]) as system:
        for account in plan["accounts"]:
            await system.ref(Account, account).ask(Deposit(plan["fund"]),
                                                   message_id=f"fund-{account}")
        await system.ref(Account, plan["closed"]).ask(Close())
        say(ready=1)
        await send_all(system, plan["transfers"])
        if mode == "work":
            await trio.sleep_forever()
        with trio.move_on_after(deadline(len(plan["everything"]))):
            for tid, *_ in plan["everything"]:
                while await system.ref(Transfer, tid).ask(GetOutcome()) == "new":
                    await trio.sleep(0.05)
            say(drained=len(plan["everything"]))
            return
        stuck = [tid for tid, *_ in plan["everything"]
                 if await system.ref(Transfer, tid).ask(GetOutcome()) == "new"]
        say(stuck=stuck)


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:])
