"""The clocks durable time reads: the wall clock, or a virtual clock that follows trio's."""

from __future__ import annotations

import time as _time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import trio

from ._errors import InvalidActorArgument


@runtime_checkable
class Clock(Protocol):
    """What durable time needs of a clock: seconds since the epoch, and the same as a datetime.

    Waiting is done with ``trio.sleep``, so a clock must advance with trio's clock: true of the
    wall clock under a normal run, and of ``VirtualClock`` under ``MockClock``.
    """

    def time(self) -> float: ...

    def now(self) -> datetime: ...


class WallClock:
    """The system's clock: ``time.time()`` and an aware UTC ``datetime``."""

    def time(self) -> float:
        return _time.time()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "WallClock()"


WALL_CLOCK = WallClock()
"""The clock of actors given none (it holds no state: one serves every actor)."""


class VirtualClock:
    """A clock that reads trio's (mock) clock, starting at ``start``.

    Run trio with ``trio.testing.MockClock(autojump_threshold=0)`` (pytest-trio's
    ``autojump_clock`` fixture): a durable hour of sleep then takes milliseconds and every
    reading is exact. It binds to the trio run it is first read in; it can be read from worker
    threads of that run too.

    Args:
        start: the virtual time at the first reading: an aware datetime or epoch seconds;
            default 2026-01-01T00:00:00Z.
    """

    DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)

    def __init__(self, start: datetime | float | None = None) -> None:
        if start is None:
            start = self.DEFAULT_START
        if isinstance(start, datetime):
            if start.tzinfo is None:
                raise InvalidActorArgument(
                    "VirtualClock start must be timezone-aware, e.g. datetime(..., tzinfo=UTC)")
            start = start.timestamp()
        if isinstance(start, bool) or not isinstance(start, int | float) or start != start:
            raise InvalidActorArgument(f"VirtualClock start must be a datetime or epoch seconds, "
                                       f"got {start!r}")
        self._start = float(start)
        self._trio_clock: trio.abc.Clock | None = None
        self._origin = 0.0

    def time(self) -> float:
        if self._trio_clock is None:
            try:
                self._trio_clock = trio.lowlevel.current_clock()
            except RuntimeError:
                raise InvalidActorArgument(
                    "a VirtualClock is first read inside trio.run (it follows trio's clock)"
                ) from None
            self._origin = self._trio_clock.current_time()
        return self._start + (self._trio_clock.current_time() - self._origin)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def __repr__(self) -> str:
        return f"VirtualClock(start={datetime.fromtimestamp(self._start, UTC).isoformat()})"
