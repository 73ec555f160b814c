"""A drip campaign: a welcome email now, a follow-up some days later, even across crashes.

    python samples/drip_campaign.py campaign.db 259200 alice@example.com

starts a campaign for alice on the SQLite file ``campaign.db``: the welcome email goes out at
once, the follow-up 259200 s (three days) later. Kill the program while it waits (Ctrl-C, or
``kill -9``) and run the same command again: the welcome email is not sent twice, and the
follow-up goes out three days after the campaign began, not three days after the restart.
Run it once more after the follow-up: it says the campaign is over and sends nothing.

The ``run()`` body below runs again from the top after every restart. Its durable calls return
what they recorded the first time: ``durable.now()`` the same instant, ``durable.sleep()`` only
the rest of the wait. Side effects are guarded by the state (``welcome_at``, ``follow_up_at``),
which the log rebuilds; the durable calls themselves are made unconditionally, so the n-th call
of every run meets the n-th recorded one.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from typing import Any, ClassVar

import attrs
import trio

import actors
import eventstore
from actors import durable


@eventstore.event_type("drip.EmailSent")
@attrs.frozen
class EmailSent:
    """An email of the campaign went out (``email`` is "welcome" or "follow-up")."""

    email: str
    at: datetime


@attrs.frozen
class Status:
    """Ask a campaign where it is."""


def send_email(to: str, subject: str, at: datetime) -> None:
    """Stands in for an SMTP call."""
    print(f"[{at:%Y-%m-%d %H:%M:%S.%f}] email to {to}: {subject}", flush=True)


@attrs.define
class Campaign(actors.Actor):
    """One subscriber's campaign; the actor id is the subscriber's address."""

    kind = "Campaign"
    follow_up_after: ClassVar[float] = 3 * 24 * 3600.0
    finished: ClassVar[trio.Event]

    welcome_at: datetime | None = None
    follow_up_at: datetime | None = None

    def apply(self, event: Any) -> None:
        match event:
            case EmailSent(email="welcome", at=at):
                self.welcome_at = at
            case EmailSent(email="follow-up", at=at):
                self.follow_up_at = at

    async def run(self) -> None:
        began = await durable.now.aio()  # recorded once; the same instant after every restart
        if self.welcome_at is None:
            send_email(self.id, "Welcome aboard!", began)
            self.emit(EmailSent("welcome", began))
            await self.flush()  # a crash from here on never sends it again
        else:
            print(f"resuming: the welcome email went out at {self.welcome_at:%H:%M:%S.%f}",
                  flush=True)
        due = began + timedelta(seconds=self.follow_up_after)
        print(f"follow-up due at {due:%H:%M:%S.%f}", flush=True)
        await durable.sleep.aio(self.follow_up_after)  # commits SleepStarted, then waits
        sent = await durable.now.aio()
        send_email(self.id, "How is it going?", sent)
        self.emit(EmailSent("follow-up", sent))
        Campaign.finished.set()

    async def receive(self, message: Any) -> bool:
        match message:
            case Status():
                return self.follow_up_at is not None
        raise TypeError(f"Campaign does not handle {message!r}")


async def main(db: str, follow_up_after: float, subscriber: str) -> None:
    Campaign.follow_up_after = follow_up_after
    Campaign.finished = trio.Event()
    async with eventstore.open(f"sqlite:///{db}") as store, \
            actors.ActorSystem(store, actors=[Campaign]) as system:
        campaign = await system.spawn(Campaign, subscriber)
        if await campaign.ask(Status()):
            print(f"the campaign for {subscriber} is over", flush=True)
            return
        await Campaign.finished.wait()
    print(f"the campaign for {subscriber} is over", flush=True)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: drip_campaign.py DB FOLLOW_UP_SECONDS [SUBSCRIBER]")
    actors.run_program(main, sys.argv[1], float(sys.argv[2]),
             sys.argv[3] if len(sys.argv) == 4 else "alice@example.com")
