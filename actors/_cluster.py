"""``actors.Cluster``: the options of a member, and its membership (joining, the heartbeat thread,
the clock offset to the database, finding out that it was declared dead, rejoining).

PostgreSQL (or one SQLite file shared by the processes of one host) is the only coordinator: see
``eventstore._cluster`` for the tables and the fence, and ``docs/cluster.md``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import attrs
import trio

from eventstore import EventStore, EventStoreError
from eventstore._cluster import MAX_LEASE

from ._clock import Clock
from ._errors import InvalidActorArgument

log = logging.getLogger("actors")


def _positive(name: str) -> Callable[[object, object, object], None]:
    def check(_: object, attribute: object, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(value) or not 0 < value <= MAX_LEASE:
            raise InvalidActorArgument(f"Cluster({name}=...) must be a number of seconds above "
                                       f"0 and at most {MAX_LEASE:g} (a day), got {value!r}")
    return check


def _flag(_: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidActorArgument(f"Cluster({attribute.name}=...) must be True or False, "
                                   f"got {value!r}")


def _count(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidActorArgument(f"Cluster({attribute.name}=...) must be an int >= 1, "
                                   f"got {value!r}")


@attrs.frozen
class Cluster:
    """Run an ``ActorSystem`` as a member of a cluster: ``ActorSystem(store, actors=[...],
    cluster=actors.Cluster(lease_seconds=6.0))``.

    Every actor is owned by at most one member at a time, fenced in the store (see
    ``docs/cluster.md``). A ref reaches its actor from any member.

    Args:
        lease_seconds: how long a member stays owner of its actors without a heartbeat. Make it
            longer than the worst pause a member can have (a GC pause, a stalled disk): a
            member paused longer loses its actors (safely: it can no longer commit).
        hosting: False for a client: it owns no actors and only sends to them.
        heartbeat_seconds: how often the lease is renewed (default: a quarter of the lease).
        poll_seconds: how often a member looks for work nobody serves: messages waiting for an
            actor nobody owns, timers of a dead member's actors.
        claim_batch: the most actors claimed in one look.
        max_recoveries: the most actors recovering at once on a member (no storm after a long
            downtime).
        balance_seconds: how often a member above its fair share passivates idle actors.
    """

    lease_seconds: float = attrs.field(default=6.0, validator=_positive("lease_seconds"))
    hosting: bool = attrs.field(default=True, validator=_flag)
    heartbeat_seconds: float | None = None
    poll_seconds: float = attrs.field(default=1.0, validator=_positive("poll_seconds"))
    claim_batch: int = attrs.field(default=100, validator=_count)
    max_recoveries: int = attrs.field(default=64, validator=_count)
    balance_seconds: float = attrs.field(default=10.0, validator=_positive("balance_seconds"))

    def __attrs_post_init__(self) -> None:
        beat = self.heartbeat_seconds
        if beat is not None:
            _positive("heartbeat_seconds")(self, None, beat)
            if not beat < self.lease_seconds:
                raise InvalidActorArgument(
                    f"Cluster(heartbeat_seconds={beat!r}) must be shorter than the lease "
                    f"({self.lease_seconds!r} s), or the lease runs out between beats")

    @property
    def beat_every(self) -> float:
        return self.lease_seconds / 4 if self.heartbeat_seconds is None else \
            self.heartbeat_seconds


class CorrectedClock:
    """A member's clock: the database's, read as the local monotonic clock plus an offset.

    Each heartbeat measures the offset as the database time it returned minus the monotonic
    time after it came back: the true offset is at least that (the database read its clock
    before), so the corrected clock never runs ahead of the database's, and a timer due at a
    database time never fires early on any member, whatever its own clock says. The monotonic
    clock never jumps, so a step of the wall clock (an NTP correction, a manual change) moves
    nothing. Until the first measurement it reads ``base``.
    """

    def __init__(self, base: Clock) -> None:
        self.base = base
        self.offset: float | None = None
        """Database time minus ``time.monotonic()``; None before the first measurement."""

    def time(self) -> float:
        offset = self.offset
        return self.base.time() if offset is None else time.monotonic() + offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def __repr__(self) -> str:
        return f"CorrectedClock({self.base!r}, offset={self.offset!r})"


def new_member_id() -> str:
    """A member id: the host, the process, and a random part (a rejoin gets a new one)."""
    host = socket.gethostname().split(".")[0][:40] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Membership:
    """A member's identity and lease: joined at start, renewed by a thread, lost when the store
    says so or when no heartbeat succeeded for a whole lease."""

    def __init__(self, store: EventStore, cluster: Cluster, clock: CorrectedClock | None) -> None:
        self.store = store
        self.cluster = cluster
        self.clock = clock
        self.id = ""
        self.lost = trio.Event()
        self._samples: collections.deque[float] = collections.deque(maxlen=5)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._valid_until = 0.0  # time.monotonic() before which the lease surely holds
        self.left = False

    async def join(self) -> None:
        """Join under a new id and start the heartbeat thread (unless it left meanwhile)."""
        member = new_member_id()
        started = time.monotonic()
        db_time = await self.store.join(member, lease_seconds=self.cluster.lease_seconds,
                                        hosting=self.cluster.hosting,
                                        host=socket.gethostname()[:200], pid=os.getpid())
        if self.left:  # it left while this join was on its way (a join is not cancellable)
            with trio.CancelScope(shield=True):
                await self.store.leave(member)
            return
        self.id = member
        self.lost = trio.Event()
        self._sample(db_time)
        self._valid_until = started + self.cluster.lease_seconds
        self._stop = threading.Event()
        token = trio.lowlevel.current_trio_token()
        self._thread = threading.Thread(target=self._beat, args=(self.id, self._stop, token),
                                        name=f"heartbeat {self.id}", daemon=True)
        self._thread.start()
        log.info("joined the cluster as member %s", self.id)

    @property
    def lease_holds(self) -> bool:
        """Whether the lease surely still holds (by the local monotonic clock)."""
        return not self.lost.is_set() and time.monotonic() < self._valid_until

    def _sample(self, db_time: float) -> None:
        self._samples.append(db_time - time.monotonic())
        if self.clock is not None:
            self.clock.offset = max(self._samples)

    def _beat(self, member: str, stop: threading.Event, token: trio.lowlevel.TrioToken) -> None:
        """The heartbeat thread: renew the lease until stopped or lost."""
        heartbeat = self.store.heartbeat(member)
        every = self.cluster.beat_every
        lease = self.cluster.lease_seconds
        why = ""
        try:
            while not stop.wait(every):
                sent = time.monotonic()
                try:
                    db_time = heartbeat.beat()
                except EventStoreError as exc:
                    if time.monotonic() >= self._valid_until:
                        why = f"no heartbeat succeeded for a whole lease ({exc})"
                        break
                    log.warning("member %s: a heartbeat failed (%s); trying again", member, exc)
                    continue
                if db_time is None:
                    why = "the store declared it dead (its lease ran out)"
                    break
                if stop.is_set():
                    break
                self._valid_until = sent + lease
                self._sample(db_time)
        except BaseException as exc:  # never die silently: the member must learn of it
            why = f"the heartbeat thread failed ({exc!r})"
        finally:
            heartbeat.close()
        if why and not stop.is_set():
            with contextlib.suppress(trio.RunFinishedError):  # the run ended: nobody to tell
                token.run_sync_soon(self.lose, member, why)

    def lose(self, member: str, why: str) -> None:
        """``member`` lost its membership (if it is still this one's id)."""
        if member == self.id and not self.lost.is_set():
            log.error("member %s lost its membership: %s; its actors stop, and it rejoins "
                      "under a new id", member, why)
            self.lost.set()

    async def stop_beating(self) -> None:
        """Stop the heartbeat thread (waits for its current beat)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:  # a beat that hangs is left behind (its member is dead anyway)
            await trio.to_thread.run_sync(thread.join, self.cluster.lease_seconds,
                                          abandon_on_cancel=True)

    async def leave(self) -> None:
        """Stop beating and leave: the store releases this member's actors at once. It joins
        no more."""
        self.left = True
        await self.stop_beating()
        if self.id:
            log.info("member %s leaves the cluster", self.id)
            await self.store.leave(self.id)
