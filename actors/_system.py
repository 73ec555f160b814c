"""``ActorSystem``: hosts actor classes, activates actors by id, passivates idle ones, and
re-activates at start every actor that still has work (through the work index)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Literal, Self

import trio

from eventstore import EventStore, Fence

from ._actor import Actor
from ._actor_class import check_actor_class, check_actor_id, kind_of
from ._cell import Cell
from ._clock import Clock, WallClock
from ._cluster import Cluster, CorrectedClock, Membership
from ._errors import (
    ActorError,
    ActorStopped,
    DuplicateActor,
    InvalidActorArgument,
    InvalidActorType,
    ProjectionFailed,
)
from ._gc import GCPolicy
from ._hosting import Hosting, Routing, Target
from ._index import WAKE_AHEAD, WorkIndex
from ._projection import Projection
from ._projection_run import ProjectionRunner
from ._ref import ActorRef, binder
from ._registry import running
from ._remote import Replies
from ._telemetry import Telemetry
from ._telemetry import check_option as check_telemetry
from ._telemetry import resolve as resolve_telemetry
from ._turn import runtime_nurseries

log = logging.getLogger("actors")


class ActorSystem:
    """A home for actors: ``async with ActorSystem(store, actors=[Account]) as system:``.

    ``system.ref(Account, "a-1")`` returns a ref at once and activates the actor on first use
    (virtual actors); actors idle for ``idle_timeout`` seconds are passivated and come back on
    the next message or when their next timer is due. On start, every actor the index says has
    work (an unfinished ``run()``, a pending timer) is re-activated. Leaving the block commits
    what is pending and stops every actor.

    ``projections=[Balances()]`` runs those projections (``actors.Projection``) while the system
    runs; ``system.projection(name)`` is one's ``ProjectionRunner``. A projection that fails
    stops alone (see ``docs/projections.md``).

    ``gc=GCPolicy()`` tunes CPython's garbage collector while the system runs (it is off by
    default, since it is process-wide): see ``docs/performance.md``.

    ``telemetry`` installs traces and metrics: ``"auto"`` (the default) installs
    ``actors.otel.OpenTelemetry()`` if an OpenTelemetry SDK tracer or meter provider is
    configured globally when the system starts; pass ``actors.otel.OpenTelemetry(...)`` to
    choose the providers, or None for none. See ``docs/observability.md``.
    """

    def __init__(self, store: EventStore, *, actors: Iterable[type[Actor]] = (),
                 clock: Clock | None = None, idle_timeout: float | None = None,
                 index_stream: str = "$actors-index", gc: GCPolicy | None = None,
                 telemetry: Telemetry | Literal["auto"] | None = "auto",
                 projections: Iterable[Projection] = (), cluster: Cluster | None = None) -> None:
        if not isinstance(store, EventStore):
            raise InvalidActorType(f"store must be an eventstore.EventStore, got {store!r}")
        if cluster is not None and not isinstance(cluster, Cluster):
            raise InvalidActorType(f"cluster must be an actors.Cluster or None, got {cluster!r}")
        if cluster is not None and not store.coordinates:
            raise InvalidActorArgument(
                f"{type(store).__name__} cannot coordinate a cluster (it lives in one process's "
                "memory): use a SQLite file shared by the processes of one host, or PostgreSQL")
        if cluster is not None and clock is not None and not isinstance(clock, WallClock):
            raise InvalidActorArgument(
                f"a cluster member runs on the wall clock (corrected to the database's), not "
                f"{clock!r}: leave clock= out")
        self.cluster = cluster
        if gc is not None and not isinstance(gc, GCPolicy):
            raise InvalidActorType(f"gc must be an actors.GCPolicy or None, got {gc!r}")
        self.gc = gc
        self.telemetry = check_telemetry(telemetry)
        self._telemetry: Telemetry | None = None  # the hooks installed while it runs
        self.store = store
        self.clock: Clock = WallClock() if clock is None else clock
        self._hosting: Hosting | None = None
        if cluster is not None:
            corrected = CorrectedClock(self.clock)
            self.clock = corrected
            self._hosting = Hosting(self, cluster, Membership(store, cluster, corrected))
        self.idle_timeout = idle_timeout
        self._classes: dict[str, type[Actor]] = {}
        self._longest_first: list[str] = []  # the kinds, for key_of: "a-b" before "a"
        for cls in actors:
            self.register(cls)
        self._projections: dict[str, ProjectionRunner] = {}
        for projection in projections:
            runner = ProjectionRunner(store, projection)
            if runner.name in self._projections:
                raise InvalidActorArgument(
                    f"two projections are named {runner.name!r}; give each its own name")
            self._projections[runner.name] = runner
        self._index = WorkIndex(store, index_stream)  # the stream: a legacy index, migrated
        self._cells: dict[tuple[str, str], Cell] = {}
        self._nursery: trio.Nursery | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._index_changed = trio.Event()
        self._closing = False

    def hosts(self, cls: type[Actor]) -> bool:
        """Whether this system hosts actors of ``cls``."""
        return self._classes.get(kind_of(cls)) is cls

    def register(self, cls: type[Actor]) -> None:
        """Host actors of ``cls`` (also done by ``actors=[...]``)."""
        check_actor_class(cls)
        kind = kind_of(cls)
        if self.cluster is not None and "-" in kind:
            raise InvalidActorArgument(
                f"{cls.__qualname__}'s kind {kind!r} holds a '-': in a cluster, a member that "
                "hosts another kind could take its streams (kind-id) for its own; set a `kind` "
                "without '-'")
        other = self._classes.get(kind)
        if other is not None and other is not cls:
            raise InvalidActorArgument(f"{cls.__qualname__} and {other.__qualname__} share the "
                                       f"kind {kind!r}; set a distinct `kind` on one of them")
        if other is None:
            self._classes[kind] = cls
            self._longest_first = sorted(self._classes, key=len, reverse=True)

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self._lifetime())
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool | None:
        stack, self._stack = self._stack, None
        assert stack is not None, "ActorSystem.__aexit__ without __aenter__"
        return await stack.__aexit__(exc_type, exc, tb)

    @property
    def member(self) -> str | None:
        """This member's id in its cluster (it changes when it rejoins), or None."""
        return None if self._hosting is None else self._hosting.member.id

    @contextlib.asynccontextmanager
    async def _lifetime(self) -> AsyncIterator[None]:
        """The system's lifetime: its nursery, the wake-up task, and a clean stop at the end."""
        bound = binder.set(self._bind)  # refs decoded in this system's tasks are its own
        hosting = self._hosting
        if hosting is None:
            await self._refuse_beside_a_cluster()
            await self._index.load(migrate=True)
        else:  # each member claims due work from the store's index instead
            await hosting.member.join()
            hosting.serving.set()
        self._telemetry = resolve_telemetry(self.telemetry)
        if self._telemetry is not None:
            self._telemetry.watch(self, lambda: list(self._cells.values()))
        with contextlib.ExitStack() as gc_settings:
            if self.gc is not None:
                gc_settings.enter_context(self.gc.applied())
            async with trio.open_nursery() as nursery:
                runtime_nurseries.add(nursery)
                self._nursery = nursery
                nursery.start_soon(self._wake_due_actors)
                if self.gc is not None:
                    nursery.start_soon(self.gc.keep)
                if hosting is not None:
                    hosting.replies = Replies(self.store, nursery)
                    nursery.start_soon(hosting.keep_membership)
                    nursery.start_soon(hosting.watch_lease)
                    if hosting.cluster.hosting:
                        nursery.start_soon(hosting.claim_due_work)
                        nursery.start_soon(hosting.poke_owned)
                        nursery.start_soon(hosting.balance)
                        self.store.watch_inboxes(hosting.inboxes_changed)
                for runner in self._projections.values():
                    nursery.start_soon(self._host_projection, runner)
                if self.gc is not None:
                    self.gc.freeze_now()
                try:
                    yield
                    await self.shutdown()
                finally:
                    self._closing = True
                    if hosting is not None:
                        self.store.watch_inboxes(None)
                        await hosting.leave()
                    nursery.cancel_scope.cancel()
                    if self._telemetry is not None:
                        self._telemetry.unwatch(self)
                    binder.reset(bound)

    async def _refuse_beside_a_cluster(self) -> None:
        """A system outside the cluster would serve actors its members own, unfenced."""
        if not self.store.coordinates:
            return
        alive = [m.id for m in await self.store.members() if m.state == "alive" and m.hosting]
        if alive:
            raise InvalidActorArgument(
                f"this store is served by a cluster ({len(alive)} member(s) alive, such as "
                f"{alive[0]!r}): an ActorSystem without cluster= would run their actors a "
                "second time; start it with cluster=actors.Cluster(...) (hosting=False for a "
                "client)")

    def projection(self, name: str) -> ProjectionRunner:
        """The runner of the hosted projection ``name``: its state, offset, lag, operations."""
        try:
            return self._projections[name]
        except KeyError:
            raise InvalidActorArgument(
                f"this system hosts no projection named {name!r}; it hosts "
                f"{sorted(self._projections) or 'none'}") from None

    async def _host_projection(self, runner: ProjectionRunner) -> None:
        """Run a projection; its failure stops it alone (``runner.error``), not the system.
        In a cluster, one member at a time runs it."""
        try:
            if self._hosting is not None:
                await self._hosting.host_projection(runner)
            else:
                await runner.run()
        except ProjectionFailed:
            pass  # logged by the runner; visible as runner.state and runner.error
        except Exception:
            log.exception("projection %r stopped with an error", runner.name)

    async def shutdown(self) -> None:
        """Stop every actor after its queued messages. A checkpoint.

        Durable sleeps in progress are cut short; their scopes resume at the next activation.
        """
        self._closing = True
        cells = list(self._cells.values())
        for cell in cells:
            cell.request_stop()
        await trio.lowlevel.checkpoint()  # also with nothing to stop
        for cell in cells:
            await cell.stopped.wait()

    async def spawn(self, cls: type[Actor], actor_id: str) -> ActorRef:
        """Activate ``cls``/``actor_id`` now and return its ref once it has recovered.

        In a cluster, the actor is claimed and activated here, unless another member owns it.
        """
        self.register(cls)
        ref = self.ref(cls, actor_id)
        key = (kind_of(cls), check_actor_id(actor_id))
        if self._hosting is None:
            await self._activate(*key)
            return ref
        target = ref._resolve()
        if isinstance(target, Routing):
            target = await target.ready()
        if isinstance(target, Cell):
            await target.ready.wait()
            if target.stopped.is_set():
                raise target.stop_error()
        return ref

    def ref(self, cls: type[Actor], actor_id: str) -> ActorRef:
        """A ref that activates the actor on first use (and again after passivation)."""
        self.register(cls)
        kind = kind_of(cls)
        check_actor_id(actor_id)
        key = (kind, actor_id)

        def resolve() -> Target:
            cell = self._cells.get(key)
            if cell is not None and not cell.closing:
                return cell
            if self._hosting is not None:
                if self._nursery is None or self._closing:
                    raise ActorStopped(f"{key[0]}({key[1]!r})", "its ActorSystem is not running")
                return self._hosting.target(key)
            return self._activate_nowait(key)

        def current() -> Cell | None:
            cell = self._cells.get(key)
            return None if cell is None or cell.stopped.is_set() else cell

        return ActorRef(kind, actor_id, f"{kind}-{actor_id}", resolve, current, self.store)

    def _bind(self, kind: str, actor_id: str) -> ActorRef | None:
        cls = self._classes.get(kind)
        return None if cls is None else self.ref(cls, actor_id)

    @property
    def active(self) -> int:
        """How many actors are in memory now."""
        return sum(1 for cell in self._cells.values() if not cell.stopped.is_set())

    # -- for the cluster side (``_hosting``) ----------------------------------------------------

    @property
    def cells(self) -> dict[tuple[str, str], Cell]:
        return self._cells

    @property
    def kinds(self) -> list[str]:
        return list(self._classes)

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def replies(self) -> Replies:
        assert self._hosting is not None and self._hosting.replies is not None
        return self._hosting.replies

    remote_ttl = 30.0
    """Seconds a member trusts that another one owns an actor before it asks the store again."""

    def background(self, function: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``function(*args)`` in the system's nursery."""
        if self._nursery is None:
            raise ActorStopped("the ActorSystem", "it is not running")
        self._nursery.start_soon(function, *args)

    def fenced(self, member: str) -> None:
        """A write of ``member`` was fenced: if that is this member, it lost its membership."""
        if self._hosting is not None:
            self._hosting.fenced(member)

    def start_cell(self, key: tuple[str, str], fence: Fence,
                   after: Callable[[], Awaitable[object]] | None = None) -> Cell:
        """Serve ``key`` here under ``fence`` (a claim of this member), once ``after()``
        returns."""
        cell = self._activate_nowait(key, after)
        cell.journal.fence = fence
        return cell

    # -- activation ------------------------------------------------------------------------------

    def _activate_nowait(self, key: tuple[str, str],
                         after: Callable[[], Awaitable[object]] | None = None) -> Cell:
        if self._nursery is None or self._closing:
            raise ActorStopped(f"{key[0]}({key[1]!r})", "its ActorSystem is not running")
        cls = self._classes[key[0]]
        previous = self._cells.get(key)
        other = running(self.store, f"{key[0]}-{key[1]}")
        if other is not None and other is not previous:
            raise DuplicateActor(other.name)
        cell = Cell(cls, key[1], store=self.store, clock=self.clock,
                    work_hook=self._work_changed, idle_timeout=self.idle_timeout,
                    telemetry=self._telemetry)
        cell.system = self
        cell.journal.indexed = self._index.wake.get(cell.stream)
        self._cells[key] = cell
        self._nursery.start_soon(self._serve, key, cell, previous, after)
        return cell

    async def _serve(self, key: tuple[str, str], cell: Cell, previous: Cell | None,
                     after: Callable[[], Awaitable[object]] | None = None) -> None:
        try:
            if previous is not None:
                await previous.stopped.wait()  # passivating: let it commit before recovering
            if after is not None:
                await after()
            await cell.serve()
        except ActorStopped as exc:  # a lost race, an unknown outcome, a fence: said once
            log.warning("%s stopped: %s", cell.name, exc.reason)
        except Exception:
            log.exception("%s stopped with an error", cell.name)
        finally:
            if cell.stopped.is_set():
                # Nothing reads its state or journal any more (a cluster: its fence only, to
                # release its claim): free them at once; a stale actor object's reads raise.
                cell.dismantle()
            if self._hosting is not None:
                await self._hosting.release(cell)
            if self._cells.get(key) is cell:
                del self._cells[key]
            if self._index.rearm(cell.stream, after=self.clock.time()):
                # Activated ahead of its timer, then stopped before it fired: the entry the
                # activation took off the heap goes back, so the timer still wakes it.
                self._index_changed.set()

    async def _activate(self, kind: str, actor_id: str) -> Cell:
        key = (kind, actor_id)
        cell = self._cells.get(key)
        if cell is None or cell.closing:
            cell = self._activate_nowait(key)
        await cell.ready.wait()
        if cell.stopped.is_set():
            raise cell.stop_error()
        return cell

    def _work_changed(self, cell: Cell, wake_at: float | None) -> None:
        self._index.changed(cell.stream, wake_at)
        self._index_changed.set()

    def key_of(self, stream: str) -> tuple[str, str] | None:
        """The (kind, actor id) of an actor's stream, if this system hosts its kind."""
        for kind in self._longest_first:
            if stream.startswith(kind) and stream[len(kind):len(kind) + 1] == "-":
                return kind, stream[len(kind) + 1:]
        return None

    async def _wake_due_actors(self) -> None:
        """Activate passivated (or not yet started) actors whose work is due, or whose timer is
        due within ``WAKE_AHEAD``: the activated actor's own timer fires it at the instant."""
        while True:
            self._index_changed = trio.Event()
            entry = self._index.next_due()
            if entry is None:
                await self._index_changed.wait()
                continue
            wake_at, stream = entry
            delay = wake_at - WAKE_AHEAD - self.clock.time()
            if delay > 0:
                with trio.move_on_after(delay):
                    await self._index_changed.wait()
                continue
            if self._closing:
                return  # shutting down: activating now would only fail
            self._index.pop(stream, wake_at)
            key = self.key_of(stream)
            if key is None:
                continue  # an actor of a class this system does not host
            cell = self._cells.get(key)
            if cell is None or cell.closing:
                try:
                    if self._hosting is not None:
                        self._hosting.target(key).poke()  # claimed here, or owned elsewhere
                    else:
                        self._activate_nowait(key)
                except ActorError as exc:
                    log.warning("cannot activate %s: %s", key, exc)
            await trio.sleep(0)
