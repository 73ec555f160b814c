"""What an ``ActorSystem`` does as a cluster member: claim an actor before serving it, reach
actors other members own, claim work nobody serves, rejoin after losing its membership, shed
idle actors above its fair share, and hand everything over when it leaves.

The store decides every ownership question (``eventstore._cluster``): a claim succeeds only if no
live member owns the actor, and each of the actor's writes is fenced with its claim, so a member
that lost an actor can never commit for it, whatever it believes.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import trio

from eventstore import Claim, EventStoreError, Fence, Fenced, NotAlive

from ._cell import Cell
from ._cluster import Cluster, Membership
from ._errors import ActorStopped
from ._projection_run import ProjectionRunner
from ._remote import Remote, Replies

if TYPE_CHECKING:
    from ._system import ActorSystem

log = logging.getLogger("actors")

Key = tuple[str, str]
_CLAIM_GAP = 0.05  # seconds between two looks for due work that a notification asked for


class Routing:
    """An actor whose owner this member is finding out (claiming it, or finding who has it):
    what is told meanwhile waits here, in order, for the target."""

    telemetry = None
    closing = False

    def __init__(self) -> None:
        self.done = trio.Event()
        self.target: Cell | Remote | None = None
        self.error: BaseException | None = None
        self.told: list[tuple[Any, str | None]] = []
        self.poked = False

    def can_inline(self) -> bool:
        return False

    def tell(self, message: Any, message_id: str | None, reply: Any) -> None:
        assert reply is None, "an ask waits for the routing (Routing.ready)"
        self.told.append((message, message_id))

    def poke(self) -> None:
        self.poked = True

    async def ready(self) -> Cell | Remote:
        await self.done.wait()
        if self.target is None:
            assert self.error is not None
            raise self.error
        return self.target


Target = Cell | Remote | Routing


class Hosting:
    """The cluster side of one ``ActorSystem``."""

    def __init__(self, system: ActorSystem, cluster: Cluster, membership: Membership) -> None:
        self.system = system
        self.cluster = cluster
        self.member = membership
        self.remotes: dict[Key, Remote] = {}
        self.routing: dict[Key, Routing] = {}
        self.replies: Replies | None = None
        self.recovering = 0
        self.serving = trio.Event()  # set while the membership holds
        self._due = trio.Event()
        self._released: dict[str, trio.Event] = {}
        self._projections: set[trio.CancelScope] = set()  # hosted projection runners
        self._projection_names: set[str] = set()  # their owner rows: not actors
        self._rejoining = trio.CancelScope()

    # -- finding an actor ------------------------------------------------------------------------

    def target(self, key: Key) -> Target:
        """Where a message to ``key`` goes now: a remote owner, or a routing under way."""
        remote = self.remotes.get(key)
        if remote is not None:
            if remote.busy or (remote.expires > trio.current_time()
                               and remote.owner != self.member.id):
                return remote  # (with messages on their way, it stays: they keep their order)
            del self.remotes[key]
        routing = self.routing.get(key)
        if routing is None:
            routing = self.routing[key] = Routing()
            self.system.background(self._route, key, routing)
        return routing

    async def _route(self, key: Key, routing: Routing) -> None:
        try:
            target: Cell | Remote = await self.locate(key)
        except BaseException as exc:
            routing.error = exc if isinstance(exc, Exception) else ActorStopped(
                f"{key[0]}({key[1]!r})", "its ActorSystem stopped")
            if routing.told:
                log.warning("%d message(s) told to %s(%r) are dropped: %r", len(routing.told),
                            key[0], key[1], exc)
            routing.done.set()
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            if self.routing.get(key) is routing:
                del self.routing[key]
        for message, message_id in routing.told:
            target.tell(message, message_id, None)
        if routing.poked:
            target.poke()
        routing.target = target
        routing.done.set()

    async def locate(self, key: Key) -> Cell | Remote:
        """Claim ``key`` and serve it here, or find the live member that owns it."""
        system = self.system
        stream = f"{key[0]}-{key[1]}"
        if not self.cluster.hosting:
            return Remote(system, stream, None)
        while True:
            cell = system.cells.get(key)
            if cell is not None and not cell.closing:
                return cell
            if cell is not None:
                await cell.stopped.wait()  # passivating: its final commit first
            released = self._released.get(stream)
            if released is not None:
                await released.wait()
                continue
            await self.serving.wait()
            try:
                claim = await system.store.claim(stream, self.member.id)
            except NotAlive as exc:
                self.not_alive(exc)
                continue  # ``serving`` waits for the new membership
            cell = system.cells.get(key)
            if cell is not None and not cell.closing:
                # Started meanwhile by a claim of due work: a claim by the owner keeps its epoch
                # (the store's promise), so the cell's fence is this claim's.
                return cell
            if claim.claimed:
                return self.start(key, claim)
            remote = Remote(system, stream, claim.owner)
            self.remotes[key] = remote
            return remote

    def start(self, key: Key, claim: Claim) -> Cell:
        """Serve ``key`` here, under ``claim``; after the messages this member was still
        storing for its former owner, which it then reads first from its inbox."""
        remote = self.remotes.pop(key, None)
        cell = self.system.start_cell(key, claim.fence(),
                                      None if remote is None else remote.drained)
        self.recovering += 1
        self.system.background(self._recovered, cell)
        return cell

    async def _recovered(self, cell: Cell) -> None:
        try:
            await cell.ready.wait()
        finally:
            self.recovering -= 1
            self._due.set()  # room for more

    async def release(self, cell: Cell) -> None:
        """After ``cell`` stopped: give its actor up, so that any member can claim it when it
        next has work. Also when it stopped broken (a lost race, a commit of unknown outcome):
        kept, the ownership of a live member that no longer serves the actor would strand it.
        The release is fenced: it does nothing if the cell had lost the actor already."""
        fence = cell.journal.fence
        if fence is None:
            return
        done = self._released[cell.stream] = trio.Event()
        try:
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                await self.system.store.release(cell.stream, fence)
        except Exception as exc:  # its lease runs out in the end, and a claim takes it then
            log.warning("%s: releasing it failed (%r)", cell.name, exc)
        finally:
            del self._released[cell.stream]
            done.set()

    # -- the member's tasks ------------------------------------------------------------------------

    def inboxes_changed(self, streams: list[str] | None) -> None:
        """Another process stored messages for ``streams``: poke those served here; look for
        work nobody serves if some are not known to be served elsewhere."""
        system = self.system
        if streams is None:
            self._due.set()
            for cell in list(system.cells.values()):
                cell.poke()
            return
        for stream in streams:
            key = system.key_of(stream)
            if key is not None and not self._poke_here(stream) and key not in self.remotes:
                self._due.set()

    def _poke_here(self, stream: str) -> bool:
        """Tell the actor of ``stream`` that its inbox has messages, if it is served here."""
        key = self.system.key_of(stream)
        cell = None if key is None else self.system.cells.get(key)
        if cell is None or cell.closing:
            return False
        cell.poke()
        return True

    async def claim_due_work(self) -> None:
        """Claim, in bounded batches, work that no live member serves: messages waiting for an
        actor nobody owns, timers of a dead member's actors. Slack claims actors a little
        before their timers are due; their own timers then fire on time."""
        cluster = self.cluster
        system = self.system
        while True:
            with trio.move_on_after(cluster.poll_seconds):
                await self._due.wait()
            self._due = trio.Event()
            room = min(cluster.claim_batch, cluster.max_recoveries - self.recovering)
            if room <= 0 or not self.serving.is_set() or system.closing:
                continue
            prefixes = [f"{kind}-" for kind in system.kinds]
            try:
                claims = await system.store.claim_due(self.member.id, prefixes=prefixes,
                                                      limit=room, slack=2 * cluster.poll_seconds)
            except NotAlive as exc:
                self.not_alive(exc)
                continue
            except EventStoreError as exc:
                log.warning("claiming due work failed (%r); it may have claimed actors it does "
                            "not know of: giving those up", exc)
                await self._give_up_unknown()
                continue
            for claim in claims:
                key = system.key_of(claim.stream)
                here = None if key is None else system.cells.get(key)
                if key is None or here is not None:
                    # Not ours to serve, or served (or stopping) here already: give it back,
                    # unless it is the very ownership the cell here runs under.
                    if here is None or here.journal.fence != claim.fence():
                        await system.store.release(claim.stream, claim.fence())
                    continue
                self.start(key, claim)
            if len(claims) == room:
                self._due.set()  # more may wait
            await trio.sleep(_CLAIM_GAP)

    async def _give_up_unknown(self) -> None:
        """Release the actors the store says this member owns and it does not serve."""
        try:
            owned = await self.system.store.owners(member=self.member.id)
            for row in owned:
                if row.stream in self._projection_names:
                    continue  # a projection this member runs
                key = self.system.key_of(row.stream)
                if key is None or (key not in self.system.cells and key not in self.routing):
                    assert row.member is not None
                    await self.system.store.release(row.stream, Fence(row.member, row.epoch))
        except EventStoreError as exc:
            log.warning("giving up unknown actors failed (%r); their lease ends with this "
                        "member's", exc)

    def not_alive(self, exc: NotAlive) -> None:
        """A claim found this member not alive: it lost its membership (its heartbeat thread
        may not know yet); stop serving until it has rejoined."""
        if exc.member == self.member.id:
            self._stop_serving()
            self.member.lose(exc.member, "a claim found it not alive")

    def _stop_serving(self) -> None:
        """Make ``serving`` unset until the rejoin sets it: a new event only if the current one
        is set (whoever waits on an unset one is woken by the rejoin)."""
        if self.serving.is_set():
            self.serving = trio.Event()

    def fenced(self, member: str) -> None:
        """A write under ``member`` was fenced: if that is this member's current id, the store
        declared it dead (its heartbeat thread may not know yet): rejoin."""
        if member == self.member.id:
            self.member.lose(member, "a write of one of its actors was fenced")

    async def keep_membership(self) -> None:
        """When the membership is lost: stop every actor (their writes are fenced already; their
        waiting asks fail), then rejoin under a new member id. Until ``leave``."""
        with self._rejoining:
            await self._keep_membership()

    async def _keep_membership(self) -> None:
        system = self.system
        while True:
            await self.member.lost.wait()
            self._stop_serving()
            for scope in self._projections:
                scope.cancel()
            cells = list(system.cells.values())
            for cell in cells:
                cell.request_stop()
            for cell in cells:
                await cell.stopped.wait()
            self.remotes.clear()
            await self.member.stop_beating()
            delay = 0.1
            while True:
                try:
                    await self.member.join()
                    break
                except EventStoreError as exc:
                    log.warning("rejoining the cluster failed (%r); trying again", exc)
                    await trio.sleep(delay)
                    delay = min(2 * delay, self.cluster.lease_seconds)
            self.serving.set()
            self._due.set()

    async def watch_lease(self) -> None:
        """Stop serving once no heartbeat succeeded for a whole lease, even if the heartbeat
        thread hangs (a half-open connection): the store may have declared this member dead."""
        while True:
            await trio.sleep(self.cluster.beat_every / 2)
            if self.serving.is_set() and not self.member.lease_holds:
                self._stop_serving()
                self.member.lose(self.member.id, "no heartbeat succeeded for a whole lease")

    async def poke_owned(self) -> None:
        """Every ten polls, look for messages waiting for the actors served here (a
        notification may have been lost): the store's work index says which have some."""
        system = self.system
        while True:
            await trio.sleep(10 * self.cluster.poll_seconds)
            if not self.serving.is_set() or not system.cells:
                continue
            try:
                work = await system.store.work()
            except EventStoreError as exc:
                log.warning("reading the work index failed (%r)", exc)
                continue
            for entry in work:
                if entry.waiting:
                    self._poke_here(entry.stream)

    async def balance(self) -> None:
        """Above its fair share of the actors the live hosting members own, passivate idle
        actors (they are claimed again where they are next addressed); never busy ones."""
        system = self.system
        while True:
            await trio.sleep(self.cluster.balance_seconds)
            if not self.serving.is_set():
                continue
            try:
                members = await system.store.members()
            except EventStoreError as exc:
                log.warning("reading the members failed (%r)", exc)
                continue
            hosts = [m for m in members if m.state == "alive" and m.hosting]
            if len(hosts) < 2:
                continue
            share = math.ceil(sum(m.owned for m in hosts) / len(hosts))
            mine = [cell for cell in system.cells.values() if not cell.closing]
            excess = len(mine) - share
            for cell in mine:
                if excess <= 0:
                    break
                if cell.idle():
                    cell.request_stop()
                    excess -= 1

    async def host_projection(self, runner: ProjectionRunner) -> None:
        """Run ``runner`` while this member holds the claim of its name (an owner row named
        like the projection), fenced with it: one member at a time runs a projection; another
        takes it over when this one dies or leaves."""
        system = self.system
        stream = runner.name
        if not self.cluster.hosting:
            return
        self._projection_names.add(stream)
        while True:
            await self.serving.wait()
            try:
                claim = await system.store.claim(stream, self.member.id)
            except EventStoreError as exc:  # NotAlive: rejoining
                log.info("projection %r: claiming it failed (%r)", runner.name, exc)
                claim = None
            if claim is None or not claim.claimed:
                runner.state = "elsewhere" if claim is not None else runner.state
                await trio.sleep(self.cluster.poll_seconds)
                continue
            runner.fence = claim.fence()
            try:
                with trio.CancelScope() as scope:
                    self._projections.add(scope)
                    await runner.run()
            except Fenced:
                log.warning("projection %r: this member lost it (another member runs it now)",
                            runner.name)
            finally:
                self._projections.discard(scope)
                runner.fence = None
            if runner.state == "failed":
                return  # stopped alone, its error visible; it keeps the claim
            if scope.cancelled_caught:
                continue  # the membership was lost: claim it again once rejoined

    async def leave(self) -> None:
        """A clean exit: every actor has stopped and been released; leave the cluster (and
        rejoin no more)."""
        self._rejoining.cancel()
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            try:
                await self.member.leave()
            except EventStoreError as exc:
                log.warning("leaving the cluster failed (%r); its lease runs out instead", exc)

