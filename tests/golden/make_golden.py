"""Record the golden logs of this folder: ``python tests/golden/make_golden.py``.

Run it only to change a golden log on purpose: the point of a golden log is that it was written
by an older version of the code, and the current code must still replay it
(``tests/test_cli.py`` checks them with ``python -m actors check``).
"""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from golden_actors import DAY, Subscribe, Subscription

from actors.replay import export_jsonl
from actors.testing import ActorTestKit

HERE = Path(__file__).parent


async def record() -> None:
    async with ActorTestKit(always_replay=True) as kit:
        done = await kit.spawn(Subscription, "alice")
        await done.ask(Subscribe("pro"), message_id="subscribe-alice")
        await kit.advance(45 * DAY)  # the welcome reminder, the first charge
        await kit.crash(done)
        await kit.recover(done)  # resumes run() in the middle of its second month
        await kit.advance(60 * DAY)  # the second and third charges; run() completes
        inflight = await kit.spawn(Subscription, "bob")
        await inflight.ask(Subscribe("basic"), message_id="subscribe-bob")
        await kit.advance(40 * DAY)  # stops in its second month: run() is unfinished
    for actor_id, name in (("alice", "subscription.jsonl"), ("bob", "subscription-inflight.jsonl")):
        with (HERE / name).open("w") as out:
            await export_jsonl(kit.store, f"Subscription-{actor_id}", out)


if __name__ == "__main__":
    trio.run(record, clock=trio.testing.MockClock(autojump_threshold=0))
