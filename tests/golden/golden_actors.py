"""The actors the golden logs in this folder were recorded from, and drifted versions of them.

``Subscription`` charges a plan monthly from its ``run()`` body (durable sleeps), sends a
welcome reminder through its notifier, and takes snapshots. The ``Drifted*`` classes share its
stream kind but changed in ways a golden-log check must catch. ``make_golden.py`` records the
logs; ``python -m actors check --actor golden_actors:Subscription subscription.jsonl`` checks
them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs

import actors
import eventstore
from actors import durable

DAY = 86400
MONTH = 30 * DAY
PRICE = 10


@eventstore.event_type("golden.Subscribed")
@attrs.frozen
class Subscribed:
    plan: str


@eventstore.event_type("golden.Charged")
@attrs.frozen
class Charged:
    month: int
    amount: int
    at: float


@eventstore.event_type("golden.Reminded")
@attrs.frozen
class Reminded:
    about: str


@attrs.frozen
class Subscribe:
    plan: str


@attrs.frozen
class Status:
    pass


@attrs.define
class Subscription(actors.Actor):
    """Three monthly charges; each month's charge is emitted once, whatever recovers."""

    kind = "Subscription"
    snapshot_every = 4

    plan: str | None = None
    charged: list[int] = attrs.Factory(list)
    total: int = 0
    reminders: list[str] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        match event:
            case Subscribed(plan=plan):
                self.plan = plan
            case Charged(month=month, amount=amount):
                self.charged.append(month)
                self.total += amount
            case Reminded(about=about):
                self.reminders.append(about)

    async def receive(self, message: Any) -> Any:
        match message:
            case Subscribe(plan=plan):
                self.emit(Subscribed(plan))
                self.notifier.notify_at(await durable.now.aio() + timedelta(days=1), "welcome")
            case Status():
                return (self.plan, self.total, list(self.charged))

    async def on_notify(self) -> None:
        for token in self.notifier.due(await durable.now.aio()):
            self.emit(Reminded(token))

    async def run(self) -> None:
        for month in range(1, 4):
            await durable.sleep.aio(MONTH)
            at = await durable.time.aio()
            if month not in self.charged:
                self.emit(Charged(month, self.price(), at))

    def price(self) -> int:
        return PRICE


@attrs.define
class DriftedSleep(Subscription):
    """Bills every 31 days now: recovering an in-flight subscription is non-deterministic."""

    async def run(self) -> None:
        for month in range(1, 4):
            await durable.sleep.aio(31 * DAY)
            at = await durable.time.aio()
            if month not in self.charged:
                self.emit(Charged(month, self.price(), at))


@attrs.define
class DriftedApply(Subscription):
    """Counts a charge twice in ``apply``: the folded state no longer matches the snapshots."""

    def apply(self, event: Any) -> None:
        super().apply(event)
        if isinstance(event, Charged):
            self.total += event.amount


@attrs.define
class Unguarded(Subscription):
    """Emits a charge without looking at the state: a recovery charges months again."""

    async def run(self) -> None:
        for month in range(1, 4):
            await durable.sleep.aio(MONTH)
            self.emit(Charged(month, self.price(), await durable.time.aio()))
