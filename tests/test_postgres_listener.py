"""The PostgreSQL listener across a lost connection: what was notified meanwhile is not lost.

Notifications sent while the listener reconnects never arrive, so after each (re)connect it
tells the inbox watcher (a cluster member) that any inbox may hold messages: the member pokes
every actor it serves, which reads its inbox. Without it, a message stored while the listener
was down waits until the next one for the same actor (the cluster fault test found actors that
waited for ever once the driver stopped sending).
"""

from __future__ import annotations

import pytest
import trio
from psycopg.conninfo import make_conninfo

from eventstore import NewEvent

pytestmark = pytest.mark.postgres


def terminate(url: str, application: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = %s", (application,)).fetchall()
    return len(rows)


async def test_a_reconnected_listener_says_any_inbox_may_have_messages(
        postgres_url: str, postgres_schema: str) -> None:
    from eventstore.postgres import PostgresEventStore

    told: list[list[str] | None] = []
    changed = trio.Event()

    def watch(streams: list[str] | None) -> None:
        told.append(streams)
        changed.set()

    listening = make_conninfo(postgres_url, application_name="listener-test")
    async with PostgresEventStore(listening, schema=postgres_schema, poll_interval=0.05) as store, \
            PostgresEventStore(postgres_url, schema=postgres_schema) as other:
        assert store.watch_inboxes(watch)
        with trio.fail_after(10):
            await changed.wait()  # connected: nothing can be known of the time before
        assert told == [None]
        changed = trio.Event()
        await other.enqueue("Account-a", [NewEvent("Deposit", {"amount": 1})])
        with trio.fail_after(10):
            await changed.wait()
        assert told[-1] == ["Account-a"]  # a notification names the inbox

        changed = trio.Event()
        assert await trio.to_thread.run_sync(terminate, postgres_url, "listener-test") >= 1
        with trio.fail_after(10):  # reconnected: it cannot say which inboxes changed meanwhile
            while told[-1] is not None:
                changed = trio.Event()
                await changed.wait()
        store.watch_inboxes(None)
