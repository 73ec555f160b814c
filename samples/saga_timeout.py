"""A saga step with a deadline: a call that timed out is cancelled by name, never guessed.

    python samples/saga_timeout.py

An ``Order`` books a delivery with the ``Courier``, which is sometimes slow (it waits for a
partner). The order gives the courier a deadline (``ask(..., timeout=...)``, a durable call: the
timeout is recorded like an answer). A timeout is not a "no": the booking may still run, or may
have run already, so the order compensates with a ``Cancel`` that names the booking, and the
courier undoes it if it ran, or refuses it if it comes later. Prints each order's outcome, the
courier's bookings and its log: the slow booking ran after the deadline, and was undone.
"""

# --8<-- [start:courier]
from __future__ import annotations

from typing import Any

import attrs
import trio

import actors
import eventstore
from eventstore.memory import MemoryEventStore


@eventstore.event_type("shop.Booked")
@attrs.frozen
class Booked:
    order: str


@eventstore.event_type("shop.Cancelled")
@attrs.frozen
class Cancelled:
    order: str


@attrs.frozen
class Book:
    order: str
    wait: float  # how long the courier's partner takes to answer, in seconds


@attrs.frozen
class Cancel:
    order: str


@attrs.frozen
class GetBookings:
    pass


@attrs.define
class Courier(actors.Actor):
    """Books deliveries; a cancelled order stays cancelled, so a late booking is refused."""

    kind = "courier"

    booked: list[str] = attrs.Factory(list)
    cancelled: set[str] = attrs.Factory(set)

    def apply(self, event: Booked | Cancelled) -> None:
        match event:
            case Booked(order=order):
                self.booked.append(order)
            case Cancelled(order=order):
                self.cancelled.add(order)
                if order in self.booked:
                    self.booked.remove(order)

    async def receive(self, message: Any) -> Any:
        match message:
            case Book(order=order) if order in self.cancelled:
                return "refused: cancelled before it came"
            case Book(order=order, wait=wait):
                await trio.sleep(wait)  # the partner's answer
                self.emit(Booked(order))
                return "booked"
            case Cancel(order=order):
                if order not in self.cancelled:
                    self.emit(Cancelled(order))
                return "cancelled"
            case GetBookings():
                return list(self.booked)
        raise TypeError(f"a courier does not understand {message!r}")


# --8<-- [end:courier]


# --8<-- [start:order]
DEADLINE = 0.2  # seconds the order gives the courier


@eventstore.event_type("shop.PlaceOrder")
@attrs.frozen
class PlaceOrder:
    wait: float


@attrs.frozen
class GetOutcome:
    pass


@eventstore.event_type("shop.OrderEnded")
@attrs.frozen
class OrderEnded:
    outcome: str


@attrs.define
class Order(actors.Actor):
    kind = "order"

    outcome: str = "new"

    def apply(self, event: OrderEnded) -> None:
        self.outcome = event.outcome

    async def receive(self, message: PlaceOrder | GetOutcome) -> str:
        if isinstance(message, PlaceOrder) and self.outcome == "new":
            self.emit(OrderEnded(await self.place(message)))
        return self.outcome

    async def place(self, order: PlaceOrder) -> str:
        courier = self.ref(Courier, "courier")
        try:
            return str(await courier.ask(Book(self.id, order.wait), timeout=DEADLINE))
        except actors.AskTimeout:
            pass  # recorded like a reply: once committed, a re-execution times out here again
        # The booking may still run, or may have run: undo it by name, whatever happened.
        # Commit the timeout first: a re-execution must not ask again and get "booked" after
        # the cancel went out.
        await self.flush()
        await courier.ask(Cancel(self.id))
        return f"cancelled (no answer within {DEADLINE} s)"


# --8<-- [end:order]


async def main() -> None:
    store = MemoryEventStore()
    async with actors.ActorSystem(store, actors=[Courier, Order]) as shop:
        for order_id, wait in [("o-1", 0.0), ("o-2", 0.5)]:
            order = shop.ref(Order, order_id)
            await order.send(PlaceOrder(wait), message_id=order_id)
            print(f"order {order_id}: {await order.ask(GetOutcome())}")
        print(f"the courier's bookings: {await shop.ref(Courier, 'courier').ask(GetBookings())}")
    print("the courier's log:")
    async for recorded in store.read("courier-courier"):
        if not recorded.type.startswith("actors."):  # not the runtime's records
            print(f"  {store.codec.decode(recorded)!r}")


if __name__ == "__main__":
    actors.run_program(main)
