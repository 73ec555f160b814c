"""The bank's accounts served by a cluster of processes on one PostgreSQL database.

    python samples/cluster.py postgresql://user@host/db

starts two member processes (this file with ``member``), then, as a client that owns no
actors, deposits into eight accounts from any member's point of view: each account is claimed by
one member, and the client's messages reach it through its inbox. Then it SIGKILLs the member
that owns ``alice``; once that member's lease runs out, the next deposit to ``alice`` gets her
claimed by the survivor, which recovers her from her log: no deposit is lost or applied twice.
It prints who owns what, before and after, and the balances.

    python samples/cluster.py URL member

runs one member until interrupted (``Ctrl-C`` leaves the cluster cleanly: its accounts are
handed over at once). Each run works in a schema of its own (``?schema=`` in the URL chooses
one), which the demo drops at the end.
"""

# --8<-- [start:member]
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import trio
from bank import Account, Deposit, GetBalance

import actors
import eventstore

LEASE = 2.0  # short for the demo; see docs/cluster.md for sizing a lease


async def member(url: str) -> None:
    """One member: hosts accounts until interrupted (Ctrl-C: it leaves the cluster, handing
    its accounts over at once)."""
    store = eventstore.open(url)
    cluster = actors.Cluster(lease_seconds=LEASE, poll_seconds=0.2)
    async with store, actors.ActorSystem(store, actors=[Account], cluster=cluster) as system:
        print(f"member {system.member} ready", flush=True)
        await trio.sleep_forever()
# --8<-- [end:member]


# --8<-- [start:client]
async def client(url: str) -> None:
    """Deposits through a client member, kills a member, deposits again, prints balances."""
    store = eventstore.open(url)
    names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
    members = [subprocess.Popen([sys.executable, __file__, url, "member"],
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for process in members:  # each prints its id once it has joined
            assert process.stdout is not None
            print(await trio.to_thread.run_sync(process.stdout.readline), end="")
        client = actors.Cluster(lease_seconds=LEASE, poll_seconds=0.2, hosting=False)
        async with store, actors.ActorSystem(store, actors=[Account], cluster=client) as bank:
            for n, name in enumerate(names):
                await bank.ref(Account, name).ask(Deposit(10 + n), message_id=f"first-{name}")
            owners = {row.stream: row.member for row in await store.owners()}
            print(await ownership(store))
            victim = owners["account-alice"]
            pid = int(victim.split("-")[-2])  # member ids are host-pid-random
            os.kill(pid, signal.SIGKILL)
            print(f"killed member {victim}")
            for name in names:  # alice's first: she is claimed again after the lease
                await bank.ref(Account, name).ask(Deposit(100), message_id=f"second-{name}")
            print(await ownership(store))
            for name in names:
                balance = await bank.ref(Account, name).ask(GetBalance())
                print(f"{name}: {balance}")
    finally:
        for process in members:
            process.send_signal(signal.SIGINT)  # it leaves; the killed one is gone already
        for process in members:
            process.wait(timeout=30)


async def ownership(store: eventstore.EventStore) -> str:
    alive = {m.id for m in await store.members() if m.state == "alive"}
    rows = sorted((row.member or "nobody", row.stream) for row in await store.owners())
    lines = [f"  {stream} -> {who}{'' if who in alive else ' (not alive)'}"
             for who, stream in rows]
    return "owners:\n" + "\n".join(lines)
# --8<-- [end:client]


def with_schema(url: str) -> tuple[str, str]:
    """``url`` with a ``schema`` of its own (unless it names one), and that schema."""
    if "schema=" in url:
        return url, url.split("schema=")[1].split("&")[0]
    schema = f"cluster_demo_{uuid.uuid4().hex[:8]}"
    return f"{url}{'&' if '?' in url else '?'}schema={schema}", schema


def drop(url: str, schema: str) -> None:
    import psycopg
    with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[2] == "member":
        actors.run_program(member, sys.argv[1])
    elif len(sys.argv) == 2:
        target, own = with_schema(sys.argv[1])
        try:
            actors.run_program(client, target)
        finally:
            if "schema=" not in sys.argv[1]:
                drop(sys.argv[1], own)
    else:
        sys.exit(__doc__)
