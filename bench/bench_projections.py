"""Projection catch-up: a log of deposits folded into per-account balances, exactly once.

Ours: ``actors.run_projection`` over a ``SQLiteEventStore`` holding ``n`` ``Deposited`` events
(100 accounts), its handler writing ``INSERT ... ON CONFLICT DO UPDATE`` through ``tx`` into a
table of the same file, the statements and the offset committed together once per batch (the
default ``batch_size``, 100). Timed from the start of the runner until it has caught up with the
head; each round is a new projection (its own name and table) over the same log.

The peer: the ``eventsourcing`` library (9.x), its way of keeping a read model exactly once: a
``ProcessApplication`` following the leader application's notification log (SQLite), its policy
folding each ``Deposited`` into a ``Balance`` aggregate per account (``repository.get`` with the
aggregate cache on, then ``collect_events``), each event's new aggregate event recorded with its
tracking record in one transaction. Timed over ``pull_and_process`` until it has processed the
whole log; each round a fresh process application (a new SQLite file) over the same leader.

Both files use their library's default durability (ours ``synchronous=FULL``, the peer's
SQLite default), both logs are written beforehand (not timed).

Live lag (no peer): on PostgreSQL, 100 actors in an ``ActorSystem`` each handle a stream of
deposits (asks, one event per turn) while an in-memory projection hosted by the same system
follows the log; the lag of an event is when the projection handles it minus its
``recorded_at`` (the server's commit-time clock, on the same host). Run twice: with Python's
collector as it comes, and with the system's ``GCPolicy`` (the target's row: full collections
are the tail of the first). ``ACTORS_TEST_POSTGRES_URL`` names the server (default: the local
test database); without one the case is skipped.
"""

from __future__ import annotations

import functools
import itertools
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import trio

import actors
import eventstore
from eventstore import RecordedEvent
from eventstore.sqlite import SQLiteEventStore

from ._harness import Paired, Report, rounds, scaled

QUICK = "catch-up of 20k deposits into a SQLite table (2k in quick), against eventsourcing"
ACCOUNTS = 100
BATCH = 1_000


@eventstore.event_type("bench.projections.Deposited")
@attrs.frozen
class Deposited:
    amount: int


class Balances(actors.Projection):
    types = [Deposited]

    def __init__(self, name: str, batch_size: int) -> None:
        self.name = name
        self.batch_size = batch_size
        self.table = name.replace("-", "_")

    async def setup(self, tx: actors.Transaction) -> None:
        tx.execute(f"CREATE TABLE IF NOT EXISTS {self.table} "
                   "(account TEXT PRIMARY KEY, balance INTEGER NOT NULL)")

    async def handle(self, event: Any, recorded: RecordedEvent, tx: actors.Transaction) -> None:
        tx.execute(f"INSERT INTO {self.table} VALUES (?, ?) ON CONFLICT (account) "
                   "DO UPDATE SET balance = balance + excluded.balance",
                   (recorded.stream, event.amount))


def fill_ours(path: Path, n: int) -> None:
    async def fill() -> None:
        async with SQLiteEventStore(path) as store:
            for start in range(0, n, BATCH):
                async with trio.open_nursery() as nursery:
                    for account in range(ACCOUNTS):
                        count = len(range(start + account, min(start + BATCH, n), ACCOUNTS))
                        if count:
                            nursery.start_soon(store.append, f"account-{account}",
                                               [store.codec.new_event(Deposited(1))
                                                for _ in range(count)])

    trio.run(fill)


def ours(path: Path, n: int, batch_size: int) -> Callable[[], float]:
    names = (f"balances-{batch_size}-{k}" for k in itertools.count())

    async def catch_up(name: str) -> float:
        async with SQLiteEventStore(path) as store, trio.open_nursery() as nursery:
            head = await store.head_position()
            started = time.perf_counter()
            runner = await nursery.start(actors.run_projection, store,
                                         Balances(name, batch_size))
            await runner.wait_for(head)
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        return n / elapsed

    return lambda: trio.run(catch_up, next(names))


@functools.cache
def _peer_classes() -> tuple[Any, Any, Any, Any]:
    """The peer's applications, imported only when it runs (eventsourcing is an extra)."""
    from functools import singledispatchmethod

    from eventsourcing.application import AggregateNotFoundError, Application
    from eventsourcing.domain import Aggregate, event
    from eventsourcing.system import ProcessApplication

    class Account(Aggregate):
        @event("Deposited")
        def deposit(self, amount: int) -> None:
            pass

    class Balance(Aggregate):
        def __init__(self, account: str) -> None:
            self.account = account
            self.balance = 0

        @staticmethod
        def create_id(account: str) -> Any:
            import uuid
            return uuid.uuid5(uuid.NAMESPACE_URL, f"/balances/{account}")

        @event("Added")
        def add(self, amount: int) -> None:
            self.balance += amount

    class Bank(Application[Any]):
        name = "Bank"

    class Balances(ProcessApplication[Any]):
        @singledispatchmethod
        def policy(self, domain_event: Any, processing_event: Any) -> None:
            if not isinstance(domain_event, Account.Deposited):  # type: ignore[attr-defined]
                return
            account = str(domain_event.originator_id)
            try:
                balance: Any = self.repository.get(Balance.create_id(account))
            except AggregateNotFoundError:
                balance = Balance(account)
            balance.add(domain_event.amount)
            processing_event.collect_events(balance)

    return Account, Balance, Bank, Balances


