"""OpenTelemetry traces and metrics for actors: the optional extra ``trio-actors[otel]``.

An ``ActorSystem`` installs these hooks by itself when an SDK tracer or meter provider is
configured globally at its start; pass ``telemetry=OpenTelemetry(...)`` to choose providers, or
``telemetry=None`` to keep telemetry off. See ``docs/observability.md``.

Spans: one per turn (``<kind> receive``, ``<kind> on_start``, ``<kind> run``,
``<kind> on_notify``), one per commit (``actors.commit``) and one per durable call
(``durable.time``, ``durable.now``, ``durable.sleep``). A message carries the trace context of
the code that sent it, and every event a turn emits carries its turn's, in its metadata.

Metrics: ``actors.turns``, ``actors.turns.failed``, ``actors.commit.duration``,
``actors.commit.batch_size``, ``actors.mailbox.depth``, ``actors.active`` and
``actors.timer.lateness``.
"""

from __future__ import annotations

import time
import weakref
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import trio
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from ._cell import _interrupted
from ._telemetry import Carrier, Telemetry, TurnSpan
from ._turn import WAKE_UP

if TYPE_CHECKING:
    from ._cell import Cell
    from ._system import ActorSystem
    from ._turn import Turn

__all__ = ["OpenTelemetry"]

R = TypeVar("R")

_WATCHED: weakref.WeakKeyDictionary[MeterProvider, dict[int, Callable[[], Iterable[Cell]]]] = \
    weakref.WeakKeyDictionary()
"""The running systems whose actors a meter provider's gauges count, by their ``id``."""


SCOPE = "actors"
"""The instrumentation scope of every span and instrument."""


