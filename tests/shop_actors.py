"""Actors that use durable messaging: the logs of ``log``'s sentences and ``check``'s re-runs.

``Shop`` takes ``Order`` messages sent with ``ref.send``: it reads the durable time, runs a
recorded step, asks ``Stock`` (a durable call), tells ``Mailer`` and emits ``Ordered``. The
variants below it are later releases of ``Shop`` that ``check`` must tell apart from it.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import attrs

import actors
import eventstore
from actors import durable


@eventstore.event_type("shop.Order")
@attrs.frozen
class Order:
    item: str
    qty: int


@eventstore.event_type("shop.Ordered")
@attrs.frozen
class Ordered:
    item: str
    qty: int
    code: str
    left: int
    at: float


@eventstore.event_type("shop.Mail")
@attrs.frozen
class Mail:
    text: str


_codes = itertools.count(1)


def fresh_code() -> str:
    """A side effect: a new code on every call (a re-run must take the recorded one)."""
    return f"code-{next(_codes)}"


@attrs.define
class Stock(actors.Actor):
    kind = "Stock"
    left: ClassVar[int] = 10

    async def receive(self, qty: int) -> int:
        Stock.left -= qty
        return Stock.left


@attrs.define
class Mailer(actors.Actor):
    kind = "Mailer"

    async def receive(self, message: Any) -> None:
        pass


@attrs.define
class Shop(actors.Actor):
    kind = "Shop"
    orders: list[str] = attrs.Factory(list)

    def apply(self, event: Ordered) -> None:
        self.orders.append(event.item)

    async def receive(self, message: Any) -> Any:
        if not isinstance(message, Order):
            return self.orders
        at = await durable.time.aio()
        code = await durable.step.aio(fresh_code)
        left = await self.ref(Stock, "s").ask(message.qty)
        self.ref(Mailer, "m").tell(Mail(f"{message.item} x{message.qty}"))
        self.emit(Ordered(message.item, message.qty, code, left, at))
        return code


@attrs.define
class ShopTwice(Shop):
    """A later release that emits each order twice."""

    kind = "Shop"

    async def receive(self, message: Any) -> Any:
        code = await super().receive(message)
        if isinstance(message, Order):
            last = self.orders[-1]
            self.emit(Ordered(last, 0, code, 0, 0.0))
        return code


@attrs.define
class ShopNoMail(Shop):
    """A later release that no longer mails."""

    kind = "Shop"

    async def receive(self, message: Any) -> Any:
        if not isinstance(message, Order):
            return self.orders
        at = await durable.time.aio()
        code = await durable.step.aio(fresh_code)
        left = await self.ref(Stock, "s").ask(message.qty)
        self.emit(Ordered(message.item, message.qty, code, left, at))
        return code


@attrs.define
class ShopStepFirst(Shop):
    """A later release that runs the step before reading the time: durable calls reordered."""

    kind = "Shop"

    async def receive(self, message: Any) -> Any:
        if not isinstance(message, Order):
            return self.orders
        code = await durable.step.aio(fresh_code)
        at = await durable.time.aio()
        left = await self.ref(Stock, "s").ask(message.qty)
        self.ref(Mailer, "m").tell(Mail(f"{message.item} x{message.qty}"))
        self.emit(Ordered(message.item, message.qty, code, left, at))
        return code


@attrs.define
class ShopForgets(Shop):
    """A later release that no longer records the order."""

    kind = "Shop"

    async def receive(self, message: Any) -> Any:
        if not isinstance(message, Order):
            return self.orders
        await durable.time.aio()
        code = await durable.step.aio(fresh_code)
        await self.ref(Stock, "s").ask(message.qty)
        self.ref(Mailer, "m").tell(Mail(f"{message.item} x{message.qty}"))
        return code


@attrs.define
class ShopRaises(Shop):
    """A later release that refuses large orders."""

    kind = "Shop"

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Order) and message.qty > 2:
            raise ValueError(f"{message.qty} is too many")
        return await super().receive(message)


async def fill(store: eventstore.EventStore) -> None:
    """Two orders sent to Shop-s1 (the first with a message id), the first again, a value."""
    async with actors.ActorSystem(store, actors=[Shop, Stock, Mailer]) as system:
        shop = system.ref(Shop, "s1")
        await shop.send(Order("tea", 2), message_id="order-1")
        await shop.send(Order("jam", 3))
        assert await shop.ask("state") == ["tea", "jam"]
        await shop.send(Order("tea", 2), message_id="order-1")  # a resend: consumed only
        await shop.send(("plain", 1))
        assert await shop.ask("state") == ["tea", "jam"]
