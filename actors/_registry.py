"""The one registry of running actors: per store object, at most one actor per stream.

``spawn``, ``ActorSystem`` and ``ActorTestKit`` all start actors through ``Cell.serve``, which
claims the actor's stream here first, so hosting one actor twice in one process raises
``DuplicateActor`` whoever started it first.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from eventstore import EventStore

from ._errors import DuplicateActor

if TYPE_CHECKING:
    from ._cell import Cell

_running: weakref.WeakKeyDictionary[EventStore, dict[str, Cell]] = weakref.WeakKeyDictionary()


def running(store: EventStore, stream: str) -> Cell | None:
    """The actor running on ``stream`` of ``store`` in this process, if any."""
    return _running.get(store, {}).get(stream)


def claim(cell: Cell) -> None:
    """Register ``cell`` as the one running on its stream.

    Raises:
        DuplicateActor: another cell runs on that stream of that store in this process.
    """
    cells = _running.setdefault(cell.store, {})
    other = cells.get(cell.stream)
    if other is not None and other is not cell:
        raise DuplicateActor(cell.name)
    cells[cell.stream] = cell


def release(cell: Cell) -> None:
    cells = _running.get(cell.store)
    if cells is not None and cells.get(cell.stream) is cell:
        del cells[cell.stream]
