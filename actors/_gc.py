"""``GCPolicy``: how an ``ActorSystem`` tunes CPython's garbage collector while it runs.

A collection stops trio's loop for as long as it takes to walk the generation it collects: a
young one walks the objects allocated since the last, a full one every object that is not
frozen. With thousands of actors activated and passivated every second, what survives a young
collection (actors in memory for ``idle_timeout``, their turns) is promoted, and the full
collections that follow walk all of it: tens to hundreds of milliseconds, which shows up as
timer lateness. So the policy freezes the heap once the system has started, and then freezes
what survives each young collection: older generations stay empty, and every pause is a young
collection's.

CPython starts a young collection when allocations outnumber deallocations by the threshold
(700), counting the deallocation of *any* object, frozen ones too. When actors passivate as
fast as others activate, the frozen objects that die hold that count down while the young
generation fills with the new actors' objects: at 10,000 passivating actors a collection came
every second or so and walked tens or hundreds of thousands of objects (20-240 ms). So the
policy also runs a young collection itself between two passes of trio's loop once
``young_seconds`` have gone by since the last: each walks what a few milliseconds allocated.

Frozen objects are still freed by reference counting (an actor passivated by a system outside a
cluster, and every turn, holds no reference cycle, so it is freed at once), but a cycle that
becomes garbage once frozen is only found by a full collection. ``keep`` watches for that:
when the heap has doubled since its last look, it collects everything once and freezes the
rest again.
"""

from __future__ import annotations

import contextlib
import gc
import math
import sys
import time
from collections.abc import Iterator
from typing import Any

import attrs
import trio

from ._errors import InvalidActorArgument


def _threshold(_: object, attribute: Any, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise InvalidActorArgument(f"{attribute.name} must be an int >= 1 or None, "
                                   f"got {value!r}")


def _seconds(_: object, attribute: Any, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                              or not math.isfinite(value) or value <= 0):
        raise InvalidActorArgument(f"{attribute.name} must be a number of seconds > 0 or None, "
                                   f"got {value!r}")


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    """A ``gc.callbacks`` hook: once a collection is over, what it left alive is frozen."""
    if phase == "stop":
        gc.freeze()


_active: list[GCPolicy] = []
"""The policies of the systems running in this process, oldest first."""
_saved: list[tuple[tuple[int, ...], bool]] = []
"""What the first of them found: the collector's thresholds, and whether anything was frozen."""


def _enforce() -> None:
    """Set the collector for the newest running policy, or back as it was once none runs."""
    hooked = _freeze_survivors in gc.callbacks
    policy = _active[-1] if _active else None
    if policy is not None and policy.freeze_survivors and not hooked:
        gc.callbacks.append(_freeze_survivors)
    elif (policy is None or not policy.freeze_survivors) and hooked:
        gc.callbacks.remove(_freeze_survivors)
    (threshold, frozen_before), = _saved
    if policy is not None and policy.gen0_threshold is not None:
        gc.set_threshold(policy.gen0_threshold, *threshold[1:])
    else:
        gc.set_threshold(*threshold)
    if policy is None and not frozen_before:
        gc.unfreeze()


@attrs.frozen
class GCPolicy:
    """The collector settings an ``ActorSystem`` applies while it runs (process-wide).

    Attributes:
        freeze: ``gc.freeze()`` once the system has started (also done with
            ``freeze_survivors``): objects alive then (loaded code, re-activated actors) are
            never scanned again. Undone when the system stops.
        freeze_survivors: after each collection, freeze what it left alive (see the module's
            docstring), so no collection walks more than the young generation; the system
            then collects in full once each time the heap doubles. Undone when the
            system stops.
        gen0_threshold: allocations between young collections while the system runs (CPython's
            default is 700, and a young collection's pause grows with it); None keeps the
            current setting.
        young_seconds: the most wall-clock time between two young collections while trio's
            loop runs: the system runs one itself between two passes of the loop once this
            long has gone by (see the module's docstring), so that deallocations, which CPython
            counts against allocations, cannot put them off; None leaves them to CPython's
            count alone. A loop waiting for I/O is not woken for one.
    """

    freeze: bool = True
    freeze_survivors: bool = True
    gen0_threshold: int | None = attrs.field(default=None, validator=_threshold)
    young_seconds: float | None = attrs.field(default=0.01, validator=_seconds)

    check_seconds = 10.0
    """How often ``keep`` looks at the size of the heap."""

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Apply the policy for the duration of the block, then restore what was there.

        The collector is process-wide: with several systems running at once, the policy of the
        one started last is in force; each stop puts back the policy of the newest system still
        running, and the last stop puts back the collector as it was before the first start. A
        heap frozen by the application before that start stays frozen.
        """
        if not _active:
            _saved.clear()
            _saved.append((gc.get_threshold(), gc.get_freeze_count() > 0))
        _active.append(self)
        _enforce()
        try:
            yield
        finally:
            _active.remove(self)
            _enforce()

    def freeze_now(self) -> None:
        """Freeze the heap as it is now, if the policy says so."""
        if self.freeze or self.freeze_survivors:
            gc.freeze()

    async def keep(self) -> None:
        """Run the policy's collections until cancelled: the young ones every ``young_seconds``
        (see ``GCPolicy``) and, with ``freeze_survivors``, a full one whenever the heap has
        doubled since the last look (garbage that became so once frozen, or a heap that grew),
        after which the rest is frozen again."""
        young = None if self.young_seconds is None else _YoungCollections(self)
        if young is not None:
            trio.lowlevel.add_instrument(young)
        try:
            if self.freeze_survivors:
                await self._collect_when_the_heap_doubles()
            else:
                await trio.sleep_forever()
        finally:
            if young is not None:
                trio.lowlevel.remove_instrument(young)

    async def _collect_when_the_heap_doubles(self) -> None:
        # The heap's size in allocated blocks: counted as they come and go, so reading it is
        # free, where gc.get_freeze_count() walks every frozen object (tens of ms).
        size = sys.getallocatedblocks()
        while True:
            await trio.sleep(self.check_seconds)
            if sys.getallocatedblocks() > 2 * size:
                gc.unfreeze()
                gc.collect()
                gc.freeze()
                size = sys.getallocatedblocks()


class _YoungCollections(trio.abc.Instrument):
    """Runs a young collection before trio's loop waits for I/O, once ``young_seconds`` have
    gone by since the last one, while its policy is the one in force and the collector is on.

    Between two passes of the loop no task is in the middle of a step, and a loop with nothing
    to do waits without running any."""

    def __init__(self, policy: GCPolicy) -> None:
        assert policy.young_seconds is not None
        self.policy = policy
        self.seconds = policy.young_seconds
        self.due = time.perf_counter() + self.seconds

    def before_io_wait(self, timeout: float) -> None:
        now = time.perf_counter()
        if now < self.due:
            return
        if _active and _active[-1] is self.policy and gc.isenabled():
            gc.collect(0)
            now = time.perf_counter()
        self.due = now + self.seconds
