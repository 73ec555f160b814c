"""Membership and ownership: the store as the one coordinator of many processes.

A **member** is a process that takes part in a cluster: it joins with a lease, renews the lease
by heartbeats (``EventStore.heartbeat(member).beat()``, on a thread of its own), and is declared
dead by anyone once its last heartbeat is older than its lease. Every time here is the database's
clock, never a member's: SQLite's is the host's clock, which every process on the host shares.

An **owner** row says which member owns a stream (an actor), with an **epoch** that grows at each
claim and never goes down (a released row keeps its epoch). A claim takes a stream only from
nobody, from itself, or from a member that is not alive. A **fenced** append carries the
``Fence`` (member, epoch) it was claimed with; the store checks it, and the member's lease, in
the append's own transaction, so a stale owner (paused past its lease, cut off, declared dead,
its stream claimed again) can never commit: its append fails with ``Fenced`` and writes nothing.

Claims and fenced appends are serialised by the lock every append transaction already takes (the
global position row on PostgreSQL, the write lock on SQLite), so the fence is a plain read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Literal, Protocol

import attrs
import trio

from . import _validate as check
from ._errors import EventStoreError, InvalidArgument

MAX_MEMBER_LENGTH = 100
"""The longest member id."""
MAX_LEASE = 86_400.0
"""The longest lease, in seconds (a day): a member silent for longer is surely gone."""
MAX_EPOCH = 2**63 - 1
"""The highest epoch a store keeps (a 64-bit integer)."""

MemberState = Literal["alive", "dead", "left"]


def _member_field(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    member_id(value, f"fence.{attribute.name}")


def _epoch_field(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_EPOCH:
        raise InvalidArgument(f"fence.epoch must be an int from 1 to 2**63 - 1, got {value!r}")


@attrs.frozen
class Fence:
    """What a fenced write proves: its member still owns the stream, under this epoch.

    Raises:
        InvalidArgument: a member id or an epoch that no claim gives.
    """

    member: str = attrs.field(validator=_member_field)
    epoch: int = attrs.field(validator=_epoch_field)


@attrs.frozen
class Claim:
    """The outcome of a claim of ``stream``."""

    stream: str
    epoch: int | None
    """The new epoch when the claim succeeded; None when another live member owns the stream."""
    owner: str | None
    """The member that owns the stream now (the claimer, when it succeeded)."""

    @property
    def claimed(self) -> bool:
        return self.epoch is not None

    def fence(self) -> Fence:
        """The fence of a successful claim."""
        if self.epoch is None or self.owner is None:
            raise InvalidArgument(f"the claim of {self.stream!r} did not succeed (owned by "
                                  f"{self.owner!r}): it has no fence")
        return Fence(self.owner, self.epoch)


@attrs.frozen
class MemberInfo:
    """A member as the store sees it now."""

    id: str
    host: str
    pid: int
    hosting: bool
    lease_seconds: float
    state: MemberState
    """``alive`` (its lease holds), ``dead`` (its lease ran out), ``left`` (it said goodbye)."""
    joined_at: datetime
    heartbeat_at: datetime
    age: float
    """Seconds since its last heartbeat, on the database clock."""
    owned: int
    """How many streams it owns."""


@attrs.frozen
class Ownership:
    """An owner row: ``member`` (None once released) owns ``stream`` under ``epoch``."""

    stream: str
    member: str | None
    epoch: int
    claimed_at: datetime


class Heartbeat(Protocol):
    """A member's heartbeat connection: blocking calls, for a thread of its own."""

    def beat(self) -> float | None:
        """Renew the member's lease; the database clock (epoch seconds) when it was renewed, or
        None when the member is no longer alive (declared dead, or left): it must rejoin under
        a new id. Raises ``EventStoreError`` when the store cannot be reached."""
        ...

    def close(self) -> None:
        """Close the connection. Idempotent."""
        ...


class Fenced(EventStoreError):
    """A fenced write was refused: its member no longer owns the stream under its epoch, or
    the member's lease ran out. Nothing was written.

    The writer is a stale owner: it must stop serving the stream (another member may have
    claimed it) and claim it again, or rejoin under a new member id.
    """

    def __init__(self, stream: str, member: str, epoch: int) -> None:
        super().__init__(stream, member, epoch)
        self.stream = stream
        self.member = member
        self.epoch = epoch

    def __str__(self) -> str:
        return (f"the write to stream {self.stream!r} was fenced: member {self.member!r} no "
                f"longer owns it under epoch {self.epoch} (another member claimed it, or this "
                "member's lease ran out); nothing was written: stop serving it, and claim it "
                "again (or rejoin) before writing")