def peer(folder: Path, n: int) -> Callable[[], float]:
    account_cls, balance_cls, bank_cls, balances_cls = _peer_classes()
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
           "SQLITE_DBNAME": str(folder / "peer-bank.db")}
    bank = bank_cls(env=env)
    accounts = [account_cls() for _ in range(ACCOUNTS)]
    bank.save(*accounts)
    for start in range(0, n, BATCH):
        for number in range(start, min(start + BATCH, n)):
            accounts[number % ACCOUNTS].deposit(1)
        bank.save(*accounts)
    rounds_run = itertools.count()

    def once() -> float:
        follower = balances_cls(env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(folder / f"peer-balances-{next(rounds_run)}.db"),
            "AGGREGATE_CACHE_MAXSIZE": str(2 * ACCOUNTS)})
        follower.follow("Bank", bank.notification_log)
        started = time.perf_counter()
        follower.pull_and_process("Bank")
        elapsed = time.perf_counter() - started
        one = follower.repository.get(balance_cls.create_id(str(accounts[0].id)))
        assert one.balance == len(range(0, n, ACCOUNTS)), one.balance
        return n / elapsed

    return once


URL = os.environ.get("ACTORS_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"


class Lags(actors.Projection):
    name = "lags"
    types = [Deposited]

    def __init__(self) -> None:
        self.lags: list[float] = []

    async def handle(self, event: Any, recorded: RecordedEvent) -> None:
        self.lags.append((datetime.now(UTC) - recorded.recorded_at).total_seconds() * 1000)


@attrs.define
class Depositor(actors.Actor):
    count: int = 0

    def apply(self, event: Any) -> None:
        self.count += 1

    async def receive(self, amount: int) -> int:
        self.emit(Deposited(amount))
        return self.count


def live_lag(per_actor: int, gc: actors.GCPolicy | None = None) -> list[float]:
    """The lag of every event (ms) while 100 actors emit on PostgreSQL (``gc``: the system's
    garbage-collector policy)."""
    from eventstore.postgres import PostgresEventStore

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    lags = Lags()

    async def main() -> None:
        async with PostgresEventStore(URL, schema=schema) as store, \
                actors.ActorSystem(store, actors=[Depositor], projections=[lags],
                                   gc=gc) as system:
            async def emit(n: int) -> None:
                ref = system.ref(Depositor, f"d{n}")
                for _ in range(per_actor):
                    await ref.ask(1)
                    await trio.sleep(0.01)

            async with trio.open_nursery() as nursery:
                for n in range(100):
                    nursery.start_soon(emit, n)
            await system.projection("lags").wait_for(await store.head_position())

    try:
        trio.run(main)
    finally:
        import psycopg

        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return lags.lags


def run(report: Report, *, quick: bool = False) -> None:
    n = scaled(20_000)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder)
        fill_ours(path / "ours.db", n)
        cases = {"ours": ours(path / "ours.db", n, 100), "peer": peer(path, n)}
        if not quick:  # what batching is worth: one commit per event, as the peer makes
            cases["ours, batch_size=1"] = ours(path / "ours.db", n, 1)
        figures = rounds(cases)
    case = f"catch-up of {n:,} deposits into a SQLite table, exactly once"
    report.row("projections", case, Paired.of(figures, "ours", "peer"), "events/s",
               peer="eventsourcing ProcessApplication", target=">= 5x")
    if quick:
        return
    report.row("projections", f"{case}, batch_size=1",
               Paired.of(figures, "ours, batch_size=1", "peer"), "events/s",
               peer="eventsourcing ProcessApplication")
    try:
        import psycopg

        with psycopg.connect(URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        print(f"  projections: live lag skipped, no PostgreSQL server at {URL}: "
              f"{' '.join(str(exc).split())}")
        return
    per_actor = scaled(50)
    case = f"live lag, 100 actors emitting on PostgreSQL, {100 * per_actor:,} events"
    # Python's collector as it comes, then the system's GCPolicy (docs/performance.md): the
    # tail of the first is full collections, which the policy keeps out of the way.
    for policy, label, target in ((None, "", None), (actors.GCPolicy(), ", GCPolicy", "< 50 ms")):
        lags = sorted(live_lag(per_actor, policy))
        report.row("projections", f"{case}{label}, median", statistics.median(lags), "ms")
        report.row("projections", f"{case}{label}, p99", lags[int(0.99 * (len(lags) - 1))],
                   "ms", target=target)
