"""``Projection``: a read model folded from the global log, and the checks that judge one.

The class is declarative: a name, the event classes it reads, a handler. How it is run (offsets,
batches, retries, rebuilds) lives in ``_projection_run``; this module only judges a projection
and turns its methods into one shape the runner calls.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs
import trio

from eventstore import RecordedEvent

from ._errors import InvalidActorArgument, InvalidActorType

Params = Sequence[Any] | Mapping[str, Any]
Batch = list[tuple[Any, RecordedEvent]]


class Transaction:
    """The SQL a handler writes: committed with the projection's new offset, all or nothing.

    ``execute`` only collects the statement; it runs when the handler has returned, in one short
    transaction with the offset (so no database lock is held while handler code awaits). Use the
    placeholders of the store's driver: ``?`` or ``:name`` on SQLite, ``%s`` or ``%(name)s`` on
    PostgreSQL. A statement cannot read: write the read model with ``INSERT ... ON CONFLICT``
    and ``UPDATE ... SET n = n + ?`` style statements.
    """

    def __init__(self) -> None:
        self.statements: list[tuple[str, Params]] = []

    def execute(self, sql: str, params: Params = ()) -> None:
        """Add ``sql`` with ``params`` to the transaction.

        Raises:
            InvalidActorType: ``sql`` is not a non-empty string or ``params`` not a sequence or
                a mapping.
        """
        if not isinstance(sql, str) or not sql.strip():
            raise InvalidActorType(f"tx.execute needs SQL text, got {sql!r}")
        if isinstance(params, str | bytes) or not isinstance(params, Sequence | Mapping):
            raise InvalidActorType(
                f"tx.execute parameters must be a sequence or a mapping, got {params!r}")
        self.statements.append((sql, params))


class Projection:
    """A read model over the global log: subclass it, name it, and handle events.

    ``name`` identifies the projection's stored offset; ``types`` lists the event classes it
    reads (None: every event). Define ``async def handle(self, event, recorded)``, or with a
    fourth parameter ``tx`` (a ``Transaction``) to write SQL committed with the offset: exactly
    once. ``handle_batch(self, batch[, tx])`` takes a list of ``(event, recorded)`` pairs
    instead; the offset is stored once per batch. ``setup([tx])`` runs at every start (create the
    tables there), ``reset([tx])`` at a rebuild (empty them). Plain ``def`` methods run in a
    worker thread. See ``docs/projections.md``.
    """

    name: str = ""
    types: Sequence[type] | None = None
    batch_size: int = 100
    """The most events per batch (per handler call of ``handle_batch``, per offset commit)."""
    max_attempts: int = 5
    """Tries per batch before the projection stops with ``ProjectionFailed``."""
    backoff: float = 0.1
    """Seconds before the first retry; each next wait doubles, up to ``max_backoff``."""
    max_backoff: float = 10.0
    check_every: float = 1.0
    """Seconds between looks at the stored offset while live and idle (a rebuild requested by
    another process, such as ``python -m actors projections rebuild``)."""

    # The hooks take ``*args: Any, **kwargs: Any`` so that a type checker accepts an override
    # with or without ``tx``; ``check_projection`` judges the shape at run time.

    async def handle(self, *args: Any, **kwargs: Any) -> None:
        """``handle(self, event, recorded[, tx])``: fold one event into the read model."""
        raise NotImplementedError

    async def handle_batch(self, *args: Any, **kwargs: Any) -> None:
        """``handle_batch(self, batch[, tx])``: fold a list of ``(event, recorded)`` pairs;
        define it instead of ``handle``."""
        raise NotImplementedError

    async def setup(self, *args: Any, **kwargs: Any) -> None:
        """``setup(self[, tx])``: prepare the read model; runs at every start, so make it
        idempotent (``CREATE TABLE IF NOT EXISTS``)."""

    async def reset(self, *args: Any, **kwargs: Any) -> None:
        """``reset(self[, tx])``: empty the read model for a rebuild."""


Call = Callable[..., Awaitable[Any]]


@attrs.frozen
class Shape:
    """A checked projection as the runner calls it: each hook takes (args..., tx or None)."""

    name: str
    types: tuple[type, ...] | None
    sql: bool
    """Whether it writes SQL through ``tx`` (its batches then commit exactly once)."""
    batch: Call
    setup: Call
    reset: Call


def _is_own(projection: Projection, method: str) -> bool:
    return getattr(type(projection), method) is not getattr(Projection, method)


def _arity(fn: Callable[..., Any], what: str) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        raise InvalidActorType(f"{what} has no signature Python can read") from None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds)


def _caller(fn: Callable[..., Any], what: str, arities: tuple[int, int]) -> tuple[Call, bool]:
    """``fn`` as an async call taking its arguments then tx; and whether it takes tx."""
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        raise InvalidActorType(f"{what} must be an `async def` (or a plain `def`, run in a "
                               "worker thread), not a generator")
    count = _arity(fn, what)
    if count not in arities:
        raise InvalidActorType(
            f"{what} must take {arities[0]} parameter(s) after self, or {arities[1]} with `tx` "
            f"last, got {count}")
    takes_tx = count == arities[1]
    if inspect.iscoroutinefunction(fn):
        async def run_async(*args: Any) -> Any:
            return await fn(*(args if takes_tx else args[:-1]))
        return run_async, takes_tx

    async def run_in_thread(*args: Any) -> Any:
        return await trio.to_thread.run_sync(lambda: fn(*(args if takes_tx else args[:-1])))
    return run_in_thread, takes_tx


def check_projection(projection: object) -> Shape:
    """Judge ``projection`` and return its shape, or raise a clear error.

    Raises:
        InvalidActorType: not a ``Projection``, a ``types`` entry that is not a class, a handler
            of the wrong shape.
        InvalidActorArgument: an empty name, a bad batch size, attempts or delays.
    """
    if not isinstance(projection, Projection):
        raise InvalidActorType(f"{projection!r} is not an actors.Projection")
    cls = type(projection).__qualname__
    name = projection.name
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        raise InvalidActorArgument(
            f"{cls}.name must be a non-empty string (it names the stored offset), got {name!r}")
    types = projection.types
    if types is not None:
        if isinstance(types, str | bytes | type) or not isinstance(types, Sequence | set):
            raise InvalidActorType(f"{cls}.types must be a list of event classes or None, "
                                   f"got {types!r}")
        for entry in types:
            if not isinstance(entry, type):
                raise InvalidActorType(
                    f"{cls}.types holds {entry!r}, which is not a class; list event classes "
                    "(such as Deposited), not instances or type names")
        if not types:
            raise InvalidActorArgument(f"{cls}.types is empty, so it would never see an event; "
                                       "list event classes, or None for every event")
    for option, minimum in (("batch_size", 1), ("max_attempts", 1)):
        value = getattr(projection, option)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InvalidActorArgument(f"{cls}.{option} must be an int >= {minimum}, "
                                       f"got {value!r}")
    for option in ("backoff", "max_backoff", "check_every"):
        value = getattr(projection, option)
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                0 <= value < math.inf) or (option == "check_every" and value == 0):
            raise InvalidActorArgument(f"{cls}.{option} must be a finite number of seconds "
                                       f"{'> 0' if option == 'check_every' else '>= 0'}, "
                                       f"got {value!r}")
    if _is_own(projection, "handle_batch"):
        batch, sql = _caller(projection.handle_batch, f"{cls}.handle_batch", (1, 2))
    elif _is_own(projection, "handle"):
        one, sql = _caller(projection.handle, f"{cls}.handle", (2, 3))

        async def each(events: Batch, tx: Any) -> None:
            for event, recorded in events:
                await one(event, recorded, tx)
        batch = each
    else:
        raise InvalidActorType(f"{cls} must define `async def handle(self, event, recorded)` "
                               "or `handle_batch(self, batch)`")
    setup, setup_sql = _caller(projection.setup, f"{cls}.setup", (0, 1))
    reset, reset_sql = _caller(projection.reset, f"{cls}.reset", (0, 1))
    return Shape(name, None if types is None else tuple(types), sql or setup_sql or reset_sql,
                 batch, setup, reset)
