"""Child process for tests/test_cluster_faults.py: one member of a cluster.

Usage: ``cluster_member.py TARGET SCHEMA LEASE``, TARGET a PostgreSQL URL (name the member's
connections with ``application_name`` in it) or ``sqlite:PATH``. It serves ``Worker`` actors as a
hosting member (``actors.Cluster(lease_seconds=LEASE)``) until its stdin says ``quit`` (or
closes), then leaves the cluster cleanly.

A ``Worker`` applies each ``Work`` message once (``Applied``) and, when the message asks for it,
schedules a durable timer (``notifier.notify_at``) that fires later (``Fired``). Snapshots are on.

Prints JSON lines: ``{"member": id}`` when it joins and whenever it rejoins under a new id, and
``{"recovering": stream, "member": id}`` when, in slow mode, it holds a claimed actor before its
recovery. Reads lines on stdin: ``slow`` holds every recovery that starts from now on (the
actor is claimed, not yet recovered: the parent kills the member there), ``fast`` lets them go
on, ``quit`` leaves.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timedelta
from typing import Any

import attrs
import trio

import actors
import eventstore
from actors import durable
from actors._journal import Journal


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


@eventstore.event_type("tests.cluster.Work")
@attrs.frozen
class Work:
    """Apply message ``id`` once; with ``timer`` > 0, fire a timer that many seconds later."""

    id: str
    timer: float = 0.0


@eventstore.event_type("tests.cluster.Applied")
@attrs.frozen
class Applied:
    id: str


@eventstore.event_type("tests.cluster.Fired")
@attrs.frozen
class Fired:
    id: str
    at: datetime


@attrs.define
class Worker(actors.Actor):
    kind = "Worker"
    snapshot_every = 8

    applied: int = 0

    def apply(self, event: Any) -> None:
        if isinstance(event, Applied):
            self.applied += 1

    async def receive(self, message: Any) -> Any:
        assert isinstance(message, Work)
        self.emit(Applied(message.id))
        if message.timer > 0:
            now = await durable.now.aio()
            self.notifier.notify_at(now + timedelta(seconds=message.timer), message.id)
        return self.applied

    async def on_notify(self) -> None:
        now = await durable.now.aio()
        for token in self.notifier.due(now):
            self.emit(Fired(token, now))


class Slow:
    """The ``slow`` mode: recoveries wait (after their claim) until ``fast``."""

    on = False
    go = trio.Event()


def hold_recoveries() -> None:
    recover = Journal.recover

    async def held(self: Journal, *, to_version: int | None = None) -> None:
        if Slow.on:
            system = self.cell.system
            say(recovering=self.stream, member=None if system is None else system.member)
            await Slow.go.wait()
        await recover(self, to_version=to_version)

    Journal.recover = held  # type: ignore[method-assign]


async def commands(system: actors.ActorSystem, quit: trio.Event) -> None:
    stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
    buffer = b""
    while True:
        chunk = await stdin.receive_some()
        if not chunk:
            break
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            command = line.decode().strip()
            if command == "slow":
                Slow.on, Slow.go = True, trio.Event()
            elif command == "fast":
                Slow.on = False
                Slow.go.set()
            elif command == "quit":
                quit.set()
                return
    quit.set()


async def report_member(system: actors.ActorSystem) -> None:
    said = None
    while True:
        if system.member and system.member != said:
            said = system.member
            say(member=said)
        await trio.sleep(0.05)


def open_store(target: str, schema: str) -> eventstore.EventStore:
    if target.startswith("sqlite:"):
        from eventstore.sqlite import SQLiteEventStore

        return SQLiteEventStore(target.removeprefix("sqlite:"))
    from eventstore.postgres import PostgresEventStore

    return PostgresEventStore(target, schema=schema)


async def main(target: str, schema: str, lease: float) -> None:
    hold_recoveries()
    cluster = actors.Cluster(lease_seconds=lease, poll_seconds=0.2, balance_seconds=4.0)
    quit = trio.Event()
    async with open_store(target, schema) as store, \
            actors.ActorSystem(store, actors=[Worker], cluster=cluster) as system, \
            trio.open_nursery() as nursery:
        nursery.start_soon(commands, system, quit)  # quits when stdin closes (the parent died)
        nursery.start_soon(report_member, system)
        await quit.wait()
        Slow.go.set()
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    trio.run(main, sys.argv[1], sys.argv[2], float(sys.argv[3]))
