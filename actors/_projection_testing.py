"""``actors.testing.feed``: run a projection over a list of events, with no store."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from eventstore import Codec, EventStoreError, RecordedEvent

from ._errors import InvalidActorArgument
from ._projection import Projection, Transaction, check_projection


def _recorded(codec: Codec, event: Any, position: int, stream: str) -> RecordedEvent:
    try:
        new = codec.new_event(event)
        kind, data, metadata = new.type, new.data, dict(new.metadata)
    except EventStoreError:  # a class with no importable name: fine in a test
        kind, data, metadata = type(event).__qualname__, {}, {}
    return RecordedEvent(stream, position, position, kind, data, metadata, uuid.uuid4(),
                         datetime.now(UTC))


def _run(db: sqlite3.Connection, tx: Transaction | None) -> None:
    if tx is None or not tx.statements:
        return
    with db:  # one transaction, as the store commits them with the offset
        for sql, params in tx.statements:
            db.execute(sql, params)


async def feed(projection: Projection, events: Iterable[Any], *,
               db: sqlite3.Connection | None = None, stream: str = "projected",
               codec: Codec | None = None) -> int:
    """Run ``projection`` over ``events`` as a store would, with no store; how many it handled.

    ``events`` holds event objects (each gets a ``RecordedEvent`` in ``stream``, at positions
    from 1) or ``(event, recorded)`` pairs. Events not of ``projection.types`` are skipped, the
    rest go in batches of ``batch_size``, after ``setup``. A projection that writes SQL (``tx``)
    needs ``db``, a ``sqlite3`` connection (``sqlite3.connect(":memory:")``): each batch's
    statements run there in one transaction, and the test reads the read model from it.

    Raises:
        InvalidActorArgument: a projection that writes SQL without ``db``.
        Whatever the projection raises: a test sees the first failure, with no retry.
    """
    shape = check_projection(projection)
    if shape.sql and db is None:
        raise InvalidActorArgument(
            f"projection {shape.name!r} writes SQL (its methods take `tx`); pass "
            "db=sqlite3.connect(':memory:') to run its statements and read its model there")
    codec = Codec() if codec is None else codec
    pairs: list[tuple[Any, RecordedEvent]] = []
    for position, item in enumerate(events, 1):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], RecordedEvent):
            pairs.append((item[0], item[1]))
        else:
            pairs.append((item, _recorded(codec, item, position, stream)))
    if shape.types is not None:
        pairs = [(event, recorded) for event, recorded in pairs
                 if isinstance(event, shape.types)]
    tx = Transaction() if shape.sql else None
    await shape.setup(tx)
    if db is not None:
        _run(db, tx)
    size = projection.batch_size
    for start in range(0, len(pairs), size):
        tx = Transaction() if shape.sql else None
        await shape.batch(pairs[start:start + size], tx)
        if db is not None:
            _run(db, tx)
    return len(pairs)
