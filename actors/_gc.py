"""``GCPolicy``: how an ``ActorSystem`` tunes CPython's garbage collector while it runs.

With thousands of actors, a full (generation 2) collection walks every long-lived object and
stalls trio's loop for tens of milliseconds, which shows up as timer lateness. Freezing the heap
once the system has started moves what is alive then out of the collector's way, and a higher
generation-0 threshold makes young collections, and the full ones they lead to, rarer.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

import attrs

from ._errors import InvalidActorArgument


def _threshold(_: object, attribute: Any, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise InvalidActorArgument(f"{attribute.name} must be an int >= 1 or None, "
                                   f"got {value!r}")


@attrs.frozen
class GCPolicy:
    """The collector settings an ``ActorSystem`` applies while it runs (process-wide).

    Attributes:
        freeze: ``gc.freeze()`` once the system has started: objects alive then (loaded code,
            re-activated actors) are never scanned again. Undone when the system stops.
        gen0_threshold: allocations between young collections while the system runs (CPython's
            default is 700); None keeps the current setting.
    """

    freeze: bool = True
    gen0_threshold: int | None = attrs.field(default=50_000, validator=_threshold)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Apply the policy for the duration of the block, then restore what was there."""
        before = gc.get_threshold()
        if self.gen0_threshold is not None:
            gc.set_threshold(self.gen0_threshold, *before[1:])
        try:
            yield
        finally:
            gc.set_threshold(*before)
            if self.freeze:
                gc.unfreeze()

    def freeze_now(self) -> None:
        """Freeze the heap as it is now, if the policy says so."""
        if self.freeze:
            gc.freeze()
