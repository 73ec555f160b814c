"""``spawn``: start one actor in a nursery and get its ref once it has recovered."""

from __future__ import annotations

from typing import Any

import trio

from eventstore import EventStore

from ._actor import Actor
from ._cell import Cell, TurnHook
from ._clock import Clock
from ._errors import InvalidActorType
from ._journal import WorkHook
from ._ref import ActorRef


async def start_cell(nursery: trio.Nursery, cls: type[Actor], actor_id: str, *,
                     store: EventStore, clock: Clock | None = None,
                     work_hook: WorkHook | None = None,
                     idle_timeout: float | None = None,
                     turn_hook: TurnHook | None = None) -> Cell:
    """Create a cell and start it in ``nursery``; returns after recovery."""
    if not isinstance(nursery, trio.Nursery):
        raise InvalidActorType(f"nursery must be a trio.Nursery, got {nursery!r}")
    cell = Cell(cls, actor_id, store=store, clock=clock, work_hook=work_hook,
                idle_timeout=idle_timeout, turn_hook=turn_hook)
    await nursery.start(cell.serve)
    return cell


def ref_to(cell: Cell) -> ActorRef:
    return ActorRef(cell.kind, cell.actor_id, cell.stream, cell.resolve, cell.running,
                    cell.store)


async def spawn(nursery: trio.Nursery, cls: type[Actor], actor_id: str, *,
                store: EventStore, clock: Clock | None = None, **options: Any) -> ActorRef:
    """Start actor ``cls`` with ``actor_id`` in ``nursery``; return its ref after recovery.

    Recovery loads the newest snapshot (when the class sets ``snapshot_every``) and replays
    the log after it in pages. A checkpoint; if cancelled during recovery nothing is written.

    Args:
        nursery: where the actor's task runs; the actor stops when the nursery is cancelled.
        cls: an ``Actor`` subclass decorated with ``@attrs.define``.
        actor_id: unique per class; the log is the stream ``f"{kind}-{actor_id}"``.
        store: the event store holding the log.
        clock: what durable time reads (default ``WallClock()``).

    Raises:
        DuplicateActor: this actor already runs in this process on this store (spawned, or
            hosted by an ``ActorSystem`` or an ``ActorTestKit``).
        RecoveryError: the log cannot be folded into a state known to be right (a gap, a
            snapshot ahead of the log, a trimmed log without a usable snapshot).
        InvalidActorType: ``cls`` is not an attrs ``Actor`` subclass.
        InvalidActorArgument: ``actor_id`` is empty or not a string.
    """
    cell = await start_cell(nursery, cls, actor_id, store=store, clock=clock, **options)
    return ref_to(cell)
