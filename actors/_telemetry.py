"""The runtime's telemetry hook points, and how a system finds out whether to install them.

The runtime holds ``Telemetry | None`` per actor: with None (the default, and whenever no
OpenTelemetry SDK provider is configured) every hook point costs one ``is None`` check and
nothing is imported. ``Telemetry`` is the no-op base; ``actors.otel.OpenTelemetry`` fills it in.
This module never imports ``opentelemetry``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ._errors import InvalidActorType

if TYPE_CHECKING:
    from ._cell import Cell
    from ._system import ActorSystem
    from ._turn import Turn

R = TypeVar("R")

Carrier = dict[str, str]
"""Trace context as text keys and values (W3C ``traceparent``, ``tracestate``), as it travels
in a message's and an event's metadata."""

class TurnSpan:
    """What a turn's hook returns: told how the turn ended. The no-op default."""

    __slots__ = ()

    def fail(self, error: BaseException) -> None:
        """The turn failed (or was cut short) with ``error``."""

    def end(self) -> None:
        """The turn is over (after ``fail`` if it failed)."""


NO_SPAN = TurnSpan()


class Telemetry:
    """The hook points the runtime calls when telemetry is installed; each does nothing here.

    Every hook runs on trio's thread, in the task of the turn it is about (so a span it makes
    current is the parent of what the turn does), and must not raise.
    """

    def carrier(self) -> Carrier | None:
        """The current trace context, to put in a message's or an event's metadata."""
        return None

    def start_turn(self, cell: Cell, turn: Turn, parent: Mapping[str, Any] | None) -> TurnSpan:
        """``turn`` starts in ``cell``; a message's turn gets the trace context the message
        was sent in as ``parent``, if it carried one."""
        return NO_SPAN

    def commit(self, cell: Cell, size: int, append: Coroutine[Any, Any, R]
               ) -> Coroutine[Any, Any, R]:
        """Wrap the append of a commit of ``size`` events to ``cell``'s stream."""
        return append

    def durable_call(self, turn: Turn, function: str, value: float, replayed: bool) -> None:
        """``durable.time()`` or ``durable.now()`` returned ``value`` (recorded, or replayed)."""

    def durable_sleep(self, turn: Turn, seconds: float, sleep: Coroutine[Any, Any, None]
                      ) -> Coroutine[Any, Any, None]:
        """Wrap a durable sleep of ``seconds``."""
        return sleep

    def timer_fired(self, cell: Cell, lateness: float) -> None:
        """A wake-up for a due notification starts ``lateness`` seconds after its instant."""

    def watch(self, system: ActorSystem, cells: Callable[[], Iterable[Cell]]) -> None:
        """``system`` starts: the actors ``cells()`` lists count in the gauges (active actors,
        mailbox depth) until ``unwatch``."""

    def unwatch(self, system: ActorSystem) -> None:
        """``system`` stops."""


def check_option(option: object) -> Telemetry | Literal["auto"] | None:
    if option is None or option == "auto" or isinstance(option, Telemetry):
        return option
    raise InvalidActorType(f"telemetry must be 'auto', None or an actors.otel.OpenTelemetry, got "
                           f"{option!r}")


def resolve(option: Telemetry | Literal["auto"] | None) -> Telemetry | None:
    """The hooks a system installs at its start: ``option`` itself, or with ``"auto"``,
    OpenTelemetry's when an SDK tracer or meter provider is configured globally.

    Nothing is imported unless the program imported the OpenTelemetry SDK itself: without it,
    no SDK provider can have been configured.
    """
    if option != "auto":
        return option
    if not (_sdk_configured("opentelemetry.sdk.trace", "TracerProvider", "get_tracer_provider",
                            "opentelemetry.trace")
            or _sdk_configured("opentelemetry.sdk.metrics", "MeterProvider",
                               "get_meter_provider", "opentelemetry.metrics")):
        return None
    from .otel import OpenTelemetry

    return OpenTelemetry()


def _sdk_configured(sdk: str, provider: str, getter: str, api: str) -> bool:
    sdk_module, api_module = sys.modules.get(sdk), sys.modules.get(api)
    if sdk_module is None or api_module is None:
        return False
    return isinstance(getattr(api_module, getter)(), getattr(sdk_module, provider))
