"""A reminder service: reminders are durable timers, so they fire even after a restart.

    python samples/reminders.py reminders.db [SECONDS]

serves on the SQLite file ``reminders.db`` for SECONDS (default: until stopped), reading one
command per line from stdin and printing a line for each reminder as it comes due:

    remind alice 10m stretch your legs    # the delay in seconds, or with a unit: s, m, h, d
    remind alice 2h call Bob
    cancel alice call Bob
    list alice

Stop it at any time (Ctrl-C, ``kill -9``, a reboot) and start it again: every reminder still
fires, the overdue ones at once, the others on time; none fires early. Delivery is at least
once: a reminder delivered just before a crash, before its ``Delivered`` event was committed, is
delivered again after the restart.

Every user is an actor (``Reminders``, id = the user's name) and every reminder a token of its
``self.notifier``: ``notify_at`` writes ``NotificationScheduled`` into the user's log, and the
wake-up that delivers it writes ``NotificationFired`` with the ``Delivered`` event. Nobody has to
ask a user anything for its reminders to fire: the ``ActorSystem`` keeps a work index of when
each actor next has a timer due and activates the actor then, also right after a restart, and
passivates it again after ``IDLE`` seconds without work. Run one process per database file.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from typing import Any

import attrs
import trio

import actors
import eventstore
from actors import durable

IDLE = 60.0
"""Seconds without work before a user's actor leaves memory (its timers stay in the index)."""

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@eventstore.event_type("reminders.Reminder")
@attrs.frozen
class Reminder:
    """A notifier token: what to say and when (tokens are stored with the codec, like events)."""

    text: str
    due: datetime


@eventstore.event_type("reminders.Delivered")
@attrs.frozen
class Delivered:
    """The reminder was delivered at ``at`` (at or after ``reminder.due``)."""

    reminder: Reminder
    at: datetime


@attrs.frozen
class Remind:
    text: str
    seconds: float


@attrs.frozen
class Cancel:
    text: str


@attrs.frozen
class ListPending:
    pass


@attrs.define
class Reminders(actors.Actor):
    """One user's reminders: the pending ones are ``self.notifier``'s tokens."""

    kind = "Reminders"

    delivered: int = 0

    def apply(self, event: Any) -> None:
        if isinstance(event, Delivered):
            self.delivered += 1

    async def receive(self, message: Any) -> Any:
        match message:
            case Remind(text=text, seconds=seconds):
                due = await durable.now.aio() + timedelta(seconds=seconds)
                self.notifier.notify_at(due, Reminder(text, due))
                return due
            case Cancel(text=text):
                matching = {token for _, token in self.notifier.pending() if token.text == text}
                return sum(self.notifier.cancel(token) for token in matching)
            case ListPending():
                return [token for _, token in self.notifier.pending()]
        raise TypeError(f"Reminders does not handle {message!r}")

    async def on_notify(self) -> None:
        now = await durable.now.aio()  # recorded: a retried wake-up sees the same instant
        for reminder in self.notifier.due(now):
            deliver(self.id, reminder, now)
            self.emit(Delivered(reminder, now))


def deliver(user: str, reminder: Reminder, now: datetime) -> None:
    """Stands in for a push notification."""
    say(f"[{now.isoformat()}] {user}: {reminder.text} (due {reminder.due.isoformat()})")


def say(line: str) -> None:
    print(line, flush=True)


def seconds(text: str) -> float:
    """``"90"``, ``"90s"``, ``"10m"``, ``"2h"`` or ``"1d"`` in seconds."""
    scale = UNITS.get(text[-1:])
    try:
        value = float(text[:-1] if scale else text) * (scale or 1)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ValueError(f"a delay is seconds >= 0, or a number with a unit (90s, 10m, 2h, 1d); "
                         f"got {text!r}")
    return value


async def command(system: actors.ActorSystem, line: str) -> None:
    """Run one command line; say what went wrong instead of stopping the service."""
    match line.strip().split(maxsplit=3):
        case ["remind", user, delay, text]:
            try:
                wait = seconds(delay)
            except ValueError as exc:
                say(f"error: {exc}")
                return
            due = await system.ref(Reminders, user).ask(Remind(text, wait))
            say(f"{user}: {text!r} at {due.isoformat()}")
        case ["cancel", user, *text] if text:
            removed = await system.ref(Reminders, user).ask(Cancel(" ".join(text)))
            say(f"{user}: cancelled {removed}")
        case ["list", user]:
            pending = await system.ref(Reminders, user).ask(ListPending())
            say(f"{user}: {len(pending)} pending")
            for reminder in pending:
                say(f"  {reminder.text!r} at {reminder.due.isoformat()}")
        case []:
            pass
        case _:
            say(f"error: cannot read {line.strip()!r}; the commands are: remind USER DELAY TEXT, "
                "cancel USER TEXT, list USER")


async def read_commands(system: actors.ActorSystem) -> None:
    """Run the commands on stdin, one per line, until it ends."""
    while line := await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True):
        await command(system, line)


async def main(db: str, duration: float) -> None:
    async with eventstore.open(f"sqlite:///{db}") as store, \
            actors.ActorSystem(store, actors=[Reminders], idle_timeout=IDLE) as system:
        with trio.move_on_after(duration):
            await read_commands(system)
            await trio.sleep_forever()  # stdin ended: go on delivering reminders


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    try:
        duration = seconds(sys.argv[2]) if len(sys.argv) == 3 else float("inf")
    except ValueError as exc:
        sys.exit(f"SECONDS: {exc}")
    actors.run_program(main, sys.argv[1], duration)