class NotAlive(EventStoreError):
    """A member that is not alive (declared dead, left, or never joined) tried to claim."""

    def __init__(self, member: str) -> None:
        super().__init__(member)
        self.member = member

    def __str__(self) -> str:
        return (f"member {self.member!r} is not alive (its lease ran out and it was declared "
                "dead, it left, or it never joined): nothing was claimed; join again under a "
                "new member id")


# -- validation, the same on every backend ------------------------------------------------------

def member_id(value: object, argument: str = "member") -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_MEMBER_LENGTH:
        raise InvalidArgument(f"{argument} must be a non-empty string of at most "
                              f"{MAX_MEMBER_LENGTH} characters, got {value!r}")
    return check.stream_name(value, argument)


def lease(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or not 0 < value <= MAX_LEASE:
        raise InvalidArgument(f"lease_seconds must be a number of seconds above 0 and at most "
                              f"{MAX_LEASE:g} (a day), got {value!r}")
    return float(value)


def checked_fence(value: object) -> Fence | None:
    """``value`` if it is a Fence (checked when it was made) or None."""
    if value is None or isinstance(value, Fence):
        return value
    raise InvalidArgument(f"fence must be an eventstore.Fence or None, got {value!r}")


def checked_prefixes(value: object) -> tuple[str, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidArgument(f"prefixes must be a list of stream-name prefixes, got {value!r}")
    found = []
    for index, prefix in enumerate(value):
        found.append(check.stream_name(prefix, f"prefixes[{index}]"))
    return tuple(dict.fromkeys(found))


class ClusterStore:
    """The membership and ownership operations of ``EventStore`` (mixed into it).

    A backend that cannot coordinate processes (the memory store) refuses them all.
    """

    def _check_open(self) -> None:
        raise NotImplementedError  # pragma: no cover - EventStore provides it

    async def join(self, member: str, *, lease_seconds: float, hosting: bool = True,
                   host: str = "", pid: int = 0) -> float:
        """Register ``member`` as alive with a lease of ``lease_seconds``; the database clock
        (epoch seconds). A member id is used once: join again under a new one. A checkpoint.

        Raises:
            InvalidArgument: a bad argument, or ``member`` joined before.
        """
        self._check_open()
        name = member_id(member)
        seconds = lease(lease_seconds)
        if not isinstance(hosting, bool):
            raise InvalidArgument(f"hosting must be True or False, got {hosting!r}")
        if not isinstance(host, str) or len(host) > 200:
            raise InvalidArgument(f"host must be a string of at most 200 characters, "
                                  f"got {host!r}")
        if host:
            check.stream_name(host, "host")  # no NUL, no lone surrogate: every store keeps it
        if isinstance(pid, bool) or not isinstance(pid, int) or not 0 <= pid < 2**31:
            raise InvalidArgument(f"pid must be an int >= 0, got {pid!r}")
        return await self._join(name, seconds, hosting, host, pid)

    def heartbeat(self, member: str) -> Heartbeat:
        """A connection that renews ``member``'s lease: ``beat()`` blocks; call it from a
        thread of its own, and ``close()`` it at the end. Not a checkpoint; connects lazily."""
        self._check_open()
        return self._heartbeat(member_id(member))

    async def leave(self, member: str) -> None:
        """``member`` leaves: it is no longer alive, and every stream it owns is released at
        once (for others to claim). A checkpoint; idempotent."""
        self._check_open()
        await self._leave(member_id(member))

    async def claim(self, stream: str, member: str) -> Claim:
        """Make ``member`` the owner of ``stream`` under a new epoch, unless another member
        that is alive owns it (then the claim fails: ``Claim.claimed`` is False, ``owner`` says
        who). A member that owns it already keeps its epoch (a member serves one activation of
        a stream at a time). Members found dead on the way are declared dead. A checkpoint.

        Raises:
            NotAlive: ``member`` itself is not alive; nothing was claimed.
        """
        self._check_open()
        return await self._claim(check.stream_name(stream), member_id(member))

    async def claim_due(self, member: str, *, prefixes: Iterable[str], limit: int,
                        slack: float = 0.0) -> list[Claim]:
        """Claim for ``member`` up to ``limit`` streams with due work (messages waiting in their
        inbox, or a wake time at most ``slack`` seconds ahead of the database clock) that no
        live member owns, among streams starting with one of ``prefixes``; the successful
        claims, earliest work first. A checkpoint.

        Raises:
            NotAlive: ``member`` itself is not alive; nothing was claimed.
        """
        self._check_open()
        name = member_id(member)
        kinds = checked_prefixes(prefixes)
        most = check.whole(limit, "limit", minimum=1)
        if isinstance(slack, bool) or not isinstance(slack, int | float) or \
                not math.isfinite(slack) or slack < 0:
            raise InvalidArgument(f"slack must be a finite number of seconds >= 0, got {slack!r}")
        if not kinds:  # nothing to claim; still refused where there is no cluster
            if not self.coordinates:
                raise self._no_cluster()
            await trio.lowlevel.checkpoint()
            return []
        return await self._claim_due(name, kinds, most, float(slack))

    async def release(self, stream: str, fence: Fence) -> bool:
        """Give ``stream`` up, if ``fence`` still owns it (its epoch is kept); whether it did.
        A checkpoint."""
        self._check_open()
        name = check.stream_name(stream)
        checked = checked_fence(fence)
        if checked is None:
            raise InvalidArgument("fence must be an eventstore.Fence, got None")
        return await self._release(name, checked)

    async def members(self) -> list[MemberInfo]:
        """Every member that ever joined, by join time. A checkpoint."""
        self._check_open()
        return await self._members()

    async def owners(self, *, member: str | None = None,
                     streams: Iterable[str] | None = None) -> list[Ownership]:
        """The owner rows (of ``member``'s streams, or of ``streams``), by stream. A
        checkpoint."""
        self._check_open()
        who = None if member is None else member_id(member)
        names = None if streams is None else _streams(streams)
        return sorted(await self._owners(who, names), key=lambda row: row.stream)

    def watch_inboxes(self, callback: Callable[[list[str] | None], None] | None) -> bool:
        """Call ``callback(streams)`` on trio's thread when another process stores messages in
        those streams' inboxes (None: it could not say which); None stops it. Whether this
        backend tells at all: PostgreSQL does (``LISTEN/NOTIFY``, best effort: notifications
        are lost across reconnects, so keep polling too); SQLite does by looking at the inboxes
        on a thread every ``poll_interval`` (it also tells of this process's own messages).
        Not a checkpoint."""
        self._check_open()
        return self._watch_inboxes(callback)

    async def database_time(self) -> float:
        """The database clock, in epoch seconds. A checkpoint."""
        self._check_open()
        return await self._database_time()

    # -- what a backend implements --------------------------------------------------------------

    def _no_cluster(self) -> EventStoreError:
        return InvalidArgument(
            f"{type(self).__name__} cannot coordinate processes (it lives in one process's "
            "memory): use a SQLite file or PostgreSQL for a cluster")

    async def _join(self, member: str, lease_seconds: float, hosting: bool, host: str,
                    pid: int) -> float:
        raise self._no_cluster()

    def _heartbeat(self, member: str) -> Heartbeat:
        raise self._no_cluster()

    async def _leave(self, member: str) -> None:
        raise self._no_cluster()

    async def _claim(self, stream: str, member: str) -> Claim:
        raise self._no_cluster()

    async def _claim_due(self, member: str, prefixes: tuple[str, ...], limit: int,
                         slack: float) -> list[Claim]:
        raise self._no_cluster()

    async def _release(self, stream: str, fence: Fence) -> bool:
        raise self._no_cluster()

    async def _members(self) -> list[MemberInfo]:
        raise self._no_cluster()

    async def _owners(self, member: str | None, streams: list[str] | None) -> list[Ownership]:
        raise self._no_cluster()

    async def _database_time(self) -> float:
        raise self._no_cluster()

    def _watch_inboxes(self, callback: Callable[[list[str] | None], None] | None) -> bool:
        return False

    @property
    def coordinates(self) -> bool:
        """Whether this store can coordinate a cluster (membership, claims, fences)."""
        return type(self)._join is not ClusterStore._join


def _streams(value: object) -> list[str]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidArgument(f"streams must be a list of stream names, got {value!r}")
    return list(dict.fromkeys(check.stream_name(name, f"streams[{index}]")
                              for index, name in enumerate(value)))