class OpenTelemetry(Telemetry):
    """Traces and metrics of an ``ActorSystem`` through OpenTelemetry.

    Args:
        tracer_provider: Where spans go; the global provider by default.
        meter_provider: Where measurements go; the global provider by default.
        propagator: How trace context is written into and read from metadata; the global
            propagator (W3C ``traceparent`` by default) by default.
    """

    def __init__(self, *, tracer_provider: TracerProvider | None = None,
                 meter_provider: MeterProvider | None = None,
                 propagator: TextMapPropagator | None = None) -> None:
        self._tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        self._propagator = propagate.get_global_textmap() if propagator is None else propagator
        if meter_provider is None:
            meter_provider = metrics.get_meter_provider()
        meter = meter_provider.get_meter(SCOPE)
        # A provider keeps the first callbacks of an instrument name: those of every
        # OpenTelemetry on this provider read one table of watched systems.
        self._systems = _WATCHED.setdefault(meter_provider, {})
        self._turns = meter.create_counter("actors.turns", "{turn}", "Turns run")
        self._failed = meter.create_counter("actors.turns.failed", "{turn}",
                                            "Turns that failed")
        self._commit_duration = meter.create_histogram(
            "actors.commit.duration", "s", "Time to append a commit's batch")
        self._batch_size = meter.create_histogram("actors.commit.batch_size", "{event}",
                                                  "Events appended by one commit")
        self._lateness = meter.create_histogram(
            "actors.timer.lateness", "s", "How late a wake-up for a due notification starts")
        meter.create_observable_gauge("actors.mailbox.depth", [self._observe_mailboxes],
                                      "{message}", "Messages waiting in actors' mailboxes")
        meter.create_observable_gauge("actors.active", [self._observe_active], "{actor}",
                                      "Actors in memory")

    # -- context ---------------------------------------------------------------------------------

    def carrier(self) -> Carrier | None:
        carrier: Carrier = {}
        self._propagator.inject(carrier)
        return carrier or None

    # -- spans -----------------------------------------------------------------------------------

    def start_turn(self, cell: Cell, turn: Turn, parent: Mapping[str, Any] | None) -> TurnSpan:
        # Never the task's own context: an actor's task inherits whatever activated it.
        context = Context() if not parent else self._propagator.extract(parent, Context())
        what = _handler(turn.root._scope)
        span = self._tracer.start_span(
            f"{cell.kind} {what}", context, SpanKind.CONSUMER if what == "receive"
            else SpanKind.INTERNAL, attributes={
                "actors.kind": cell.kind, "actors.id": cell.actor_id,
                "actors.version.from": cell.current_version})
        token = otel_context.attach(trace.set_span_in_context(span, context))
        return _TurnSpan(self, cell, turn, span, token)

    def commit(self, cell: Cell, size: int, append: Coroutine[Any, Any, R]
               ) -> Coroutine[Any, Any, R]:
        return self._commit(cell, size, append)

    async def _commit(self, cell: Cell, size: int, append: Coroutine[Any, Any, R]) -> R:
        backend = type(cell.store).__name__
        started = time.perf_counter()
        # Outside a turn (a backlog's commit, a stop's) the task's context is whatever
        # activated the actor: such a commit starts a trace of its own.
        parent = None if cell.turn_or_none() is not None else Context()
        with self._tracer.start_as_current_span("actors.commit", parent, SpanKind.CLIENT,
                                                record_exception=False,
                                                set_status_on_exception=False, attributes={
                                                    "actors.stream": cell.stream,
                                                    "actors.commit.batch_size": size,
                                                    "eventstore.backend": backend}) as span:
            try:
                result = await append
            except BaseException as exc:
                _failed(span, exc)
                raise
            finally:
                labels = {"actors.kind": cell.kind, "eventstore.backend": backend}
                self._commit_duration.record(time.perf_counter() - started, labels)
                self._batch_size.record(size, labels)
            version = getattr(result, "version", None)
            if isinstance(version, int):
                span.set_attribute("actors.version", version)
            return result

    def durable_call(self, turn: Turn, function: str, value: float, replayed: bool) -> None:
        self._tracer.start_span(f"durable.{function}", attributes={
            "actors.scope": turn.scope, "actors.durable.call": turn.calls,
            "actors.durable.replayed": replayed, "actors.durable.value": value}).end()

    def durable_sleep(self, turn: Turn, seconds: float, sleep: Coroutine[Any, Any, None]
                      ) -> Coroutine[Any, Any, None]:
        replayed = turn.cell.state.record.get(turn.scope, turn.calls + 1,
                                              turn.branch) is not None
        return self._sleep(turn, seconds, replayed, sleep)

    async def _sleep(self, turn: Turn, seconds: float, replayed: bool,
                     sleep: Coroutine[Any, Any, None]) -> None:
        with self._tracer.start_as_current_span("durable.sleep", record_exception=False,
                                                set_status_on_exception=False, attributes={
                "actors.scope": turn.scope, "actors.durable.call": turn.calls + 1,
                "actors.durable.replayed": replayed, "actors.durable.seconds": seconds}) as span:
            try:
                await sleep
            except BaseException as exc:
                if _interrupted(exc) or isinstance(exc, trio.Cancelled):
                    span.set_attribute("actors.durable.interrupted", True)  # it resumes later
                else:
                    _failed(span, exc)
                raise

    # -- metrics ---------------------------------------------------------------------------------

    def timer_fired(self, cell: Cell, lateness: float) -> None:
        self._lateness.record(max(0.0, lateness), {"actors.kind": cell.kind})

    def turn_ended(self, cell: Cell, failed: bool) -> None:
        labels = {"actors.kind": cell.kind}
        self._turns.add(1, labels)
        if failed:
            self._failed.add(1, labels)

    def watch(self, system: ActorSystem, cells: Callable[[], Iterable[Cell]]) -> None:
        self._systems[id(system)] = cells

    def unwatch(self, system: ActorSystem) -> None:
        self._systems.pop(id(system), None)

    def _cells(self) -> list[Cell]:
        # Called on the metric reader's thread: copies, never iterates what trio changes.
        return [cell for cells in list(self._systems.values()) for cell in list(cells())]

    def _observe_mailboxes(self, options: CallbackOptions) -> Iterable[Observation]:
        depth: Counter[str] = Counter()
        for cell in self._cells():
            if not cell.stopped.is_set():
                depth[cell.kind] += len(cell.mailbox)
        return [Observation(n, {"actors.kind": kind}) for kind, n in depth.items()]

    def _observe_active(self, options: CallbackOptions) -> Iterable[Observation]:
        active = Counter(cell.kind for cell in self._cells() if not cell.stopped.is_set())
        return [Observation(n, {"actors.kind": kind}) for kind, n in active.items()]


class _TurnSpan(TurnSpan):
    __slots__ = ("_cell", "_outcome", "_span", "_telemetry", "_token", "_turn")

    def __init__(self, telemetry: OpenTelemetry, cell: Cell, turn: Turn, span: trace.Span,
                 token: object) -> None:
        self._telemetry = telemetry
        self._cell = cell
        self._turn = turn
        self._span = span
        self._token = token
        self._outcome = "ok"

    def fail(self, error: BaseException) -> None:
        if _interrupted(error):
            self._outcome = "interrupted"  # a stop cut a durable sleep short: it resumes
        elif isinstance(error, trio.Cancelled):
            self._outcome = "cancelled"
        else:
            self._outcome = "failed"
            _failed(self._span, error)

    def end(self) -> None:
        span, cell = self._span, self._cell
        span.set_attributes({"actors.scope": self._turn.scope,
                             "actors.version.to": cell.current_version,
                             "actors.outcome": self._outcome})
        span.end()
        otel_context.detach(self._token)  # type: ignore[arg-type]
        self._telemetry.turn_ended(cell, self._outcome == "failed")


def _failed(span: trace.Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def _handler(scope: str | None) -> str:
    """The handler a turn of ``scope`` runs (None or ``msg:<id>``: a message)."""
    if scope is None or scope.startswith("msg:"):
        return "receive"
    if scope.startswith(WAKE_UP):
        return "on_notify"
    return "on_start" if scope == "start" else scope
